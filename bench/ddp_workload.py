"""Data-parallel training of the wide MLP (64-2048-2048-10) on the digits, PyTorch API: run it once under
torch (`torchrun --nproc-per-node 2 bench/ddp_workload.py --framework torch`, gloo) and once under dtrain
(`dtrain-run -n 2 bench/ddp_workload.py --framework dtrain`). Rank 0 prints one JSON line; the ranks must
end with identical parameters."""
import argparse
import importlib
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import build, digits  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--framework", default="dtrain")
ap.add_argument("--workload", default="mlp-wide")
ap.add_argument("--steps", type=int, default=60)
ap.add_argument("--batch", type=int, default=64, help="per rank")
a = ap.parse_args()
fw = importlib.import_module(a.framework)
dist = fw.distributed
if a.framework == "torch":
    fw.set_num_threads(1)
    dist.init_process_group("gloo")
else:
    dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
fw.manual_seed(0)
model = fw.nn.parallel.DistributedDataParallel(build(fw, a.workload))
opt = fw.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
xtr, ytr, _, _ = digits()
rng = np.random.default_rng(rank)
times = []
for step in range(a.steps):
    ix = rng.integers(0, len(xtr), a.batch)
    x, y = fw.from_numpy(xtr[ix]), fw.from_numpy(ytr[ix])
    t0 = time.perf_counter()
    loss = fw.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    loss.item()
    times.append(time.perf_counter() - t0)
flat = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
chk = fw.tensor([float(np.abs(flat).sum())], dtype=fw.float64)
ref = chk.clone()
dist.broadcast(ref, 0)
if rank == 0:
    print(json.dumps({"framework": a.framework, "workload": a.workload, "world": world, "batch_per_rank": a.batch,
                      "step_ms_median": round(1e3 * statistics.median(times[a.steps // 5:]), 3),
                      "params_in_sync": bool(abs(chk.item() - ref.item()) <= 1e-9 * abs(ref.item()))}))
dist.destroy_process_group()
