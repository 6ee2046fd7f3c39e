"""Does DDP hide communication behind backward? Step time of one model with >= 8 gradient buckets, three ways:
  overlapped  - DDP as is: each bucket's all-reduce starts as soon as its gradients exist
  after       - the same buckets, all reduced after backward has finished (no overlap)
  local       - no communication at all (the floor)
Run: dtrain-run -n 2 bench/ddp_overlap.py   (rank 0 prints one JSON line)"""
import argparse
import contextlib
import json
import statistics
import time

import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
from dtrain.nn.parallel import DistributedDataParallel as DDP

ap = argparse.ArgumentParser()
ap.add_argument("--layers", type=int, default=8)
ap.add_argument("--width", type=int, default=1024)
ap.add_argument("--batch", type=int, default=256)
ap.add_argument("--bucket-mb", type=float, default=4.0)
ap.add_argument("--steps", type=int, default=30)
a = ap.parse_args()
dist.init_process_group()
rank = dist.get_rank()
dtrain.manual_seed(0)
model = DDP(nn.Sequential(*[m for _ in range(a.layers) for m in (nn.Linear(a.width, a.width), nn.ReLU())]),
            bucket_cap_mb=a.bucket_mb)
x = dtrain.randn(a.batch, a.width)


@contextlib.contextmanager
def reductions_after_backward(ddp):
    """Inside the block `ddp` starts its bucket all-reduces only once backward has finished (same order, same
    copies and buffers), so that "after" differs from "overlapped" in timing alone."""
    launch, finish, held = ddp._launch, ddp._finish_pass, []

    def hold(b):
        b.launched = True  # DDP's launch loop moves on; the real launch comes at the end of backward
        held.append(b)

    def release():
        for b in held:
            launch(b)
        held.clear()
        finish()
    ddp._launch, ddp._finish_pass = hold, release
    try:
        yield
    finally:
        del ddp._launch, ddp._finish_pass


def step(mode):
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    if mode == "local":
        with model.no_sync():
            model(x).square().mean().backward()
    elif mode == "after":
        with reductions_after_backward(model):
            model(x).square().mean().backward()
    else:
        model(x).square().mean().backward()
    return time.perf_counter() - t0


res = {"world": dist.get_world_size(), "buckets": model.bucket_count,
       "grad_mb": round(sum(p.numel() for p in model.parameters()) * 4 / 2 ** 20, 1)}
modes = ("overlapped", "after", "local")
ts = {m: [] for m in modes}
for i in range(a.steps + 3):  # the modes take turns step by step, so the machine's drift hits all alike
    for mode in modes if i % 2 else reversed(modes):
        dist.barrier()
        t = step(mode)
        if i >= 3:
            ts[mode].append(t)
for mode in modes:
    res[f"{mode}_ms"] = round(1e3 * statistics.median(ts[mode]), 2)
res["overlap_speedup"] = round(res["after_ms"] / res["overlapped_ms"], 3)
if rank == 0:
    print(json.dumps(res))
dist.destroy_process_group()
