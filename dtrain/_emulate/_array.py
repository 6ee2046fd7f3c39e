"""cupy.ndarray of the emulated backend: a NumPy array that belongs to a device, with CuPy's rules.

- no implicit host conversion: `numpy.asarray(x)` raises CuPy's TypeError; `.get()` and `cupy.asnumpy` are
  the ways out;
- an operation takes only arrays of the current device (CuPy 14's rule without peer access) and makes its
  results there; a NumPy array operand is a TypeError, Python and NumPy scalars are fine;
- each array remembers the stream it was produced on; `strict_streams(True)` reports a read on a stream that
  did not wait for that one.
Live arrays are counted per device (bytes of each underlying buffer, once, until it is freed).
"""
import operator
import weakref

import numpy as np

from . import _linalg_core, _runtime as rt

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
             "array explicitly.")

class _Root:
    """A live device buffer: the NumPy array that owns the memory (weakly), its device and size, and the
    device array that made it (weakly: what views name as their base, as in CuPy)."""
    __slots__ = ("ref", "device", "nbytes", "owner", "stream", "pos")  # stream, pos: its last writer


_roots = {}  # id(root NumPy array) -> _Root, for every live buffer


def _release(key, ref):
    r = _roots.get(key)
    if r is not None and r.ref is ref:
        del _roots[key]
        rt._pools[r.device].free(r.nbytes)


def _root_of(a):
    root = a
    while True:
        b = root.base
        if b.__class__ is not np.ndarray:
            # as_strided's views hang off a helper object that holds the real base
            b = getattr(b, "base", None)
            if b.__class__ is not np.ndarray:
                return root
        root = b


def _track(a, device, out):
    """Counts `a`'s buffer on `device` once, until it is freed (a weakref callback, cheaper than finalize)."""
    root = a if a.base is None else _root_of(a)
    key = id(root)
    r = _roots.get(key)
    if r is not None and r.ref() is root:
        return
    n = root.nbytes
    rt.allocate(device, n)
    r = _Root()
    r.ref = weakref.ref(root, lambda ref, key=key: _release(key, ref))
    r.device, r.nbytes = device, n
    r.owner = weakref.ref(out) if root is a else None
    r.stream, r.pos = out._stream, out._pos
    _roots[key] = r


def written(a, stream=None):
    """Records a write into `a`'s buffer (in place, or by a communication call) on `stream` (default: the
    current one), for strict stream checking."""
    r = _roots.get(id(_root_of(a)))
    if r is not None:
        s = stream if stream is not None else rt.get_current_stream(r.device)
        s._pos += 1
        r.stream, r.pos = s, s._pos


