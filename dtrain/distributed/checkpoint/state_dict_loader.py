"""load: fill a state dict in place from a checkpoint written at any world size.

Each rank reads the metadata and then only the chunks that overlap what it needs: the whole tensor for a
plain tensor, its block for a LocalShard. Every chunk read is checked against its length and crc32.
Loading takes no collectives, so a checkpoint can also be read by one process (consolidate, tests).

Non-tensor values are unpickled as `dtrain.load` unpickles: by default (`weights_only=True`) only tensors,
plain containers and values and the allow-listed globals (`dtrain.serialization.add_safe_globals`) can be
built; a value naming any other global raises pickle.UnpicklingError before anything of it runs.
"""
import io
import os
import pickle
import zlib

import numpy as np

from ..._tensor import Tensor
from . import _fs
from .metadata import LocalShard, decode_path, flatten, np_dtype, read_metadata, set_path
from .state_dict_saver import _checkpoint_path, _wait_pending


class FileSystemReader:
    """torch's FileSystemReader: where a checkpoint is read from."""

    def __init__(self, path):
        self.path = os.fspath(path)


class _Files:
    """Open shard files of one checkpoint, with errors that name the file and the key being read."""

    def __init__(self, root, meta):
        self.root, self.meta, self.open = root, meta, {}

    def read(self, fqn, where, into=None):
        name = where["file"]
        f = self.open.get(name)
        if f is None:
            try:
                f = self.open[name] = open(os.path.join(self.root, name), "rb")
            except FileNotFoundError:
                raise RuntimeError(f"{self.root} is not a complete checkpoint: shard file {name} holding key "
                                   f"{fqn!r} is missing") from None
        f.seek(where["offset"])
        n = where["length"]
        if into is None:
            into = bytearray(n)
        got = f.readinto(into)
        if got != n:
            raise RuntimeError(f"{self.root} is not a complete checkpoint: shard file {name} ends after {got} of "
                               f"the {n} bytes of key {fqn!r} at byte offset {where['offset']}")
        if zlib.crc32(into) != where["crc32"]:
            raise RuntimeError(f"checksum mismatch in checkpoint {self.root}: shard file {name}, key {fqn!r} "
                               f"(bytes {where['offset']}..{where['offset'] + n}) is corrupt")
        return into

    def close(self):
        for f in self.open.values():
            f.close()
        self.open.clear()


def _fill(files, fqn, entry, offsets, dest):
    """Fill the C-contiguous array `dest` (the block of `entry` at `offsets`) from overlapping chunks."""
    dt = np_dtype(entry["dtype"])
    shape = dest.shape
    covered = 0
    for ch in entry["chunks"]:
        lo = [max(o, c) for o, c in zip(offsets, ch["offsets"])]
        hi = [min(o + s, c + z) for o, s, c, z in zip(offsets, shape, ch["offsets"], ch["sizes"])]
        if any(h <= l for l, h in zip(lo, hi)):
            continue
        n = int(np.prod([h - l for l, h in zip(lo, hi)]))
        dst = dest[tuple(slice(l - o, h - o) for l, h, o in zip(lo, hi, offsets)) or ...]  # a view, also 0-d
        if list(dst.shape) == ch["sizes"] and dst.flags.c_contiguous and ch["length"] == dst.nbytes:
            files.read(fqn, ch, into=dst.reshape(-1).view(np.uint8))  # straight into place, no staging copy
        else:
            raw = np.frombuffer(files.read(fqn, ch), dt).reshape(ch["sizes"])
            dst[...] = raw[tuple(slice(l - c, h - c) for l, h, c in zip(lo, hi, ch["offsets"]))]
        covered += n
    if covered != int(np.prod(shape)):
        raise RuntimeError(f"{files.root} is not a complete checkpoint: the chunks of key {fqn!r} cover "
                           f"{covered} of the {int(np.prod(shape))} elements needed")


