"""dtrain's all_reduce against raw mpi4py Allreduce in the same processes, interleaved trial by trial, so the
machine's drift hits both alike. Run: mpiexec -n 2 python bench/allreduce_interleaved.py (and -n 4)."""
import time

import numpy as np
from mpi4py import MPI

import dtrain
import dtrain.distributed as dist

dist.init_process_group()
comm = MPI.COMM_WORLD
if dist.get_rank() == 0:
    print(f"all_reduce float32, {dist.get_world_size()} ranks, best of 5 interleaved trials")
    print("| size | dtrain µs | mpi4py µs | dtrain / mpi4py (bandwidth) |\n|---|---|---|---|")
for nbytes in (4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20):
    t = dtrain.ones(nbytes // 4)
    a = np.ones(nbytes // 4, np.float32)
    reps = 200 if nbytes <= 1 << 20 else 30
    best = {"dtrain": float("inf"), "mpi4py": float("inf")}
    for trial in range(5):
        for name in best:
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                if name == "dtrain":
                    dist.all_reduce(t)
                else:
                    comm.Allreduce(MPI.IN_PLACE, a)
            best[name] = min(best[name], (time.perf_counter() - t0) / reps * 1e6)
    if dist.get_rank() == 0:
        size = f"{nbytes >> 20} MB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KB"
        print(f"| {size} | {best['dtrain']:.1f} | {best['mpi4py']:.1f} | {best['mpi4py'] / best['dtrain']:.2f} |",
              flush=True)
dist.destroy_process_group()
