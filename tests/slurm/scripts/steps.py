"""Counts STEPS all-reduce steps, printing the SLURM run each belongs to; the job may be requeued at any time.

    steps.py STEPS
"""
import os
import sys
import time

import dtrain
import dtrain.distributed as dist

steps = int(sys.argv[1])
dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
run = os.environ.get("SLURM_RESTART_COUNT", "0")
attempt = os.environ.get("DTRAIN_RESTART_COUNT", "0")
for step in range(steps):
    t = dtrain.tensor([float(rank + 1)])
    dist.all_reduce(t)
    assert t.item() == world * (world + 1) / 2, t.item()
    print(f"rank={rank} run={run} attempt={attempt} step {step + 1}", flush=True)
    time.sleep(0.2)
print(f"rank={rank} run={run} done", flush=True)
dist.destroy_process_group()
