"""torch._dynamo's names that training scripts touch: OptimizedModule (what torch.compile returns for a module),
reset, list_backends and the InvalidBackend error. dtrain has no graph capture: a compiled model runs eagerly."""
from . import eval_frame, exc
from .eval_frame import OptimizedModule

# torch's registered backends (torch._dynamo.list_backends(exclude_tags=()) in torch 2.13); the second element
# says whether list_backends() shows it by default (torch hides its 'debug' and 'experimental' ones)
_BACKENDS = {"cudagraphs": True, "inductor": True, "openxla": True, "tvm": True, "eager": False,
             "aot_eager": False, "aot_eager_decomp_partition": False, "aot_eager_default_partitioner": False,
             "aot_ts": False, "eager_debug": False, "eager_noexcept": False, "openxla_eval": False,
             "pre_dispatch_eager": False, "ts": False}


def list_backends(exclude_tags=("debug", "experimental")) -> list:
    """The backend names torch.compile accepts (each runs eagerly in dtrain)."""
    return sorted(n for n, shown in _BACKENDS.items() if shown or not exclude_tags)


def reset() -> None:
    """Clears compiled code in torch; dtrain keeps none, so there is nothing to clear."""


def is_compiling() -> bool:
    return False
