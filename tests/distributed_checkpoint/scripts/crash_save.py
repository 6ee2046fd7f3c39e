"""`crash_save.py ROOT WHEN`: save a checkpoint at step 1, then die while saving step 2: WHEN=item kills
the last rank after its first shard item, WHEN=metadata kills rank 0 just before it writes the metadata."""
import os
import signal
import sys

import dtrain
import dtrain.distributed as dist
import dtrain.distributed.checkpoint as dcp
import dtrain.nn as nn
from dtrain.distributed.checkpoint import state_dict_saver

root, when = sys.argv[1], sys.argv[2]
dist.init_process_group("mpi")
rank, size = dist.get_rank(), dist.get_world_size()
model = nn.Linear(300, 400)  # big enough to be split over the ranks
extra = {}
state = dcp.TrainingState(model=model, extra=extra)
for step in (1, 2):
    with dtrain.no_grad():
        model.weight.fill_(float(step))
        model.bias.fill_(-float(step))
    extra["step"] = step
    if step == 2:
        victim = size - 1 if when == "item" else 0

        def fault(stage, r):
            if stage == when and r == victim:
                os.kill(os.getpid(), signal.SIGKILL)
        state_dict_saver._fault = fault
    state.save(root, step)
print("not reached")
