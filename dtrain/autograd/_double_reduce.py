"""Double-backward formulas (see dtrain.autograd._double) for reductions, scans and cross-entropy, written with
the helpers of dtrain.autograd._double_math."""
import math

import numpy as np

from . import graph
from .._ops.reduce import _expand_back
from ._double import const, formula
from ._double_math import _in, _out, _unreduce, _where


# ------------------------------------------------------------------------------------- reductions and scans
def _flip(t, dim):
    """t reversed along `dim`, as a recorded strided map (flip's own node is another family's; this one is its
    own adjoint, so it differentiates to any order)."""
    from ._double import _c_where, _strided
    shape = tuple(t.shape)
    n = math.prod(shape)
    if n == 0 or shape[dim] <= 1:
        return t
    src = _c_where(shape)
    strides = list(src[1])
    off = (shape[dim] - 1) * strides[dim]
    strides[dim] = -strides[dim]
    return _strided(t, n, src, (off, tuple(strides), shape))


def _revcumsum(t, dim):
    """sum over j >= i along `dim`: cumsum's backward."""
    return _flip(_flip(t, dim).cumsum(dim), dim)


class GatherAlong(graph.Function):
    """x's elements at a constant index along `dim` (take_along_axis), for the formulas below: its backward
    (ScatterAddAlong) and its own are each other, so a gradient through it differentiates to any order."""

    def forward(ctx, x, idx, dim):
        ctx.idx, ctx.dim, ctx.shape = idx, dim, x.shape
        return ctx.xp.take_along_axis(x, idx, axis=dim)

    def backward(ctx, g):
        return _scatter_add_along(ctx.xp, g, ctx.idx, ctx.dim, ctx.shape)


class ScatterAddAlong(graph.Function):
    """A zero array of `shape` with g added at a constant index along `dim` (repeated indices summed)."""

    def forward(ctx, g, idx, dim, shape):
        ctx.idx, ctx.dim = idx, dim
        return _scatter_add_along(ctx.xp, g, idx, dim, shape)

    def backward(ctx, g):
        return ctx.xp.take_along_axis(g, ctx.idx, axis=ctx.dim)


def _scatter_add_along(xp, g, idx, dim, shape):
    from .._ops.index import _scatter_add_at
    from .._ops.scatter import _full_index
    out = xp.zeros(shape, g.dtype)
    _scatter_add_at(xp, out, _full_index(xp, idx, dim), g)
    return out


@formula("GatherAlong")
def _gather_along(node, g):
    return ScatterAddAlong.apply(g, idx=node.idx, dim=node.dim, shape=node.shape)


@formula("ScatterAddAlong")
def _scatter_add_along_f(node, g):
    return GatherAlong.apply(g, idx=node.idx, dim=node.dim)


@formula("MaxMin")
def _max_min(node, g):
    # amax/amin/max()/min(): the gradient shared evenly among the tied extrema, a piecewise-constant weight
    x, y = node.saved
    axes = node.axes if node.axes is not None else tuple(range(x.ndim))
    mask = x == _expand_back(y, x.shape, axes, node.keepdim)
    w = (mask / mask.sum(axis=node.axes, keepdims=True)).astype(g._data.dtype)
    return _unreduce(g, x.shape, axes, node.keepdim) * const(w)


@formula("MaxMinDim")
def _max_min_dim(node, g, _=None):
    g = g if node.keepdim else g.unsqueeze(node.dim)
    return ScatterAddAlong.apply(g, idx=node.idx, dim=node.dim, shape=node.shape)


@formula("CumMaxMin")
def _cum_max_min(node, g, _=None):
    return ScatterAddAlong.apply(g, idx=node.idx.astype("int64", copy=False), dim=node.dim, shape=node.shape)


@formula("SelectEvenly")
def _select_evenly(node, g):
    # median()/nanmedian() of everything: g shared evenly among the elements equal to the value (a constant weight)
    x, v = node.saved
    xp = node.xp
    mask = (x == v) | (xp.isnan(x) & xp.isnan(v)) if x.dtype.kind == "f" else x == v
    with np.errstate(divide="ignore", invalid="ignore"):
        return g * const((mask / mask.sum()).astype(g._data.dtype))


