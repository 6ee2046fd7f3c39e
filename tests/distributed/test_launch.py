"""The launcher and init path end to end, in subprocesses: dtrain-run -n 2, plain python, and the traps."""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "init_and_reduce.py")
BIN = os.path.dirname(sys.executable)

pytestmark = pytest.mark.skipif("PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ,
                                reason="starts its own MPI jobs; not run inside one")


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "MPI_", "HYDRA_", "OMPI_", "SLURM_")) and k not in ("RANK", "WORLD_SIZE",
                                                                                       "LOCAL_RANK")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def _results(tmp_path, n):
    return [json.load(open(tmp_path / f"rank{r}.json")) for r in range(n)]


def test_dtrain_run_two_ranks(tmp_path):
    proc = subprocess.run([os.path.join(BIN, "dtrain-run"), "-n", "2", SCRIPT, str(tmp_path)], env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = _results(tmp_path, 2)
    for r, info in enumerate(res):
        assert info["rank"] == r and info["world"] == 2 and info["backend"] == "gloo"
        assert info["sum"] == [3.0, 3.0, 3.0]  # 1 + 2
        assert info["gathered"] == [{"rank": 0, "env_rank": "0"}, {"rank": 1, "env_rank": "1"}]
        assert info["before_init"] == ("Default process group has not been initialized, please make sure to call "
                                       "init_process_group.")


def test_plain_python_is_a_world_of_one(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], env=_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    (info,) = _results(tmp_path, 1)
    assert (info["rank"], info["world"], info["sum"]) == (0, 1, [1.0, 1.0, 1.0])


def test_without_mpi4py_a_world_of_one_still_works(tmp_path):
    # mpi4py made unimportable: the local backend runs the same script
    code = f"import sys, runpy; sys.modules['mpi4py'] = None; sys.argv = ['s', {str(tmp_path)!r}]; " \
           f"runpy.run_path({SCRIPT!r}, run_name='__main__')"
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (info,) = _results(tmp_path, 1)
    assert (info["world"], info["sum"], info["gathered"]) == (1, [1.0, 1.0, 1.0], [{"rank": 0, "env_rank": None}])


@pytest.mark.parametrize("env, message", [
    ({"SLURM_NTASKS": "4"}, "srun --mpi=pmi2"),
    ({"WORLD_SIZE": "2", "RANK": "1"}, "MPI says rank 0 of a world of 1"),
])
def test_env_disagreeing_with_mpi_raises(tmp_path, env, message):
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], env=_env(**env), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0
    assert "RuntimeError" in proc.stderr and message in proc.stderr, proc.stderr
