"""dtrain.save / dtrain.load in PyTorch's own zip format, written and read without torch.

A file is a stored (uncompressed) zip: `archive/data.pkl` is a protocol-2 pickle in which every tensor is
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict())` and every storage
a persistent id `('storage', torch.<Dtype>Storage, key, location, numel)` whose bytes are the record
`archive/data/<key>`, aligned to 64 bytes as torch aligns them (so `mmap=True` can map them in place).
torch's global names are written as opcodes; nothing imports torch.
"""
import _compat_pickle
import collections
import concurrent.futures
import contextlib
import io
import os
import pickle
import re
import secrets
import socket
import struct
import sys
import tempfile
import types
import warnings
import zipfile
import zlib

import numpy as np

from . import _backend, _dtype, _serialization_legacy as _legacy
from ._device import CPU, device as _device_cls, resolve
from ._tensor import Size, Tensor, _wrap, layout as _layout

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals", "safe_globals",
           "DEFAULT_PROTOCOL"]

DEFAULT_PROTOCOL = 2
_ALIGN = 64  # torch's storage alignment: data records start on 64-byte boundaries
_PARALLEL_CRC = 1 << 20  # records from this size on get their checksum computed beside the write
_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field


class _Global:
    """A global written into the pickle as `module.name` (one of torch's) without importing `module`."""
    __slots__ = ("module", "name")

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __repr__(self):
        return f"{self.module}.{self.name}"

    def __call__(self, *args):  # pickle wants reduce functions callable; only torch ever calls these
        raise TypeError(f"{self!r} is a name written into saved files, not a function dtrain calls")


