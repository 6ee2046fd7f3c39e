"""HashStore, FileStore, TCPStore and PrefixStore: the same operations give torch's HashStore's answers;
TCPStore and FileStore shared by real processes."""
import datetime
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import dtrain.distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(m, s):
    """A sequence of store operations; each answer, or the type and message of the error raised."""
    out = []

    def do(fn):
        try:
            out.append(fn())
        except Exception as e:  # the exception type is part of what is compared
            out.append((type(e).__name__, str(e)))
    s.set_timeout(datetime.timedelta(seconds=0.2))
    s.set("a", "1")
    s.set("b", b"\x00\xff")
    for fn in (lambda: s.get("a"), lambda: s.get("b"), lambda: s.add("c", 5), lambda: s.add("c", -2),
               lambda: s.get("c"), lambda: s.num_keys(), lambda: s.compare_set("a", "1", "2"), lambda: s.get("a"),
               lambda: s.compare_set("a", "9", "3"), lambda: s.compare_set("zz", "", "new"), lambda: s.get("zz"),
               lambda: s.compare_set("yy", "x", "new"), lambda: s.check(["a", "b"]), lambda: s.check(["a", "q"]),
               lambda: s.delete_key("a"), lambda: s.delete_key("a"), lambda: s.num_keys(),
               lambda: s.get("missing"), lambda: s.wait(["missing"], datetime.timedelta(seconds=0.1)),
               lambda: s.add("b", 1), lambda: s.multi_get(["b", "c"]), lambda: s.has_extended_api()):
        do(fn)
    s.append("ap", "x")
    s.append("ap", b"y")
    s.multi_set(["m1", "m2"], ["1", b"2"])
    p = m.PrefixStore("pre", s)
    p.set("k", "v")
    for fn in (lambda: s.get("ap"), lambda: s.get("m2"), lambda: s.get("pre/k"), lambda: p.get("k"),
               lambda: p.check(["k"]), lambda: p.add("n", 2), lambda: s.get("pre/n"), lambda: p.timeout):
        do(fn)
    return out


def _free_port():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


@pytest.mark.parametrize("kind", ["hash", "file", "tcp"])
def test_operations_answer_as_torch_hashstore(kind, tmp_path):
    make = {"hash": dist.HashStore, "file": lambda: dist.FileStore(str(tmp_path / "store")),
            "tcp": lambda: dist.TCPStore("127.0.0.1", 0, 1, True)}[kind]
    mine, theirs = _script(dist, make()), _script(torch.distributed, torch.distributed.HashStore())
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if isinstance(b, tuple):  # errors: DistStoreError is dtrain's own class of the same name
            assert isinstance(a, tuple) and a[0] == b[0] and a[1] == b[1], (i, a, b)
        else:
            assert a == b, (i, a, b)
    assert len(mine) == len(theirs)


def _clients(code, n, env_extra):
    env = dict(os.environ, PYTHONPATH=ROOT, **env_extra)
    return [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(i)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(1, n + 1)]


def test_tcpstore_shared_by_processes():
    """A master and two client processes: counters, values handed around, waits that return when another
    process sets the key, and the master's constructor waiting for its workers."""
    port = _free_port()
    procs = _clients("""
        import sys, datetime
        import dtrain.distributed as dist
        i = int(sys.argv[1])
        s = dist.TCPStore("127.0.0.1", int(__import__("os").environ["PORT"]), 3, False,
                          timeout=datetime.timedelta(seconds=30))
        s.add("arrived", 1)
        s.set(f"rank{i}", f"hello from {i}")
        s.wait(["go"])
        s.set(f"done{i}", s.get("go") + str(i).encode())
    """, 2, {"PORT": str(port)})
    t0 = time.monotonic()
    master = dist.TCPStore("127.0.0.1", port, 3, True, timeout=datetime.timedelta(seconds=30))
    assert master.port == port and time.monotonic() - t0 < 30
    master.wait(["rank1", "rank2"])
    assert master.get("rank2") == b"hello from 2" and master.add("arrived", 0) == 2
    master.set("go", "ready-")
    assert master.multi_get(["done1", "done2"]) == [b"ready-1", b"ready-2"]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stdout.read()


def test_tcpstore_timeouts():
    s = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=datetime.timedelta(seconds=0.3))
    t0 = time.monotonic()
    with pytest.raises(dist.DistStoreError, match="Wait timeout"):
        s.get("never")
    assert 0.25 < time.monotonic() - t0 < 5
    with pytest.raises(dist.DistStoreError, match="waiting for 2 clients"):
        dist.TCPStore("127.0.0.1", 0, 2, True, timeout=datetime.timedelta(seconds=0.3))
    with pytest.raises(dist.DistStoreError, match="connecting to the store"):
        dist.TCPStore("127.0.0.1", _free_port(), 2, False, timeout=datetime.timedelta(seconds=0.3))
    assert issubclass(dist.DistStoreError, dist.DistError)


def test_filestore_counter_under_contention(tmp_path):
    """Two processes add to one counter 200 times each through the file: the lock loses no update."""
    path = str(tmp_path / "shared")
    procs = _clients("""
        import os, sys
        import dtrain.distributed as dist
        s = dist.FileStore(os.environ["STORE"], 2)
        for _ in range(200):
            s.add("counter", 1)
        s.set("finished" + sys.argv[1], "1")
    """, 2, {"STORE": path})
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stdout.read()
    s = dist.FileStore(path, 2)
    assert s.add("counter", 0) == 400 and s.check(["finished1", "finished2"])
