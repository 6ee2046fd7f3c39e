"""Data-parallel training of an MLP on scikit-learn's handwritten digits.

    python examples/ddp_digits.py              # one process (a world of one): the debugging path
    dtrain-run -n 2 examples/ddp_digits.py     # two ranks, each training on its half of every batch

The script is the same either way: DDP is switched on by the RANK variable that dtrain-run (or torchrun,
or srun through dtrain) puts in the environment, as in nanoGPT."""
import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import dtrain as torch
import dtrain.distributed as dist
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.nn.parallel import DistributedDataParallel as DDP
from dtrain.utils.data import DataLoader, TensorDataset
from dtrain.utils.data.distributed import DistributedSampler

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=12)
ap.add_argument("--batch-size", type=int, default=64, help="global batch, split across ranks")
ap.add_argument("--lr", type=float, default=0.05)
ap.add_argument("--out", default="runs/ddp_digits.pt", help="checkpoint written by rank 0")
args = ap.parse_args()

ddp = int(os.environ.get("RANK", -1)) != -1
if ddp:
    dist.init_process_group()  # MPI on CPUs, NCCL when the ranks have GPUs
    rank, world = dist.get_rank(), dist.get_world_size()
else:
    rank, world = 0, 1
master = rank == 0  # only rank 0 prints and writes checkpoints
device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"

# the same split on every rank (seeded), so ranks agree on what the test set is
d = load_digits()
x = (d.data / 16.0).astype(np.float32)
y = d.target.astype(np.int64)
idx = np.random.default_rng(0).permutation(len(x))
n_train = int(0.8 * len(x))
train = TensorDataset(torch.from_numpy(x[idx[:n_train]]), torch.from_numpy(y[idx[:n_train]]))
x_test, y_test = torch.from_numpy(x[idx[n_train:]]), torch.from_numpy(y[idx[n_train:]])

# each rank sees a disjoint 1/world of every epoch; the sampler reshuffles per epoch (set_epoch below)
sampler = DistributedSampler(train, num_replicas=world, rank=rank, shuffle=True, seed=0)
loader = DataLoader(train, batch_size=args.batch_size // world, sampler=sampler, drop_last=True)

torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
if ddp:
    model = DDP(model)
raw = model.module if ddp else model
opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * len(loader))

t0 = time.time()
for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    model.train()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not master, leave=False)
    for xb, yb in bar:
        loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # gradients are averaged across ranks before this returns
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")

model.eval()
with torch.no_grad():
    acc = (raw(x_test.to(device)).argmax(1).cpu() == y_test).float().mean().item()
if master:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    torch.save({"model": raw.state_dict(), "epochs": args.epochs, "test_acc": acc}, args.out)
    print(f"ranks={world} epochs={args.epochs} time={time.time() - t0:.1f}s test_acc={acc:.4f} checkpoint={args.out}")
if ddp:
    dist.destroy_process_group()
