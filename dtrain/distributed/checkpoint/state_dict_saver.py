"""save and async_save: every rank writes its part of the state into one file of a temporary directory;
rank 0 writes the metadata last and puts the directory in place in one atomic step (see _fs.commit_dir).

Who writes what is decided the same way on every rank from one all-gather of key descriptions:
- a tensor every holder has whole (replicated, as under DDP) and of at least `_SPLIT_BYTES` is split
  along dim 0 over its holders, so the bytes written are about one copy of the state, spread evenly;
- a smaller tensor, or a non-tensor value (pickled), is written once, by its lowest holding rank;
- a LocalShard is written by the rank that holds it (identical blocks on several ranks: the lowest).
"""
import json
import os
import pickle
import shutil
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..._tensor import Tensor
from . import _fs
from .metadata import METADATA, VERSION, LocalShard, encode_path, flatten

_SPLIT_BYTES = 1 << 18

# test hook: called as _fault(stage, rank) at "item" (after each item written) and "metadata" (before the
# metadata is written), so tests can kill a rank at exactly those points
_fault = None


class FileSystemWriter:
    """torch's FileSystemWriter: where a checkpoint goes (the only storage dtrain writes)."""

    def __init__(self, path, **kwargs):
        self.path = os.fspath(path)


def _checkpoint_path(checkpoint_id, storage):
    path = checkpoint_id if checkpoint_id is not None else getattr(storage, "path", None)
    if path is None:
        raise ValueError("save/load need a checkpoint_id (a directory) or a storage_writer/storage_reader")
    return os.path.abspath(os.fspath(path))


class _Comm:
    """The few collectives a save needs, or their single-process meaning when there is no group."""

    def __init__(self, process_group, no_dist):
        from ... import distributed as dist
        self.dist = dist
        self.pg = None if no_dist or not dist.is_initialized() else process_group
        self.on = not no_dist and dist.is_initialized()
        self.rank = dist.get_rank(self.pg) if self.on else 0
        self.size = dist.get_world_size(self.pg) if self.on else 1

    def all_gather(self, obj):
        if not self.on or self.size == 1:
            return [obj]
        out = [None] * self.size
        self.dist.all_gather_object(out, obj, group=self.pg)
        return out

    def broadcast(self, obj):
        if not self.on or self.size == 1:
            return obj
        box = [obj]
        src = self.dist.get_global_rank(self.pg, 0) if self.pg is not None else 0
        self.dist.broadcast_object_list(box, src=src, group=self.pg)
        return box[0]


def _host(t):
    """The tensor's values as a NumPy array (its own array on the CPU, a device-to-host copy otherwise)."""
    a = t._data
    return a if isinstance(a, np.ndarray) else t.detach().cpu()._data


def _describe(path, leaf):
    if isinstance(leaf, LocalShard):
        t = leaf.tensor
        return {"path": encode_path(path), "type": "tensor", "dtype": t.dtype.name, "shape": list(leaf.global_shape),
                "region": [list(leaf.offsets), list(t.shape)]}
    if isinstance(leaf, Tensor):
        return {"path": encode_path(path), "type": "tensor", "dtype": leaf.dtype.name, "shape": list(leaf.shape),
                "region": None}
    return {"path": encode_path(path), "type": "object"}


