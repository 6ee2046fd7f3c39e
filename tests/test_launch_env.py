"""torch's rank variables from the process manager's own, for scripts started by srun or mpiexec directly."""
import os
import subprocess
import sys

import pytest

from dtrain._launch_env import launcher_env


def test_already_set_wins():
    assert launcher_env({"RANK": "3", "PMI_RANK": "1", "PMI_SIZE": "2"}) == {}
    assert launcher_env({"WORLD_SIZE": "1", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1"}) == {}


def test_nothing_to_see_is_a_world_of_one():
    assert launcher_env({}) == {}
    # a batch script is no step; a one-task step without PMI is a world of one
    assert launcher_env({"SLURM_JOB_ID": "5", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == {}
    assert launcher_env({"SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"}) == {}


def test_hydra_mpiexec():
    env = {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2",
           "SLURM_PROCID": "0", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}  # mpiexec inside an allocation
    assert launcher_env(env) == {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                 "MASTER_ADDR": "127.0.0.1"}


def test_srun_pmi2_on_several_nodes():
    # rank 5 of 7: the third task on the second node of "3(x2),1" over gpu[01-02],gpu07
    env = {"PMI_RANK": "5", "PMI_SIZE": "7", "SLURM_STEP_ID": "0", "SLURM_PROCID": "5", "SLURM_LOCALID": "2",
           "SLURM_NODEID": "1", "SLURM_STEP_NUM_TASKS": "7", "SLURM_STEP_TASKS_PER_NODE": "3(x2),1",
           "SLURM_STEP_NODELIST": "gpu[01-02],gpu07"}
    assert launcher_env(env) == {"RANK": "5", "WORLD_SIZE": "7", "LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "3",
                                 "MASTER_ADDR": "gpu01"}
    assert launcher_env({**env, "MASTER_ADDR": "head"}).get("MASTER_ADDR") is None


def test_open_mpi_and_plain_srun():
    env = {"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
    assert launcher_env(env) == {"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
    # srun without PMI: N worlds of one, but RANK is set, so init_process_group gets to refuse them
    env = {"SLURM_STEP_ID": "3", "SLURM_PROCID": "1", "SLURM_LOCALID": "1", "SLURM_NODEID": "0",
           "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_TASKS_PER_NODE": "2", "SLURM_STEP_NODELIST": "vm"}
    assert launcher_env(env) == {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                 "MASTER_ADDR": "vm"}


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(sys.executable), "mpiexec")),
                    reason="needs the mpich wheel's mpiexec")
def test_import_sets_them_under_mpiexec(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "MPI_LOCAL", "OMPI_", "SLURM_", "DTRAIN_", "HYDRA_"))
           and k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR")}
    # Each rank writes its own file: mpiexec forwards the ranks' stdout in chunks that may interleave.
    code = ("import os, sys, dtrain; open(os.path.join(sys.argv[1], os.environ.get('RANK', 'none')), 'w')"
            ".write(' '.join(os.environ.get(k, '-') for k in "
            "('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR')))")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "mpiexec"), "-n", "2", sys.executable,
                          "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(tmp_path)) == ["0", "1"]
    assert [(tmp_path / r).read_text() for r in ("0", "1")] == ["0 0 2 2 127.0.0.1", "1 1 2 2 127.0.0.1"]
