"""DDP communication hooks (torch.distributed.algorithms.ddp_comm_hooks): `default` (all-reduce, float16
and bfloat16 compression), `powerSGD` and `debugging`, and `register_ddp_comm_hook` by `DDPCommHookType`.

Not here: the quantization hooks (so no QUANTIZE_PER_TENSOR / QUANTIZE_PER_CHANNEL hook types), the
optimizer-overlap, post-local-SGD, mixed-precision and ZeRO hooks."""
from enum import Enum
from functools import partial

from . import debugging_hooks as debugging  # noqa: F401
from . import default_hooks as default  # noqa: F401
from . import powerSGD_hook as powerSGD  # noqa: F401
from .default_hooks import allreduce_hook, fp16_compress_hook  # noqa: F401

__all__ = ["DDPCommHookType", "register_ddp_comm_hook"]


def _ddp_comm_hook_wrapper(comm_hook, model, state):
    model.register_comm_hook(state, comm_hook)


def _powerSGD_comm_hook_wrapper(comm_hook, model, state, matrix_approximation_rank, start_powerSGD_iter=1_000):
    """Register a PowerSGD hook; `state` is only the process group, wrapped here into a PowerSGDState."""
    powerSGD_state = powerSGD.PowerSGDState(process_group=state, matrix_approximation_rank=matrix_approximation_rank,
                                            start_powerSGD_iter=start_powerSGD_iter)
    model.register_comm_hook(powerSGD_state, comm_hook)


def _member(hook, **kwargs):
    # a partial as an Enum value would be taken for a method without enum.member (Python 3.11+)
    p = partial(hook, **kwargs)
    try:
        from enum import member
    except ImportError:  # Python 3.10: a partial is never a method there
        return p
    return member(p)


class DDPCommHookType(Enum):
    """The built-in hooks by name; ``DDPCommHookType.ALLREDUCE.value(model=model, state=process_group)``
    registers one."""

    ALLREDUCE = _member(_ddp_comm_hook_wrapper, comm_hook=default.allreduce_hook)
    FP16_COMPRESS = _member(_ddp_comm_hook_wrapper, comm_hook=default.fp16_compress_hook)
    BF16_COMPRESS = _member(_ddp_comm_hook_wrapper, comm_hook=default.bf16_compress_hook)
    POWER_SGD = _member(_powerSGD_comm_hook_wrapper, comm_hook=powerSGD.powerSGD_hook, matrix_approximation_rank=1)
    # rank 2 can be more accurate than rank 1, at more time and memory
    POWER_SGD_RANK2 = _member(_powerSGD_comm_hook_wrapper, comm_hook=powerSGD.powerSGD_hook,
                              matrix_approximation_rank=2)
    # batching the whole bucket is faster, at a cost in accuracy
    BATCHED_POWER_SGD = _member(_powerSGD_comm_hook_wrapper, comm_hook=powerSGD.batched_powerSGD_hook,
                                matrix_approximation_rank=1)
    BATCHED_POWER_SGD_RANK2 = _member(_powerSGD_comm_hook_wrapper, comm_hook=powerSGD.batched_powerSGD_hook,
                                      matrix_approximation_rank=2)
    NOOP = _member(_ddp_comm_hook_wrapper, comm_hook=debugging.noop_hook)


def register_ddp_comm_hook(comm_hook_type: DDPCommHookType, model, state=None):
    """Register the hook `comm_hook_type` names on the DDP `model`, with `state` (a process group or None)."""
    comm_hook_type.value(model=model, state=state)
