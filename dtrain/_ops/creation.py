"""Factory functions: tensor, zeros, ones, arange, ..., the *_like forms, and random tensors."""
import contextlib
import math
from collections.abc import Sequence

import numpy as np

from .. import _backend, _dtype, _memory_format as _mf
from .._device import CPU, META, device as _device_cls, resolve
from .._tensor import Tensor, _wrap, strided
from ..random import default_generator_for
from ._layout import _c_strides, copy_preserving, empty_preserving, empty_strided as empty_strided_array
from ._util import normalize_shape


def _dev_dt(device, dtype, default=None):
    dev = resolve(device)
    dt = dtype if dtype is not None else (default or _dtype.get_default_dtype())
    if not isinstance(dt, _dtype.dtype):
        raise TypeError(f"dtype must be torch.dtype, not {type(dt).__name__}")
    if dt.np is None:
        raise TypeError(f"{dt} tensors need the ml_dtypes package (pip install ml_dtypes)")
    return dev, dt


def _strided_only(layout, op):
    """Factories make dense tensors; a sparse layout is refused, not ignored (torch.sparse_coo_tensor makes those)."""
    if layout is not None and layout is not strided:
        raise NotImplementedError(f"{op}: dtrain makes only strided (dense) tensors here, not layout {layout}; build "
                                  "sparse tensors with torch.sparse_coo_tensor or Tensor.to_sparse()")


def _check_size(shape):
    for d in shape:
        if d < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {d}: [{', '.join(map(str, shape))}]")
    return shape


