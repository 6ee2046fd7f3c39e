"""dtrain.distributed.checkpoint: sharded checkpoints written by every rank, loadable at any world size.

A checkpoint is a directory: one data file per writing rank (`__<rank>_0.distcp`) and a JSON metadata
file (`.metadata`, written last) that maps every key to its global shape, dtype and chunks (file, byte
offset, length, crc32). A save goes to `DIR.tmp-<id>` and is renamed into place once complete, so a
reader sees the previous checkpoint or the new one, never part of one.

    import dtrain.distributed.checkpoint as dcp
    dcp.save({"model": model.state_dict()}, checkpoint_id="ckpt/step_100")
    dcp.load(state, checkpoint_id="ckpt/step_100")   # in place, at any world size

`TrainingState` saves and restores a whole run (model, optimizer, scheduler, RNGs, data position) for
exact resumption under `dtrain-run --max-restarts K`.
"""
from ._fs import read_latest, rotate, update_latest  # noqa: F401
from .format_utils import consolidate, dcp_to_torch_save, describe  # noqa: F401
from .metadata import LocalShard  # noqa: F401
from .state_dict_loader import FileSystemReader, load  # noqa: F401
from .state_dict_saver import FileSystemWriter, async_save, save  # noqa: F401
from .training_state import TrainingState  # noqa: F401

__all__ = ["FileSystemReader", "FileSystemWriter", "LocalShard", "TrainingState", "async_save", "consolidate",
           "dcp_to_torch_save", "describe", "load", "read_latest", "rotate", "save", "update_latest"]
