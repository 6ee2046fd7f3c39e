"""Runs the multi-rank test modules under mpiexec with 2, 3 and 4 ranks, so plain `pytest tests` covers them."""
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
MODULES = ["test_collectives.py", "test_errors.py", "test_utils.py"]

pytestmark = pytest.mark.skipif("PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ,
                                reason="starts its own MPI jobs; not run inside one")


def _mpiexec():
    path = os.path.join(BIN, "mpiexec")
    return path if os.path.exists(path) else "mpiexec"


@pytest.mark.parametrize("n", [2, 3, 4])
def test_modules_under_mpiexec(n):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "OMPI_", "SLURM_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "DTRAIN_DISTRIBUTED_DEBUG",
                                      "TORCH_DISTRIBUTED_DEBUG")}
    env["DTRAIN_DIST_TIMEOUT"] = "60"  # a bug fails the run in a minute instead of hanging it
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    cmd = [_mpiexec(), "-n", str(n)]
    if "HYDRA" in subprocess.run([_mpiexec(), "--version"], capture_output=True, text=True).stdout.upper():
        cmd += ["-launcher", "fork"]  # every rank on this machine, no ssh
    cmd += [sys.executable, "-m", "pytest", "--with-mpi", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            *[os.path.join(HERE, m) for m in MODULES]]
    proc = subprocess.run(cmd, cwd=os.path.dirname(os.path.dirname(HERE)), env=env, capture_output=True,
                          text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    # one summary per rank (ranks' lines may interleave), none with failures
    assert len(re.findall(r"\d+ passed", out)) == n, out[-3000:]
    assert not re.search(r"\d+ (failed|errors?)\b", out), out[-6000:]