@formula("Var")
def _var(node, g):
    # torch's var_backward: 2 / (n - correction) * g * (x - mean(x)); std's: that of g / (2 std), 0 where std is 0.
    # The node keeps d = x - mean(x), not x: x's tensor is rebuilt from d, which differs from x by a constant
    # along the reduced dims, and so gives the same x - mean(x) (and the same graph).
    d, y = node.saved
    axes = node.axes
    xt = _in(node, d, g)
    dt = xt - xt.mean(axes, keepdim=True) if axes else xt - xt
    g = _unreduce(g, d.shape, axes, node.keepdim)
    if node.sqrt:
        y_b = _expand_back(y, d.shape, axes, node.keepdim)
        yt = _unreduce(_out(node, y, g), d.shape, axes, node.keepdim)
        g = _where(y_b == 0, 0.0, g / (2 * yt))
    return g * (2.0 / node.denom if node.denom else math.inf) * dt


@formula("Norm")
def _norm(node, g):
    x, y = node.saved
    p, axes = node.p, node.axes
    if p == 0:
        return g.new_zeros(x.shape)
    g = _unreduce(g, x.shape, axes, node.keepdim)
    if p == 1:
        return g * const(node.xp.sign(x).astype(g._data.dtype))
    xt = _in(node, x, g)
    yt = _unreduce(_out(node, y, g), x.shape, axes, node.keepdim)
    zero = _expand_back(y, x.shape, axes, node.keepdim) == 0
    if p == 2:
        scale = xt / yt
    elif p < 2:  # torch's norm_backward: sgn(x) |x|^(p-1) keeps x == 0 finite for p < 2
        scale = const(node.xp.sign(x).astype(g._data.dtype)) * xt.abs() ** (p - 1) / yt ** (p - 1)
    else:
        scale = xt * xt.abs() ** (p - 2) / yt ** (p - 1)
    return _where(zero, 0.0, g * scale)


@formula("Cumsum")
def _cumsum(node, g):
    return _revcumsum(g, node.dim)


@formula("LogCumSumExp")
def _logcumsumexp(node, g):
    # torch's formula, as the op's backward: grad_j = exp(x_j) sum_{i >= j} g_i exp(-y_i), the positive and
    # negative parts of g summed apart in log space so that nothing overflows
    x, y = node.saved
    dim = node.dim
    xt, yt = _in(node, x, g), _out(node, y, g)
    low = float(np.finfo(g._data.dtype).min)
    garr = g._data
    pos, neg = garr > 0, garr < 0
    # log|g| where it is taken; the select keeps the other branch's log(0) out of the gradient
    log_pos = _where(pos, _where(pos, g, 1.0).log(), low)
    log_neg = _where(neg, _where(neg, -g, 1.0).log(), low)
    up = _flip(_flip(log_pos - yt, dim).logcumsumexp(dim), dim)
    down = _flip(_flip(log_neg - yt, dim).logcumsumexp(dim), dim)
    return (up + xt).exp() - (down + xt).exp()


@formula("Prod")
def _prod(node, g):
    x, y = node.saved
    axes = (node.axis,) if node.axis is not None else tuple(range(x.ndim))
    if x.size == 0:
        return g.new_zeros(x.shape)
    g = _unreduce(g, x.shape, axes, node.keepdim)
    xt = _in(node, x, g)
    if not (x == 0).any():
        return g * _unreduce(_out(node, y, g), x.shape, axes, node.keepdim) / xt
    # zeros: the product of the others as exclusive cumulative products from both sides (torch's
    # prod_safe_zeros_backward), along the dim or over the flattened tensor
    if node.axis is None:
        return (g.reshape(-1) * _exclusive_prod(xt.reshape(-1), 0)).reshape(x.shape)
    return g * _exclusive_prod(xt, node.axis)


def _exclusive_prod(t, dim):
    """prod_{j != i} t_j along `dim`, exact where t has zeros: cumprod of t shifted by one from each side."""
    return _shifted_one(t, dim).cumprod(dim) * _flip(_shifted_one(_flip(t, dim), dim).cumprod(dim), dim)


