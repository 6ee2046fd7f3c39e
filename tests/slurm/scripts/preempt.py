"""Counts steps; on SLURM's USR1 every rank stops at the same step, rank 0 saves and requeues the job.

    preempt.py CHECKPOINT STEPS
The requeued run (SLURM_RESTART_COUNT > 0) resumes from the checkpoint and finishes.
"""
import sys

from dtrain_launcher import slurm

stop = slurm.PreemptionFlag()  # before the slow imports: an early USR1 must not kill the rank

import os  # noqa: E402
import time  # noqa: E402

import dtrain  # noqa: E402
import dtrain.distributed as dist  # noqa: E402

path, steps = sys.argv[1], int(sys.argv[2])
dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
w = dtrain.zeros(3)
start = 0
if slurm.restart_count() > 0 and os.path.exists(path):
    state = dtrain.load(path)
    w, start = state["w"], state["step"]
    print(f"rank={rank} resumed at step {start}", flush=True)
for step in range(start, steps):
    g = dtrain.ones(3) * (rank + 1)
    dist.all_reduce(g)
    w += g / world
    print(f"rank={rank} step {step + 1}", flush=True)
    time.sleep(0.2)
    if stop.agreed(dist):
        if rank == 0:
            dtrain.save({"w": w, "step": step + 1}, path)
            print(f"rank=0 checkpoint at step {step + 1}", flush=True)
            slurm.requeue()  # a note: the batch script requeues the job once every rank has exited
        break
else:
    print(f"rank={rank} done steps={steps} w={w[0].item():g}", flush=True)
dist.destroy_process_group()
