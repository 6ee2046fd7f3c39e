"""Reductions: sum, mean, prod, max/min, var/std, norm, logsumexp, cumsum, all/any, ..."""
import collections

import numpy as np

from .. import _dtype
from .._tensor import Tensor, _wrap
from ..autograd.graph import Function
from ._util import cast, method, nondiff, out_copy, to_float, wrap_dim, wrap_dims


def _expand_back(g, shape, axes, keepdim):
    """Broadcastable gradient of a reduction over `axes` back to the input's `shape`."""
    if not keepdim and axes:
        g = g.reshape([1 if i in axes else s for i, s in enumerate(shape)])
    return g


class Sum(Function):
    def forward(ctx, x, axes, keepdim, dtype=None):
        ctx.shape, ctx.axes, ctx.keepdim, ctx.dtype = x.shape, axes, keepdim, x.dtype
        return ctx.xp.sum(x, axis=axes, keepdims=keepdim, dtype=dtype)

    def backward(ctx, g):
        g = _expand_back(g, ctx.shape, ctx.axes, ctx.keepdim)
        return ctx.xp.broadcast_to(g, ctx.shape).astype(ctx.dtype, copy=False)


class Mean(Function):
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        return ctx.xp.mean(x, axis=axes, keepdims=keepdim).astype(x.dtype, copy=False)

    def backward(ctx, g):
        g = _expand_back(g, ctx.shape, ctx.axes, ctx.keepdim) / ctx.n
        return ctx.xp.broadcast_to(g.astype(g.dtype, copy=False), ctx.shape)


class Prod(Function):
    def forward(ctx, x, axis, keepdim):
        y = ctx.xp.prod(x, axis=axis, keepdims=keepdim)
        ctx.save_for_backward(x, y)
        ctx.axis, ctx.keepdim = axis, keepdim
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        xp = ctx.xp
        axes = (ctx.axis,) if ctx.axis is not None else tuple(range(x.ndim))
        g = _expand_back(g, x.shape, axes, ctx.keepdim)
        y = _expand_back(y, x.shape, axes, ctx.keepdim)
        if not (x == 0).any():
            return g * y / x
        # zeros: product of the others, computed by exclusive cumulative products from both sides
        if ctx.axis is None:
            flat = x.reshape(-1)
            left = xp.concatenate([xp.ones(1, x.dtype), xp.cumprod(flat[:-1])])
            right = xp.concatenate([xp.cumprod(flat[::-1][:-1])[::-1], xp.ones(1, x.dtype)])
            return g * (left * right).reshape(x.shape)
        ax = ctx.axis
        xm = xp.moveaxis(x, ax, -1)
        ones = xp.ones(xm.shape[:-1] + (1,), x.dtype)
        left = xp.concatenate([ones, xp.cumprod(xm[..., :-1], -1)], -1)
        right = xp.concatenate([xp.flip(xp.cumprod(xp.flip(xm[..., 1:], -1), -1), -1), ones], -1)
        return g * xp.moveaxis(left * right, -1, ax)


class MaxMin(Function):
    """amax/amin over dims; the gradient is shared evenly between tied extrema (torch's rule)."""

    def forward(ctx, x, axes, keepdim, is_max):
        y = (ctx.xp.max if is_max else ctx.xp.min)(x, axis=axes, keepdims=keepdim)
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        g = _expand_back(g, x.shape, ctx.axes, ctx.keepdim)
        y = _expand_back(y, x.shape, ctx.axes, ctx.keepdim)
        mask = x == y
        return (g * mask / mask.sum(axis=ctx.axes, keepdims=True)).astype(x.dtype, copy=False)


