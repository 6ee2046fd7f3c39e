"""Loading torch.save's legacy (pre-1.6, `_use_new_zipfile_serialization=False`) format, as torch.load does.

The file is five things one after another: three small pickles (a magic number, the protocol version 1001 and
a dict of sizes), the pickle of the object, in which every storage is a persistent id
`('storage', torch.<Dtype>Storage, key, location, numel, view_metadata)`, a pickle of the storage keys, and
then each storage's bytes in that order, each after its element count as an 8-byte little-endian integer.
The storages' bytes come after the object that uses them, so the object is built on empty host storages
that are filled once it is read; where they must end up elsewhere (map_location, CUDA), the object is built
again on the moved storages, which only a weights-only load may do (nothing it runs can have side effects).
"""
import pickle
import struct

import numpy as np

from ._device import CPU

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# how a legacy file begins: pickle protocol 2, then the magic number as a 10-byte LONG1
_HEAD = b"\x80\x02\x8a\x0a" + MAGIC_NUMBER.to_bytes(10, "little")


def is_legacy(fh):
    """Whether the seekable file `fh` (at its start) is in the legacy format; leaves it at its start."""
    start = fh.tell()
    head = fh.read(len(_HEAD))
    fh.seek(start)
    return head == _HEAD


class _Storages:
    """Empty host storages made as the object's pickle names them, by key."""

    def __init__(self, serialization, name):
        self.s, self.name, self.made, self.locations = serialization, name, {}, {}

    def storage(self, dtype, key, location, numel):
        st = self.made.get(key)
        if st is None:
            if dtype.np is None:
                raise RuntimeError(f"{self.name}: storage of dtype {dtype} needs the ml_dtypes package")
            st = self.made[key] = self.s.TypedStorage(np.empty(numel, dtype.np), CPU, dtype, str(key))
            self.locations[key] = location
        return st


class _Moved:
    """The filled storages, moved where map_location says, handed out by key in the second build."""

    def __init__(self, moved):
        self.moved = moved

    def storage(self, dtype, key, location, numel):
        return self.moved[key]


def load(fh, name, map_location, unpickler, weights_only, records_of, pickle_load_args):
    """The object in legacy-format file `fh`; `unpickler(file, records)` makes serialization's unpickler,
    `records_of(storage, location)` moves a filled storage where map_location says."""
    from . import serialization

    def plain():
        return serialization._Unpickler(fh, None, True, **pickle_load_args).load()
    try:
        magic, protocol, _sys_info = plain(), plain(), plain()
    except (EOFError, pickle.UnpicklingError) as e:
        raise RuntimeError(f"{name}: legacy torch.save file with a corrupt header ({e})") from None
    if magic != MAGIC_NUMBER:
        raise RuntimeError("Invalid magic number; corrupt file?")
    if protocol != PROTOCOL_VERSION:
        raise RuntimeError(f"Invalid protocol version: {protocol}")
    start = fh.tell()
    made = _Storages(serialization, name)
    try:
        obj = unpickler(fh, made).load()
        keys = plain()
    except EOFError as e:
        raise RuntimeError(f"{name}: legacy torch.save file ends early, inside its pickle ({e}): it is truncated") \
            from None
    for key in keys:
        st = made.made.get(key)
        if st is None:
            raise RuntimeError(f"{name}: legacy torch.save file lists storage {key!r}, which its pickle never uses")
        count = fh.read(8)
        if len(count) != 8:
            raise RuntimeError(f"{name}: legacy torch.save file ends before storage {key!r}: it is truncated")
        (n,) = struct.unpack("<q", count)
        if n != st.size():
            raise RuntimeError(f"{name}: storage {key!r} holds {n} elements in the file, but its tensors need "
                               f"{st.size()}: the file is corrupt")
        view = memoryview(st._array.view(np.uint8))
        if n and fh.readinto(view) != view.nbytes:
            raise RuntimeError(f"{name}: legacy torch.save file ends inside storage {key!r}: it is truncated")
    moved = {k: records_of(st, made.locations[k]) for k, st in made.made.items()}
    if all(moved[k] is st for k, st in made.made.items()):
        return obj
    if not weights_only:
        raise RuntimeError(f"{name} is in torch's legacy (non-zip) format, whose storages dtrain reads onto the CPU "
                           "first; moving them (map_location) needs weights_only=True, or load with "
                           "map_location='cpu' and move the tensors afterwards")
    fh.seek(start)
    return unpickler(fh, _Moved(moved)).load()


__all__ = ["is_legacy", "load"]