def _buffer_at(ptr, nbytes, dtype=np.uint8):
    """The host memory behind a fake device pointer, as a flat NumPy array of `dtype` (for memcpy and NCCL).
    Live buffers are searched by address: the lookups are per communication call, not per operation."""
    dt = np.dtype(dtype)
    for r in list(_roots.values()):
        root = r.ref()
        if root is None:
            continue
        addr = root.__array_interface__["data"][0]
        if addr <= ptr and ptr + nbytes <= addr + root.nbytes:
            if not root.flags.c_contiguous:
                raise ValueError(f"the buffer at {ptr:#x} is not contiguous")
            off = ptr - addr
            return root.reshape(-1).view(np.uint8)[off:off + (nbytes // dt.itemsize) * dt.itemsize].view(dt)
    raise ValueError(f"{ptr:#x} ({nbytes} bytes) is not the address of a live emulated device array")


def _root_at(ptr):
    """The live buffer holding device address `ptr`, as flat bytes, and ptr's offset in it."""
    for r in list(_roots.values()):
        root = r.ref()
        if root is None:
            continue
        addr = root.__array_interface__["data"][0]
        if addr <= ptr < addr + max(root.nbytes, 1):
            if not root.flags.c_contiguous:
                raise ValueError(f"the buffer at {ptr:#x} is not contiguous")
            return root.reshape(-1).view(np.uint8), ptr - addr
    raise ValueError(f"{ptr:#x} is not the address of a live emulated device array")


def wrap(a, device=None):
    """A device array of `a` (a NumPy array, not copied) on `device` (default: the current one)."""
    out = object.__new__(ndarray)
    if a.__class__ is not np.ndarray:
        a = np.asarray(a)
    d = rt.current() if device is None else device
    out._a, out._dev = a, d
    s = rt.get_current_stream(d)
    s._pos += 1
    out._stream, out._pos = s, s._pos
    _track(a, d, out)
    return out


def _wrong_device(device, cur):
    return ValueError(f"The device where the array resides ({device}) is different from the current device "
                      f"({cur}). Peer access is unavailable between these devices.")


def unwrap(x, cur, operand=False):
    """A NumPy argument from an argument of a CuPy call: device arrays of the current device only. A NumPy
    array is refused as an `operand` (of a ufunc or an operator, CuPy's TypeError) and where it holds floats;
    integer and boolean ones pass as the host parameters (axes, shapes, indices) CuPy takes them as."""
    cls = x.__class__
    if cls is ndarray:
        if x._dev != cur:
            raise _wrong_device(x._dev, cur)
        if rt._StreamCheck.enabled:
            _check_stream(x)
        return x._a
    if cls is np.ndarray:
        if operand or x.dtype.kind not in "iub":
            raise TypeError(f"Unsupported type {cls}")
        return x
    if cls is list or cls is tuple:
        return cls(unwrap(v, cur, operand) for v in x)
    return x


def _check_stream(x, s=None):
    s = rt.get_current_stream(x._dev) if s is None else s
    r = _roots.get(id(_root_of(x._a)))
    for stream, pos in ((x._stream, x._pos), (r.stream, r.pos) if r is not None else (x._stream, x._pos)):
        if not s._sees(stream, pos):
            raise RuntimeError(f"stream order: an array of cuda:{x._dev} written on {stream!r} is read on {s!r}, "
                               "which did not wait for it (record an event there and wait_event on it, or "
                               "synchronize)")


def rewrap(r, cur, outs=None):
    cls = r.__class__
    if cls is np.ndarray:
        if outs is not None:
            for o in outs:
                if o.__class__ is ndarray and o._a is r:
                    if rt._StreamCheck.enabled:
                        written(r)
                    return o
        return wrap(r, cur)
    if isinstance(r, np.generic):
        return wrap(np.asarray(r), cur)
    if cls is tuple or cls is list:
        return cls(rewrap(v, cur, outs) for v in r)
    if isinstance(r, tuple):  # NumPy's named results (EigResult, SVDResult, ...): CuPy returns plain tuples
        return tuple(rewrap(v, cur, outs) for v in r)
    return r


def call(fn, args, kwargs, operands=False):
    """Run NumPy's `fn` on the arguments' host arrays, after CuPy's checks, and wrap what it returns;
    `operands`: the arguments are a ufunc's or operator's operands (no NumPy arrays at all)."""
    cur = rt.current()
    operands = operands or fn.__class__ is np.ufunc
    a = [unwrap(x, cur, operands) for x in args]
    outs = None
    if kwargs:
        kw = {k: unwrap(v, cur, operands) for k, v in kwargs.items()}
        out = kwargs.get("out")
        if out is not None:
            outs = out if isinstance(out, tuple) else (out,)
    else:
        kw = kwargs
    try:
        r = fn(*a, **kw)
    except MemoryError as e:
        if isinstance(e, rt.OutOfMemoryError):
            raise
        # the host could not hold it: on a device that is CuPy's OutOfMemoryError (what torch.cuda's catches)
        raise rt.OutOfMemoryError(0, rt._pools[cur]._used, message=str(e)) from None
    return rewrap(r, cur, outs)


def _binary(op, reflected=False):
    if reflected:
        def method(self, other):
            return call(op, (other, self), {}, True)
    else:
        def method(self, other):
            return call(op, (self, other), {}, True)
    method.__name__ = op.__name__
    return method


def _inplace(op):
    def method(self, other):
        call(op, (self, other), {}, True)  # operator.iadd and friends write into self's host array
        if rt._StreamCheck.enabled:
            written(self._a)
        return self
    return method


def _unary(op):
    def method(self):
        return call(op, (self,), {}, True)
    return method


class ndarray:
    """cupy.ndarray on an emulated device (host memory underneath)."""
    __slots__ = ("_a", "_dev", "_stream", "_pos", "__weakref__")
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        if memptr is None:
            if strides is not None:
                raise NotImplementedError("cupy.ndarray(strides=) without memptr is not available on emulated CUDA "
                                          "devices")
            fresh = wrap(np.empty(shape, dtype, order=order))
        else:
            # a view of the live device buffer at memptr (torch.load's rebuild of a CUDA storage's tensors)
            base, offset = _root_at(memptr.ptr)
            fresh = wrap(np.ndarray(shape, dtype, buffer=base, offset=offset, strides=strides, order=order),
                         memptr.device_id)
        self._a, self._dev, self._stream, self._pos = fresh._a, fresh._dev, fresh._stream, fresh._pos

    # ------------------------------------------------ strictness: no implicit trip to the host
    def __array__(self, dtype=None, copy=None):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        return call(fn, inputs, kwargs, True)

    def __array_function__(self, func, types, args, kwargs):
        from ._modules import has_cupy_function
        if not has_cupy_function(func):
            return NotImplemented
        return call(func, args, kwargs)

    # ------------------------------------------------ properties
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    strides = property(lambda self: self._a.strides)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)

    @property
    def T(self):
        return wrap(self._a.T, self._dev)

    def _set_shape(self, shape):
        self._a.shape = shape
    shape = shape.setter(_set_shape)

    @property
    def base(self):
        b = self._a.base
        if b.__class__ is not np.ndarray:
            b = getattr(b, "base", None)  # as_strided's helper object
            if b.__class__ is not np.ndarray:
                return None
        b = _root_of(b)
        r = _roots.get(id(b))
        owner = r.owner() if r is not None and r.owner is not None else None
        if owner is None or owner._a is not b:
            owner = wrap(b, self._dev)
            if r is not None:
                r.owner = weakref.ref(owner)
        return owner

    @property
    def real(self):
        return wrap(self._a.real, self._dev)

    @real.setter
    def real(self, value):
        self._a.real = unwrap(value, self._dev)

    @property
    def imag(self):
        return wrap(self._a.imag, self._dev)

    @imag.setter
    def imag(self, value):
        self._a.imag = unwrap(value, self._dev)

    @property
    def device(self):
        return rt.Device(self._dev)

    @property
    def data(self):
        return MemoryPointer(self._a.__array_interface__["data"][0], self._dev)

    @property
    def __cuda_array_interface__(self):
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "descr": a.dtype.descr,
                "data": (a.__array_interface__["data"][0], False), "version": 3,
                "strides": None if a.flags.c_contiguous else a.strides, "stream": 1}

    # ------------------------------------------------ the ways to the host (synchronising, as CuPy's do)
    def get(self, stream=None, order="C", out=None, blocking=True):
        # a copy on the current stream (or `stream`), then a wait for it: what was written elsewhere must be
        # ordered before it
        if rt._StreamCheck.enabled:
            _check_stream(self, stream)
        if out is not None:
            np.copyto(out, self._a)
            return out
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        self._a[...] = arr

    def item(self, *args):
        if rt._StreamCheck.enabled:
            _check_stream(self)
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()

    def tobytes(self, order="C"):
        return self._a.tobytes(order)

    def _scalar(self, kind):
        if self._a.size != 1:
            raise TypeError(f"only size-1 arrays can be converted to Python scalars (shape {self.shape})")
        return kind(self._a.reshape(()).item()) if kind is not complex else complex(self._a.reshape(()))

    __float__ = lambda self: self._scalar(float)
    __int__ = lambda self: self._scalar(int)
    __complex__ = lambda self: self._scalar(complex)

    def __index__(self):
        if self._a.ndim or self._a.dtype.kind not in "iub":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return int(self._a)

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        return bool(self._a.reshape(()))

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    # ------------------------------------------------ copies, views, casts
    def copy(self, order="C"):
        # CuPy: "makes a copy of a given array in the current device", even from another device
        return wrap(self._a.copy(order=order), rt.current())

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        return call(lambda a: a.astype(dtype, order=order, copy=copy), (self,), {})

    def view(self, dtype=None, array_class=None):
        if array_class is not None:
            raise NotImplementedError("cupy.ndarray.view(array_class=) is not available on emulated CUDA devices")
        return wrap(self._a.view() if dtype is None else self._a.view(dtype), self._dev)

    def reshape(self, *shape, order="C"):
        return wrap(self._a.reshape(*shape, order=order), self._dev)

    def __getitem__(self, key):
        cur = self._dev
        if key.__class__ is tuple:
            key = tuple(_index(k, cur) for k in key)
        else:
            key = _index(key, cur)
        if _advanced(key):
            _on_current(self)  # a gather is a kernel on the current device; a view (basic key) is not
        r = self._a[key]
        return wrap(r if r.__class__ is np.ndarray else np.asarray(r), cur)

    def __setitem__(self, key, value):
        cur = _on_current(self)  # CuPy writes with a kernel (or a copy) on the current device
        if key.__class__ is tuple:
            key = tuple(_index(k, cur) for k in key)
        else:
            key = _index(key, cur)
        if value.__class__ is ndarray:
            value = unwrap(value, cur)
        self._a[key] = value  # a NumPy value is copied from the host, as CuPy's setitem does
        if rt._StreamCheck.enabled:
            written(self._a)

    def fill(self, value):
        _on_current(self)
        self._a.fill(unwrap(value, self._dev) if value.__class__ is ndarray else value)

    def __repr__(self):
        return repr(self._a)[:-1] + f", device=cuda:{self._dev} (emulated))"

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        return format(self._a.item() if self._a.ndim == 0 else str(self._a), spec)

    def __reduce__(self):
        return _rebuild, (self._a.copy(), self._dev)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return wrap(self._a.copy(), self._dev)

    def __dlpack__(self, *args, **kwargs):
        raise NotImplementedError("cupy.ndarray.__dlpack__ is not available on emulated CUDA devices")

    def __dlpack_device__(self):
        return (2, self._dev)  # kDLCUDA

    def __hash__(self):
        raise TypeError("unhashable type: 'cupy.ndarray'")

    __abs__ = _unary(np.absolute)
    __neg__ = _unary(np.negative)
    __pos__ = _unary(np.positive)
    __invert__ = _unary(np.invert)


