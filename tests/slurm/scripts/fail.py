"""Rank 1 raises: the job must end FAILED with this traceback in its output."""
import time

import dtrain.distributed as dist

dist.init_process_group()
if dist.get_rank() == 1:
    raise ValueError("rank 1 fails on purpose")
time.sleep(30)  # the others would outlive it: srun --kill-on-bad-exit / dtrain-run must stop them
