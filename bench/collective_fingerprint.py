"""What checking every collective's fingerprint costs: dtrain's blocking all_reduce (which all-gathers a 24-byte
fingerprint beside the data and compares it) against the same call without the fingerprint, in the same
processes on the same buffer, alternating block by block. Run: mpiexec -n 2 python
bench/collective_fingerprint.py (and -n 4).

Two baselines: `unchecked` is `dist.all_reduce` itself with the backend's fast path swapped for the one before
fingerprints (so only the check differs), `raw` that fast path called directly, without the public function's
argument checks (what this script compared against until 2026-12-07). The ratios reported are medians over
trials of the paired ratio checked time / baseline time."""
import argparse
import os
import statistics
import time

from mpi4py import MPI

import dtrain
import dtrain.distributed as dist
from dtrain.distributed import _work
from dtrain.distributed._backend import RedOpType
from dtrain.distributed._mpi import _QUICK_POLLS

ap = argparse.ArgumentParser()
ap.add_argument("--trials", type=int, default=41)
ap.add_argument("--per-call", type=int, default=0, metavar="N",
                help="instead: N pairs of single 1 MB calls, checked and unchecked alternating call by call; "
                     "reports the medians and the median of the paired differences (robust to a busy machine)")
a = ap.parse_args()
dist.init_process_group()
comm = MPI.COMM_WORLD
be = dist.group.WORLD._mpi


def _no_pause():
    pass


def raw(arr):
    """The blocking fast path exactly as it was before fingerprints: Iallreduce, a short poll loop (yielding where
    ranks outnumber cores), then the general wait."""
    test = be._iallreduce(be._in_place, arr, op=be._ops[RedOpType.SUM]).Test
    be.seq += 1
    pause = os.sched_yield if _work.oversubscribed else _no_pause
    for _ in _QUICK_POLLS:
        if test():
            break
        pause()
    else:
        _work.wait_test(test, 600.0, None)


def unchecked_now(arr, op, *why):
    """`raw` as the backend's fast path, called by dist.all_reduce (SUM of float32: all this script runs)."""
    raw(arr)
    return True


def per_call(pairs, nbytes=1 << 20):
    t = dtrain.zeros(nbytes // 4)
    times = {"checked": [], "unchecked": []}
    for i in range(pairs + 50):  # the first 50 pairs warm up
        for name in (("checked", "unchecked") if i % 2 == 0 else ("unchecked", "checked")):
            if name == "unchecked":
                be.all_reduce_now = unchecked_now
            comm.Barrier()
            t0 = time.perf_counter()
            dist.all_reduce(t)
            took = (time.perf_counter() - t0) * 1e6
            be.__dict__.pop("all_reduce_now", None)
            if i >= 50:
                times[name].append(took)
    if dist.get_rank() == 0:
        diffs = sorted(c - u for c, u in zip(times["checked"], times["unchecked"]))
        q = statistics.quantiles(diffs, n=4)
        c, u = statistics.median(times["checked"]), statistics.median(times["unchecked"])
        print(f"1 MB, {dist.get_world_size()} ranks, {pairs} pairs of single calls: checked {c:.1f} µs, unchecked "
              f"{u:.1f} µs (medians; ratio {c / u:.3f}); checked - unchecked, paired: median {q[1]:+.1f} µs, "
              f"quartiles {q[0]:+.1f} / {q[2]:+.1f} µs", flush=True)


if a.per_call:
    per_call(a.per_call)
    dist.destroy_process_group()
    raise SystemExit
if dist.get_rank() == 0:
    print(f"all_reduce float32, {dist.get_world_size()} ranks, {a.trials} interleaved trials")
    print("| size | checked µs | unchecked µs | raw µs | checked / unchecked | checked / raw |\n"
          "|---|---|---|---|---|---|")
for nbytes in (4 << 10, 64 << 10, 1 << 20, 4 << 20):
    t = dtrain.zeros(nbytes // 4)  # zeros stay zeros however often they are summed
    arr = t.numpy()
    reps = max(8, min(400, (32 << 20) // nbytes))
    runs = {"checked": lambda: dist.all_reduce(t), "unchecked": lambda: dist.all_reduce(t), "raw": lambda: raw(arr)}
    times = {name: [] for name in runs}
    for trial in range(a.trials):
        order = list(runs) if trial % 2 == 0 else list(reversed(runs))
        for name in order:
            fn = runs[name]
            comm.Barrier()
            if name == "unchecked":  # an attribute of the instance hides the method
                be.all_reduce_now = unchecked_now
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps * 1e6)
            be.__dict__.pop("all_reduce_now", None)
    if dist.get_rank() == 0:
        size = f"{nbytes >> 20} MB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KB"
        med = {name: statistics.median(v) for name, v in times.items()}
        ratio = {name: statistics.median(c / u for c, u in zip(times["checked"], times[name]))
                 for name in ("unchecked", "raw")}
        print(f"| {size} | {med['checked']:.1f} | {med['unchecked']:.1f} | {med['raw']:.1f} "
              f"| {ratio['unchecked']:.3f} | {ratio['raw']:.3f} |", flush=True)
dist.destroy_process_group()
