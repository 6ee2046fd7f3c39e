"""Does DDP hide communication behind backward? Step time of one model with >= 8 gradient buckets, three ways:
  overlapped  - DDP as is: each bucket's all-reduce starts as soon as its gradients exist
  after       - the same buckets, all reduced after backward has finished (no overlap)
  local       - no communication at all (the floor)
Run: dtrain-run -n 2 bench/ddp_overlap.py   (rank 0 prints one JSON line)"""
import argparse
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


def step(mode):
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    if mode == "overlapped":
        model(x).square().mean().backward()
    else:
        with model.no_sync():
            model(x).square().mean().backward()
        if mode == "after":  # the same buckets, reduced only now
            works = []
            for b in model._buckets:
                for pos, p in enumerate(b.params):
                    b.views[pos][...] = p.grad._data
                b.flat *= 1.0 / dist.get_world_size()
                works.append(dist.all_reduce(dtrain.from_numpy(b.flat), async_op=True))
            for w in works:
                w.wait()
            for b in model._buckets:
                for pos, p in enumerate(b.params):
                    p.grad._data[...] = b.views[pos]
    return time.perf_counter() - t0


res = {"world": dist.get_world_size(), "buckets": model.bucket_count,
       "grad_mb": round(sum(p.numel() for p in model.parameters()) * 4 / 2 ** 20, 1)}
for mode in ("overlapped", "after", "local"):
    for _ in range(3):
        step(mode)
    ts = []
    for _ in range(a.steps):
        dist.barrier()
        ts.append(step(mode))
    res[f"{mode}_ms"] = round(1e3 * statistics.median(ts), 2)
res["overlap_speedup"] = round(res["after_ms"] / res["overlapped_ms"], 3)
if rank == 0:
    print(json.dumps(res))
dist.destroy_process_group()
