"""Runs mpi_grad_scaler.py on 2 MPI ranks (the GradScaler skip decision under DDP)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")

pytestmark = pytest.mark.skipif("PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ,
                                reason="starts its own MPI job; not run inside one")


def test_skip_decision_is_the_same_on_every_rank():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "OMPI_", "SLURM_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", DTRAIN_DIST_TIMEOUT="120")
    cmd = [MPIEXEC if os.path.exists(MPIEXEC) else "mpiexec", "-n", "2"]
    if "HYDRA" in subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout.upper():
        cmd += ["-launcher", "fork"]
    cmd += [sys.executable, "-m", "pytest", "--with-mpi", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
            os.path.join(HERE, "mpi_grad_scaler.py")]
    proc = subprocess.run(cmd, cwd=os.path.dirname(os.path.dirname(HERE)), env=env, capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert out.count(" passed") == 2 and " failed" not in out, out[-3000:]
