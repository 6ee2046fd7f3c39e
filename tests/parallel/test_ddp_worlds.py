"""Runs the DDP cases (mpi_ddp.py) in real MPI worlds of 2 and 4 ranks; each rank runs pytest --with-mpi."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")


@pytest.mark.parametrize("n", [2, 4])
def test_ddp_cases_in_mpi_world(n):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", DTRAIN_DIST_TIMEOUT="120")
    proc = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, "-m", "pytest", "--with-mpi", "-q", "-x",
                           "-p", "no:cacheprovider", os.path.join(HERE, "mpi_ddp.py")],
                          cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert " passed" in out and "failed" not in out.split("\n")[-2]
