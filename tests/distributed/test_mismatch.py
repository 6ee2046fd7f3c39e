"""Mismatched collectives are caught by default: real 2- and 4-rank jobs where rank 1 runs another collective than
its peers; every rank must raise within a bound, naming rank 1 and what differs."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
BOUND_S = 3.0  # "about a second", with room for 4 ranks sharing 2 busy cores; the group's timeout is 30 s

pytestmark = pytest.mark.skipif("PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ,
                                reason="starts its own MPI jobs; not run inside one")

# case -> what the error must say differs
CASES = {
    "all_reduce_count": "element count",
    "all_reduce_count_async": "element count",
    "all_reduce_dtype": "dtype",
    "all_reduce_op": "reduce op",
    "different_collectives": "collective",
    "all_gather_count": "element count",
    "broadcast_root": "root",
    "broadcast_dtype": "dtype",
    "broadcast_count": "element count",
    "broadcast_count_async": "element count",
    "broadcast_root_from_the_odd_rank": "root",
    "reduce_dst": "root",
    "reduce_op": "reduce op",
    "gather_count": "element count",
    "scatter_dtype": "dtype",
    "reduce_scatter_dtype": "dtype",
    "barrier_against_all_reduce": "collective",
}


def _run_job(n, tmp_path):
    mpiexec = os.path.join(BIN, "mpiexec")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "OMPI_", "SLURM_"))
           and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "DTRAIN_DISTRIBUTED_DEBUG",
                         "TORCH_DISTRIBUTED_DEBUG")}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(n), "-launcher", "fork", sys.executable,
           os.path.join(HERE, "scripts", "mismatch.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    reports = [tmp_path / f"rank{r}.json" for r in range(n)]
    # the ranks leave with os._exit after a barrier that follows the last report: hydra may SIGKILL a rank that
    # is still on its way out when another has gone (exit code 9, "Killed (signal 9)"), which is no failure of
    # the job once every report is on disk; anything else is
    killed_leaving = proc.returncode == 9 and "Killed (signal 9)" in out and all(p.exists() for p in reports)
    assert proc.returncode == 0 or killed_leaving, out[-4000:]
    return [json.load(open(p)) for p in reports]


@pytest.mark.parametrize("n", [2, 4])
def test_every_rank_raises_naming_the_odd_rank(n, tmp_path):
    reports = _run_job(n, tmp_path)
    others = [r for r in range(n) if r != 1]
    for rank, report in enumerate(reports):
        assert set(report) == set(CASES)
        for case, what in CASES.items():
            seen = report[case]
            assert seen["error"] == "DistBackendError" and seen["runtime_error"], (rank, case, seen)
            # raised by the mismatched call itself, also where this rank's part of a rooted collective was done
            # before its peers arrived (the root of a broadcast, the non-roots of a reduce)
            assert "first_call_passed" not in seen, (rank, case, seen)
            assert seen["seconds"] < BOUND_S, (rank, case, seen)
            msg = seen["message"]
            assert "Detected mismatch between collectives on ranks: rank 1 differs from " in msg, (rank, case, msg)
            assert f"from {'rank 0' if n == 2 else f'ranks {others}'} in the {what} of collective" in msg, \
                (rank, case, msg)
            assert f"seen on rank {rank} in " in msg
