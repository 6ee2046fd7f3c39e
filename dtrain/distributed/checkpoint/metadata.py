"""What a checkpoint holds: flattened state-dict keys, the metadata file, and shards of tensors.

A state dict is flattened into keys joined by dots (`model.layer.weight`, `optim.state.0.exp_avg`):
dicts always, lists only where they hold tensors or containers. Each key also keeps its path with
the original key types (an int dict key stays an int; a list index is written `[i]`), so a checkpoint
can be rebuilt into nested containers without the caller's state dict (consolidate, optimizer state
that does not exist yet).
"""
import json
import os
from collections.abc import Mapping

import numpy as np

from ..._tensor import Tensor

METADATA = ".metadata"
VERSION = 1


class LocalShard:
    """The part of a global tensor this rank holds: rows or blocks `tensor` at `offsets` of `global_shape`.

    Put it in a state dict in place of a tensor for state that is sharded over ranks (no rank holds all
    of it); save writes each rank's block, load fills `tensor` with exactly that block, whatever world
    size wrote it."""

    def __init__(self, tensor, offsets, global_shape):
        self.tensor = tensor
        self.offsets = tuple(int(o) for o in offsets)
        self.global_shape = tuple(int(s) for s in global_shape)
        sizes = tuple(tensor.shape)
        if len(self.offsets) != len(sizes) or len(self.global_shape) != len(sizes) or any(
                o < 0 or o + s > g for o, s, g in zip(self.offsets, sizes, self.global_shape)):
            raise ValueError(f"LocalShard of shape {list(sizes)} at offsets {list(self.offsets)} does not fit in "
                             f"the global shape {list(self.global_shape)}")

    def __repr__(self):
        return (f"LocalShard(shape={list(self.tensor.shape)}, offsets={list(self.offsets)}, "
                f"global_shape={list(self.global_shape)})")


def _is_container_leafless(value):
    return not any(isinstance(v, (Mapping, list, Tensor, LocalShard)) for v in value)


def flatten(state_dict, prefix=(), out=None):
    """{fqn: (path, leaf)} for every leaf of a nested state dict, in traversal order."""
    out = {} if out is None else out
    items = state_dict.items() if isinstance(state_dict, Mapping) else (([i], v) for i, v in enumerate(state_dict))
    for k, v in items:
        path = prefix + (k,)
        if isinstance(v, Mapping) or (isinstance(v, list) and v and not _is_container_leafless(v)):
            flatten(v, path, out)
        else:
            fqn = fqn_of(path)
            if fqn in out:
                raise ValueError(f"two entries of the state dict flatten to the same key {fqn!r}")
            out[fqn] = (path, v)
    return out


def fqn_of(path):
    return ".".join(str(p[0]) if isinstance(p, list) else str(p) for p in path)


def set_path(root, path, value):
    """Store `value` at `path` in nested containers, creating dicts and lists on the way."""
    node = root
    for i, p in enumerate(path):
        key = p[0] if isinstance(p, list) else p
        if isinstance(node, list):
            node.extend([None] * (key + 1 - len(node)))
        if i == len(path) - 1:
            node[key] = value
        else:
            if (node[key] if isinstance(node, list) else node.get(key)) is None:
                node[key] = [] if isinstance(path[i + 1], list) else {}
            node = node[key]
    return root


def encode_path(path):
    # JSON has no int keys: an int dict key is written {"int": k}; a list index [i]
    return [{"int": p} if isinstance(p, int) and not isinstance(p, bool) else p for p in path]


def decode_path(path):
    return tuple(p["int"] if isinstance(p, dict) else p for p in path)


def np_dtype(name):
    from ... import _dtype
    d = _dtype._NAMES.get(name)
    if d is None or d.np is None:
        raise RuntimeError(f"checkpoint has tensors of dtype {name}, which this installation cannot hold")
    return d.np


def read_metadata(checkpoint_id):
    """The parsed metadata of a complete checkpoint; RuntimeError naming the directory otherwise."""
    path = os.path.join(os.fspath(checkpoint_id), METADATA)
    if not os.path.isdir(os.fspath(checkpoint_id)):
        raise FileNotFoundError(f"checkpoint directory {os.fspath(checkpoint_id)} does not exist")
    try:
        with open(path, "rb") as f:
            meta = json.loads(f.read())
    except FileNotFoundError:
        raise RuntimeError(f"{os.fspath(checkpoint_id)} is not a complete checkpoint: its metadata file "
                           f"{METADATA} is missing (the save did not finish)") from None
    except ValueError as e:
        raise RuntimeError(f"{os.fspath(checkpoint_id)} is not a complete checkpoint: its metadata file "
                           f"{METADATA} is corrupt ({e})") from None
    if meta.get("version") != VERSION or "keys" not in meta:
        raise RuntimeError(f"{os.fspath(checkpoint_id)} is not a complete checkpoint: {METADATA} has no "
                           f"version {VERSION} key table")
    return meta
