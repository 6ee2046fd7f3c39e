"""torch.UntypedStorage and torch.TypedStorage: a tensor's memory as torch shows it.

A storage is the memory a tensor views, shared by all its views and by `detach()` and `.data`. In dtrain it is
the array that owns that memory (`_backend.owner`): a tensor's own allocation, or the storage `from_numpy`
makes over a NumPy array's memory. `t.untyped_storage()` returns one Python object per storage, as torch does
(`a.untyped_storage() is b.untyped_storage()` when a and b share it). The bytes are the owner's; a storage
cannot be resized in place (its memory is an array the tensors view).
"""
import ctypes
import warnings
import weakref

import numpy as np

from . import _backend
from ._device import CPU, resolve

_live = weakref.WeakValueDictionary()  # id(owner array) -> its UntypedStorage while one is referenced


def _span(root):
    """(lowest address, bytes) of the memory the owner array spans."""
    lo = hi = _backend.data_ptr(root)
    if root.size == 0:
        return lo, 0
    for n, st in zip(root.shape, root.strides):
        lo, hi = (lo + (n - 1) * st, hi) if st < 0 else (lo, hi + (n - 1) * st)
    return lo, hi - lo + root.itemsize


class UntypedStorage:
    """The bytes of one storage (torch.UntypedStorage)."""

    def __init__(self, *args, device=None):
        if len(args) == 1 and isinstance(args[0], int):  # UntypedStorage(nbytes): new, uninitialised memory
            dev = resolve(device) if device is not None else CPU
            self._root, self.device = dev.xp.empty(args[0], np.uint8), dev
        elif not args:
            dev = resolve(device) if device is not None else CPU
            self._root, self.device = dev.xp.empty(0, np.uint8), dev
        else:
            raise TypeError("UntypedStorage(): expected a size in bytes (or nothing)")
        self._addr, self._nbytes = _span(self._root)

    @classmethod
    def _of(cls, tensor):
        root = _backend.owner(tensor._data)
        s = _live.get(id(root))
        if s is None or s._root is not root:
            s = cls.__new__(cls)
            s._root, s.device = root, tensor._device
            s._addr, s._nbytes = _span(root)
            _live[id(root)] = s
        return s

    # ---------------------------------------------------------------- what torch's storage answers
    def data_ptr(self):
        return self._addr

    def nbytes(self):
        return self._nbytes

    def size(self):
        return self._nbytes

    def __len__(self):
        return self._nbytes

    def element_size(self):
        return 1

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    def is_shared(self):
        return False

    def is_pinned(self, device="cuda"):
        return False

    def untyped(self):
        return self

    def _bytes(self):
        """The storage's bytes as a flat uint8 array (on the host, a copy for device memory)."""
        r = self._root
        if self.device.type != "cpu":
            return _backend.to_numpy(r).reshape(-1).view(np.uint8) if r.flags.c_contiguous else \
                _backend.to_numpy(r).copy().reshape(-1).view(np.uint8)
        if r.flags.c_contiguous:
            return r.reshape(-1).view(np.uint8)
        return np.ctypeslib.as_array((ctypes.c_uint8 * self._nbytes).from_address(self._addr))  # r stays alive

    def __getitem__(self, i):
        b = self._bytes()[i]
        if np.ndim(b) == 0:
            return int(b)
        s = UntypedStorage.__new__(UntypedStorage)  # a slice: a storage of those bytes
        s._root, s.device = np.ascontiguousarray(b), CPU
        s._addr, s._nbytes = _span(s._root)
        return s

    def tolist(self):
        return self._bytes().tolist()

    def cpu(self):
        if self.device.type == "cpu":
            return self
        s = UntypedStorage(self._nbytes)
        s._root[...] = self._bytes()
        return s

    def clone(self):
        s = UntypedStorage(self._nbytes, device=self.device)
        s._root[...] = s.device.xp.asarray(self._bytes()) if self.device.type != "cpu" else self._bytes()
        return s

    def resize_(self, size):
        if size != self._nbytes:
            raise NotImplementedError("dtrain storages cannot be resized in place: their memory is an array that "
                                      "the tensors view; make a new tensor instead")
        return self

    def __repr__(self):
        data = self._bytes()
        body = "\n".join(f" {int(v)}" for v in data) if data.size else ""
        dev = "cpu" if self.device.type == "cpu" else str(self.device)
        head = f"{body}\n" if body else ""
        return f"{head}[torch.storage.UntypedStorage(device={dev}) of size {self._nbytes}]"


_warned = []


class TypedStorage:
    """A tensor's storage seen as elements of its dtype (torch.TypedStorage, deprecated in torch)."""

    def __init__(self, untyped, dtype):
        self._untyped_storage, self.dtype = untyped, dtype

    @property
    def device(self):
        return self._untyped_storage.device

    @property
    def is_cuda(self):
        return self._untyped_storage.is_cuda

    def data_ptr(self):
        return self._untyped_storage.data_ptr()

    def element_size(self):
        return self.dtype.itemsize

    def nbytes(self):
        return self._untyped_storage.nbytes()

    def size(self):
        return self.nbytes() // self.element_size()

    def __len__(self):
        return self.size()

    def untyped(self):
        return self._untyped_storage

    def _elements(self):
        b = self._untyped_storage._bytes()
        return b[:self.size() * self.element_size()].view(self.dtype.np)

    def __getitem__(self, i):
        v = self._elements()[i]
        return v.item() if np.ndim(v) == 0 else v.tolist()

    def tolist(self):
        return self._elements().tolist()

    def __repr__(self):
        e = self._elements()
        body = "\n".join(f" {v}" for v in e.tolist())
        dev = "cpu" if self.device.type == "cpu" else str(self.device)
        return (f"{body}\n" if body else "") + \
            f"[torch.storage.TypedStorage(dtype={self.dtype}, device={dev}) of size {self.size()}]"


def untyped_storage(self):
    """The storage this tensor views (torch's Tensor.untyped_storage)."""
    if self._device.type == "meta":
        raise NotImplementedError("Cannot access storage of a meta tensor")
    if self.is_sparse:
        raise RuntimeError("Cannot access storage of SparseTensorImpl")
    return UntypedStorage._of(self)


def storage(self):
    """The storage as elements of this tensor's dtype (torch's deprecated Tensor.storage)."""
    if not _warned:
        _warned.append(True)
        warnings.warn("TypedStorage is deprecated. It will be removed in the future and UntypedStorage will be the "
                      "only storage class. This should only matter to you if you are using storages directly.  To "
                      "access UntypedStorage directly, use tensor.untyped_storage() instead of tensor.storage()",
                      UserWarning, stacklevel=2)
    return TypedStorage(untyped_storage(self), self.dtype)

