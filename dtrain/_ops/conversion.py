"""Moving tensors between devices and dtypes; clone."""
import numpy as np

from .. import _backend, _dtype, _memory_format as _mf
from .._device import META, device_of
from .._tensor import Tensor
from ..autograd.graph import Function
from ._layout import copy_preserving, empty_strided
from ._util import method


def _move(x, device, dtype):
    if device is META:
        return np.broadcast_to(np.zeros((), dtype.np), x.shape)
    if device.type == "cuda":
        cp = device.xp
        with cp.cuda.Device(device.index):
            if isinstance(x, cp.ndarray):
                # CuPy's asarray returns an array of another GPU as it is; copy() is the call that moves it
                return (x if x.device.id == device.index else x.copy()).astype(dtype.np, copy=False)
            return cp.asarray(x, dtype=dtype.np)  # from the host
    return _backend.to_numpy(x).astype(dtype.np, copy=False)


_HALVES = {np.dtype(np.float16), _dtype.bfloat16.np}


def _astype(xp, x, target):
    """x.astype(target) as torch converts: a float64 value reaches float16 or bfloat16 through float32.

    torch's Half and BFloat16 are built from a float, so its double -> half cast rounds twice; NumPy and
    ml_dtypes round once, which differs in ~1 value of 20,000 (and then so does everything downstream).
    """
    if x.dtype == np.float64 and target in _HALVES:
        x = copy_preserving(xp, x, np.float32)
    return copy_preserving(xp, x, target)  # torch's preserve_format, as clone's


class _To(Function):
    """Device and/or dtype change; the gradient goes back to the source device and dtype."""

    _grad_fn_name = "ToCopyBackward0"

    def forward(ctx, x, device, dtype, src_device, fmt=_mf.preserve_format):
        ctx.src_device, ctx.src_dtype = src_device, x.dtype
        out = _astype(ctx.xp, x, dtype.np) if device is None or device is src_device else _move(x, device, dtype)
        dev = device if device is not None else src_device
        if fmt is _mf.preserve_format or dev is META:
            return out
        with _backend.on_device(dev):
            if fmt is _mf.contiguous_format:
                return dev.xp.ascontiguousarray(out)
            relaid = empty_strided(dev.xp, out.shape, _mf.strides(fmt, out.shape), out.dtype)
            relaid[...] = out
            return relaid

    def backward(ctx, g):
        src = ctx.src_device
        if src is not META and device_of(g) is not src:
            g = _move(g, ctx.src_device, _dtype.from_numpy_dtype(ctx.src_dtype))
        return g.astype(ctx.src_dtype, copy=False)


def to_device_dtype(t, device, dtype, copy, memory_format=_mf.preserve_format):
    if dtype is None:
        dtype = t.dtype
    if dtype.np is None:
        raise TypeError(f"{dtype} tensors need the ml_dtypes package (pip install ml_dtypes)")
    fmt = memory_format
    if fmt is not _mf.preserve_format and suggest_memory_format(t) is fmt:
        fmt = _mf.preserve_format  # torch's to_will_alias: a tensor laid out like the format needs no copy for it
    if (device is None or device is t._device) and dtype.np == t._data.dtype and not copy and \
            fmt is _mf.preserve_format:
        return t
    if fmt is not _mf.preserve_format and fmt is not _mf.contiguous_format:
        _mf.strides(fmt, t.shape)  # torch's rank check, before anything is recorded
    res = _To.apply(t, device=device, dtype=dtype, src_device=t._device, fmt=fmt)
    res._device = device or t._device
    return res


def suggest_memory_format(t):
    a = t._data
    if a.ndim not in (4, 5) or t._device is META:
        return _mf.contiguous_format
    return _mf.suggest(a.shape, tuple(s // a.itemsize for s in a.strides))


class Clone(Function):
    def forward(ctx, x, fmt=_mf.preserve_format):
        # torch's clone keeps the layout (preserve_format); contiguous() is a clone into C order
        if fmt is _mf.preserve_format:
            return copy_preserving(ctx.xp, x)
        if fmt is _mf.contiguous_format:
            return x.copy()
        out = empty_strided(ctx.xp, x.shape, _mf.strides(fmt, x.shape), x.dtype)
        out[...] = x
        return out

    def backward(ctx, g):
        return g


@method()
def clone(input, *, memory_format=None):
    fmt = _mf.check(memory_format, "clone", _mf.preserve_format)
    if fmt is not _mf.preserve_format and fmt is not _mf.contiguous_format:
        _mf.strides(fmt, input.shape)  # torch's rank check, before anything is recorded
    return Clone.apply(input, fmt=fmt)


@method()
def contiguous(input, memory_format=None):
    fmt = _mf.check(memory_format, "contiguous", _mf.contiguous_format)
    if input.is_contiguous(memory_format=fmt):
        return input
    if fmt is _mf.preserve_format:
        raise RuntimeError("preserve memory format is unsupported by the contiguous operator")
    _mf.strides(fmt, input.shape)
    return Clone.apply(input, fmt=fmt)


Tensor.cdouble = lambda self, memory_format=None: self.to(_dtype.complex128)
Tensor.cfloat = lambda self, memory_format=None: self.to(_dtype.complex64)