def _rebuild(a, device):
    with rt.Device(device):
        return wrap(a)


def _on_current(x):
    cur = rt.current()
    if x._dev != cur:
        raise _wrong_device(x._dev, cur)
    return cur


def _advanced(key):
    for k in (key if key.__class__ is tuple else (key,)):
        if k.__class__ is np.ndarray or k.__class__ is list:
            return True
    return False


def _index(k, cur):
    cls = k.__class__
    if cls is ndarray:
        return unwrap(k, cur)
    if cls is list:
        return [_index(v, cur) for v in k]
    return k  # ints, slices, None, Ellipsis, and NumPy arrays (CuPy takes those as indices too)


class MemoryPointer:
    """cupy.cuda.MemoryPointer: the address (the NumPy buffer's: aliasing checks work) and the device."""
    __slots__ = ("ptr", "device_id")

    def __init__(self, ptr, device_id):
        self.ptr, self.device_id = ptr, device_id

    @property
    def device(self):
        return rt.Device(self.device_id)

    def __int__(self):
        return self.ptr

    def __add__(self, offset):
        return MemoryPointer(self.ptr + int(offset), self.device_id)

    def __sub__(self, offset):
        return MemoryPointer(self.ptr - int(offset), self.device_id)


for _name, _op in [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                   ("truediv", operator.truediv), ("floordiv", operator.floordiv), ("mod", operator.mod),
                   ("pow", operator.pow), ("matmul", _linalg_core.deciding(operator.matmul)), ("and", operator.and_),
                   ("or", operator.or_), ("xor", operator.xor), ("lshift", operator.lshift),
                   ("rshift", operator.rshift), ("divmod", divmod)]:
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    if _name != "divmod":
        setattr(ndarray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name, _op in [("eq", operator.eq), ("ne", operator.ne), ("lt", operator.lt), ("le", operator.le),
                   ("gt", operator.gt), ("ge", operator.ge)]:
    setattr(ndarray, f"__{_name}__", _binary(_op))


def _method(name):
    def method(self, *args, **kwargs):
        cur = rt.current()
        if self._dev != cur:
            raise _wrong_device(self._dev, cur)
        if rt._StreamCheck.enabled:
            _check_stream(self)
        a = [unwrap(x, cur) for x in args]
        kw = {k: unwrap(v, cur) for k, v in kwargs.items()} if kwargs else kwargs
        r = getattr(self._a, name)(*a, **kw)
        return rewrap(r, cur, (kwargs.get("out"),) if kwargs else None)
    method.__name__ = name
    return method


# the rest of CuPy's ndarray methods that NumPy's ndarray has too, run by NumPy under the device checks
def _install_methods(names):
    for name in names:
        if name.startswith("_") or name in vars(ndarray) or not hasattr(np.ndarray, name):
            continue
        setattr(ndarray, name, _method(name))