def _split_rows(n, parts):
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def _plan(gathered):
    """{fqn: (description, [(rank, offsets, sizes)])}: the same global plan on every rank."""
    holders = {}
    for rank, descs in enumerate(gathered):
        for fqn, d in descs.items():
            holders.setdefault(fqn, []).append((rank, d))
    plan = {}
    for fqn, hs in holders.items():
        r0, d0 = hs[0]
        for r, d in hs[1:]:
            if d["type"] != d0["type"] or (d["type"] == "tensor" and (
                    d["dtype"] != d0["dtype"] or d["shape"] != d0["shape"]
                    or (d["region"] is None) != (d0["region"] is None))):
                raise ValueError(f"key {fqn!r} differs between ranks: rank {r0} has {_what(d0)}, rank {r} has "
                                 f"{_what(d)}")
        if d0["type"] == "object":
            plan[fqn] = (d0, [(r0, None, None)])
        elif d0["region"] is None:
            shape = d0["shape"]
            nbytes = int(np.prod(shape)) * np.dtype(_itemsize_dtype(d0["dtype"])).itemsize
            if nbytes >= _SPLIT_BYTES and len(shape) >= 1 and shape[0] >= 2:
                ranks = [r for r, _ in hs]
                rows = _split_rows(shape[0], min(len(ranks), shape[0]))
                plan[fqn] = (d0, [(r, [lo] + [0] * (len(shape) - 1), [hi - lo] + shape[1:])
                                  for r, (lo, hi) in zip(ranks, rows) if hi > lo])
            else:
                plan[fqn] = (d0, [(r0, [0] * len(shape), list(shape))])
        else:
            seen, writes = set(), []
            for r, d in hs:
                key = (tuple(d["region"][0]), tuple(d["region"][1]))
                if key not in seen:
                    seen.add(key)
                    writes.append((r, d["region"][0], d["region"][1]))
            plan[fqn] = (d0, writes)
    return plan


def _itemsize_dtype(name):
    from .metadata import np_dtype
    return np_dtype(name)


def _what(d):
    if d["type"] == "object":
        return "a non-tensor value"
    kind = "a shard of" if d.get("region") else "a"
    return f"{kind} {d['dtype']} tensor of shape {d['shape']}"


class _Staged:
    """One rank's part of a save: its payloads (arrays or pickled bytes), the plan, where to write."""

    def __init__(self, target, token, plan, items, comm):
        self.target, self.token, self.plan, self.items, self.comm = target, token, plan, items, comm
        self.tmp = _fs.tmp_dir_for(target, token)


_staging = {}  # host buffers of the last async_save, reused by the next: no fresh pages to fault in


def _stage(state_dict, target, comm, copy):
    global _staging
    flat = flatten(state_dict)
    local = {fqn: _describe(path, leaf) for fqn, (path, leaf) in flat.items()}
    gathered = comm.all_gather((local, _fs.new_token()))  # rank 0's names the temporary directory
    token = gathered[0][1]
    plan = _plan([g[0] for g in gathered])
    items, staging = [], {}
    for fqn, (desc, writes) in plan.items():
        for r, offsets, sizes in writes:
            if r != comm.rank:
                continue
            leaf = flat[fqn][1]
            if desc["type"] == "object":
                items.append((fqn, None, None, pickle.dumps(leaf, protocol=pickle.HIGHEST_PROTOCOL)))
                continue
            a = _host(leaf.tensor if isinstance(leaf, LocalShard) else leaf)
            if desc["region"] is None and a.ndim:
                a = a[offsets[0]:offsets[0] + sizes[0]]
            if copy:
                key = (fqn, tuple(offsets), a.shape, a.dtype.str)
                buf = _staging.get(key)
                buf = staging[key] = buf if buf is not None else np.empty(a.shape, a.dtype)
                np.copyto(buf, a)
                a = buf
            else:
                a = np.ascontiguousarray(a)
            items.append((fqn, offsets, sizes, a))
    if copy:
        _staging = staging
    return _Staged(target, token, plan, items, comm)


def _file_name(rank):
    return f"__{rank}_0.distcp"


def _write_shard(staged):
    """Write this rank's items into its file in the temporary directory, synced; the item records."""
    comm = staged.comm
    os.makedirs(staged.tmp, exist_ok=True)
    records = []
    if not staged.items:
        return records
    name = _file_name(comm.rank)
    with open(os.path.join(staged.tmp, name), "wb") as f:
        pos = 0
        for fqn, offsets, sizes, payload in staged.items:
            buf = payload if isinstance(payload, bytes) else payload.reshape(-1).view(np.uint8)
            f.write(buf)
            records.append((fqn, offsets, sizes, name, pos, len(buf), zlib.crc32(buf)))
            pos += len(buf)
            if _fault is not None:
                _fault("item", comm.rank)
        f.flush()
        os.fsync(f.fileno())
    return records


