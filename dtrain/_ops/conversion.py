"""Moving tensors between devices and dtypes; clone."""
import numpy as np

from .. import _backend, _dtype
from .._device import META, device_of
from .._tensor import Tensor
from ..autograd.graph import Function
from ._layout import copy_preserving
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

    def forward(ctx, x, device, dtype, src_device):
        ctx.src_device, ctx.src_dtype = src_device, x.dtype
        if device is None or device is src_device:
            return _astype(ctx.xp, x, dtype.np)
        return _move(x, device, dtype)

    def backward(ctx, g):
        src = ctx.src_device
        if src is not META and device_of(g) is not src:
            g = _move(g, ctx.src_device, _dtype.from_numpy_dtype(ctx.src_dtype))
        return g.astype(ctx.src_dtype, copy=False)


def to_device_dtype(t, device, dtype, copy):
    if dtype is None:
        dtype = t.dtype
    if dtype.np is None:
        raise TypeError(f"{dtype} tensors need the ml_dtypes package (pip install ml_dtypes)")
    if (device is None or device is t._device) and dtype.np == t._data.dtype and not copy:
        return t
    res = _To.apply(t, device=device, dtype=dtype, src_device=t._device)
    res._device = device or t._device
    return res


class Clone(Function):
    def forward(ctx, x, contiguous=False):
        # torch's clone keeps the layout (preserve_format); contiguous() is a clone into C order
        return x.copy() if contiguous else copy_preserving(ctx.xp, x)

    def backward(ctx, g):
        return g


@method()
def clone(input, *, memory_format=None):
    _check_memory_format(memory_format)
    return Clone.apply(input)


@method()
def contiguous(input, memory_format=None):
    _check_memory_format(memory_format)
    if input._data.flags.c_contiguous:
        return input
    return Clone.apply(input, contiguous=True)


def _check_memory_format(memory_format):
    if memory_format is not None:  # dtrain has no torch.channels_last and friends yet: nothing to pass here
        raise NotImplementedError(f"memory_format={memory_format!r} is not supported by dtrain")


Tensor.cdouble = lambda self, memory_format=None: self.to(_dtype.complex128)
Tensor.cfloat = lambda self, memory_format=None: self.to(_dtype.complex64)