def _finish(array, dev, requires_grad):
    t = _wrap(array, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _alloc(fill, shape, dev, dt):
    """`fill` is 'empty', 'zeros', 'ones' or a value; meta tensors get shape without storage."""
    if dev is META:
        return np.broadcast_to(np.zeros((), dt.np), shape)
    xp = dev.xp
    if dev.type == "cuda":
        with xp.cuda.Device(dev.index):
            return _alloc_xp(xp, fill, shape, dt)
    return _alloc_xp(xp, fill, shape, dt)


def _alloc_xp(xp, fill, shape, dt):
    if fill == "empty":
        return xp.empty(shape, dt.np)
    if fill == "zeros":
        return xp.zeros(shape, dt.np)
    if fill == "ones":
        return xp.ones(shape, dt.np)
    return xp.full(shape, fill, dt.np)


def _infer_array(data):
    """numpy array and dtype for torch.tensor(data), with torch's inference: Python floats give the default
    dtype, ints int64, bools bool; NumPy scalars, arrays and tensors inside sequences keep their own dtypes, and
    the element types of a sequence are promoted together."""
    if isinstance(data, np.ndarray):
        return data, _dtype.from_numpy_dtype(data.dtype)
    if isinstance(data, np.generic):
        return np.asarray(data), _dtype.from_numpy_dtype(data.dtype)
    if isinstance(data, range) or (isinstance(data, Sequence) and not isinstance(data, (str, bytes, list, tuple))):
        data = list(data)
    dt = _scalar_type(data)
    if isinstance(data, (list, tuple)) and _has_tensor(data):
        data = _untensor(data)
    try:
        arr = np.asarray(data)
    except ValueError:
        raise ValueError(f"expected sequence of length {len(data[0])} at dim 1 (got {len(data[1])})") from None
    if arr.dtype == object and dt is _dtype.int64 or arr.dtype == np.uint64:
        raise ValueError("Overflow when unpacking long long")  # a Python int beyond int64
    if arr.dtype == object:
        raise ValueError(f"expected a rectangular sequence, got {type(data).__name__} of ragged lengths")
    return arr, dt if dt is not None else _dtype.get_default_dtype()


_PY_TYPES = {bool: lambda: _dtype.bool, int: lambda: _dtype.int64, float: _dtype.get_default_dtype,
             complex: lambda: _dtype.get_default_dtype().to_complex()}


def _scalar_type(x):
    """torch's dtype inference for one element or a (nested) sequence; None for an empty sequence."""
    f = _PY_TYPES.get(type(x))
    if f is not None:
        return f()
    if isinstance(x, (np.ndarray, np.generic)):
        return _dtype.from_numpy_dtype(x.dtype)
    if isinstance(x, Tensor):
        return x.dtype
    if isinstance(x, (list, tuple)):
        res = None
        types = set(map(type, x))
        if str in types and len(x) == 1 and isinstance(x, list):
            raise ValueError(f"too many dimensions 'str'")
        if types and types <= _PY_TYPES.keys():  # fast path: a flat list of Python scalars
            items = [_PY_TYPES[t]() for t in types]
        else:
            items = [_scalar_type(e) for e in x]
        for d in items:
            if d is not None:
                res = d if res is None else _dtype.promote_types(res, d)
        return res
    if isinstance(x, (bool, int, float, complex)):  # subclasses (e.g. IntEnum)
        return _PY_TYPES[next(t for t in (bool, int, float, complex) if isinstance(x, t))]()
    if isinstance(x, str):
        raise TypeError(f"new(): invalid data type '{type(x).__name__}'")
    raise RuntimeError(f"Could not infer dtype of {type(x).__name__}")


def _has_tensor(seq):
    return any(isinstance(x, Tensor) or (isinstance(x, (list, tuple)) and _has_tensor(x)) for x in seq)


def _untensor(seq):
    return [x.tolist() if isinstance(x, Tensor) else _untensor(x) if isinstance(x, (list, tuple)) else x for x in seq]


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """Copy `data` (nested sequences, scalars, arrays or tensors) into a new leaf tensor."""
    if isinstance(data, Tensor):
        dev, dt = _dev_dt(device if device is not None else data._device, dtype or data.dtype)
        arr = _to_device(data._data, dev, dt, copy=True)
    else:
        if hasattr(data, "__cuda_array_interface__") or type(data).__module__.startswith("cupy"):
            dev, dt = _dev_dt(device if device is not None else "cuda", dtype or _dtype.from_numpy_dtype(data.dtype))
            arr = _to_device(data, dev, dt, copy=True)
        else:
            arr, inferred = _infer_array(data)
            dev, dt = _dev_dt(device, dtype, inferred)
            arr = _to_device(arr, dev, dt, copy=True)
    return _finish(arr, dev, requires_grad)


def _to_device(arr, dev, dt, copy):
    if dev is META:
        return np.broadcast_to(np.zeros((), dt.np), np.shape(arr))
    if dev.type == "cuda":
        cp = dev.xp
        with cp.cuda.Device(dev.index):
            return cp.array(arr, dtype=dt.np, copy=copy) if isinstance(arr, cp.ndarray) else cp.asarray(arr, dtype=dt.np)
    if not isinstance(arr, np.ndarray) and not isinstance(arr, np.generic):
        arr = arr.get()
        return arr.astype(dt.np, copy=False)
    if copy and isinstance(arr, np.ndarray) and not arr.flags.c_contiguous:
        return copy_preserving(np, arr, dt.np)  # torch's copy keeps a dense layout, lays out an expanded one anew
    return np.array(arr, dtype=dt.np, copy=copy)


def as_tensor(data, dtype=None, device=None):
    """Like tensor(), but shares memory with a tensor or NumPy array when dtype and device already match."""
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else data
    if isinstance(data, np.ndarray) and (device is None or resolve(device) is CPU):
        dt = dtype or _dtype.from_numpy_dtype(data.dtype)
        if dt.np == data.dtype:
            return _wrap(_backend.new_storage(data), CPU)  # as from_numpy: a storage of its own
    return tensor(data, dtype=dtype, device=device)


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=False):
    t = tensor(obj, dtype=dtype, device=device) if copy else as_tensor(obj, dtype=dtype, device=device)
    return t.requires_grad_(requires_grad) if requires_grad else t


