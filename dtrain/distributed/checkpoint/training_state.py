"""TrainingState: one call saves or restores everything a run needs to continue exactly where it was."""
import os
import random
import warnings

import numpy as np

from . import _fs
from .metadata import read_metadata
from .state_dict_loader import load, load_all
from .state_dict_saver import _Comm, save


def _rng_state():
    from ... import random as drandom
    return {"cpu": bytes(drandom.default_generator.get_state()._data),
            "cuda": {str(d): bytes(g.get_state()._data) for d, g in drandom._cuda_generators.items()},
            "python": random.getstate(),
            "numpy": _plain_numpy_state(np.random.get_state())}


def _plain_numpy_state(state):
    # NumPy's key array as bytes: a checkpoint's values load with weights_only, which builds no ndarray
    name, keys, pos, has_gauss, cached = state
    return (name, np.asarray(keys, np.uint32).tobytes(), int(pos), int(has_gauss), float(cached))


def _set_rng_state(state):
    from ... import random as drandom
    drandom.default_generator.set_state(np.frombuffer(state["cpu"], np.uint8))
    for d, g in drandom._cuda_generators.items():
        saved = state.get("cuda", {}).get(str(d))  # an empty dict is no key in a checkpoint
        if saved is not None:
            g.set_state(np.frombuffer(saved, np.uint8))
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.frombuffer(keys, np.uint32) if isinstance(keys, bytes) else keys, pos, has_gauss,
                         cached))


class TrainingState:
    """The whole state of a run: model, optimizer, LR scheduler, DistributedSampler epoch, every rank's RNGs
    (dtrain's CPU and CUDA generators, Python's `random`, NumPy's global one) and `extra` values.

    `save(root, step)` writes `root/step_<step>` and points `root/latest` at it; `load_latest(root)` restores
    it and returns the step (None when there is no checkpoint). Put the data position in `extra` (e.g. the
    epoch and the step within it): on load the same dict is updated in place. With `keep_last=K` only the
    newest K checkpoints stay. A ZeroRedundancyOptimizer saves its shards, not a consolidated copy."""

    def __init__(self, model=None, optimizer=None, scheduler=None, sampler=None, extra=None, *,
                 keep_last=None, process_group=None):
        self.model, self.optimizer, self.scheduler, self.sampler = model, optimizer, scheduler, sampler
        self.extra = extra if extra is not None else {}
        self.keep_last, self.process_group = keep_last, process_group

    def _comm(self):
        return _Comm(self.process_group, False)

    def state_dict(self, step, comm):
        sd = {"step": int(step), "world_size": comm.size, "extra": dict(self.extra),
              "rng": {str(comm.rank): _rng_state()}}
        if self.model is not None:
            sd["model"] = self.model.state_dict()
        if self.optimizer is not None:
            sharded = getattr(self.optimizer, "sharded_state_dict", None)
            sd["optim"] = sharded() if sharded is not None else self.optimizer.state_dict()
        if self.scheduler is not None:
            sd["scheduler"] = self.scheduler.state_dict()
        if self.sampler is not None:
            sd["sampler"] = {"epoch": int(self.sampler.epoch)}
        return sd

    def save(self, dir_root, step):
        """Save the state as `dir_root/step_<step>` on every rank, then update `dir_root/latest`."""
        comm = self._comm()
        dir_root = os.path.abspath(os.fspath(dir_root))
        os.makedirs(dir_root, exist_ok=True)
        path = os.path.join(dir_root, f"step_{int(step):08d}")
        save(self.state_dict(step, comm), checkpoint_id=path, process_group=self.process_group)
        if comm.rank == 0:
            _fs.update_latest(dir_root, path)
            if self.keep_last:
                _fs.rotate(dir_root, self.keep_last)
        comm.broadcast(None)  # nobody goes on (or reads `latest`) before it names the new checkpoint
        return path

    def load(self, path):
        """Restore the state saved at `path`; returns its step."""
        comm = self._comm()
        path = _fs.resolve(os.path.abspath(os.fspath(path)))
        meta = read_metadata(path)
        same_world = meta["world_size"] == comm.size
        sd = {"step": None}
        if not same_world:
            warnings.warn(f"checkpoint {path} was written by a different world size: RNG states are not restored")
        if self.model is not None:
            sd["model"] = self.model.state_dict()
        if self.scheduler is not None:
            sd["scheduler"] = self.scheduler.state_dict()
        if self.sampler is not None:
            sd["sampler"] = {"epoch": None}
        load(sd, checkpoint_id=path)
        if self.model is not None:
            self.model.load_state_dict(sd["model"])
        if self.optimizer is not None:
            self._load_optimizer(path)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(sd["scheduler"])
        if self.sampler is not None:
            self.sampler.set_epoch(sd["sampler"]["epoch"])
        # extra values are whatever was saved, so they are rebuilt from the checkpoint's keys
        self.extra.update(load_all(path, prefix="extra").get("extra", {}))
        if same_world:
            _set_rng_state(load_all(path, prefix=f"rng.{comm.rank}")["rng"][str(comm.rank)])
        return sd["step"]

    def _load_optimizer(self, path):
        # optimizer state does not exist before the first step, so it is rebuilt from the checkpoint's keys
        wants = getattr(self.optimizer, "_wants_state", None)
        want = None
        if wants is not None:
            def want(p):
                return len(p) < 3 or p[1] != "state" or wants(p[2])
        opt = load_all(path, prefix="optim", want=want).get("optim", {})
        opt.setdefault("state", {})
        loader = getattr(self.optimizer, "load_sharded_state_dict", None)
        (loader or self.optimizer.load_state_dict)(opt)

    def load_latest(self, dir_root):
        """Restore the checkpoint `dir_root/latest` names; its step, or None when there is none."""
        path = _fs.read_latest(os.path.abspath(os.fspath(dir_root)))
        return None if path is None else self.load(path)

