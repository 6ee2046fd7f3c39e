"""softmax / log_softmax, and the fused cross-entropy used by nn.functional."""
import numpy as np

from .. import _cpu_kernels, _cuda_kernels, _dtype
from .._tensor import Tensor
from ..autograd.graph import Function
from ._layout import c_ordered
from ._lowp import widened
from ._util import cast, method, wrap_dim
from ..amp._dispatch import autocast_op


def _fused(dim, *arrays):
    """The compiled kernels when they fit: the last dim of float32/float64 arrays that are not empty (NumPy's:
    the numba kernels; CuPy's: the CUDA kernels)."""
    a = arrays[0]
    return (_cpu_kernels.get(*arrays) or _cuda_kernels.get(*arrays)) if dim == a.ndim - 1 and a.size else None


class Softmax(Function):
    @c_ordered  # torch writes a contiguous result whatever the input's layout
    @widened
    def forward(ctx, x, dim):
        xp = ctx.xp
        ctx.dim = dim
        if x.ndim == 0:  # NumPy reduces a 0-d array to a scalar: one element, given back 0-d (not a view)
            y = Softmax.forward(ctx, x.reshape(1), 0).reshape(())
            ctx.save_for_backward(y)
            return y
        if x.size == 0:  # (NumPy's max has no identity)
            y = x.copy()
            ctx.save_for_backward(y)
            return y
        fused = _fused(dim, x)
        if fused is not None:
            y = fused.softmax(x)
            ctx.save_for_backward(y)
            return y
        e = x - x.max(axis=dim, keepdims=True)
        xp.exp(e, out=e)
        e /= e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(e)
        ctx.dim = dim
        return e

    @widened
    def backward(ctx, g):
        (y,) = ctx.saved
        if y.ndim == 0:
            y, g = y.reshape(1), g.reshape(1)
            return (g * y - y * (g * y).sum(keepdims=True)).reshape(())
        fused = _fused(ctx.dim, g, y) if g.shape == y.shape else None
        if fused is not None:
            return fused.softmax_backward(g, y)
        gy = g * y
        gy -= y * gy.sum(axis=ctx.dim, keepdims=True)
        return gy