def from_numpy(ndarray):
    """A CPU tensor sharing memory with `ndarray`."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    _dtype.from_numpy_dtype(ndarray.dtype)  # raises for unsupported dtypes
    # a storage of its own over the array's memory, as torch's: an in-place write from another tensor over
    # that memory is then no partial overlap (torch compares storage objects), and saving writes it apart
    return _wrap(_backend.new_storage(ndarray), CPU)


def from_dlpack(ext_tensor):
    """A tensor sharing memory with any object that speaks DLPack (NumPy and CuPy arrays, torch tensors)."""
    dev_type, dev_id = ext_tensor.__dlpack_device__()
    if int(dev_type) == 2:  # kDLCUDA
        dev = resolve(_device_cls("cuda", dev_id))
        return _wrap(dev.xp.from_dlpack(ext_tensor), dev)
    return _wrap(np.from_dlpack(ext_tensor), CPU)


def _factory(fill):
    def make(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
        _strided_only(layout, fill)
        shape = _check_size(normalize_shape(size))
        dev, dt = _dev_dt(device, dtype)
        return _finish(_alloc(fill, shape, dev, dt), dev, requires_grad)
    return make


zeros, ones = _factory("zeros"), _factory("ones")
zeros.__name__, ones.__name__ = "zeros", "ones"


def empty(*size, out=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False,
          memory_format=None):
    _strided_only(layout, "empty")
    shape = _check_size(normalize_shape(size))
    dev, dt = _dev_dt(device, dtype)
    fmt = _mf.check(memory_format, "empty", _mf.contiguous_format)
    if fmt is _mf.contiguous_format or dev is META:
        if fmt is not _mf.contiguous_format:
            _mf.strides(fmt, shape)
        return _finish(_alloc("empty", shape, dev, dt), dev, requires_grad)
    return _strided(shape, _mf.strides(fmt, shape), dev, dt, requires_grad)


def empty_strided(size, stride, *, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    """A new tensor (not a view) of `size` with `stride`, over a storage just large enough for them."""
    _strided_only(layout, "empty_strided")
    shape = _check_size(normalize_shape((size,)))
    stride = tuple(int(s) for s in (stride if isinstance(stride, Sequence) else (stride,)))
    if len(stride) != len(shape):
        raise RuntimeError(f"dimensionality of sizes ({len(shape)}) must match dimensionality of strides "
                           f"({len(stride)})")
    if any(s < 0 for s in stride):
        raise RuntimeError(f"Storage size calculation overflowed with sizes=[{', '.join(map(str, shape))}] and "
                           f"strides=[{', '.join(map(str, stride))}]")
    dev, dt = _dev_dt(device, dtype)
    if dev is META:
        return _finish(_alloc("empty", shape, dev, dt), dev, requires_grad)
    return _strided(shape, stride, dev, dt, requires_grad)


def _strided(shape, stride, dev, dt, requires_grad):
    with _backend.on_device(dev):
        return _finish(empty_strided_array(dev.xp, shape, stride, dt.np), dev, requires_grad)


def full(size, fill_value, *, out=None, dtype=None, layout=None, device=None, requires_grad=False,
         pin_memory=False):
    _strided_only(layout, "full")
    if not isinstance(size, (tuple, list)):
        raise TypeError(f"full(): argument 'size' (position 1) must be tuple of ints, not {type(size).__name__}")
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    if dtype is None:
        dtype = _dtype.result_type_of([fill_value])
    dev, dt = _dev_dt(device, dtype)
    return _finish(_alloc(fill_value, _check_size(normalize_shape((size,))), dev, dt), dev, requires_grad)


def _like(input, fill, dt, dev, requires_grad, memory_format, op="empty_like"):
    """zeros_like and friends: laid out as `input` (torch's preserve_format) or in `memory_format`, on input's
    device unless another is given."""
    fmt = _mf.check(memory_format, op, _mf.preserve_format)
    dev, dt = _dev_dt(dev, dt)
    a = input._data
    if fmt is not _mf.preserve_format and not input.is_sparse:
        shape = input.shape
        st = _mf.strides(fmt, shape)
        if dev is META or fmt is _mf.contiguous_format:
            out = _alloc(fill, shape, dev, dt)
        else:
            out = _strided(shape, st, dev, dt, False)._data
            if fill != "empty":
                with _backend.on_device(dev):
                    out[...] = 0 if fill == "zeros" else 1 if fill == "ones" else fill
        return _finish(out, dev, requires_grad)
    if dev is META or input._device is META or input.is_sparse or \
            (a.flags.c_contiguous and ((a.size and 1 not in a.shape) or _c_strides(a))):
        return _finish(_alloc(fill, input.shape, dev, dt), dev, requires_grad)
    with (dev.xp.cuda.Device(dev.index) if dev.type == "cuda" else contextlib.nullcontext()):
        out = empty_preserving(dev.xp, a, dt.np)
        if fill != "empty":
            out[...] = 0 if fill == "zeros" else 1 if fill == "ones" else fill
    return _finish(out, dev, requires_grad)


def _like_dtype_dev(input, dtype, device):
    return (dtype if dtype is not None else input.dtype), (device if device is not None else input._device)


def zeros_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    if layout is None and input.is_sparse:  # torch keeps the layout: a sparse tensor with no entries
        from ..sparse._coo import zeros_like as sparse_zeros_like
        return sparse_zeros_like(input, dtype, device, requires_grad)
    _strided_only(layout, "zeros_like")
    dt, dev = _like_dtype_dev(input, dtype, device)
    return _like(input, "zeros", dt, dev, requires_grad, memory_format, "zeros_like")


def ones_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    _strided_only(layout, "ones_like")
    dt, dev = _like_dtype_dev(input, dtype, device)
    return _like(input, "ones", dt, dev, requires_grad, memory_format, "ones_like")


def empty_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    _strided_only(layout, "empty_like")
    dt, dev = _like_dtype_dev(input, dtype, device)
    return _like(input, "empty", dt, dev, requires_grad, memory_format)


def full_like(input, fill_value, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    _strided_only(layout, "full_like")
    dt, dev = _like_dtype_dev(input, dtype, device)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _like(input, fill_value, dt, dev, requires_grad, memory_format, "full_like")


def arange(start, end=None, step=1, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    _strided_only(layout, "arange")
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if vals[2] == 0:
        raise RuntimeError("step must be nonzero")
    if dtype is None:
        dtype = _dtype.get_default_dtype() if any(isinstance(v, float) for v in vals) else _dtype.int64
    dev, dt = _dev_dt(device, dtype)
    if dt is _dtype.bool:
        raise NotImplementedError("\"arange_cpu\" not implemented for 'Bool'")
    if not dt.is_floating_point and int(vals[2]) == 0:
        raise ValueError("step must be nonzero")
    if (vals[1] - vals[0]) * vals[2] < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if dt is _dtype.int64:  # torch counts int64 ranges in integers, from the truncated bounds
        s0, e0, st = int(vals[0]), int(vals[1]), int(vals[2])
        n = max(0, -((s0 - e0) // st))
    else:
        n = max(0, int(np.ceil((vals[1] - vals[0]) / vals[2])))
    if dt.np.kind == "f":
        arr = _arange_float(float(vals[0]), float(vals[2]), n, dt.np)
    else:  # torch converts start and step to the integer type first
        arr = (int(vals[0]) + np.arange(n, dtype=np.int64) * int(vals[2])).astype(dt.np)
    return _finish(_to_device(arr, dev, dt, copy=False), dev, requires_grad)


def _fma(a, b, c):
    """a * b + c rounded once (as a fused multiply-add), in float64 arrays: an exact product by Veltkamp
    splitting and an exact sum, then one rounding."""
    p = a * b
    t = 134217729.0 * a  # 2**27 + 1
    ah = t - (t - a)
    t = 134217729.0 * b
    bh = t - (t - b)
    e = ((ah * bh - p) + ah * (b - bh) + (a - ah) * bh) + (a - ah) * (b - bh)
    s = p + c
    v = s - p
    return s + (((p - (s - v)) + (c - v)) + e)


def _arange_float(start, step, n, np_dtype):
    """torch's CPU arange values, bit for bit: its kernel fills blocks of one 32-byte vector from a base
    `start + step * i` (fused, in float64) plus `k * step`, two vectors per iteration; the tail element by
    element. (Past 32768 elements torch splits the range over its threads and blocks restart at each split;
    float16 is not reproduced either: those can differ from torch in the last bit.)"""
    i = np.arange(n, dtype=np.float64)
    vec = 32 // np.dtype(np_dtype).itemsize if np_dtype != np.float16 else 8
    nvec = n - n % (2 * vec)
    out = _fma(i, np.full(n, step), np.full(n, start))  # the scalar tail's formula
    if nvec:
        k = np.arange(nvec) % vec
        base = _fma(i[:nvec] - k, np.full(nvec, step), np.full(nvec, start))
        base = base.astype(np.float32).astype(np.float64) if np_dtype != np.float64 else base
        out[:nvec] = _fma(k.astype(np.float64), np.full(nvec, step), base)
    return out.astype(np_dtype)


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    _strided_only(layout, "linspace")
    dev, dt = _dev_dt(device, dtype)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    steps = int(steps)
    if steps > 1 and dt is _dtype.float16:  # Half arithmetic: each operation rounds to float16
        h, f = np.float16, np.float32
        s, e = h(start), h(end)
        step = h(f(h(f(e) - f(s))) / f(steps - 1))
        i = np.arange(steps)
        first = (f(s) + (f(step) * i.astype(f)).astype(h).astype(f)).astype(h)
        second = (f(e) - (f(step) * (steps - 1 - i).astype(f)).astype(h).astype(f)).astype(h)
        arr = np.where(i < steps // 2, first, second)
    elif steps > 1 and dt.np.kind in "fiu":
        # torch's kernel: the first half counted from start and the second half from end (both ends exact),
        # each element one fused multiply-add; floats step in their own dtype, integers truncate start and end
        # and step in float64
        ft = dt.np if dt.np.kind == "f" else np.dtype(np.float64)
        s, e = (ft.type(start), ft.type(end)) if dt.np.kind == "f" else (ft.type(int(start)), ft.type(int(end)))
        step = np.float64((e - s) / ft.type(steps - 1))
        i = np.arange(steps, dtype=np.float64)
        fs = np.full(steps, step)
        arr = np.where(i < steps // 2, _fma(i, fs, np.full(steps, np.float64(s))),
                       -_fma(steps - 1 - i, fs, np.full(steps, -np.float64(e))))
        arr = arr.astype(ft)
    else:
        arr = np.linspace(float(start), float(end), steps, dtype=np.float64)
    return _finish(_to_device(arr.astype(dt.np), dev, dt, copy=False), dev, requires_grad)


def logspace(start, end, steps, base=10.0, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    _strided_only(layout, "logspace")
    dev, dt = _dev_dt(device, dtype)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    steps = int(steps)
    if dt.np.kind in "fiu" and steps > 1:
        # torch's kernel: start and end in the output dtype, exponents in float64 from both ends, then the C
        # library's pow (math.pow; NumPy's own power can differ from it in the last bit)
        s, e = (dt.np.type(start), dt.np.type(end)) if dt.np.kind == "f" else (int(start), int(end))
        step = np.float64(dt.np.type(e - s) if dt.np.kind == "f" else e - s) / (steps - 1)
        i = np.arange(steps, dtype=np.float64)
        x = np.where(i < steps // 2, np.float64(s) + step * i, np.float64(e) - step * (steps - 1 - i))
        arr = np.array([math.pow(base, v) for v in x.tolist()])
    else:
        arr = np.logspace(float(start), float(end), steps, base=base)
    return _finish(_to_device(arr.astype(dt.np), dev, dt, copy=False), dev, requires_grad)


def eye(n, m=None, *, out=None, dtype=None, layout=None, device=None, requires_grad=False):
    _strided_only(layout, "eye")
    dev, dt = _dev_dt(device, dtype)
    for v in (n, m):
        if v is not None and v < 0:
            raise RuntimeError(f"{'n' if v is n else 'm'} must be greater or equal to 0, got {v}")
    a = _alloc("zeros", (n, n if m is None else m), dev, dt)
    if dev is not META:
        with (dev.xp.cuda.Device(dev.index) if dev.type == "cuda" else contextlib.nullcontext()):
            dev.xp.fill_diagonal(a, 1)
    return _finish(a, dev, requires_grad)


# ------------------------------------------------------------------------------------------- random tensors
def _gen(generator, dev):
    return generator if generator is not None else default_generator_for(dev)


def _check_float(kernel, dt):
    if not (dt.is_floating_point or dt.is_complex):
        raise NotImplementedError(f'"{kernel}" not implemented for \'{_dtype.scalar_name(dt)}\'')


def rand(*size, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
         pin_memory=False):
    _strided_only(layout, "rand")
    dev, dt = _dev_dt(device, dtype)
    shape = _check_size(normalize_shape(size))
    _check_float("check_uniform_bounds", dt)
    if dev is META:
        return _finish(_alloc("empty", shape, dev, dt), dev, requires_grad)
    return _finish(_gen(generator, dev).uniform(shape, dt.np, dev), dev, requires_grad)


def randn(*size, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
          pin_memory=False):
    _strided_only(layout, "randn")
    dev, dt = _dev_dt(device, dtype)
    shape = _check_size(normalize_shape(size))
    _check_float("normal_kernel_cpu", dt)
    if dev is META:
        return _finish(_alloc("empty", shape, dev, dt), dev, requires_grad)
    return _finish(_gen(generator, dev).normal(shape, dt.np, dev), dev, requires_grad)


def randint(low=0, high=None, size=None, *, generator=None, out=None, dtype=None, layout=None, device=None,
            requires_grad=False):
    _strided_only(layout, "randint")
    if high is None or (size is None and isinstance(high, (tuple, list))):
        low, high, size = 0, low, high if size is None and isinstance(high, (tuple, list)) else size
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    dev, dt = _dev_dt(device, dtype, _dtype.int64)
    shape = normalize_shape((size,))
    return _finish(_gen(generator, dev).integers(low, high, shape, dt.np, dev), dev, requires_grad)


def randperm(n, *, generator=None, out=None, dtype=None, layout=None, device=None, requires_grad=False,
             pin_memory=False):
    _strided_only(layout, "randperm")
    dev, dt = _dev_dt(device, dtype, _dtype.int64)
    return _finish(_gen(generator, dev).permutation(n, dt.np, dev), dev, requires_grad)


def _random_like(input, drawn, dev, requires_grad, memory_format, op):
    """`drawn` (a new C-ordered tensor of input's shape) laid out as the *_like factories lay out their result."""
    out = _like(input, "empty", drawn.dtype, dev, False, memory_format, op)
    if out._data.flags.c_contiguous or dev is META:
        out = drawn
    else:
        with _backend.on_device(dev):
            out._data[...] = drawn._data
    return out.requires_grad_(True) if requires_grad else out


def rand_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    _strided_only(layout, "rand_like")
    dt, dev = _like_dtype_dev(input, dtype, device)
    return _random_like(input, rand(input.shape, dtype=dt, device=dev), resolve(dev), requires_grad, memory_format,
                        "rand_like")


def randn_like(input, *, dtype=None, layout=None, device=None, requires_grad=False, memory_format=None):
    _strided_only(layout, "randn_like")
    dt, dev = _like_dtype_dev(input, dtype, device)
    return _random_like(input, randn(input.shape, dtype=dt, device=dev), resolve(dev), requires_grad,
                        memory_format, "randn_like")


def randint_like(input, low=0, high=None, *, dtype=None, layout=None, device=None, requires_grad=False,
                 memory_format=None):
    _strided_only(layout, "randint_like")
    dt, dev = _like_dtype_dev(input, dtype, device)
    return _random_like(input, randint(low, high, input.shape, dtype=dt, device=dev), resolve(dev), requires_grad,
                        memory_format, "randint_like")


def scalar_tensor(s, *, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False):
    _strided_only(layout, "scalar_tensor")
    return full((), s, dtype=dtype or _dtype.get_default_dtype(), device=device, requires_grad=requires_grad)
