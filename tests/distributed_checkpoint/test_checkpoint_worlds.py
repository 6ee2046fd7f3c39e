"""Runs the checkpoint cases (mpi_checkpoint.py) in MPI worlds of 1, 4, 2 and 3 ranks over one directory,
so each world loads what the earlier ones saved (1→4, 1→2, 4→2, 1→3, 4→3, 2→3); then this process, a
world of one without MPI, loads all of them (4→1, 2→1, 3→1)."""
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
sys.path.insert(0, HERE)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ckpt_worlds"))


@pytest.mark.parametrize("n", [1, 4, 2, 3])
def test_checkpoint_cases_in_mpi_world(n, root):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", DTRAIN_DIST_TIMEOUT="120",
               DTRAIN_CKPT_ROOT=root)
    proc = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, "-m", "pytest", "--with-mpi", "-q", "-x",
                           "-p", "no:cacheprovider", os.path.join(HERE, "mpi_checkpoint.py")],
                          cwd=os.path.dirname(os.path.dirname(HERE)), env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert " passed" in out and "failed" not in out.split("\n")[-2]


@pytest.mark.parametrize("src", [4, 2, 3])
def test_load_in_one_process(src, root):
    import dtrain.distributed.checkpoint as dcp
    from mpi_checkpoint import check_state, global_values, make_state
    path = os.path.join(root, f"w{src}", "state")
    if not os.path.isdir(path):
        pytest.skip("the MPI worlds did not run")
    values = global_values()
    sd = make_state(values, 0, 1, fill=3)
    dcp.load(sd, checkpoint_id=path)
    check_state(sd, values, 0, 1)
    assert np.array_equal(sd["sharded"].tensor.numpy(), values["sharded"])
