"""dtrain.distributed: torch.distributed's process groups and collectives over MPI (mpi4py) and NCCL (CuPy).

Start ranks with `dtrain-run -n N script.py` (or mpiexec / srun --mpi=pmi2); a script started with plain
`python` is rank 0 of a world of 1. Every blocking collective honours the group's timeout and raises
instead of hanging; set DTRAIN_DISTRIBUTED_DEBUG=DETAIL (or TORCH_DISTRIBUTED_DEBUG, or call
set_debug_level) to check before each collective that every rank runs the same operation on the same
shapes and dtypes (see distributed_c10d for both). CuPy tensors go to
MPI through host memory unless MPI reports CUDA support (MPIX_Query_cuda_support); DTRAIN_CUDA_AWARE_MPI=1
or 0 overrides what it reports.
"""
from .distributed_c10d import (  # noqa: F401
    Backend, DistBackendError, DistError, GroupMember, P2POp, ProcessGroup, ReduceOp, Work, all_gather,
    all_gather_into_tensor, all_reduce, all_to_all, all_to_all_single, barrier, batch_isend_irecv, broadcast,
    destroy_process_group, gather, get_backend, get_global_rank, get_group_rank, get_process_group_ranks, get_rank,
    get_world_size, group, init_process_group, irecv, is_available, is_gloo_available, is_initialized,
    is_mpi_available, is_nccl_available, is_torchelastic_launched, isend, new_group, recv, reduce, reduce_scatter,
    reduce_scatter_tensor, scatter, send)
from ._utils import (  # noqa: F401
    DebugLevel, default_pg_timeout, get_debug_level, get_default_backend_for_device, get_node_local_rank,
    is_backend_available, monitored_barrier, new_subgroups, new_subgroups_by_enumeration, set_debug_level,
    set_debug_level_from_env)
from ._store import DistStoreError, FileStore, HashStore, PrefixStore, Store, TCPStore  # noqa: F401
from ._objects import (  # noqa: F401
    all_gather_object, broadcast_object_list, gather_object, recv_object_list, scatter_object_list, send_object_list)


def __getattr__(name):
    if name == "GradBucket":  # defined beside DistributedDataParallel, which imports this package
        from ..nn.parallel.distributed import GradBucket
        return GradBucket
    raise AttributeError(f"module 'dtrain.distributed' has no attribute {name!r}")