class MaxMinDim(Function):
    """max/min along one dim with indices; the gradient goes to the returned index."""

    def forward(ctx, x, dim, keepdim, is_max):
        xp = ctx.xp
        idx = (xp.argmax if is_max else xp.argmin)(x, axis=dim, keepdims=True)
        if x.dtype.kind == "f" and xp.isnan(x).any():  # torch propagates NaN and points at it
            nan_idx = xp.argmax(xp.isnan(x), axis=dim, keepdims=True)
            has = xp.isnan(x).any(axis=dim, keepdims=True)
            idx = xp.where(has, nan_idx, idx)
        vals = xp.take_along_axis(x, idx, axis=dim)
        ctx.shape, ctx.dim, ctx.keepdim, ctx.idx = x.shape, dim, keepdim, idx
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
    def forward(ctx, x, axes, correction, keepdim):
        xp = ctx.xp
        n = 1
        for a in axes:
            n *= x.shape[a]
        mean = x.mean(axis=axes, keepdims=True)
        d = x - mean
        ctx.save_for_backward(d)
        ctx.axes, ctx.keepdim, ctx.denom = axes, keepdim, max(n - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (xp.sum(d * d.conj(), axis=axes, keepdims=keepdim).real / ctx.denom).astype(x.real.dtype, copy=False)

    def backward(ctx, g):
        (d,) = ctx.saved
        g = _expand_back(g, d.shape, ctx.axes, ctx.keepdim)
        return (g * 2 * d / ctx.denom).astype(d.dtype, copy=False)


class Logsumexp(Function):
    def forward(ctx, x, axes, keepdim):
        xp = ctx.xp
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        y = xp.log(xp.sum(xp.exp(x - m), axis=axes, keepdims=True)) + m
        ctx.save_for_backward(x, y)
        ctx.axes, ctx.keepdim = axes, keepdim
        return y if keepdim else y.squeeze(axes)

    def backward(ctx, g):
        x, y = ctx.saved
        g = _expand_back(g, x.shape, ctx.axes, ctx.keepdim)
        return g * ctx.xp.exp(x - y)


class Cumsum(Function):
    def forward(ctx, x, dim, dtype=None):
        ctx.dim = dim
        return ctx.xp.cumsum(x, axis=dim, dtype=dtype)

    def backward(ctx, g):
        xp = ctx.xp
        return xp.flip(xp.cumsum(xp.flip(g, ctx.dim), axis=ctx.dim), ctx.dim)


class Cumprod(Function):
    def forward(ctx, x, dim):
        y = ctx.xp.cumprod(x, axis=dim)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    def backward(ctx, g):
        x, y = ctx.saved
        xp = ctx.xp
        # exact where x has no zeros; the general case goes through the reversed cumsum of g * y
        s = xp.flip(xp.cumsum(xp.flip(g * y, ctx.dim), axis=ctx.dim), ctx.dim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(x == 0, 0, s / x)


def _int_sum_dtype(input, dtype):
    if dtype is not None:
        return dtype
    if input._data.dtype.kind in "biu":
        return _dtype.int64
    return None


@method()
def sum(input, dim=None, keepdim=False, *, dtype=None, out=None):
    dt = _int_sum_dtype(input, dtype)
    x = cast(input, dt) if dt is not None and dt.np != input._data.dtype else input
    axes = wrap_dims(dim, x.ndim)
    return out_copy(Sum.apply(x, axes=axes, keepdim=keepdim), out)


@method()
def nansum(input, dim=None, keepdim=False, *, dtype=None):
    from .index import where
    return sum(where(input.isnan(), 0.0, input), dim, keepdim, dtype=dtype)


@method()
def mean(input, dim=None, keepdim=False, *, dtype=None, out=None):
    x = cast(input, dtype) if dtype is not None else input
    if not (x.is_floating_point() or x.is_complex()):
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be either a floating point or "
                           f"complex dtype. Got: {x.dtype.name.capitalize() if x.dtype.name != 'int64' else 'Long'}")
    axes = wrap_dims(dim, x.ndim)
    return out_copy(Mean.apply(x, axes=axes, keepdim=keepdim), out)


@method()
def nanmean(input, dim=None, keepdim=False, *, dtype=None):
    from .index import where
    keep = (~input.isnan()).sum(dim, keepdim)
    return nansum(input, dim, keepdim) / keep


@method()
def prod(input, dim=None, keepdim=False, *, dtype=None):
    dt = _int_sum_dtype(input, dtype)
    x = cast(input, dt) if dt is not None and dt.np != input._data.dtype else input
    if dim is None:
        return Prod.apply(x, axis=None, keepdim=False)
    return Prod.apply(x, axis=wrap_dim(dim, x.ndim), keepdim=keepdim)


_ReturnMax = collections.namedtuple("max", ["values", "indices"])
_ReturnMin = collections.namedtuple("min", ["values", "indices"])


class _RT:
    """torch.return_types-style named tuples printed as torch prints them."""


def _named(cls_name):
    base = collections.namedtuple(cls_name, ["values", "indices"])

    class R(base):
        __slots__ = ()

        def __repr__(self):
            return f"torch.return_types.{cls_name}(\nvalues={self.values!r},\nindices={self.indices!r})"
    R.__name__ = R.__qualname__ = cls_name
    return R


return_max, return_min, return_sort, return_topk, return_kthvalue, return_mode, return_median, return_cummax = (
    _named(n) for n in ("max", "min", "sort", "topk", "kthvalue", "mode", "median", "cummax"))


def _empty_reduce_check(input, name, dim=None):
    if input.numel() == 0 and (dim is None or input.shape[dim] == 0):
        raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
                         "reduction dim with the 'dim' argument." if dim is None else
                         f"{name}(): Expected reduction dim {dim} to have non-zero size.")