def _check_tensor(fqn, entry, dtype_name, shape, root):
    if entry["type"] != "tensor":
        raise RuntimeError(f"key {fqn!r} of checkpoint {root} holds a non-tensor value, the state dict a tensor")
    if entry["shape"] != list(shape):
        raise RuntimeError(f"size mismatch for {fqn}: copying a param with shape {entry['shape']} from "
                           f"checkpoint {root}, the shape in current model is {list(shape)}.")
    if entry["dtype"] != dtype_name:
        raise RuntimeError(f"dtype mismatch for {fqn}: checkpoint {root} has {entry['dtype']}, the state dict "
                           f"has {dtype_name}")


def _into_tensor(t, fill):
    """Run fill(array) on a C-contiguous host array that ends up as `t`'s values."""
    from ... import no_grad
    from ..._ops.creation import from_numpy
    a = t._data
    if isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable:
        fill(a)
        t._vc.value += 1
        return
    host = np.empty(tuple(t.shape), a.dtype if isinstance(a, np.ndarray) else np_dtype(t.dtype.name))
    fill(host)
    with no_grad():
        t.copy_(from_numpy(host))


def load(state_dict, *, checkpoint_id=None, storage_reader=None, planner=None, process_group=None,
         no_dist: bool = False, weights_only: bool = True):
    """Load a checkpoint into `state_dict` in place: its tensors (and LocalShards) are filled with the saved
    values, its non-tensor values replaced. Every key of `state_dict` must be in the checkpoint.

    `weights_only` (dtrain's, in torch.load's spelling; torch's dcp.load unpickles everything): True builds
    only tensors, containers and plain values; pass False only for a checkpoint from a trusted source."""
    if planner is not None:
        raise ValueError("dtrain's checkpoints have one planner; pass planner=None")
    root = _fs.resolve(_checkpoint_path(checkpoint_id, storage_reader))
    _wait_pending()
    meta = read_metadata(root)
    keys = meta["keys"]
    files = _Files(root, meta)
    try:
        for fqn, (path, leaf) in flatten(state_dict).items():
            entry = keys.get(fqn)
            if entry is None:
                raise RuntimeError(f"Missing key in checkpoint state_dict: {fqn}.")
            if isinstance(leaf, LocalShard):
                _check_tensor(fqn, entry, leaf.tensor.dtype.name, leaf.global_shape, root)
                _into_tensor(leaf.tensor, lambda a: _fill(files, fqn, entry, leaf.offsets, a))
            elif isinstance(leaf, Tensor):
                _check_tensor(fqn, entry, leaf.dtype.name, leaf.shape, root)
                _into_tensor(leaf, lambda a: _fill(files, fqn, entry, [0] * a.ndim, a))
            else:
                set_path(state_dict, path, read_value(files, fqn, entry, weights_only))
    finally:
        files.close()


def read_value(files, fqn, entry, weights_only=True):
    """The full value of one key: a NumPy array for a tensor, the object for anything else."""
    if entry["type"] == "object":
        return _unpickle(bytes(files.read(fqn, entry)), weights_only, files.root, fqn)
    a = np.empty(entry["shape"], np_dtype(entry["dtype"]))
    _fill(files, fqn, entry, [0] * a.ndim, a)
    return a


def _unpickle(data, weights_only, root, fqn):
    if not weights_only:
        return pickle.loads(data)
    from ...serialization import _Unpickler
    try:
        return _Unpickler(io.BytesIO(data), None, True, encoding="utf-8").load()
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"key {fqn!r} of checkpoint {root}: {e}") from None


def load_all(checkpoint_id, prefix="", want=None, weights_only=True):
    """Every key of a checkpoint (under `prefix`; where `want(path)` is true) rebuilt into nested containers,
    tensors as dtrain CPU tensors. For state that does not exist before it is loaded (optimizer state)."""
    from ..._ops.creation import from_numpy
    root = _fs.resolve(os.path.abspath(os.fspath(checkpoint_id)))
    meta = read_metadata(root)
    files = _Files(root, meta)
    out = {}
    try:
        for fqn, entry in meta["keys"].items():
            if not (fqn == prefix or fqn.startswith(prefix + ".")) and prefix:
                continue
            path = decode_path(entry["path"])
            if want is not None and not want(path):
                continue
            v = read_value(files, fqn, entry, weights_only)
            set_path(out, path, from_numpy(v) if isinstance(v, np.ndarray) else v)
    finally:
        files.close()
    return out
