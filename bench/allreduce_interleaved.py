"""dtrain's all_reduce against raw mpi4py Allreduce in the same processes, interleaved trial by trial, so the
machine's drift hits both alike. Run: mpiexec -n 2 python bench/allreduce_interleaved.py (and -n 4).

Each trial times a block of calls of each, in alternating order (ABBA...); the ratio reported is the median
over trials of the paired ratio mpi4py time / dtrain time, with the best time of each beside it."""
import argparse
import statistics
import time

import numpy as np
from mpi4py import MPI

import dtrain
import dtrain.distributed as dist

ap = argparse.ArgumentParser()
ap.add_argument("--trials", type=int, default=21)
a = ap.parse_args()
dist.init_process_group()
comm = MPI.COMM_WORLD
if dist.get_rank() == 0:
    print(f"all_reduce float32, {dist.get_world_size()} ranks, {a.trials} interleaved trials")
    print("| size | dtrain µs (best) | mpi4py µs (best) | dtrain / mpi4py bandwidth (median of paired trials) |\n"
          "|---|---|---|---|")
for nbytes in (4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20):
    t = dtrain.zeros(nbytes // 4)  # zeros stay zeros however often they are summed
    arr = t.numpy()  # one buffer for both, so where it lies in memory cannot favour either
    reps = max(8, min(200, (64 << 20) // nbytes // 2))
    runs = {"dtrain": lambda: dist.all_reduce(t), "mpi4py": lambda: comm.Allreduce(MPI.IN_PLACE, arr)}
    times = {name: [] for name in runs}
    for trial in range(a.trials):
        order = list(runs) if trial % 2 == 0 else list(reversed(runs))
        for name in order:
            fn = runs[name]
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps * 1e6)
    if dist.get_rank() == 0:
        size = f"{nbytes >> 20} MB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KB"
        ratio = statistics.median(m / d for d, m in zip(times["dtrain"], times["mpi4py"]))
        print(f"| {size} | {min(times['dtrain']):.1f} | {min(times['mpi4py']):.1f} | {ratio:.2f} |", flush=True)
dist.destroy_process_group()
