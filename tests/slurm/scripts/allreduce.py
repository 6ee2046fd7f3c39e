"""Each rank contributes its rank; the sum must be world*(world-1)/2 on every rank."""
import os

import dtrain
import dtrain.distributed as dist

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
t = dtrain.tensor([float(rank)])
dist.all_reduce(t)
expected = world * (world - 1) / 2
assert t.item() == expected, (t.item(), expected)
print(f"rank={rank} world={world} local_rank={os.environ.get('LOCAL_RANK')} "
      f"slurm_procid={os.environ.get('SLURM_PROCID')} sum={t.item():g}", flush=True)
dist.destroy_process_group()
