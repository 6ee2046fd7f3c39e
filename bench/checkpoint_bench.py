"""Checkpoint throughput: dtrain.distributed.checkpoint save/load at 1, 2 and 4 ranks vs one-rank
dtrain.save / torch.save of the same state, and how long async_save blocks the training loop.

    python bench/checkpoint_bench.py                 # 208 MB state, 1/2/4 ranks
    python bench/checkpoint_bench.py --mb 64 --nproc 1 2

The state is replicated (as under DDP): every rank holds all of it and writes ~1/N. MB/s is state bytes
over wall time (save: until the checkpoint is complete and synced; load: every rank holds the whole state).
All writes are fsynced, single-file saves included, so the page cache does not flatter anyone; reads are
served from the page cache (the files were just written). Best of --trials.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)


def make_state(mb):
    import dtrain
    rng = np.random.default_rng(0)
    n = max(1, int(mb * (1 << 20) / 4 / (2048 * 3200)))
    return {"model": {f"layer{i}.weight": dtrain.from_numpy(rng.standard_normal((2048, 3200), np.float32))
                      for i in range(n)} | {"head.bias": dtrain.zeros(3200)}}


def nbytes(sd):
    return sum(t.numel() * t.element_size() for t in sd["model"].values())


def fsync_file(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def best(fn, trials):
    times = []
    for _ in range(trials):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# ---------------------------------------------------------------- one rank of an MPI world
def worker(args):
    import dtrain
    import dtrain.distributed as dist
    import dtrain.distributed.checkpoint as dcp
    dist.init_process_group("mpi")
    rank, size = dist.get_rank(), dist.get_world_size()
    sd = make_state(args.mb)
    target = {"model": {k: dtrain.empty_like(v) for k, v in sd["model"].items()}}
    path = os.path.join(args.dir, f"dcp_w{size}")

    def save():
        dcp.save(sd, checkpoint_id=path)

    def load():
        dcp.load(target, checkpoint_id=path)
        dist.barrier()

    dist.barrier()
    t_save = best(save, args.trials)
    dist.barrier()
    t_load = best(load, args.trials)
    ok = all(np.array_equal(target["model"][k].numpy(), v.numpy()) for k, v in sd["model"].items())
    res = {"nproc": size, "save_s": t_save, "load_s": t_load, "ok": ok}
    if size == 1 or args.async_all:
        # a training loop that checkpoints: how long it waits on async_save vs on save
        blocked = []
        for i in range(args.trials):
            dist.barrier()
            t0 = time.perf_counter()
            fut = dcp.async_save(sd, checkpoint_id=path + "_async")
            blocked.append(time.perf_counter() - t0)
            fut.result()
        res["async_block_s"] = min(blocked)
    oks = [None] * size
    dist.all_gather_object(oks, ok)
    res["ok"] = all(oks)
    if rank == 0:
        print("RESULT " + json.dumps(res), flush=True)


# ---------------------------------------------------------------- single-file baselines
def single_file(args):
    import dtrain
    sd = make_state(args.mb)
    out = {}
    p = os.path.join(args.dir, "one.pt")

    def dsave():
        dtrain.save(sd, p)
        fsync_file(p)
    out["dtrain.save"] = (best(dsave, args.trials), best(lambda: dtrain.load(p), args.trials))
    try:
        import torch
    except ImportError:
        return out
    tsd = {"model": {k: torch.from_numpy(v.numpy()) for k, v in sd["model"].items()}}
    q = os.path.join(args.dir, "torch.pt")

    def tsave():
        torch.save(tsd, q)
        fsync_file(q)
    out["torch.save"] = (best(tsave, args.trials), best(lambda: torch.load(q), args.trials))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--nproc", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--async-all", action="store_true", help="time async_save at every world size")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    tmp = args.dir or tempfile.mkdtemp(prefix="ckpt-bench-")
    args.dir = tmp
    try:
        import dtrain
        total = nbytes(make_state(args.mb)) / 1e6
        print(f"state: {total:.0f} MB float32, replicated on every rank; trials={args.trials}")
        print(f"{'what':<28}{'save MB/s':>12}{'load MB/s':>12}{'save s':>10}{'load s':>10}")
        for name, (ts, tl) in single_file(args).items():
            print(f"{name + ' (1 rank)':<28}{total / ts:>12.0f}{total / tl:>12.0f}{ts:>10.3f}{tl:>10.3f}")
        async_rows = []
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        for n in args.nproc:
            cmd = [mpiexec, "-n", str(n), sys.executable, HERE, "--worker", "--mb", str(args.mb),
                   "--trials", str(args.trials), "--dir", tmp] + (["--async-all"] if args.async_all else [])
            env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(proc.stdout[-2000:], proc.stderr[-2000:])
                continue
            r = json.loads(line[7:])
            tag = "" if r["ok"] else "  (WRONG VALUES)"
            print(f"{f'dcp {n} rank(s)':<28}{total / r['save_s']:>12.0f}{total / r['load_s']:>12.0f}"
                  f"{r['save_s']:>10.3f}{r['load_s']:>10.3f}{tag}")
            if "async_block_s" in r:
                async_rows.append((n, r["async_block_s"], r["save_s"]))
        for n, blocked, sync in async_rows:
            print(f"async_save at {n} rank(s) blocks the loop {blocked * 1e3:.0f} ms vs save {sync * 1e3:.0f} ms: "
                  f"{100 * blocked / sync:.1f}%")
    finally:
        if args.dir is not None and args.dir.startswith(tempfile.gettempdir()) and "ckpt-bench-" in args.dir:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
