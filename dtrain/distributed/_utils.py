"""The smaller parts of torch.distributed's namespace: subgroups, monitored_barrier and debug levels, the
node-local rank, backend queries."""
import datetime
import enum
import os

from . import _env, distributed_c10d as c10d
from ._work import DistBackendError

__all__ = ["new_subgroups", "new_subgroups_by_enumeration", "monitored_barrier", "DebugLevel", "get_debug_level",
           "set_debug_level", "set_debug_level_from_env", "get_node_local_rank", "is_backend_available",
           "get_default_backend_for_device", "default_pg_timeout"]

# dtrain's default for a group's timeout (torch's own constant says 30 minutes; its NCCL and gloo groups
# default to 10, as every dtrain group does)
default_pg_timeout = datetime.timedelta(seconds=_env.default_timeout())


# ---------------------------------------------------------------- subgroups
def new_subgroups_by_enumeration(ranks_per_subgroup_list, timeout=None, backend=None, pg_options=None,
                                 group_desc=None):
    """One group per list of global ranks (disjoint lists), made on every rank in the same order; returns
    (the subgroup holding this rank or None, all of them)."""
    if not ranks_per_subgroup_list:
        raise ValueError("The arg 'ranks_per_subgroup_list' cannot be empty")
    seen = {}
    for ranks in ranks_per_subgroup_list:
        for r in ranks:
            if r in seen:
                raise ValueError(f"Rank {r} has appeared in both subgroup {seen[r]} and {ranks}")
            seen[r] = ranks
    me = c10d.get_rank()
    mine, subgroups = None, []
    for ranks in ranks_per_subgroup_list:
        pg = c10d.new_group(ranks, timeout=timeout, backend=backend, pg_options=pg_options)
        subgroups.append(pg)
        if me in ranks:
            mine = pg
    return mine, subgroups


def new_subgroups(group_size=None, group=None, timeout=None, backend=None, pg_options=None, group_desc=None):
    """Consecutive subgroups of `group_size` ranks of `group` (default: the world; the size defaults to the
    number of CUDA devices, as in torch); returns (this rank's subgroup, all of them)."""
    if group_size is None:
        from .. import cuda
        if not cuda.is_available():
            raise ValueError("Default group size only takes effect when CUDA is available.If your subgroup using a "
                             "backend that does not depend on CUDA,please pass in 'group_size' correctly.")
        group_size = cuda.device_count()
    if group_size <= 0:
        raise ValueError(f"The arg 'group_size' ({group_size}) must be positive")
    world_size = c10d.get_world_size(group)
    if world_size < group_size:
        raise ValueError(f"The arg 'group_size' ({group_size}) must not exceed the world size ({world_size})")
    if world_size % group_size != 0:
        raise ValueError(f"The world size ({world_size}) must be divisible by 'group_size={group_size}'")
    ranks = c10d.get_process_group_ranks(group) if group is not None else list(range(world_size))
    return new_subgroups_by_enumeration([ranks[i:i + group_size] for i in range(0, len(ranks), group_size)],
                                        timeout=timeout, backend=backend, pg_options=pg_options)


# ---------------------------------------------------------------- debugging
class DebugLevel(enum.IntEnum):
    OFF = 0
    INFO = 1
    DETAIL = 2


def get_debug_level():
    """The level set by set_debug_level, else DTRAIN_DISTRIBUTED_DEBUG (or torch's TORCH_DISTRIBUTED_DEBUG).
    DETAIL checks before every collective that all ranks run the same one (see distributed_c10d)."""
    return DebugLevel(_env.debug_level())


def set_debug_level(level):
    """Set the level for this process, for existing groups and new ones."""
    _env.set_debug_level(int(DebugLevel(level)))
    for pg in [c10d._world.default] + list(c10d._world.groups):
        if pg is not None and pg._mpi is not None:
            pg._debug = _env.debug_detail() and pg.size() > 1
            pg._plain = c10d._is_plain(pg)


def set_debug_level_from_env():
    """Set the level from DTRAIN_DISTRIBUTED_DEBUG / TORCH_DISTRIBUTED_DEBUG (OFF, INFO or DETAIL)."""
    value = _env.debug_env()
    if value.upper() not in DebugLevel.__members__:
        raise ValueError(f"The value of the distributed debug level must be OFF, INFO, or DETAIL, not {value!r}")
    set_debug_level(DebugLevel[value.upper()])


def monitored_barrier(group=None, timeout=None, wait_all_ranks=False):
    """A barrier that, past `timeout` (default: the group's), raises on every rank that arrived, naming the
    first rank that did not (every one with wait_all_ranks=True), in torch's words. The group is unusable
    afterwards, as after any timeout."""
    pg = c10d._pg(group)
    if pg is None:
        return None
    if isinstance(timeout, float):
        import warnings
        warnings.warn("Please specify timeout arg as a timedelta. Converting current value of "
                      f"{timeout} assuming it represents seconds", stacklevel=2)
    seconds = c10d._timeout_s(timeout) if timeout is not None else pg._timeout
    if seconds <= 0:
        raise ValueError(f"Expected timeout argument to be of type datetime.timedelta and positive, got {timeout}")
    saved, pg._timeout = pg._timeout, seconds
    try:
        c10d.barrier(group)
    except DistBackendError as e:
        missing = pg._mpi.missing()
        if not missing:
            raise
        late = [pg._ranks[m] for m in missing]
        who = f"Ranks {', '.join(map(str, late))}" if wait_all_ranks and len(late) > 1 else f"Rank {late[0]}"
        raise DistBackendError(f"{who} failed to pass monitoredBarrier in {int(seconds * 1000)} ms") from e
    finally:
        pg._timeout = saved


# ---------------------------------------------------------------- where am I
def get_node_local_rank(fallback_rank=None):
    """LOCAL_RANK as dtrain-run, torchrun and SLURM-aware launchers set it; else `fallback_rank`."""
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if fallback_rank is not None:
        return int(fallback_rank)
    raise RuntimeError("LOCAL_RANK is not in the environment. Consider passing fallback_rank to allow "
                       "`get_node_local_rank` to work, assuming you are not running in a multi-device context and "
                       "want the code to run locally instead.")


def is_backend_available(backend):
    """Whether `backend` ("mpi", "gloo" — served by MPI —, "nccl") can be used here."""
    name = str(backend).lower()
    checks = {"mpi": c10d.is_mpi_available, "gloo": c10d.is_gloo_available, "nccl": c10d.is_nccl_available}
    return name in checks and checks[name]()


def get_default_backend_for_device(device):
    """The backend init_process_group picks for tensors of `device`: "mpi" for cpu, "nccl" for cuda."""
    kind = device if isinstance(device, str) else getattr(device, "type", str(device))
    kind = kind.split(":")[0]
    backends = {"cpu": "mpi", "cuda": "nccl"}
    if kind not in backends:
        raise ValueError(f"Default backend not registered for device : {device}")
    return backends[kind]
