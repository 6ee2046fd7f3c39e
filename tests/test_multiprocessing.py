"""dtrain.multiprocessing: torch.multiprocessing's spawn, each process a rank of one MPI job. Every program
here is a torch program run twice, under torch and with `torch` answered by dtrain (in the children too),
and what the caller sees must be the same."""
import json
import os
import re
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "programs")
ALIAS = os.path.join(PROGRAMS, "torch_alias")  # a sitecustomize that maps `import torch` to dtrain


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _run(framework, *args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MASTER_PORT=_free_port())
    if framework == "dtrain":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ALIAS, env.get("PYTHONPATH")) if p)
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env)
    return p


def _case(framework, case, tmp_path):
    out = str(tmp_path / f"{framework}-{case}")
    p = _run(framework, os.path.join(PROGRAMS, "spawn_cases.py"), case, out)
    assert p.returncode == 0, p.stderr[-3000:]
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    pids = [int(open(f"{out}.pid{i}").read()) for i in range(3) if os.path.exists(f"{out}.pid{i}")]
    return seen, pids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_ddp_tutorial_started_with_spawn_trains_as_under_torch():
    sums = {}
    for framework in ("torch", "dtrain"):
        p = _run(framework, os.path.join(PROGRAMS, "ddp_spawn_tutorial.py"), "2")
        if framework == "torch" and p.returncode != 0 and "terminate called without an active exception" in p.stderr:
            # the oracle, not dtrain: torch's gloo now and then aborts in its own teardown; its run is repeated
            p = _run(framework, os.path.join(PROGRAMS, "ddp_spawn_tutorial.py"), "2")
        assert p.returncode == 0, p.stderr[-3000:]
        found = re.findall(r"RANK (\d) CHECKSUM ([-0-9.]+) SAME (\w+)", p.stdout)
        assert sorted(r for r, _, _ in found) == ["0", "1"], p.stdout
        assert all(same == "True" for _, _, same in found)  # every rank ends with rank 0's parameters
        assert "SPAWN RETURNED" in p.stdout
        assert f"FRAMEWORK {framework}" in p.stdout
        sums[framework] = float(found[0][1])
    assert sums["dtrain"] == pytest.approx(sums["torch"], rel=1e-6)


@pytest.mark.parametrize("case", ["ok", "raise", "exit", "signal", "slow"])
def test_spawn_ends_as_torch_spawn_does(case, tmp_path):
    torch_seen, _ = _case("torch", case, tmp_path)
    seen, pids = _case("dtrain", case, tmp_path)
    for key in ("returned", "files", "type", "index", "pid_ok", "exit_code", "signal_name", "head", "last",
                "joined_early", "pids", "joined"):
        assert seen.get(key) == torch_seen.get(key), (key, seen, torch_seen)
    if case in ("raise", "exit", "signal"):
        # the processes still running (asleep for 600 s) were stopped, and promptly
        assert seen["seconds"] < 30
        assert pids and not any(_alive(pid) for pid in pids)


def test_spawn_rejects_what_torch_rejects():
    import dtrain.multiprocessing as mp
    with pytest.raises(ValueError, match="cannot find context for 'nonsense'"):
        mp.start_processes(print, nprocs=1, start_method="nonsense")
    with pytest.warns(FutureWarning, match="only supports start_method=spawn"):
        with pytest.raises(ValueError, match="nprocs must be at least 1"):
            mp.spawn(print, nprocs=0, start_method="fork")


def test_namespace_is_torch_multiprocessing():
    import multiprocessing

    import torch.multiprocessing as tmp

    import dtrain
    import dtrain.multiprocessing as mp
    assert dtrain.multiprocessing is mp
    assert set(tmp.__all__) <= set(dir(mp))
    assert mp.Queue is multiprocessing.Queue and mp.get_context is multiprocessing.get_context
    assert mp.get_sharing_strategy() == tmp.get_sharing_strategy()
    assert mp.get_all_sharing_strategies() == tmp.get_all_sharing_strategies()
    mp.set_sharing_strategy("file_system")
    try:
        assert mp.get_sharing_strategy() == "file_system"
    finally:
        mp.set_sharing_strategy("file_descriptor")
    with pytest.raises(AssertionError):
        mp.set_sharing_strategy("nonsense")
    err = mp.ProcessExitedException("process 1 terminated with exit code 3", 1, 42, 3)
    import pickle
    back = pickle.loads(pickle.dumps(err))
    assert (back.error_index, back.error_pid, back.exit_code, str(back)) == (1, 42, 3, str(err))


def _reduce_and_record(rank, world, path):
    import dtrain
    import dtrain.distributed as dist
    dist.init_process_group("gloo", rank=rank, world_size=world)
    t = dtrain.tensor([rank + 1.0])
    dist.all_reduce(t)
    with open(f"{path}.{rank}", "w") as f:
        f.write(f"{t.item()} {dist.get_world_size()}")
    dist.destroy_process_group()


def test_spawn_from_a_test_module_and_of_a_closure(tmp_path):
    """fn defined in an imported module (here: this test module, under pytest) goes by reference; a
    closure, which torch's spawn cannot pickle, goes by value."""
    import dtrain.multiprocessing as mp
    out = str(tmp_path / "sum")
    mp.spawn(_reduce_and_record, args=(3, out), nprocs=3)
    assert [open(f"{out}.{r}").read() for r in range(3)] == ["6.0 3"] * 3
    seen = str(tmp_path / "closure")

    def record(i, suffix):
        with open(f"{seen}.{i}", "w") as f:
            f.write(suffix * (i + 1))
    mp.spawn(record, args=("x",), nprocs=2)
    assert [open(f"{seen}.{i}").read() for i in range(2)] == ["x", "xx"]
