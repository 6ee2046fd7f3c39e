"""Rank and world discovery: MPI is the authority; the environment and SLURM are checked against it."""
import os

_MPI = None
_MPI_ERROR = None


def mpi():
    """The mpi4py.MPI module, initialised with THREAD_MULTIPLE on first use; None when mpi4py is unusable."""
    global _MPI, _MPI_ERROR
    if _MPI is None and _MPI_ERROR is None:
        try:
            import mpi4py
            # async work is progressed on a background thread, so MPI must accept calls from any thread
            mpi4py.rc.thread_level = "multiple"
            from mpi4py import MPI
            _MPI = MPI
        except Exception as e:  # ImportError, or a missing/broken libmpi
            _MPI_ERROR = e
    return _MPI


def _env_int(name):
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def world(rank=-1, world_size=-1):
    """(rank, world_size, comm or None) of this process, after checking every source agrees with MPI."""
    MPI = mpi()
    if MPI is not None:
        comm = MPI.COMM_WORLD
        mpi_rank, mpi_size = comm.Get_rank(), comm.Get_size()
    else:
        comm, mpi_rank, mpi_size = None, 0, 1
    slurm = _env_int("SLURM_NTASKS")
    if slurm and slurm > 1 and mpi_size == 1 and _env_int("SLURM_STEP_NUM_TASKS") != 1:
        raise RuntimeError(
            f"SLURM started {slurm} tasks but MPI sees a world of 1 in each: the tasks did not connect. "
            "Launch with `srun --mpi=pmi2 python ...` or with `dtrain-run`.")
    env_size, env_rank = _env_int("WORLD_SIZE"), _env_int("RANK")
    if (env_size is not None and env_size != mpi_size) or (env_rank is not None and env_rank != mpi_rank):
        hint = (" Each process is its own MPI world: start the ranks with dtrain-run, mpiexec or "
                "srun --mpi=pmi2 (torchrun's rendezvous is not used)." if mpi_size == 1 else "")
        raise RuntimeError(
            f"The environment says RANK={os.environ.get('RANK')} WORLD_SIZE={os.environ.get('WORLD_SIZE')} "
            f"but MPI says rank {mpi_rank} of a world of {mpi_size}.{hint}")
    if (world_size not in (-1, None) and world_size != mpi_size) or (rank not in (-1, None) and rank != mpi_rank):
        raise ValueError(f"init_process_group(world_size={world_size}, rank={rank}) disagrees with MPI, "
                         f"which started this process as rank {mpi_rank} of a world of {mpi_size}")
    return mpi_rank, mpi_size, comm


def local_rank(comm):
    """This process's index among the ranks on its node."""
    value = _env_int("LOCAL_RANK")
    if value is not None:
        return value
    if comm is None:
        return 0
    node = comm.Split_type(mpi().COMM_TYPE_SHARED)
    try:
        return node.Get_rank()
    finally:
        node.Free()


def oversubscribed(comm):
    """Whether this node runs more ranks than this process may use cores."""
    if comm is None:
        return False
    node = comm.Split_type(mpi().COMM_TYPE_SHARED)
    try:
        ranks_here = node.Get_size()
    finally:
        node.Free()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return ranks_here > cores


def default_timeout():
    """Seconds: DTRAIN_DIST_TIMEOUT, else torch's default of 10 minutes."""
    value = os.environ.get("DTRAIN_DIST_TIMEOUT")
    return float(value) if value else 600.0


_DEBUG_LEVELS = {"OFF": 0, "INFO": 1, "DETAIL": 2}
_debug_override = None  # set_debug_level's, over the environment


def debug_env():
    """DTRAIN_DISTRIBUTED_DEBUG, else torch's TORCH_DISTRIBUTED_DEBUG, else OFF."""
    return os.environ.get("DTRAIN_DISTRIBUTED_DEBUG") or os.environ.get("TORCH_DISTRIBUTED_DEBUG") or "OFF"


def debug_level():
    if _debug_override is not None:
        return _debug_override
    return _DEBUG_LEVELS.get(debug_env().upper(), 0)


def set_debug_level(level):
    global _debug_override
    _debug_override = level


def debug_detail():
    return debug_level() == 2
