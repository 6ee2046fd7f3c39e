"""A short DDP training: the ranks see different data and must end with identical parameters."""
import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
from dtrain.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
dtrain.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)))
opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
dtrain.manual_seed(100 + rank)  # each rank its own data
x = dtrain.randn(16, 4)
y = x.sum(1, keepdim=True)
first = None
for step in range(20):
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    first = first if first is not None else loss.item()
flat = dtrain.cat([p.detach().reshape(-1) for p in model.parameters()])
gathered = [dtrain.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
spread = max((g - gathered[0]).abs().max().item() for g in gathered)
assert spread == 0.0, spread
assert loss.item() < first, (first, loss.item())
print(f"rank={rank} world={world} in_sync spread={spread} loss {first:.4f}->{loss.item():.4f}", flush=True)
dist.destroy_process_group()
