"""Reductions: sum, mean, prod, max/min, var/std, norm, logsumexp, cumsum, all/any, ..."""
import builtins
import collections
import warnings

import numpy as np

from .. import _dtype
from .._tensor import Tensor, _wrap
from ..autograd import graph as _graph
from ..autograd.graph import Function
from ._lowp import widened
from ._layout import c_order, c_ordered
from ._util import (HOLDS_INDICES, cast, device_array, method, on_input_device, out_copy, shape_only, to_float, wrap_dim,
                    wrap_dims)
from ..amp._dispatch import autocast_op


def _axes(dim, x):
    """numpy axes of a reduction over `dim` (None, int or sequence; torch's () means all) of tensor `x`."""
    axes = wrap_dims(dim, x.ndim)
    return axes if x.ndim else ()  # a 0-d tensor accepts dim 0 / -1; numpy wants no axis


def _expand_back(g, shape, axes, keepdim):
    """Broadcastable gradient of a reduction over `axes` back to the input's `shape`."""
    if not keepdim and axes:
        g = g.reshape([1 if i in axes else s for i, s in enumerate(shape)])
    return g


def _numel(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Sum(Function):
    @c_ordered
    @widened
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @widened
    def backward(ctx, g):
        return ctx.xp.broadcast_to(_expand_back(g, ctx.shape, ctx.axes, ctx.keepdim), ctx.shape)


class Mean(Function):
    @c_ordered
    @widened
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.n = _numel(x.shape, axes)
        with np.errstate(invalid="ignore", divide="ignore"):  # the mean of nothing is nan, silently
            if ctx.n == 0:  # 0 / 0 (np.mean would warn "Mean of empty slice" whatever the error state)
                return (x.sum(axis=axes, keepdims=keepdim) / 0).astype(x.dtype, copy=False)
            return x.mean(axis=axes, keepdims=keepdim).astype(x.dtype, copy=False)

    @widened
    def backward(ctx, g):
        g = _expand_back(g, ctx.shape, ctx.axes, ctx.keepdim) / ctx.n
        return ctx.xp.broadcast_to(g, ctx.shape)


def _exclusive_prod(xm, xp):
    """Product of all other elements along the last axis, exact where some are zero."""
    ones = xp.ones(xm.shape[:-1] + (1,), xm.dtype)
    left = xp.concatenate([ones, xp.cumprod(xm[..., :-1], -1)], -1)
    right = xp.concatenate([xp.flip(xp.cumprod(xp.flip(xm[..., 1:], -1), -1), -1), ones], -1)
    return left * right


class Prod(Function):
    @c_ordered
    def forward(ctx, x, axis, keepdim):
        y = x.prod(axis=axis, keepdims=keepdim)
        ctx.save_for_backward(x, y)
        ctx.axis, ctx.keepdim = axis, keepdim
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        xp = ctx.xp
        axes = (ctx.axis,) if ctx.axis is not None else tuple(range(x.ndim))
        g = _expand_back(g, x.shape, axes, ctx.keepdim)
        if x.size == 0:
            return xp.zeros(x.shape, x.dtype)
        if not (x == 0).any():
            others = _expand_back(y, x.shape, axes, ctx.keepdim) / x
        elif ctx.axis is None:  # zeros: the product of the others, from cumulative products on both sides
            others = _exclusive_prod(x.reshape(-1), xp).reshape(x.shape)
        else:
            others = xp.moveaxis(_exclusive_prod(xp.moveaxis(x, ctx.axis, -1), xp), -1, ctx.axis)
        return g * (others.conj() if x.dtype.kind == "c" else others)  # torch's convention: g * conj(df/dx)


class MaxMin(Function):
    """amax/amin over dims; the gradient is shared evenly between tied extrema (torch's rule)."""

    @c_ordered
    def forward(ctx, x, axes, keepdim, is_max):
        y = x.max(axis=axes, keepdims=keepdim) if is_max else x.min(axis=axes, keepdims=keepdim)
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        g = _expand_back(g, x.shape, ctx.axes, ctx.keepdim)
        mask = x == _expand_back(y, x.shape, ctx.axes, ctx.keepdim)
        return (g * mask / mask.sum(axis=ctx.axes, keepdims=True)).astype(x.dtype, copy=False)


class MaxMinDim(Function):
    """max/min along one dim with indices; the gradient goes to the returned index."""

    @c_ordered
    def forward(ctx, x, dim, keepdim, is_max):
        xp = ctx.xp
        idx = (xp.argmax if is_max else xp.argmin)(x, axis=dim, keepdims=True)
        vals = xp.take_along_axis(x, idx, axis=dim)
        ctx.shape, ctx.dim, ctx.keepdim, ctx.idx = x.shape, dim, keepdim, idx
        ctx.save_for_backward(HOLDS_INDICES)  # torch's MaxBackward0 saves them: freed by a backward
        ctx.mark_non_differentiable(1)
        if not keepdim:
            vals, idx = vals.squeeze(dim), idx.squeeze(dim)
        return vals, idx.astype(np.int64, copy=False)

    def backward(ctx, g, _):
        xp = ctx.xp
        out = xp.zeros(ctx.shape, g.dtype)
        if not ctx.keepdim:
            g = xp.expand_dims(g, ctx.dim)
        xp.put_along_axis(out, ctx.idx, g, axis=ctx.dim)
        return out


class Var(Function):
    """var (or, with `sqrt`, std) over `axes` with torch's `correction`."""

    @c_ordered
    @widened
    def forward(ctx, x, axes, correction, keepdim, sqrt=False):
        xp = ctx.xp
        ctx.axes, ctx.keepdim, ctx.sqrt = axes, keepdim, sqrt
        ctx.denom = builtins.max(_numel(x.shape, axes) - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):  # n <= correction gives inf/nan as in torch
            # the mean as sum / n: np.mean warns "Mean of empty slice" whatever the error state
            d = x - x.sum(axis=axes, keepdims=True) / _numel(x.shape, axes)
            y = xp.sum(d * d, axis=axes, keepdims=keepdim) / ctx.denom
            if sqrt:
                y = xp.sqrt(y)
        y = y.astype(x.dtype, copy=False)
        # the result only for std's gradient, as torch's VarBackward0 saves none (writing into a variance is
        # legal there); a stand-in of its shape and dtype (no memory) keeps the saved tuple's form
        ctx.save_for_backward(d, y if sqrt else shape_only(xp, y.shape, y.dtype))
        return y

    @widened
    def backward(ctx, g):
        d, y = ctx.saved
        g = _expand_back(g, d.shape, ctx.axes, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.sqrt:  # d std = d var / (2 std); torch makes it 0 where std is 0
                y = _expand_back(y, d.shape, ctx.axes, ctx.keepdim)
                g = ctx.xp.where(y == 0, 0, g / (2 * y))
            return (g * (2.0 / ctx.denom if ctx.denom else np.inf) * d).astype(d.dtype, copy=False)


class Norm(Function):
    """The p-norm over `axes` for finite p (torch's zero gradient where the norm is 0; p = 0 counts nonzeros)."""
    _grad_fn_name = "LinalgVectorNormBackward0"  # torch's norm is linalg.vector_norm

    @c_ordered
    @widened
    def forward(ctx, x, axes, keepdim, p):
        xp = ctx.xp
        a = xp.abs(x)
        if p == 2:
            y = xp.sqrt(xp.sum(a * a, axis=axes, keepdims=keepdim))
        elif p == 0:
            y = xp.sum(x != 0, axis=axes, keepdims=keepdim)
        elif p == 1:
            y = xp.sum(a, axis=axes, keepdims=keepdim)
        else:
            y = xp.sum(a ** p, axis=axes, keepdims=keepdim) ** (1.0 / p)
        y = y.astype(x.dtype, copy=False)
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim, ctx.p = axes, keepdim, p
        return y

    @widened
    def backward(ctx, g):
        x, y = ctx.saved
        xp, p = ctx.xp, ctx.p
        if p == 0:
            return xp.zeros(x.shape, x.dtype)
        g = _expand_back(g, x.shape, ctx.axes, ctx.keepdim)
        if p == 1:
            return (g * xp.sign(x)).astype(x.dtype, copy=False)
        y = _expand_back(y, x.shape, ctx.axes, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                scale = x / y
            else:  # sgn(x) |x|^(p-1) / y^(p-1), written to stay finite at x == 0 for p < 2
                scale = xp.sign(x) * xp.abs(x) ** (p - 1) / y ** (p - 1)
        return xp.where(y == 0, 0, g * scale).astype(x.dtype, copy=False)


# torch's names for the overloads with a dim: sum(x) is SumBackward0, sum(x, 1) SumBackward1
_SumDim, _MeanDim = Sum.named("SumBackward1"), Mean.named("MeanBackward1")
_Std = Var.named("StdBackward0")


class Logsumexp(Function):
    @c_ordered
    @widened
    def forward(ctx, x, axes, keepdim):
        xp = ctx.xp
        if x.size:
            m = x.max(axis=axes, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0)
        else:
            m = xp.zeros((1,) * x.ndim, x.dtype)
        with np.errstate(divide="ignore"):  # log(0) = -inf, as torch
            y = xp.log(xp.sum(xp.exp(x - m), axis=axes, keepdims=True)) + m
        out = y if keepdim else y.reshape([s for i, s in enumerate(x.shape) if i not in axes])
        # the result itself, as torch's LogsumexpBackward0 saves it: a later write into it must be caught
        ctx.save_for_backward(x, out)
        ctx.axes, ctx.keepdim = axes, keepdim
        return out

    @widened
    def backward(ctx, g):
        x, y = ctx.saved
        y = _expand_back(y, x.shape, ctx.axes, ctx.keepdim)
        g = _expand_back(g, x.shape, ctx.axes, ctx.keepdim)
        with np.errstate(invalid="ignore"):
            return g * ctx.xp.exp(x - y)


def _revcumsum(a, dim, xp):
    return xp.flip(xp.cumsum(xp.flip(a, dim), axis=dim), dim)


class Cumsum(Function):
    @c_ordered
    @widened
    def forward(ctx, x, dim):
        ctx.dim = dim
        return ctx.xp.cumsum(x, axis=dim)

    @widened
    def backward(ctx, g):
        return _revcumsum(g, ctx.dim, ctx.xp)


class Cumprod(Function):
    @c_ordered
    @widened
    def forward(ctx, x, dim):
        y = ctx.xp.cumprod(x, axis=dim)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    @widened
    def backward(ctx, g):
        x, y = ctx.saved
        xp, dim = ctx.xp, ctx.dim
        # grad_i = sum_{j >= i} g_j y_j / x_i, exact before the first zero of x (y_j is 0 from there on)
        zero = x == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            gx = xp.where(zero, 0, _revcumsum(g * y, dim, xp) / x)
        if zero.any():  # at the first zero: the same sum with that zero replaced by one
            first = zero & (xp.cumsum(zero, axis=dim) == 1)
            y1 = xp.cumprod(xp.where(first, 1, x), axis=dim)
            gx = xp.where(first, _revcumsum(g * y1, dim, xp), gx)
        return gx


def _int_sum_dtype(input, dtype):
    """torch sums integers and bools as int64 unless a dtype is given."""
    if dtype is not None:
        return dtype
    if input._data.dtype.kind in "biu":
        return _dtype.int64
    return None


def _as(input, dtype):
    return cast(input, dtype) if dtype is not None and dtype.np != input._data.dtype else input


@method()
@autocast_op("sum")
def sum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    x = _as(input, _int_sum_dtype(input, dtype))
    return out_copy((Sum if dim is None else _SumDim).apply(x, axes=_axes(dim, x), keepdim=keepdim), out)


@method()
def nansum(input, dim=None, keepdim=False, *, dtype=None):
    from .index import where
    return sum(where(input.isnan(), 0.0, input), dim, keepdim, dtype=dtype)


@method()
def mean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    x = _as(input, dtype)
    if not (x.is_floating_point() or x.is_complex()):
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
                           f"complex dtype. Got: {_dtype.scalar_name(x.dtype)}")
    return out_copy((Mean if dim is None else _MeanDim).apply(x, axes=_axes(dim, x), keepdim=keepdim), out)


@method()
def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    keep = (~input.isnan()).sum(dim, keepdim)
    return nansum(input, dim, keepdim) / keep


@method()
@autocast_op("prod")
def prod(input, dim=None, keepdim=False, *, dtype=None):
    x = _as(input, _int_sum_dtype(input, dtype))
    if dim is None:
        return Prod.apply(x, axis=None, keepdim=False)
    d = wrap_dim(dim, x.ndim)
    return Prod.named("ProdBackward1").apply(x, axis=d if x.ndim else None, keepdim=keepdim)


def _named(cls_name, fields=("values", "indices")):
    """A torch.return_types-style named tuple that prints as torch's."""
    base = collections.namedtuple(cls_name, fields)

    class R(base):
        __slots__ = ()

        def __repr__(self):
            body = ",\n".join(f"{f}={v!r}" for f, v in zip(fields, self))
            return f"torch.return_types.{cls_name}(\n{body})"
    R.__name__ = R.__qualname__ = cls_name
    return R


return_max, return_min, return_sort, return_topk, return_kthvalue, return_mode, return_median, return_cummax = (
    _named(n) for n in ("max", "min", "sort", "topk", "kthvalue", "mode", "median", "cummax"))
return_aminmax = _named("aminmax", ("min", "max"))


def _check_nonempty(input, name, axes=None):
    """torch's errors for max/min/argmax over nothing: no dim given, or a dim of size zero."""
    if input._data.size:
        return
    if axes is None:
        err = IndexError if name.startswith("arg") else RuntimeError
        tail = "" if err is IndexError else " Specify the reduction dim with the 'dim' argument."
        raise err(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.{tail}")
    for a in axes:
        if input.shape[a] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {a} to have non-zero size.")


def _maxmin(input, dim, keepdim, other, is_max):
    if isinstance(dim, Tensor) or other is not None:  # torch.max(a, b): elementwise
        from .arith import maximum, minimum
        return (maximum if is_max else minimum)(input, dim if other is None else other)
    name = "max" if is_max else "min"
    if dim is None:
        _check_nonempty(input, name)
        return MaxMin.named("MaxBackward1" if is_max else "MinBackward1").apply(input, axes=None, keepdim=False,
                                                                                is_max=is_max)
    d = wrap_dim(dim, input.ndim)
    ret = return_max if is_max else return_min
    if input.ndim == 0:
        return ret(input.clone(), _wrap(device_array(0, input._device, np.int64), input._device))
    _check_nonempty(input, name, (d,))
    return ret(*MaxMinDim.named("MaxBackward0" if is_max else "MinBackward0").apply(input, dim=d, keepdim=keepdim,
                                                                                   is_max=is_max))


@method()
def max(input, dim=None, keepdim=False, *, out=None, other=None):
    """max over everything, (values, indices) along `dim`, or elementwise max(input, other)."""
    r = _maxmin(input, dim, keepdim, other, True)
    return r if out is None else ret_out(r, out)


@method()
def min(input, dim=None, keepdim=False, *, out=None, other=None):
    """min over everything, (values, indices) along `dim`, or elementwise min(input, other)."""
    r = _maxmin(input, dim, keepdim, other, False)
    return r if out is None else ret_out(r, out)


def ret_out(r, out):
    if isinstance(r, tuple):
        return type(r)(*(out_copy(a, o) for a, o in zip(r, out)))
    return out_copy(r, out)


def _amaxmin(input, dim, keepdim, out, is_max):
    name = "amax" if is_max else "amin"
    axes = _axes(dim, input)
    _check_nonempty(input, name, axes if dim not in ((), None) and input.ndim else None)
    return out_copy(MaxMin.named("AmaxBackward0" if is_max else "AminBackward0").apply(
        input, axes=axes, keepdim=keepdim, is_max=is_max), out)


@method()
def amax(input, dim=(), keepdim=False, *, out=None):
    return _amaxmin(input, dim, keepdim, out, True)


@method()
def amin(input, dim=(), keepdim=False, *, out=None):
    return _amaxmin(input, dim, keepdim, out, False)


@on_input_device
def _arg(input, dim, keepdim, is_max):
    name = "argmax" if is_max else "argmin"
    if input._data.dtype.kind == "b":
        raise RuntimeError(f"{name}(): does not support bool input")
    xp = input._device.xp
    fn = xp.argmax if is_max else xp.argmin
    if dim is None:
        _check_nonempty(input, name)
        r = xp.asarray(fn(input._data.reshape(-1)), dtype=np.int64)
        return _wrap(r.reshape((1,) * input.ndim) if keepdim else r, input._device)
    d = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        return _wrap(xp.zeros((), np.int64), input._device)
    _check_nonempty(input, name, (d,))
    return _wrap(c_order(fn(input._data, axis=d, keepdims=keepdim).astype(np.int64, copy=False)), input._device)


@method()
def argmax(input, dim=None, keepdim=False):
    return _arg(input, dim, keepdim, True)


@method()
def argmin(input, dim=None, keepdim=False):
    return _arg(input, dim, keepdim, False)


def _var(input, dim, unbiased, keepdim, correction, sqrt):
    if isinstance(dim, bool):  # var(x, False): the old positional `unbiased`
        unbiased, dim = dim, None
    if correction is None:
        correction = 0 if unbiased is False else 1
    if not (input.is_floating_point() or input.is_complex()):
        raise RuntimeError("std and var only support floating point and complex dtypes")
    axes = _axes(dim, input)
    if _numel(input.shape, axes) - correction <= 0:
        warnings.warn(f"{'std' if sqrt else 'var'}(): degrees of freedom is <= 0. Correction should be strictly less "
                      f"than the reduction factor (input numel divided by output numel).", stacklevel=3)
    return (_Std if sqrt else Var).apply(input, axes=axes, correction=correction, keepdim=keepdim, sqrt=sqrt)


@method()
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    """Variance over `dim` with `correction` (default 1; the old `unbiased=False` means 0)."""
    return out_copy(_var(input, dim, unbiased, keepdim, correction, False), out)


@method()
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    """Standard deviation over `dim` with `correction` (default 1; the old `unbiased=False` means 0)."""
    return out_copy(_var(input, dim, unbiased, keepdim, correction, True), out)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, bool):
        unbiased, dim = dim, None
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


@method()
@autocast_op("norm")
def norm(input, p="fro", dim=None, keepdim=False, out=None, dtype=None):
    """Vector p-norm over `dim` (all elements by default); 'fro' is the 2-norm."""
    x = _as(input, dtype)
    if not (x.is_floating_point() or x.is_complex()):
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. "
                           f"Got {_dtype.scalar_name(x.dtype)}")
    if p == "nuc":
        raise NotImplementedError("nuclear norm is not supported")
    if p in ("fro", None):
        p = 2
    axes = _axes(dim, x)
    if p == float("inf") or p == float("-inf"):
        r = _graph.renamed(MaxMin.apply(x.abs(), axes=axes, keepdim=keepdim, is_max=p > 0) if x._data.size else
                           sum(x.abs(), dim, keepdim), "LinalgVectorNormBackward0")
    else:
        r = Norm.apply(x, axes=axes, keepdim=keepdim, p=float(p))
    return out_copy(r, out)


@method()
@autocast_op("logsumexp")
def logsumexp(input, dim, keepdim=False, *, out=None):
    x = to_float(input)
    return out_copy(Logsumexp.apply(x, axes=_axes(dim, x), keepdim=keepdim), out)


def _cumulative(cls, input, dim, dtype, out):
    x = _as(input, _int_sum_dtype(input, dtype))
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        return out_copy(x.clone(), out)
    return out_copy(cls.apply(x, dim=d), out)


@method()
@autocast_op("cumsum")
def cumsum(input, dim, *, dtype=None, out=None):
    return _cumulative(Cumsum, input, dim, dtype, out)


@method()
@autocast_op("cumprod")
def cumprod(input, dim, *, dtype=None, out=None):
    return _cumulative(Cumprod, input, dim, dtype, out)


Tensor.cumsum_ = lambda self, dim, *, dtype=None: _assign(self, cumsum(self, dim, dtype=dtype))
Tensor.cumprod_ = lambda self, dim, *, dtype=None: _assign(self, cumprod(self, dim, dtype=dtype))


def _assign(t, result):
    from .arith import assign_
    return assign_(t, result)


def _bool_reduce(fn_name):
    @on_input_device
    def fn(input, dim=None, keepdim=False, *, out=None):
        xp = input._device.xp
        r = getattr(xp, fn_name)(input._data, axis=_axes(dim, input), keepdims=keepdim)
        if input._data.dtype == np.uint8:  # torch keeps uint8 for uint8 input
            r = r.astype(np.uint8)
        return out_copy(_wrap(c_order(xp.asarray(r)), input._device), out)
    fn.__name__ = fn_name
    setattr(Tensor, fn_name, fn)
    return fn


all, any = _bool_reduce("all"), _bool_reduce("any")


@method()
@on_input_device
def count_nonzero(input, dim=None):
    xp = input._device.xp
    axes = None if dim is None else _axes(dim, input)
    return _wrap(c_order(xp.asarray(xp.count_nonzero(input._data, axis=axes), dtype=np.int64)), input._device)


@method()
def aminmax(input, *, dim=None, keepdim=False):
    d = dim if dim is not None else ()
    return return_aminmax(amin(input, d, keepdim), amax(input, d, keepdim))
