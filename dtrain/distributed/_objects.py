"""Collectives of picklable Python objects: cloudpickle to bytes, then the tensor collectives on uint8 buffers.

They always travel over the group's MPI communicator (objects live on the host, whatever the backend).
"""
import functools
import pickle

import cloudpickle
import numpy as np

from .._device import CPU
from .._tensor import _wrap
from . import distributed_c10d as c10d


def _dumps(obj):
    return np.frombuffer(cloudpickle.dumps(obj), np.uint8)


def _loads(buf):
    return pickle.loads(buf.tobytes())


def _host(fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        prev, c10d._world.host_ok = c10d._world.host_ok, True
        try:
            return fn(*args, **kwargs)
        finally:
            c10d._world.host_ok = prev
    return run


def _t(array):
    return _wrap(array, CPU)


def _sizes(pg, n_local):
    sizes = np.zeros(pg.size(), np.int64)
    c10d.all_gather_into_tensor(_t(sizes), _t(np.array([n_local], np.int64)), group=_group_arg(pg))
    return sizes


def _group_arg(pg):
    return None if pg is c10d._world.default else pg


@_host
def broadcast_object_list(object_list, src=None, group=None, device=None, group_src=None):
    """Replace `object_list`'s items on every rank with those of global rank `src`."""
    pg = c10d._pg(group)
    if pg is None:
        return
    root = group_src if group_src is not None else c10d._group_rank(pg, 0 if src is None else src, "Global")
    g = _group_arg(pg)
    if pg.rank() == root:
        blobs = [_dumps(o) for o in object_list]
        sizes = np.array([b.size for b in blobs], np.int64)
    else:
        sizes = np.zeros(len(object_list), np.int64)
    c10d.broadcast(_t(sizes), group=g, group_src=root)
    data = np.concatenate(blobs) if pg.rank() == root and blobs else np.empty(int(sizes.sum()), np.uint8)
    c10d.broadcast(_t(data), group=g, group_src=root)
    if pg.rank() != root:
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for i in range(len(object_list)):
            object_list[i] = _loads(data[offsets[i]:offsets[i + 1]])


@_host
def all_gather_object(object_list, obj, group=None):
    """Fill `object_list` (one slot per rank) with every rank's `obj`."""
    pg = c10d._pg(group)
    if pg is None:
        return
    if len(object_list) != pg.size():
        raise RuntimeError(f"all_gather_object: object_list has {len(object_list)} slots but the group has "
                           f"{pg.size()} ranks")
    blob = _dumps(obj)
    sizes = _sizes(pg, blob.size)
    width = int(sizes.max())
    out = np.empty(width * pg.size(), np.uint8)
    padded = np.zeros(width, np.uint8)
    padded[:blob.size] = blob
    c10d.all_gather_into_tensor(_t(out), _t(padded), group=_group_arg(pg))
    for i in range(pg.size()):
        object_list[i] = _loads(out[i * width:i * width + sizes[i]])


@_host
def gather_object(obj, object_gather_list=None, dst=None, group=None, group_dst=None):
    """Gather every rank's `obj` into `object_gather_list` on global rank `dst`."""
    pg = c10d._pg(group)
    if pg is None:
        return
    root = group_dst if group_dst is not None else c10d._group_rank(pg, 0 if dst is None else dst, "Global")
    if pg.rank() == root and (object_gather_list is None or len(object_gather_list) != pg.size()):
        raise ValueError(f"Argument ``object_gather_list`` must be a list of {pg.size()} slots on the destination rank")
    blob = _dumps(obj)
    sizes = _sizes(pg, blob.size)
    width = int(sizes.max())
    padded = np.zeros(width, np.uint8)
    padded[:blob.size] = blob
    slots = [_t(np.empty(width, np.uint8)) for _ in range(pg.size())] if pg.rank() == root else None
    c10d.gather(_t(padded), slots, group=_group_arg(pg), group_dst=root)
    if pg.rank() == root:
        for i, s in enumerate(slots):
            object_gather_list[i] = _loads(s._data[:sizes[i]])


@_host
def scatter_object_list(scatter_object_output_list, scatter_object_input_list=None, src=None, group=None,
                        group_src=None):
    """Put the i-th object of `scatter_object_input_list` on `src` into `scatter_object_output_list[0]` of rank i."""
    pg = c10d._pg(group)
    if pg is None:
        return
    if not isinstance(scatter_object_output_list, list) or len(scatter_object_output_list) < 1:
        raise ValueError("Expected argument scatter_object_output_list to be a list of size at least 1.")
    root = group_src if group_src is not None else c10d._group_rank(pg, 0 if src is None else src, "Global")
    g = _group_arg(pg)
    width = np.zeros(1, np.int64)
    if pg.rank() == root:
        if scatter_object_input_list is None or len(scatter_object_input_list) != pg.size():
            raise ValueError(f"scatter_object_input_list must hold {pg.size()} objects on the source rank")
        blobs = [_dumps(o) for o in scatter_object_input_list]
        width[0] = max(b.size for b in blobs)
    c10d.broadcast(_t(width), group=g, group_src=root)
    w = int(width[0]) + 8  # 8 leading bytes carry each blob's length
    chunks = None
    if pg.rank() == root:
        chunks = []
        for b in blobs:
            c = np.zeros(w, np.uint8)
            c[:8] = np.frombuffer(np.int64(b.size).tobytes(), np.uint8)
            c[8:8 + b.size] = b
            chunks.append(_t(c))
    out = np.empty(w, np.uint8)
    c10d.scatter(_t(out), chunks, group=g, group_src=root)
    n = int(np.frombuffer(out[:8].tobytes(), np.int64)[0])
    scatter_object_output_list[0] = _loads(out[8:8 + n])


@_host
def send_object_list(object_list, dst=None, group=None, device=None, group_dst=None):
    """Send the objects of `object_list` to global rank `dst` (receive them with recv_object_list)."""
    pg = c10d._pg(group)
    if pg is None:
        return
    blobs = [_dumps(o) for o in object_list]
    g = _group_arg(pg)
    c10d.send(_t(np.array([b.size for b in blobs], np.int64)), dst, group=g, group_dst=group_dst)
    c10d.send(_t(np.concatenate(blobs) if blobs else np.empty(0, np.uint8)), dst, group=g, group_dst=group_dst)


@_host
def recv_object_list(object_list, src=None, group=None, device=None, group_src=None):
    """Fill `object_list` with the objects sent by global rank `src` (None: any); returns the sender."""
    pg = c10d._pg(group)
    if pg is None:
        return -1
    g = _group_arg(pg)
    sizes = np.zeros(len(object_list), np.int64)
    sender = c10d.recv(_t(sizes), src, group=g, group_src=group_src)
    data = np.empty(int(sizes.sum()), np.uint8)
    c10d.recv(_t(data), sender, group=g)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for i in range(len(object_list)):
        object_list[i] = _loads(data[offsets[i]:offsets[i + 1]])
    return sender