_REBUILD_TENSOR_V2 = _Global("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _Global("torch._utils", "_rebuild_parameter")
_REBUILD_SPARSE = _Global("torch._utils", "_rebuild_sparse_tensor")
_TORCH_DEVICE = _Global("torch", "device")
_TORCH_SIZE = _Global("torch", "Size")
_GET_LAYOUT = _Global("torch.serialization", "_get_layout")
_STORAGE_NAMES = {d: _Global("torch", f"{_dtype.scalar_name(d)}Storage") for d in _dtype._ALL}
_STORAGE_NAMES[_dtype.int8] = _Global("torch", "CharStorage")


class _Reduced:
    """An object that pickles as the reduce value `rv` (a tensor nested inside `_rebuild_parameter`)."""
    __slots__ = ("rv",)

    def __init__(self, rv):
        self.rv = rv

    def __reduce_ex__(self, protocol):
        return self.rv


# ---------------------------------------------------------------------------------------------------------
# saving

class _StorageRef:
    __slots__ = ("key", "dtype", "location", "numel", "root")

    def __init__(self, key, dtype, location, numel, root):
        self.key, self.dtype, self.location, self.numel, self.root = key, dtype, location, numel, root




def _root(a):
    """The array that owns `a`'s memory (the storage torch would save) and `a`'s byte offset in it."""
    root = _backend.owner(a)
    return root, _backend.data_ptr(a) - _backend.data_ptr(root)


class _StorageTable:
    """Storages met while pickling, one per owning array: views of one base share one record."""

    def __init__(self):
        self.refs = {}  # id(root) -> _StorageRef (the ref keeps the root alive, so ids stay unique)

    def tensor_args(self, t):
        """(storage ref, storage offset, stride) of tensor `t` in torch's terms."""
        a = t._data
        root, off = _root(a)
        item = a.itemsize
        flat_root = root.flags.c_contiguous or root.flags.f_contiguous
        if not flat_root or off % item or root.nbytes % item or any(s < 0 or s % item for s in a.strides):
            # memory torch cannot describe (negative strides, a root that is itself strided): save a copy
            root = a.copy()
            off = 0
        dt = t.dtype
        ref = self.refs.get(id(root))
        if ref is None:
            dev = t._device
            loc = "cpu" if dev.type == "cpu" else f"{dev.type}:{dev.index or 0}"
            ref = self.refs[id(root)] = _StorageRef(str(len(self.refs)), dt, loc, root.nbytes // item, root)
        elif ref.dtype is not dt:
            raise RuntimeError("Cannot save multiple tensors or storages that view the same data as different types")
        stride = tuple(s // item for s in a.strides) if a.size else t.stride()  # an empty one: torch's strides
        return ref, off // item, stride


def _host_bytes(root):
    """A flat uint8 view of a storage's memory (a host copy for device arrays)."""
    a = _backend.to_numpy(root)
    if not a.flags.c_contiguous:
        a = a.T  # an owning Fortran-ordered array is C-contiguous transposed
    return a.reshape(-1).view(np.uint8)


class _Pickler(pickle._Pickler):
    """The pure-Python pickler (it lets us write torch's globals as opcodes) with tensors as torch writes them."""
    dispatch = dict(pickle._Pickler.dispatch)  # its table holds the base class's save_global for functions

    def __init__(self, file, protocol, storages):
        super().__init__(file, protocol)
        self._storages = storages
        from .nn.parameter import Parameter
        self._parameter = Parameter

    def persistent_id(self, obj):
        if type(obj) is _StorageRef:
            return ("storage", _STORAGE_NAMES[obj.dtype], obj.key, obj.location, obj.numel)
        return None

    def reducer_override(self, obj):
        t = type(obj)
        if t in _PLAIN:
            return NotImplemented
        if t is _Global:
            return obj.name
        if isinstance(obj, Tensor):
            return self._reduce_tensor(obj)
        if t is _dtype.dtype:
            return obj.name
        if t is _device_cls:
            return (_TORCH_DEVICE, (obj.type,) if obj.index is None else (obj.type, obj.index))
        if t is Size:
            return (_TORCH_SIZE, (tuple(obj),))
        if t is _layout:
            return (_GET_LAYOUT, (repr(obj),))  # as torch writes a layout
        if (t is types.FunctionType or isinstance(obj, type)) and not _by_reference(obj):
            # a lambda, a local or __main__ class: pickled by value, so it loads in another process
            import cloudpickle
            return (pickle.loads, (cloudpickle.dumps(obj, protocol=self.proto),))
        return NotImplemented

    def _reduce_tensor(self, t):
        if t._device.type == "meta":
            raise RuntimeError("Cannot save a meta tensor: it has no data")
        if t.is_sparse:  # torch's form: its indices and values as tensors, the size and whether it is coalesced
            c = t._data
            return (_REBUILD_SPARSE, (t.layout, (_wrap(c.indices, t._device), _wrap(c.values, t._device),
                                                 Size(c.shape), c.coalesced)))
        ref, offset, stride = self._storages.tensor_args(t)
        param = isinstance(t, self._parameter)
        rv = (_REBUILD_TENSOR_V2, (ref, offset, tuple(t._data.shape), stride, t._requires_grad and not param,
                                   collections.OrderedDict()))
        if param:
            return (_REBUILD_PARAMETER, (_Reduced(rv), t._requires_grad, collections.OrderedDict()))
        return rv

    def save_global(self, obj, name=None):
        if type(obj) is _Global:
            module, name = obj.module, obj.name
        elif type(obj) is _dtype.dtype:
            module, name = "torch", obj.name
        elif (getattr(obj, "__module__", None) or "").startswith("dtrain."):
            # dtrain's classes and functions (a pickled model's modules, its optimizer, F.relu) are written under
            # torch's names, so torch rebuilds its own objects from the file and dtrain maps them back
            module, name = _torch_global_name(obj)
        else:
            return super().save_global(obj, name)
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)


# dtrain objects whose torch path is not their own with `torch` for `dtrain` (torch gives these optimizers and
# schedulers a module each): written under torch's name; loading finds them by walking up torch's path
_TORCH_PATHS = {
    "dtrain.optim.adam.AdamW": "torch.optim.adamw.AdamW",
    "dtrain.optim.nadam.RAdam": "torch.optim.radam.RAdam",
    "dtrain.optim.rprop.ASGD": "torch.optim.asgd.ASGD",
    "dtrain.optim._lr_cyclic.CosineAnnealingWarmRestarts": "torch.optim.lr_scheduler.CosineAnnealingWarmRestarts",
    "dtrain.optim._lr_cyclic.CyclicLR": "torch.optim.lr_scheduler.CyclicLR",
    "dtrain.optim._lr_cyclic.OneCycleLR": "torch.optim.lr_scheduler.OneCycleLR",
}


def _torch_global_name(obj):
    """(module, qualified name) of dtrain object `obj` in torch. dtrain mirrors torch's module tree, so this is its
    own path with `torch` for `dtrain`; an object of a private module (`dtrain.nn.functional._activation.relu`,
    `dtrain._ops.pointwise.add`) goes under the nearest public module that exports it (`torch.nn.functional`,
    `torch`), where torch's own object of that name lives."""
    module, qualname = obj.__module__, obj.__qualname__
    full = _TORCH_PATHS.get(f"{module}.{qualname}")
    if full is not None:
        return tuple(full.rsplit(".", 1))
    if "._" in module and "." not in qualname:
        parts = module.split(".")
        for public in [".".join(parts[:i]) for i in range(len(parts) - 1, 1, -1)] + ["dtrain.nn.functional", "dtrain"]:
            if "._" not in public and getattr(sys.modules.get(public), qualname, None) is obj:
                module = public
                break
    return "torch" + module[len("dtrain"):], qualname


_Pickler.dispatch[types.FunctionType] = _Pickler.save_global


def _by_reference(obj):
    """Whether `obj` can be pickled as its module and name (and found there again by another process)."""
    module = getattr(obj, "__module__", None)
    if module in (None, "__main__") or module not in sys.modules:
        return False
    found = sys.modules[module]
    for part in obj.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is obj


_PLAIN = {type(None), bool, int, float, str, bytes, tuple, list, dict, collections.OrderedDict}


def _zip_put(zf, name, data):
    """Write one stored record whose data starts on a 64-byte boundary (torch pads the extra field the same way)."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    n = len(view)
    zip64 = n * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own rule: a zip64 field (20 bytes) joins the header
    start = zf.start_dir + _LOCAL_HEADER + len(name) + 4 + (20 if zip64 else 0)
    pad = -start % _ALIGN
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    info.file_size = n
    with zf.open(info, "w", force_zip64=zip64) as w:
        if n >= _PARALLEL_CRC and all(hasattr(w, a) for a in ("_fileobj", "_crc", "_file_size", "_compress_size")):
            # the checksum of a large record is computed on another core while the bytes go to the file
            # (zlib and file writes both release the GIL); zipfile would otherwise do one after the other
            crc = concurrent.futures.ThreadPoolExecutor(1)
            job = crc.submit(zlib.crc32, view)
            w._fileobj.write(view)
            w._crc, w._file_size, w._compress_size = job.result(), n, n
            crc.shutdown()
        else:
            w.write(view)


def _write(fh, pickled, storages):
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        _zip_put(zf, "archive/data.pkl", pickled)
        _zip_put(zf, "archive/.format_version", b"1")
        _zip_put(zf, "archive/.storage_alignment", str(_ALIGN).encode())
        _zip_put(zf, "archive/byteorder", b"little")
        for ref in storages:
            _zip_put(zf, f"archive/data/{ref.key}", _host_bytes(ref.root))
        _zip_put(zf, "archive/version", b"3\n")
        _zip_put(zf, "archive/.data/serialization_id", str(secrets.randbits(128)).zfill(40).encode())


def _file_mode():
    # mkstemp makes 0600 files; a saved checkpoint gets the permissions open() would give it
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


# A save's temporary file is `.<name>.<host>-<pid>.<random>.tmp` beside its target: a later save to the same target
# removes those whose writer is certainly gone (an interrupted save's), never a live writer's.
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())


def _writer_gone(host, pid):
    """True only when the writer certainly no longer runs: this host, and no process (or only a zombie) has `pid`."""
    if host != _HOST or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    try:  # a zombie has finished writing (where nobody reaps orphans, as in containers, they stay)
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _remove_stale_temporaries(path):
    folder, base = os.path.split(path)
    prefix = f".{base}."
    tail = re.compile(r"^([A-Za-z0-9_]+)-(\d+)\.[a-z0-9_]{8}\.tmp$")
    with contextlib.suppress(OSError):
        for n in os.listdir(folder):
            m = n.startswith(prefix) and tail.match(n[len(prefix):])
            if m and _writer_gone(m.group(1), int(m.group(2))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, n))


def _atomic_write(path, write):
    """Write through a temporary file beside `path`, fsync it, rename it over `path`, fsync the directory:
    a reader (or a crash) sees the old file or the new one, never part of one. Temporary files that interrupted
    saves to `path` left behind are removed first."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _file_mode())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # some filesystems cannot open or fsync a directory
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def save(obj, f, pickle_module=pickle, pickle_protocol=DEFAULT_PROTOCOL, _use_new_zipfile_serialization=True,
         _disable_byteorder_record=False):
    """Save `obj` to a path or binary file in torch's zip format (`torch.load` reads it).

    Saving to a path is atomic: the file at `f` is the old one or the complete new one, never a partial save.
    Objects other than tensors and containers are pickled by reference, or with cloudpickle when they cannot be
    (lambdas, local classes); those load only with `weights_only=False`."""
    if not _use_new_zipfile_serialization:
        raise NotImplementedError("dtrain.save writes only torch's zip format (_use_new_zipfile_serialization=True)")
    storages = _StorageTable()
    buf = io.BytesIO()
    _Pickler(buf, pickle_protocol, storages).dump(obj)
    pickled = buf.getbuffer()
    refs = list(storages.refs.values())
    if isinstance(f, (str, os.PathLike)):
        _atomic_write(f, lambda fh: _write(fh, pickled, refs))
    else:
        _write(f, pickled, refs)


# ---------------------------------------------------------------------------------------------------------
# loading

class _StorageType:
    """What `torch.FloatStorage` and friends unpickle to: the dtype of a storage record."""
    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError(f"torch.{_dtype.scalar_name(self.dtype)}Storage objects cannot be built by a "
                                     "pickle; they are persistent records")


class TypedStorage:
    """A loaded storage: one flat array of its device; map_location callables receive and return these."""

    def __init__(self, array, device, dtype, name=None):
        self._array, self.device, self.dtype = array, device, dtype
        self._name = name  # the record it was read from, for errors

    def size(self):
        return int(self._array.shape[0])

    def nbytes(self):
        return int(self._array.nbytes)

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    def to(self, device):
        dev = resolve(device)
        if dev is self.device:
            return self
        if dev.type == "cpu":
            arr = _backend.to_numpy(self._array)
        else:
            with _backend.cupy().cuda.Device(dev.index or 0):
                arr = dev.xp.asarray(self._array)
        return TypedStorage(arr, dev, self.dtype, self._name)

    def cpu(self):
        return self.to(CPU)

    def cuda(self, device=None, non_blocking=False):
        return self.to(_device_cls("cuda", device) if isinstance(device, int) else (device or "cuda"))

    def _tensor(self, offset, size, stride):
        a = self._array
        item = a.itemsize
        size, stride = tuple(size), tuple(stride)
        _check_view(self, offset, size, stride)
        strides = tuple(s * item for s in stride)
        if self.device.type == "cpu":
            arr = np.ndarray(size, a.dtype, buffer=a, offset=offset * item, strides=strides)
        else:
            xp = self.device.xp
            arr = xp.ndarray(size, a.dtype, memptr=a.data + offset * item, strides=strides)
        return _wrap(arr, self.device)


def _check_view(storage, offset, size, stride):
    """Refuse a tensor that a corrupt or crafted file places outside its storage (it would read other memory)."""
    n = storage.size()
    what = f"storage {storage._name}" if storage._name else "its storage"
    if len(size) != len(stride) or any(s < 0 for s in size):
        raise RuntimeError(f"invalid tensor in the file: size {list(size)} and stride {list(stride)} on {what}")
    if any(s < 0 for s in stride):
        raise RuntimeError(f"tensor of size {list(size)} on {what} has negative strides {list(stride)}, which "
                           f"torch does not write: the file is corrupt")
    if offset < 0:
        raise RuntimeError(f"tensor of size {list(size)} on {what} has a negative storage offset {offset}: the file "
                           f"is corrupt")
    needed = 0 if 0 in size else offset + 1 + sum((k - 1) * s for k, s in zip(size, stride))
    if needed > n:
        raise RuntimeError(f"setStorage: sizes {list(size)}, strides {list(stride)}, storage offset {offset}, and "
                           f"itemsize {storage._array.itemsize} requiring a storage size of "
                           f"{needed * storage._array.itemsize} are out of bounds for {what} of size "
                           f"{n * storage._array.itemsize} (the file is corrupt)")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    t = storage._tensor(storage_offset, size, stride)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    from .nn.parameter import Parameter
    return Parameter(data, requires_grad)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    p = _rebuild_parameter(data, requires_grad, backward_hooks)
    _set_obj_state(p, state)
    return p


def _rebuild_from_type_v2(func, new_type, args, state):
    t = func(*args)
    if type(t) is not new_type and isinstance(new_type, type) and issubclass(new_type, Tensor):
        u = object.__new__(new_type)
        u._Tensor__setstate_from(t)
        t = u
    _set_obj_state(t, state)
    return t


def _set_obj_state(obj, state):
    if isinstance(state, tuple):  # (dict state, slots state)
        state, slots = state
        for k, v in (slots or {}).items():
            setattr(obj, k, v)
    for k, v in (state or {}).items():
        setattr(obj, k, v)


def _rebuild_sparse_tensor(layout, data):
    from ._tensor import sparse_coo
    if layout is not sparse_coo:
        raise RuntimeError(f"dtrain loads sparse tensors of layout torch.sparse_coo only, not {layout}")
    indices, values, size = data[:3]
    from .sparse import sparse_coo_tensor
    return sparse_coo_tensor(indices, values, size, is_coalesced=data[3] if len(data) > 3 else None)


def _get_layout(name):
    from ._tensor import sparse_coo, strided
    found = {"torch.strided": strided, "torch.sparse_coo": sparse_coo}.get(name)
    if found is None:
        raise RuntimeError(f"dtrain has no layout {name} (it has torch.strided and torch.sparse_coo)")
    return found


def _torch_globals():
    """torch's safe globals, as the dtrain objects they load as."""
    from . import nn
    g = {
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter_with_state,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
        "torch._utils._rebuild_sparse_tensor": _rebuild_sparse_tensor,
        "torch.serialization._get_layout": _get_layout,
        "torch.nn.parameter.Parameter": nn.Parameter,
        "torch.Tensor": Tensor,
        "torch.Size": Size,
        "torch.device": _device_cls,
    }
    for d in _dtype._ALL:
        g[f"torch.{d.name}"] = d
        g[f"torch.{_dtype.scalar_name(d)}Storage"] = _StorageType(d)
    g["torch.CharStorage"] = _StorageType(_dtype.int8)
    return g


_SAFE_BUILTINS = {
    "collections.OrderedDict": collections.OrderedDict,
    "collections.Counter": collections.Counter,
    "builtins.set": set,
    "builtins.complex": complex,
    "builtins.bytearray": bytearray,
    "_codecs.encode": __import__("codecs").encode,
}
_user_safe_globals = {}
_TORCH = None


def _dtrain_object(module, name):
    """dtrain's object for torch's global `module.name` (a whole model's classes, its optimizer, F.relu): the same
    path under `dtrain`, or, where dtrain keeps it in another module, the nearest package above that exports it
    (`torch.optim.adamw.AdamW` is `dtrain.optim.AdamW`)."""
    import importlib
    parts = ("dtrain" + module[len("torch"):]).split(".")
    while True:
        try:
            found = importlib.import_module(".".join(parts))
        except ImportError:
            found = None
        for part in name.split("."):
            found = getattr(found, part, None)
        if found is not None or len(parts) <= 2:
            return found
        parts.pop()


def add_safe_globals(safe_globals):
    """Allow these classes and functions in `weights_only` loads (each one, or an `(obj, "module.name")` pair).

    A dtrain class is allowed under torch's name too (`torch.nn.modules.linear.Linear` for `nn.Linear`), which is
    the name files written by torch and by dtrain give it."""
    for g in safe_globals:
        obj, name = g if isinstance(g, tuple) else (g, f"{g.__module__}.{g.__qualname__}")
        _user_safe_globals[name] = obj
        if not isinstance(g, tuple) and (g.__module__ or "").startswith("dtrain."):
            _user_safe_globals[".".join(_torch_global_name(g))] = g


def get_safe_globals():
    seen = {}
    for obj in _user_safe_globals.values():
        seen.setdefault(id(obj), obj)
    return list(seen.values())


def clear_safe_globals():
    _user_safe_globals.clear()


@contextlib.contextmanager
def safe_globals(safe_globals):
    saved = dict(_user_safe_globals)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _user_safe_globals.clear()
        _user_safe_globals.update(saved)


_WEIGHTS_ONLY_HINT = (
    "Weights only load failed. This file can still be loaded, to do so you have two options, do those steps only if "
    "you trust the source of the checkpoint. \n\t(1) Re-running `torch.load` with `weights_only` set to `False` will "
    "likely succeed, but it can result in arbitrary code execution. Do it only if you got the file from a trusted "
    "source.\n\t(2) Alternatively, to load with `weights_only=True` please check the recommended steps in the "
    "following error message.\n\tWeightsUnpickler error: ")


class _Unpickler(pickle.Unpickler):
    """Resolves torch's globals to dtrain's; with `weights_only`, every other global is refused before it is
    imported, so a file can build nothing but tensors, containers and plain values."""

    def __init__(self, file, records, weights_only, **kwargs):
        super().__init__(file, **kwargs)
        self._records, self._weights_only = records, weights_only
        self._fix_imports = kwargs.get("fix_imports", True)

    def find_class(self, module, name):
        global _TORCH
        if _TORCH is None:
            _TORCH = _torch_globals()
        if self._fix_imports:
            # Python 2's names, which protocol-2 pickles use (torch writes a set as `__builtin__.set`): pickle
            # translates them only inside its own find_class, after the allowlist below would have refused them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        obj = _TORCH.get(full)
        if obj is None:
            obj = _SAFE_BUILTINS.get(full) or _user_safe_globals.get(full)
        if obj is not None:
            return obj
        if self._weights_only:
            raise pickle.UnpicklingError(
                _WEIGHTS_ONLY_HINT + f"Unsupported global: GLOBAL {full} was not an allowed global by default. "
                f"Please use `torch.serialization.add_safe_globals([{name}])` or the "
                f"`torch.serialization.safe_globals([{name}])` context manager to allowlist this global if you trust "
                "this class/function.\n\nCheck the documentation of torch.load to learn more about types accepted by "
                "default with weights_only https://pytorch.org/docs/stable/notes/serialization.html#weights-only.")
        if module == "torch" or module.startswith("torch."):
            obj = _dtrain_object(module, name)
            if obj is None:  # never torch's own object: it would not work with dtrain's tensors
                raise AttributeError(f"Can't get attribute '{name}' on <module '{module}'>: the file names torch's "
                                     f"{full}, which dtrain does not have")
            return obj
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            return pid[1]  # legacy files name a saved module's class with its source; the class was checked above
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"Unknown saved id type: {pid[0] if isinstance(pid, tuple) else pid!r}")
        if len(pid) == 6:  # the legacy format adds view metadata, which torch has written as None since 0.4
            if pid[5] is not None:
                raise RuntimeError(f"this legacy torch.save file uses storage views {pid[5]!r}, which dtrain does not "
                                   "load")
            pid = pid[:5]
        _, stype, key, location, numel = pid
        if not isinstance(stype, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {stype!r}")
        return self._records.storage(stype.dtype, str(key), location, numel)


class _Records:
    """The data records of one open archive, read (or memory-mapped) once per storage key."""

    def __init__(self, zf, fh, prefix, name, map_location, mmap_path):
        self.zf, self.fh, self.prefix, self.name = zf, fh, prefix, name
        self.map_location = map_location
        self.loaded = {}
        self.mm = None
        if mmap_path is not None and os.path.getsize(mmap_path):
            self.mm = np.memmap(mmap_path, dtype=np.uint8, mode="c")  # copy-on-write, like torch's MAP_PRIVATE

    def storage(self, dtype, key, location, numel):
        s = self.loaded.get(key)
        if s is None:
            s = self.loaded[key] = self._restore(
                TypedStorage(self._read(dtype, key, numel), CPU, dtype, f"{self.prefix}data/{key}"), location)
        return s

    def _read(self, dtype, key, numel):
        if dtype.np is None:
            raise RuntimeError(f"{self.name}: storage of dtype {dtype} needs the ml_dtypes package")
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise RuntimeError(f"PytorchStreamReader failed locating file {name}: file not found "
                               f"(in {self.name}: the file is truncated or corrupt)") from None
        nbytes = numel * dtype.np.itemsize
        if info.file_size < nbytes:
            raise RuntimeError(f"{self.name}: record {name} holds {info.file_size} bytes, but its storage needs "
                               f"{nbytes}: the file is truncated or corrupt")
        if info.compress_type != zipfile.ZIP_STORED:
            if self.mm is not None:
                raise RuntimeError(f"{self.name}: mmap=True needs uncompressed records, but {name} is compressed")
            return np.frombuffer(bytearray(self.zf.read(name)[:nbytes]), dtype.np)
        start = self._data_offset(info)
        if self.mm is not None:
            if start + nbytes > self.mm.shape[0]:
                raise RuntimeError(f"{self.name}: record {name} runs past the end of the file: it is truncated")
            return _backend.new_storage(self.mm[start:start + nbytes].view(dtype.np))  # a storage per record
        arr = np.empty(numel, dtype.np)
        self.fh.seek(start)
        got = self.fh.readinto(memoryview(arr.view(np.uint8))) if nbytes else 0  # any dtype, bfloat16 too
        if got != nbytes:
            raise RuntimeError(f"PytorchStreamReader failed reading file {name}: file read failed "
                               f"({self.name} is truncated or corrupt)")
        return arr

    def _data_offset(self, info):
        self.fh.seek(info.header_offset)
        head = self.fh.read(_LOCAL_HEADER)
        if len(head) != _LOCAL_HEADER or head[:4] != b"PK\x03\x04":
            raise RuntimeError(f"PytorchStreamReader failed reading zip archive: bad local header for "
                               f"{info.filename} ({self.name} is truncated or corrupt)")
        n, m = struct.unpack("<HH", head[26:30])
        return info.header_offset + _LOCAL_HEADER + n + m

    def _restore(self, storage, location):
        ml = self.map_location
        if callable(ml):
            out = ml(storage, location)
            if out is not None:
                return out
        elif isinstance(ml, dict):
            location = ml.get(location, location)
        elif ml is not None:
            location = str(ml) if isinstance(ml, _device_cls) else ml
        dev = _device_cls(location)
        if dev.type == "cuda" and not _backend.cuda_available():
            raise RuntimeError("Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is "
                               "False. If you are running on a CPU-only machine, please use torch.load with "
                               "map_location=torch.device('cpu') to map your storages to the CPU.")
        return storage.to(dev)


def _is_tar(fh):
    """Whether `fh` holds a tar archive (ustar magic at byte 257); leaves it at its start."""
    start = fh.tell()
    fh.seek(start + 257)
    magic = fh.read(5)
    fh.seek(start)
    return magic == b"ustar"


def _zip_error(name, err):
    return RuntimeError(f"PytorchStreamReader failed reading zip archive: {err} ({name}). The file is truncated "
                        "or corrupt: it was not saved completely, was transferred incorrectly, or was modified after "
                        "saving.")


_TRUE_VALUES = ("1", "y", "yes", "true")


def _weights_only_setting(weights_only, pickle_module):
    """torch.load's choice of `weights_only`: the argument, by default True unless a pickle_module is given;
    TORCH_FORCE_WEIGHTS_ONLY_LOAD forces True over anything, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD forces False
    where the caller did not pass weights_only."""
    not_set = weights_only is None
    if not_set:
        weights_only = pickle_module is None
    force = os.getenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE_VALUES
    force_no = os.getenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE_VALUES
    if force and force_no:
        raise RuntimeError("Only one of `TORCH_FORCE_WEIGHTS_ONLY_LOAD` or `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` "
                           "should be set, but both were set.")
    if force:
        weights_only = True
    elif force_no and not_set:
        warnings.warn("Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected, since the`weights_only` "
                      "argument was not explicitly passed to `torch.load`, forcing weights_only=False.",
                      UserWarning, stacklevel=3)
        weights_only = False
    if weights_only and pickle_module is not None:
        raise RuntimeError("Can not safely load weights when explicit pickle_module is specified")
    return bool(weights_only)


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None, **pickle_load_args):
    """Load what `save` (or `torch.save`) wrote.

    `weights_only` (True by default, as in torch, unless `pickle_module` is given) builds only tensors, containers
    and plain values; a file naming any other global raises `pickle.UnpicklingError` before anything runs. The
    environment switches TORCH_FORCE_WEIGHTS_ONLY_LOAD and TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD act as in torch.
    Files in torch's legacy (non-zip) format load too. `mmap=True` maps the storages from the file
    (copy-on-write) instead of reading them; `f` must then be a path."""
    weights_only = _weights_only_setting(weights_only, pickle_module)
    if pickle_load_args and weights_only:
        warnings.warn("pickle_load_args only works if `weights_only=False`.")
    path = os.fspath(f) if isinstance(f, (str, os.PathLike)) else None
    if mmap and path is None:
        raise ValueError("f must be a file path in order to use the mmap argument")
    name = path if path is not None else getattr(f, "name", None) or type(f).__name__
    pickle_load_args.setdefault("encoding", "utf-8")
    with (open(path, "rb") if path is not None else contextlib.nullcontext(f)) as fh:
        base = _Unpickler
        if not weights_only and pickle_module is not None and pickle_module is not pickle:
            base = type("_Unpickler", (_Unpickler, pickle_module.Unpickler), {})
        if _legacy.is_legacy(fh):
            if mmap:
                raise RuntimeError(f"mmap can only be used with files saved with `torch.save({path}, "
                                   "_use_new_zipfile_serialization=True), please torch.save your checkpoint with this "
                                   "option in order to use mmap.")
            restore = _Records(None, fh, "", name, map_location, None)._restore
            return _legacy.load(fh, name, map_location, lambda file, records: base(file, records, weights_only,
                                                                                   **pickle_load_args),
                                weights_only, restore, pickle_load_args)
        if _is_tar(fh):
            raise RuntimeError(f"{name} is in the tar format of torch.save before PyTorch 0.4, which dtrain does not "
                               "load: load it with torch and save it again")
        try:
            zf = zipfile.ZipFile(fh)
        except zipfile.BadZipFile as e:
            raise _zip_error(name, f"not a ZIP archive ({e})") from None
        except (EOFError, OSError, ValueError) as e:
            raise _zip_error(name, e) from None
        with zf:
            pkl = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if not pkl:
                raise _zip_error(name, "no data.pkl record found")
            prefix = pkl[0][:-len("data.pkl")]
            try:
                data = zf.read(pkl[0])
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise _zip_error(name, e) from None
            records = _Records(zf, fh, prefix, name, map_location, path if mmap else None)
            try:
                return base(io.BytesIO(data), records, weights_only, **pickle_load_args).load()
            except pickle.UnpicklingError:
                raise
            except EOFError as e:
                raise _zip_error(name, f"data.pkl ended early ({e})") from None
