"""Helpers shared by the op files: scalar operands, dtype promotion, broadcasting's backward, dims."""
import functools

import numpy as np

from .. import _backend, _dtype
from .._device import CPU, resolve
from .._tensor import Tensor, _wrap


def unbroadcast(g, shape):
    """Sum `g` down to `shape`: the backward of numpy broadcasting, in one place for every op."""
    if g.shape == shape:
        return g
    nd = g.ndim - len(shape)
    if nd:
        g = g.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g


def scalar_tensor(value, dtype, device):
    return _wrap(scalar_array(value, dtype.np, device), device)


def scalar_array(value, np_dtype, device, _on_device=False):
    """A 0-d array of `value` made on `device` (not on whichever CUDA device is current)."""
    if device._gpu is not None and not _on_device:
        with _backend.on_device(device):
            return scalar_array(value, np_dtype, device, True)
    try:
        return device.xp.asarray(value, dtype=np_dtype)
    except OverflowError:  # torch wraps out-of-range integers (uint8 tensor - 1 → 255)
        return device.xp.asarray(value).astype(np_dtype)


def device_array(value, device, np_dtype=None):
    """`value` (host data or a scalar) as an array on `device`: made there, not on whichever CUDA device is
    current (CuPy's asarray, zeros, arange, ... allocate on the current one)."""
    if device._gpu is None:
        return device.xp.asarray(value, dtype=np_dtype)
    with _backend.on_device(device):
        return device.xp.asarray(value, dtype=np_dtype)


def promote(*operands):
    """Tensors cast to the common torch result type; Python scalars become 0-d tensors of it."""
    dt = _dtype.result_type_of(operands)
    dev = None
    for o in operands:
        if isinstance(o, Tensor) and (dev is None or o._data.ndim):
            dev = o._device
    out = []
    for o in operands:
        if isinstance(o, Tensor):
            out.append(o if o._data.dtype == dt.np else cast(o, dt))
        else:
            out.append(scalar_tensor(o, dt, dev or CPU))
    return out, dt


HOLDS_INDICES = ("the indices",)  # saved by a node that keeps only indices or a mask: nothing to check, but
# freed by a backward like any saved state, so a second backward without retain_graph raises, as torch's


def shape_only(xp, shape, dtype):
    """An array of `shape` and `dtype` holding no memory (one zero, broadcast): saved in the place of an operand
    a backward does not read, for the code that reads the saved operands' shapes."""
    return xp.broadcast_to(xp.zeros((), dtype), shape)


def cast(t, dt):
    from .conversion import to_device_dtype
    return to_device_dtype(t, None, dt, False)


def check_tensor(x, name="input", fn=None):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn + '(): ' if fn else ''}argument '{name}' must be Tensor, not {type(x).__name__}")


def wrap_dim(dim, ndim):
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if dim < lo or dim > hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return int(dim) % ndim if ndim else 0


def wrap_dims(dim, ndim):
    """None → all dims; int or sequence → a sorted tuple of non-negative dims."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (int, np.integer)):
        return (wrap_dim(dim, ndim),)
    dims = tuple(wrap_dim(d, ndim) for d in dim)
    if len(set(dims)) != len(dims):
        dup = next(d for i, d in enumerate(dims) if d in dims[:i])
        raise RuntimeError(f"dim {dup} appears multiple times in the list of dims")
    return tuple(sorted(dims)) if dims else tuple(range(ndim))


def on_input_device(fn):
    """Decorates an op that computes on arrays outside Function.apply (checks, index arithmetic, sorting):
    it runs with its first argument's CUDA device current, as Function.apply runs a forward. Not for the
    hottest ops (a call layer); those check inline."""
    @functools.wraps(fn)
    def op(*args, **kwargs):
        dev = getattr(args[0], "_device", None) if args else None
        if dev is None or dev._gpu is None:
            return fn(*args, **kwargs)
        with _backend.on_device(dev):
            return fn(*args, **kwargs)
    return op


def nondiff(fn, *tensors):
    """Run a non-differentiable array function on tensors (same-device check included)."""
    dev = tensors[0]._device
    for t in tensors[1:]:
        if t._device is not dev:
            from ..autograd.graph import _check_devices
            dev = _check_devices(type(fn), tensors)
    if dev._gpu is None:
        return _wrap(fn(*(t._data if t._device is dev else dev.xp.asarray(t._data) for t in tensors)), dev)
    with _backend.on_device(dev):  # array code outside Function.apply: the device made current here too
        return _wrap(fn(*(t._data if t._device is dev else dev.xp.asarray(t._data) for t in tensors)), dev)


def method(*names):
    """Attach a function as Tensor method(s)."""
    def deco(fn):
        for n in names or (fn.__name__,):
            setattr(Tensor, n, fn)
        return fn
    return deco


def to_float(t):
    """Integer and bool tensors become the default float dtype (torch's rule for exp, log, sqrt, ...)."""
    if t._data.dtype.kind in "biu":
        return cast(t, _dtype.get_default_dtype())
    return t


def out_copy(result, out):
    """Write `result` into `out=` as torch does (resizing an empty or differently-shaped out)."""
    if out is None:
        return result
    if out._requires_grad and result._requires_grad:
        raise RuntimeError("functions with out=... arguments don't support automatic differentiation, but one of "
                           "the arguments requires grad.")
    if out._device != result._device:
        raise RuntimeError(f"Expected out tensor to have device {result._device}, but got {out._device} instead")
    if out._device._gpu is not None:
        with _backend.on_device(out._device):
            _write_out(out, result)
    else:
        _write_out(out, result)
    out._vc.value += 1
    return out


def _write_out(out, result):
    if out.shape != result.shape:
        out._data = out._device.xp.empty(result._data.shape, dtype=out._data.dtype)
    out._device.xp.copyto(out._data, result._data, casting="unsafe")


def normalize_shape(shape):
    """(2, 3), ((2, 3),), ([2, 3],), (Size,) → a tuple of ints."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = []
    for s in shape:
        if isinstance(s, Tensor):
            s = int(s.item())
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"expected a sequence of integers or a single integer, got {shape!r}")
        out.append(int(s))
    return tuple(out)
