"""torch's rank variables for a process that mpiexec or srun started directly, set when dtrain is imported.

Under `dtrain-run` (and torchrun) every rank finds RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE and
MASTER_ADDR in its environment, and scripts decide on data parallelism from them, as nanoGPT does:
``ddp = int(os.environ.get("RANK", -1)) != -1``. A script started by ``srun --mpi=pmi2 python train.py``
or ``mpiexec -n 4 python train.py`` would see none of them and train N independent copies, each on all
the data, all writing the same checkpoint. Importing dtrain fills them in from the process manager's own
variables, so the same script behaves the same under every launcher; variables already set win.
"""
import os
import re

def _int(env, name):
    value = env.get(name, "")
    return int(value) if value.strip().isdigit() else None


def _slurm_step(env):
    """(rank, size, local_rank, local_size) of a task of a SLURM job step; None outside a step."""
    if "SLURM_STEP_ID" not in env or _int(env, "SLURM_PROCID") is None:
        return None
    size = _int(env, "SLURM_STEP_NUM_TASKS") or _int(env, "SLURM_NTASKS") or 1
    node = _int(env, "SLURM_NODEID") or 0
    local_size = None
    per_node = env.get("SLURM_STEP_TASKS_PER_NODE", "")
    counts = []
    for part in per_node.split(","):  # "2(x3),1" -> [2, 2, 2, 1]
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if m is None:
            counts = []
            break
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    if node < len(counts):
        local_size = counts[node]
    return _int(env, "SLURM_PROCID"), size, _int(env, "SLURM_LOCALID"), local_size


def _first_slurm_host(env):
    nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
    first = nodes.split(",")[0].strip()
    m = re.fullmatch(r"([^\[]*)\[([0-9]+)[^\]]*\](.*)", first)  # "gpu[01-04,07]" -> gpu01
    return m.group(1) + m.group(2) + m.group(3) if m else (first or None)


def launcher_env(env=None) -> dict:
    """The torch variables to add for this process ({} when RANK or WORLD_SIZE is set, or no launcher is seen).

    Sources, first match wins: MPICH's PMI (hydra's mpiexec, ``srun --mpi=pmi2``), Open MPI's mpirun,
    then a SLURM job step without PMI (plain ``srun``: N worlds of one, which `init_process_group`
    refuses with a message that says how to launch).
    """
    env = os.environ if env is None else env
    if "RANK" in env or "WORLD_SIZE" in env:
        return {}
    step = _slurm_step(env)
    if _int(env, "PMI_RANK") is not None and _int(env, "PMI_SIZE") is not None:
        rank, size = _int(env, "PMI_RANK"), _int(env, "PMI_SIZE")
        local_rank, local_size = _int(env, "MPI_LOCALRANKID"), _int(env, "MPI_LOCALNRANKS")  # hydra's
        by_srun = local_rank is None and step is not None and step[1] == size
        if by_srun:  # srun's PMI: SLURM knows the node
            local_rank, local_size = step[2], step[3]
    elif _int(env, "OMPI_COMM_WORLD_RANK") is not None:
        rank, size = _int(env, "OMPI_COMM_WORLD_RANK"), _int(env, "OMPI_COMM_WORLD_SIZE") or 1
        local_rank, local_size = _int(env, "OMPI_COMM_WORLD_LOCAL_RANK"), _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE")
        by_srun = False
    elif step is not None and step[1] > 1:
        rank, size, local_rank, local_size = step
        by_srun = True
    else:
        return {}
    out = {"RANK": rank, "WORLD_SIZE": size}
    if local_rank is not None:
        out["LOCAL_RANK"] = local_rank
    if local_size is not None:
        out["LOCAL_WORLD_SIZE"] = local_size
    if "MASTER_ADDR" not in env:
        host = _first_slurm_host(env) if by_srun else ("127.0.0.1" if local_size == size else None)
        if host:
            out["MASTER_ADDR"] = host
    return {k: str(v) for k, v in out.items()}


def export():
    os.environ.update(launcher_env())
