"""`crash_commit.py ROOT STAGE [swap|renames]`: save checkpoint ROOT/ckpt holding 1s, then die (os._exit, no
cleanup) at STAGE of saving 2s under the same name; with `renames` the filesystem is made to refuse the atomic
swap, so the commit takes its two-rename path. STAGE: item, metadata (the saver's steps), exchanged (after the
swap), moved_old, renamed (between and after the two renames), or latest / rotate for TrainingState's steps."""
import errno
import os
import sys

import dtrain
import dtrain.distributed.checkpoint as dcp
from dtrain.distributed.checkpoint import _fs, state_dict_saver

root, stage, how = sys.argv[1], sys.argv[2], sys.argv[3]


def die(*where):
    if where[0] == stage:
        os._exit(17)


if how == "renames":
    def refuse(a, b):
        raise OSError(errno.EINVAL, "no RENAME_EXCHANGE on this filesystem")
    _fs._exchange = refuse
if stage in ("latest", "rotate"):
    model = dtrain.nn.Linear(50, 40, bias=False)
    ts = dcp.TrainingState(model=model, keep_last=1)
    with dtrain.no_grad():
        model.weight.fill_(1.0)
    ts.save(root, 1)
    with dtrain.no_grad():
        model.weight.fill_(2.0)
    if stage == "latest":
        _fs.update_latest = lambda *a: os._exit(17)
    else:
        _fs.rotate = lambda *a: os._exit(17)
    ts.save(root, 2)
else:
    target = os.path.join(root, "ckpt")
    dcp.save({"w": dtrain.full((100, 700), 1.0), "tag": "one"}, checkpoint_id=target)
    state_dict_saver._fault = _fs._fault = die
    dcp.save({"w": dtrain.full((100, 700), 2.0), "tag": "two"}, checkpoint_id=target)
print("not reached")
