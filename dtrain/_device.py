"""dtrain.device: 'cpu', 'cuda[:N]' and 'meta', interned; also a context manager for the default device."""
import re
import threading

import numpy as np

from . import _backend


_DEVICE_RE = re.compile(r"([a-zA-Z_]+)(?::(0|[1-9][0-9]*))?\Z")


class device:
    """torch.device. Instances are interned, so `a is b` holds for equal devices."""
    __slots__ = ("type", "index", "_xp", "_prev", "_gpu")
    _cache = {}

    def __new__(cls, type, index=None):
        if isinstance(type, device):
            return type
        if isinstance(type, int):
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device() received an invalid combination of arguments - got ({type.__class__.__name__})")
        key = (type, index)
        d = cls._cache.get(key)
        if d is not None:
            return d
        m = _DEVICE_RE.match(type)
        if m is None:
            raise RuntimeError(f"Invalid device string: '{type}'")
        t, idx = m.group(1), m.group(2)
        if idx is not None:
            if index is not None:
                raise RuntimeError(f"type (string) must not include an index because index was passed explicitly: {type}")
            index = int(idx)
        if t not in ("cpu", "cuda", "meta"):
            raise RuntimeError(f"Expected one of cpu, cuda, meta device type at start of device string: {type}")
        if index is not None and index < 0:
            raise RuntimeError("Device index must not be negative")
        if t == "cuda" and index is None:
            index = None  # 'cuda' means the current device, resolved when a tensor is made
        d = object.__new__(cls)
        d.type, d.index, d._xp = t, index, None
        # the CUDA device an op on this device makes current (None: nothing to make current, so the CPU path
        # of Function.apply and of the engine pays one attribute check)
        d._gpu = index if t == "cuda" else None
        cls._cache[key] = d
        return d

    @property
    def xp(self):
        """The array module of this device (numpy for cpu and meta, cupy for cuda)."""
        if self._xp is None:
            self._xp = _backend.cuda_xp() if self.type == "cuda" else np
        return self._xp

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other):
        # as in torch, a device never equals a string
        return isinstance(other, device) and self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __reduce__(self):
        return (device, (str(self),))

    # `with dtrain.device('meta'):` makes it the default device of factory functions
    def __enter__(self):
        stack = _default_stack()
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _default_stack().pop()
        return False


CPU = device("cpu")
META = device("meta")
_local = threading.local()


def _default_stack():
    s = getattr(_local, "stack", None)
    if s is None:
        s = _local.stack = []
    return s


def default_device():
    s = getattr(_local, "stack", None)
    return s[-1] if s else CPU


def set_default_device(d):
    s = _default_stack()
    s.clear()
    if d is not None:
        s.append(device(d))


def get_default_device():
    return default_device()


def cuda_device(index):
    return device("cuda", index)


def resolve(d):
    """A concrete device (cuda gets its index) from a device, string, int or None (the default device)."""
    if d is None:
        d = default_device()
    elif not isinstance(d, device):
        d = device(d)
    if d.type == "cuda" and d.index is None:
        d = device("cuda", _backend.cupy().cuda.runtime.getDevice())
    return d


def device_of(array):
    if isinstance(array, np.ndarray) or isinstance(array, np.generic):
        return CPU
    return device("cuda", array.device.id)
