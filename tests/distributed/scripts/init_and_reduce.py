"""Joins the world, all-reduces its rank and reports what it saw as JSON in OUT_DIR/rank<R>.json."""
import json
import os
import sys

import dtrain as torch
import dtrain.distributed as dist

out_dir = sys.argv[1]
before = None
try:
    dist.get_rank()
except ValueError as e:
    before = str(e)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
x = torch.full((3,), float(rank + 1))
dist.all_reduce(x)
gathered = [None] * world
dist.all_gather_object(gathered, {"rank": rank, "env_rank": os.environ.get("RANK")})
info = {"rank": rank, "world": world, "sum": x.tolist(), "gathered": gathered, "backend": dist.get_backend(),
        "before_init": before}
dist.destroy_process_group()
with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
    json.dump(info, f)
