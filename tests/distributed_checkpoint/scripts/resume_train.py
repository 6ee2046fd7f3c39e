"""Train 20 steps on 2 ranks with dropout, a shuffled DistributedSampler and per-rank noise from Python's
and NumPy's global RNGs, checkpointing every 5 steps; `resume_train.py ROOT OUT CRASH_AT` SIGKILLs rank 1
after step CRASH_AT of the first attempt (0: never). Writes each rank's final parameters to OUT."""
import os
import random
import signal
import sys

import numpy as np

import dtrain
import dtrain.distributed as dist
import dtrain.distributed.checkpoint as dcp
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.nn.parallel import DistributedDataParallel as DDP
from dtrain.utils.data import DistributedSampler

root, out, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
dist.init_process_group("mpi")
rank = dist.get_rank()
STEPS, BATCH, N = 20, 4, 40
steps_per_epoch = N // dist.get_world_size() // BATCH

dtrain.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)))
opt = dtrain.optim.Adam(model.parameters(), lr=1e-2)
sched = dtrain.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.7)
data = np.random.default_rng(0)
xs, ys = data.standard_normal((N, 6)).astype(np.float32), data.integers(0, 3, N)
sampler = DistributedSampler(range(N), shuffle=True, seed=3)
dtrain.manual_seed(100 + rank)  # each rank its own dropout masks
random.seed(rank)
np.random.seed(rank)

extra = {"epoch": 0, "step_in_epoch": 0}
state = dcp.TrainingState(model=model, optimizer=opt, scheduler=sched, sampler=sampler, extra=extra, keep_last=2)
step = state.load_latest(root) or 0
epoch, pos = extra["epoch"], extra["step_in_epoch"]
while step < STEPS:
    sampler.set_epoch(epoch)
    order = list(sampler)
    while step < STEPS:
        idx = order[pos * BATCH:(pos + 1) * BATCH]
        x = xs[idx] + np.random.standard_normal((BATCH, 6)).astype(np.float32) * 0.01 * random.random()
        opt.zero_grad()
        F.cross_entropy(model(dtrain.from_numpy(x)), dtrain.from_numpy(ys[idx])).backward()
        opt.step()
        sched.step()
        step, pos = step + 1, pos + 1
        if pos == steps_per_epoch:
            epoch, pos = epoch + 1, 0
        extra.update(epoch=epoch, step_in_epoch=pos)
        if step == crash_at and rank == 1 and os.environ.get("DTRAIN_RESTART_COUNT", "0") == "0":
            os.kill(os.getpid(), signal.SIGKILL)
        if step % 5 == 0:
            state.save(root, step)
        if pos == 0:
            break
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, f"final_rank{rank}.bin"), "wb") as f:
    for p in model.parameters():
        f.write(p.detach().numpy().tobytes())
print(f"rank {rank} done at step {step} restart {os.environ.get('DTRAIN_RESTART_COUNT')}")
