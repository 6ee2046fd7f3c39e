"""PyTorch's DDP tutorial program (processes started with torch.multiprocessing.spawn, rendezvous through
MASTER_ADDR/MASTER_PORT), with its weights and data made deterministic so that two frameworks can be
compared: python ddp_spawn_tutorial.py WORLD_SIZE."""
import os
import sys

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.optim as optim
from torch.nn.parallel import DistributedDataParallel as DDP


def say(line):
    # the processes share one pipe: a line goes out in one write, so lines of two processes never mix
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def setup(rank, world_size):
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ.setdefault("MASTER_PORT", "12355")  # the tests choose a free one
    dist.init_process_group("gloo", rank=rank, world_size=world_size)


def cleanup():
    dist.destroy_process_group()


class ToyModel(nn.Module):
    def __init__(self):
        super(ToyModel, self).__init__()
        self.net1 = nn.Linear(10, 10)
        self.relu = nn.ReLU()
        self.net2 = nn.Linear(10, 5)

    def forward(self, x):
        return self.net2(self.relu(self.net1(x)))


def demo_basic(rank, world_size, steps):
    setup(rank, world_size)
    model = ToyModel()
    init = np.random.default_rng(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(init.standard_normal(tuple(p.shape)).astype(np.float32) * 0.3))
    ddp_model = DDP(model)
    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(ddp_model.parameters(), lr=0.01)
    data = np.random.default_rng(100 + rank)
    for _ in range(steps):
        x = torch.from_numpy(data.standard_normal((20, 10)).astype(np.float32))
        y = torch.from_numpy(data.standard_normal((20, 5)).astype(np.float32))
        optimizer.zero_grad()
        loss_fn(ddp_model(x), y).backward()
        optimizer.step()
    total = torch.tensor([float(sum(p.detach().double().sum() for p in model.parameters()))])
    first = total.clone()
    dist.broadcast(first, 0)
    if rank == 0:
        say(f"FRAMEWORK {torch.__name__}")
    say(f"RANK {rank} CHECKSUM {total.item():.9f} SAME {bool(first.item() == total.item())}")
    cleanup()


if __name__ == "__main__":
    world_size = int(sys.argv[1])
    mp.spawn(demo_basic, args=(world_size, 5), nprocs=world_size, join=True)
    print("SPAWN RETURNED", flush=True)
