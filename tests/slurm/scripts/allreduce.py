"""Each rank contributes its rank; the sum must be world*(world-1)/2 on every rank."""
import os

import dtrain
import dtrain.distributed as dist
from dtrain_launcher import slurm

dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
t = dtrain.tensor([float(rank)])
dist.all_reduce(t)
expected = world * (world - 1) / 2
assert t.item() == expected, (t.item(), expected)
# what a script reading torch's variables gets from SLURM's under srun, checked against MPI
env = slurm.rank_env()
assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"]) == (rank, world, world), env
print(f"rank={rank} world={world} local_rank={env['LOCAL_RANK']} "
      f"torch_local_rank={os.environ.get('LOCAL_RANK')} sum={t.item():g}", flush=True)
dist.destroy_process_group()