def _metadata(staged, all_records):
    keys = {}
    for fqn, (desc, _) in staged.plan.items():
        entry = {"path": desc["path"], "type": desc["type"]}
        if desc["type"] == "tensor":
            entry.update(dtype=desc["dtype"], shape=desc["shape"], chunks=[])
        keys[fqn] = entry
    files = {}
    for records in all_records:
        for fqn, offsets, sizes, name, pos, length, crc in records:
            files[name] = max(files.get(name, 0), pos + length)
            where = {"file": name, "offset": pos, "length": length, "crc32": crc}
            if keys[fqn]["type"] == "object":
                keys[fqn].update(where)
            else:
                keys[fqn]["chunks"].append({"offsets": offsets, "sizes": sizes, **where})
    return {"version": VERSION, "world_size": staged.comm.size, "files": files, "keys": keys}


def _write_and_commit(staged):
    comm = staged.comm
    try:
        result = ("ok", _write_shard(staged))
    except Exception as e:  # every rank must reach the gather, or the others would wait for it
        result = ("error", f"{type(e).__name__}: {e}")
    results = comm.all_gather(result)
    failed = [(r, msg) for r, (status, msg) in enumerate(results) if status != "ok"]
    error = None
    if comm.rank == 0:
        try:
            if failed:
                raise RuntimeError("; ".join(f"rank {r} could not write its shard: {m}" for r, m in failed))
            _fs.remove_stale(staged.target)  # what interrupted saves to this place left behind
            if _fault is not None:
                _fault("metadata", comm.rank)
            meta = _metadata(staged, [recs for _, recs in results])
            with open(os.path.join(staged.tmp, METADATA), "wb") as f:
                f.write(json.dumps(meta, separators=(",", ":")).encode())
                f.flush()
                os.fsync(f.fileno())
            _fs.fsync_dir(staged.tmp)
            _fs.commit_dir(staged.tmp, staged.target, staged.token)
        except Exception as e:
            error = f"saving checkpoint {staged.target} failed: {e}"
            shutil.rmtree(staged.tmp, ignore_errors=True)
    error = comm.broadcast(error)
    if error is not None:
        raise RuntimeError(error)
    return staged.target


_pending = None
_pending_lock = threading.Lock()
_executor = None
_background_groups = {}


def _wait_pending():
    global _pending
    with _pending_lock:
        fut, _pending = _pending, None
    if fut is not None:
        try:
            fut.result()
        except Exception:
            pass  # its own future reports the failure


def save(state_dict, *, checkpoint_id=None, storage_writer=None, planner=None, process_group=None,
         no_dist: bool = False):
    """Save a (nested) state dict as a sharded checkpoint directory; every rank of the group calls it.

    Returns the checkpoint's path once the directory is complete and in place."""
    if planner is not None:
        raise ValueError("dtrain's checkpoints have one planner; pass planner=None")
    target = _checkpoint_path(checkpoint_id, storage_writer)
    _wait_pending()
    comm = _Comm(process_group, no_dist)
    return _write_and_commit(_stage(state_dict, target, comm, copy=False))


def async_save(state_dict, *, checkpoint_id=None, storage_writer=None, planner=None, process_group=None,
               no_dist: bool = False):
    """Save in the background: copy this rank's part to host memory, return a Future, write in a thread.

    The caller waits only for the copy (and for a previous async_save that is still writing: at most one is
    in flight). The thread's collectives run on a group of their own, so training's collectives on the
    main thread never interleave with them."""
    global _pending, _executor
    if planner is not None:
        raise ValueError("dtrain's checkpoints have one planner; pass planner=None")
    target = _checkpoint_path(checkpoint_id, storage_writer)
    _wait_pending()
    comm = _Comm(process_group, no_dist)
    staged = _stage(state_dict, target, comm, copy=True)
    if comm.on and comm.size > 1:
        key = id(comm.pg)
        if key not in _background_groups:
            ranks = comm.dist.get_process_group_ranks(comm.pg) if comm.pg is not None else None
            _background_groups[key] = comm.dist.new_group(ranks=ranks)
        bg = _Comm.__new__(_Comm)
        bg.__dict__.update(comm.__dict__, pg=_background_groups[key])
        staged.comm = bg
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dtrain-checkpoint")
    fut = _executor.submit(_write_and_commit, staged)
    with _pending_lock:
        _pending = fut
    return fut