def _maxmin(input, dim, keepdim, other, is_max, out):
    name = "max" if is_max else "min"
    if isinstance(dim, Tensor):
        from .arith import maximum, minimum
        return (maximum if is_max else minimum)(input, dim)
    if other is not None:
        from .arith import maximum, minimum
        return (maximum if is_max else minimum)(input, other)
    if dim is None:
        _empty_reduce_check(input, name)
        return MaxMin.apply(input, axes=None, keepdim=False, is_max=is_max)
    d = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        return (return_max if is_max else return_min)(input.clone(), input.new_zeros((), dtype=_dtype.int64))
    _empty_reduce_check(input, name, d)
    v, i = MaxMinDim.apply(input, dim=d, keepdim=keepdim, is_max=is_max)
    return (return_max if is_max else return_min)(v, i)


@method()
def max(input, dim=None, keepdim=False, *, out=None, other=None):
    return _maxmin(input, dim, keepdim, other, True, out)


@method()
def min(input, dim=None, keepdim=False, *, out=None, other=None):
    return _maxmin(input, dim, keepdim, other, False, out)


@method()
def amax(input, dim=(), keepdim=False, *, out=None):
    axes = wrap_dims(dim if dim != () else None, input.ndim)
    _empty_reduce_check(input, "amax", axes[0] if len(axes) == 1 else None)
    return out_copy(MaxMin.apply(input, axes=axes, keepdim=keepdim, is_max=True), out)


@method()
def amin(input, dim=(), keepdim=False, *, out=None):
    axes = wrap_dims(dim if dim != () else None, input.ndim)
    _empty_reduce_check(input, "amin", axes[0] if len(axes) == 1 else None)
    return out_copy(MaxMin.apply(input, axes=axes, keepdim=keepdim, is_max=False), out)


def _arg(input, dim, keepdim, fn, name):
    xp = input._device.xp
    if dim is None:
        _empty_reduce_check(input, name)
        r = fn(input._data.reshape(-1))
        if keepdim:
            r = xp.asarray(r).reshape((1,) * input.ndim)
        return _wrap(xp.asarray(r, dtype=np.int64), input._device)
    d = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        return _wrap(xp.zeros((), np.int64), input._device)
    _empty_reduce_check(input, name, d)
    return _wrap(fn(input._data, axis=d, keepdims=keepdim).astype(np.int64, copy=False), input._device)


@method()
def argmax(input, dim=None, keepdim=False):
    return _arg(input, dim, keepdim, input._device.xp.argmax, "argmax")