class LogSoftmax(Function):
    @c_ordered  # torch writes a contiguous result whatever the input's layout
    @widened
    def forward(ctx, x, dim):
        xp = ctx.xp
        ctx.dim = dim
        if x.ndim == 0 or x.size == 0:  # as Softmax's
            z = LogSoftmax.forward(ctx, x.reshape(1), 0).reshape(()) if x.ndim == 0 else x.copy()
            ctx.save_for_backward(z)
            return z
        fused = _fused(dim, x)
        if fused is not None:
            z = fused.log_softmax(x)
            ctx.save_for_backward(z)
            return z
        z = x - x.max(axis=dim, keepdims=True)
        z -= xp.log(xp.exp(z).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(z)
        ctx.dim = dim
        return z

    @widened
    def backward(ctx, g):
        (z,) = ctx.saved
        if z.ndim == 0:
            z, g = z.reshape(1), g.reshape(1)
            return (g - ctx.xp.exp(z) * g.sum(keepdims=True)).reshape(())
        fused = _fused(ctx.dim, g, z) if g.shape == z.shape else None
        if fused is not None:
            return fused.log_softmax_backward(g, z)
        return g - ctx.xp.exp(z) * g.sum(axis=ctx.dim, keepdims=True)


def _softmax(cls, input, dim, dtype, name):
    if dim is None:
        # torch's legacy implicit dim
        dim = 0 if input.ndim in (0, 1, 3) else 1
    x = cast(input, dtype) if dtype is not None and dtype.np != input._data.dtype else input
    if not (x.is_floating_point() or x.is_complex()):
        if x.numel() == 0:  # torch runs no kernel over no elements, so nothing refuses the dtype
            return x.clone()
        kernel = "lastdim_kernel_impl" if wrap_dim(dim, x.ndim) == x.ndim - 1 or x.ndim == 0 else "kernel_impl"
        raise NotImplementedError(f"\"{name}_{kernel}\" not implemented for '{_dtype.scalar_name(x.dtype)}'")
    d = wrap_dim(dim, x.ndim)
    return cls.apply(x, dim=d)


@method()
@autocast_op("softmax")
def softmax(input, dim=None, dtype=None, *, _stacklevel=3):
    """Numerically stable softmax along `dim` (computed in `dtype` when given)."""
    return _softmax(Softmax, input, dim, dtype, "softmax")


@method()
@autocast_op("log_softmax")
def log_softmax(input, dim=None, dtype=None, *, _stacklevel=3):
    """Numerically stable log-softmax along `dim` (computed in `dtype` when given)."""
    return _softmax(LogSoftmax, input, dim, dtype, "log_softmax")


class CrossEntropyIndices(Function):
    """Mean/sum/none cross-entropy of logits (N, C) against class indices (N,) in one op.

    NOTE: fused (log_softmax + nll) for speed: one pass forward, `softmax - onehot` backward."""
    _grad_fn_name = "NllLossBackward0"  # torch's top node: nll_loss over log_softmax
    _aten = "aten::cross_entropy_loss"  # the profiler's name: torch's op

    @widened
    def forward(ctx, x, target, weight=None, *, reduction, ignore_index, label_smoothing=0.0):
        xp = ctx.xp
        n, c = x.shape
        ctx.reduction = reduction
        fused = _fused(1, x)
        if fused is not None:
            # z = log_softmax(x), a new array as torch's: x itself may change before backward
            loss, w_t, z = fused.cross_entropy(x, target, weight, ignore_index, label_smoothing)
            ctx.save_for_backward(z)
            ctx.fused = (fused, target, weight, w_t, ignore_index, label_smoothing)
            if reduction == "none":
                return loss.astype(x.dtype)
            if reduction == "sum":
                return xp.asarray(loss.sum(), dtype=x.dtype)
            ctx.denom = w_t.sum()
            with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: NaN, as torch's
                return xp.asarray(loss.sum() / ctx.denom, dtype=x.dtype)
        ctx.fused = None
        z = x - x.max(axis=1, keepdims=True)
        lse = xp.log(xp.exp(z).sum(axis=1, keepdims=True))
        z -= lse  # log-probabilities
        valid = target != ignore_index
        safe_t = xp.where(valid, target, 0)
        rows = xp.arange(n)
        w_t = weight[safe_t] * valid if weight is not None else valid.astype(x.dtype)
        nll = -z[rows, safe_t] * w_t
        if label_smoothing:
            smooth = -(z * weight).sum(axis=1) if weight is not None else -z.sum(axis=1)
            smooth = smooth * valid
            loss = (1 - label_smoothing) * nll + (label_smoothing / c) * smooth
        else:
            loss = nll
        ctx.save_for_backward(z)
        ctx.t, ctx.valid, ctx.w_t, ctx.weight, ctx.ls = safe_t, valid, w_t, weight, label_smoothing
        if reduction == "none":
            return loss.astype(x.dtype, copy=False)
        if reduction == "sum":
            return xp.asarray(loss.sum(), dtype=x.dtype)
        ctx.denom = w_t.sum()
        return xp.asarray(loss.sum() / ctx.denom, dtype=x.dtype)

    @widened
    def backward(ctx, g, *_):
        xp = ctx.xp
        if ctx.fused is not None:
            (z,) = ctx.saved
            fused, target, weight, w_t, ignore_index, ls = ctx.fused
            if ctx.reduction == "none":
                scale = g
            else:
                with np.errstate(invalid="ignore", divide="ignore"):  # g / denom in float64, on g's device
                    scale = xp.divide(g, ctx.denom if ctx.reduction == "mean" else 1.0, dtype=np.float64)
                scale = xp.full(z.shape[:1], scale, dtype=np.float64)  # one per row, contiguous as the kernels read it
            return fused.cross_entropy_backward(z, target, weight, w_t, scale, ignore_index, ls), None, None
        (z,) = ctx.saved
        n, c = z.shape
        p = xp.exp(z)  # softmax, recovered from the saved log-probabilities
        rows = xp.arange(n)
        ls = ctx.ls
        if ctx.reduction == "none":
            scale = g[:, None]
        elif ctx.reduction == "sum":
            scale = g
        else:
            scale = g / ctx.denom
        # d/dz of (1-ls)*w_t*nll + ls/c * sum_k w_k * (-z_k)
        grad = p * ctx.w_t[:, None] * (1 - ls)
        grad[rows, ctx.t] -= ctx.w_t * (1 - ls)
        if ls:
            wsum = ctx.weight.sum() if ctx.weight is not None else c
            wk = ctx.weight[None, :] if ctx.weight is not None else 1.0
            grad += (ls / c) * (p * wsum - wk) * ctx.valid[:, None]
        grad *= scale
        return grad.astype(z.dtype, copy=False), None, None


def cross_entropy_indices(input, target, reduction="mean", ignore_index=-100, weight=None, label_smoothing=0.0):
    if weight is None:
        return CrossEntropyIndices.apply(input, target, reduction=reduction, ignore_index=ignore_index,
                                         label_smoothing=label_smoothing)
    return CrossEntropyIndices.apply(input, target, weight, reduction=reduction, ignore_index=ignore_index,
                                     label_smoothing=label_smoothing)