def _shifted_one(t, dim):
    """[1, t_0, ..., t_{n-2}] along `dim`, as a recorded map of t (and a constant one)."""
    from ._double import _c_where, _strided
    shape = tuple(t.shape)
    n = math.prod(shape)
    xp = t._device.xp
    one = xp.zeros(shape, t._data.dtype)
    one[(slice(None),) * dim + (0,)] = 1
    if shape[dim] == 1:
        return const(one)
    _, strides, _ = _c_where(shape)
    head = t[(slice(None),) * dim + (slice(0, shape[dim] - 1),)]
    src = (strides[dim], strides, tuple(head.shape))
    return _strided(head, n, src, _c_where(shape)) + const(one)


@formula("Cumprod")
def _cumprod(node, g):
    x, y = node.saved
    dim = node.dim
    xt, yt = _in(node, x, g), _out(node, y, g)
    if not (x == 0).any():
        return _revcumsum(g * yt, dim) / xt
    return _cumprod_zeros(g, xt, dim)


def _cumprod_zeros(g, xt, dim):
    """cumprod's backward where x has zeros, as torch's for a second order (O(n^2)): for each k, grad_k =
    sum_{j >= k} g_j prod_{i <= j, i != k} x_i, with the products of the others from cumulative products."""
    n = xt.shape[dim]
    idx = lambda a, b: (slice(None),) * dim + (slice(a, b),)
    cols = []
    for k in range(n):
        others = _exclusive_prefix(xt, dim, k)  # prod_{i <= j, i != k} x_i for j >= k
        cols.append((g[idx(k, n)] * others).sum(dim, keepdim=True))
    return _concat(cols, dim, tuple(xt.shape))


def _exclusive_prefix(xt, dim, k):
    n = xt.shape[dim]
    sl = lambda a, b: xt[(slice(None),) * dim + (slice(a, b),)]
    before = sl(0, k).prod(dim, keepdim=True) if k else None
    after = sl(k + 1, n).cumprod(dim) if k + 1 < n else None
    ones_shape = list(xt.shape)
    ones_shape[dim] = 1
    head = before if before is not None else xt.new_ones(ones_shape)
    if after is None:
        return head
    return _concat([head, head * after], dim)


def _concat(parts, dim, shape=None):
    """torch.cat of `parts` along `dim` as a sum of recorded strided maps (cat's own node is another family's)."""
    from ._double import _c_where, _strided
    if shape is None:
        shape = list(parts[0].shape)
        shape[dim] = sum(p.shape[dim] for p in parts)
    shape = tuple(shape)
    n = math.prod(shape)
    _, strides, _ = _c_where(shape)
    out, at = None, 0
    for p in parts:
        placed = _strided(p, n, (at * strides[dim], strides, tuple(p.shape)), _c_where(shape))
        out = placed if out is None else out + placed
        at += p.shape[dim]
    return out


# ------------------------------------------------------------------------------------------------- losses
@formula("CrossEntropyIndices")
def _cross_entropy(node, g, *_):
    """d/dx of (1 - ls) w_t nll + ls / c sum_k w_k (-z_k), z = log_softmax(x), scaled as the reduction says."""
    (z,) = node.saved
    xp = node.xp
    n, c = z.shape
    if node.fused is not None:  # the compiled kernels keep the targets, not their derived arrays
        _, target, weight, w_t, ignore_index, ls = node.fused
        valid = target != ignore_index
        t = xp.where(valid, target, 0)
    else:
        t, valid, w_t, weight, ls = node.t, node.valid, node.w_t, node.weight, node.ls
    dt = g._data.dtype
    # log_softmax is the same for x and for z = x - logsumexp(x): z stands in for a non-leaf x (the node keeps
    # z only), and its tensor carries x's history
    p = _in(node, z, g).log_softmax(1).exp()
    coef = (w_t * (1 - ls)).astype(dt)[:, None]
    onehot = xp.zeros((n, c), dt)
    onehot[xp.arange(n), t] = 1
    grad = p * const(coef) - const(onehot * coef)
    if ls:
        wsum = float(weight.sum()) if weight is not None else float(c)
        wk = weight[None, :].astype(dt) if weight is not None else xp.ones((1, c), dt)
        grad = grad + (p * wsum - const(wk)) * const((valid[:, None] * (ls / c)).astype(dt))
    if node.reduction == "none":
        scale = g.unsqueeze(1)
    elif node.reduction == "sum":
        scale = g
    else:
        with np.errstate(invalid="ignore", divide="ignore"):  # every target ignored: NaN, as torch
            scale = g / float(node.denom)
    return grad * scale, None, None