@method()
def argmin(input, dim=None, keepdim=False):
    return _arg(input, dim, keepdim, input._device.xp.argmin, "argmin")


def _var_args(dim, unbiased, correction, name):
    if isinstance(dim, bool):  # var(x, False): the old `unbiased` positional form
        unbiased, dim = dim, None
    if correction is None:
        correction = 1 if unbiased in (None, True) else 0
    return dim, correction


@method()
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    dim, correction = _var_args(dim, unbiased, correction, "var")
    x = to_float(input)
    return out_copy(Var.apply(x, axes=wrap_dims(dim, x.ndim), correction=correction, keepdim=keepdim), out)


@method()
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, out=None):
    return out_copy(var(input, dim, unbiased, keepdim, correction=correction).sqrt(), out)


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return var(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


def std_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return std(input, dim, unbiased, keepdim, correction=correction), mean(input, dim, keepdim)


@method()
def norm(input, p="fro", dim=None, keepdim=False, dtype=None, out=None):
    x = to_float(input) if dtype is None else cast(input, dtype)
    if p in ("fro", 2, 2.0, None):
        return out_copy((x * x.conj() if x.is_complex() else x * x).sum(dim, keepdim).sqrt(), out)
    if p in ("nuc",):
        raise NotImplementedError("nuclear norm is not supported")
    if p == float("inf"):
        return out_copy(x.abs().amax(dim if dim is not None else (), keepdim), out)
    if p == float("-inf"):
        return out_copy(x.abs().amin(dim if dim is not None else (), keepdim), out)
    if p == 0:
        return out_copy((x != 0).to(x.dtype).sum(dim, keepdim), out)
    if p == 1:
        return out_copy(x.abs().sum(dim, keepdim), out)
    return out_copy(x.abs().pow(p).sum(dim, keepdim).pow(1.0 / p), out)


@method()
def logsumexp(input, dim, keepdim=False, *, out=None):
    x = to_float(input)
    return out_copy(Logsumexp.apply(x, axes=wrap_dims(dim, x.ndim), keepdim=keepdim), out)


@method()
def cumsum(input, dim, *, dtype=None, out=None):
    dt = _int_sum_dtype(input, dtype)
    x = cast(input, dt) if dt is not None and dt.np != input._data.dtype else input
    if x.ndim == 0:
        return out_copy(x.clone(), out)
    return out_copy(Cumsum.apply(x, dim=wrap_dim(dim, x.ndim)), out)


@method()
def cumprod(input, dim, *, dtype=None, out=None):
    dt = _int_sum_dtype(input, dtype)
    x = cast(input, dt) if dt is not None and dt.np != input._data.dtype else input
    if x.ndim == 0:
        return out_copy(x.clone(), out)
    return out_copy(Cumprod.apply(x, dim=wrap_dim(dim, x.ndim)), out)


Tensor.cumsum_ = lambda self, dim: __import__("dtrain")._ops.arith.assign_(self, cumsum(self, dim))


def _bool_reduce(fn_name):
    def fn(input, dim=None, keepdim=False, *, out=None):
        xp = input._device.xp
        f = getattr(xp, fn_name)
        if dim is None:
            r = f(input._data)
            return _wrap(xp.asarray(r), input._device)
        axes = wrap_dims(dim, input.ndim)
        return out_copy(_wrap(xp.asarray(f(input._data, axis=axes, keepdims=keepdim)), input._device), out)
    fn.__name__ = fn_name
    setattr(Tensor, fn_name, fn)
    return fn


all, any = _bool_reduce("all"), _bool_reduce("any")


@method()
def count_nonzero(input, dim=None):
    xp = input._device.xp
    axes = None if dim is None else wrap_dims(dim, input.ndim)
    return _wrap(xp.asarray(xp.count_nonzero(input._data, axis=axes), dtype=np.int64), input._device)


def aminmax(input, *, dim=None, keepdim=False):
    return collections.namedtuple("aminmax", ["min", "max"])(amin(input, dim if dim is not None else (), keepdim),
                                                             amax(input, dim if dim is not None else (), keepdim))
