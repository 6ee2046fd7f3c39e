"""Gather and scatter and their relatives: take_along_dim, index_select, index_add, index_fill, index_copy,
scatter_reduce."""
import numpy as np

from .. import _dtype
from .._backend import kernels, on_device
from .._tensor import Tensor
from ..autograd.graph import Function
from ._util import method, on_input_device, out_copy, wrap_dim
from .index import _HOLDS_INDICES, _scatter_add_at, masked_fill
from ..amp._dispatch import autocast_op


def _check_index(index, name="index"):
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")


def _check_bounds(index, d, n):
    """gather/scatter take no negative indices (unlike indexing)."""
    if index.numel():
        with on_device(index._device):
            hi, lo = int(index._data.max()), int(index._data.min())
        if hi >= n or lo < 0:
            raise RuntimeError(f"index {hi if hi >= n else lo} is out of bounds for dimension {d} with size {n}")


class Gather(Function):
    def name(self):
        return self.label

    def forward(ctx, x, idx, dim, label="GatherBackward0"):
        ctx.shape, ctx.dim, ctx.idx, ctx.label = x.shape, dim, idx, label
        # torch's GatherBackward0 saves self (and the index): writing into self before the backward raises there;
        # the value-selecting reductions (median, mode) save their indices only
        ctx.save_for_backward(x if label == "GatherBackward0" else _HOLDS_INDICES)
        return ctx.xp.take_along_axis(x, idx, axis=dim) if idx.shape == x.shape or _fits(idx, x, dim) \
            else ctx.xp.take_along_axis(x[_sub(idx, x, dim)], idx, axis=dim)

    def backward(ctx, g, *_):
        out = ctx.xp.zeros(ctx.shape, g.dtype)
        _scatter_add_at(ctx.xp, out, _full_index(ctx.xp, ctx.idx, ctx.dim), g)
        return out, None


def _fits(idx, x, dim):
    return all(i == s for k, (i, s) in enumerate(zip(idx.shape, x.shape)) if k != dim)


def _sub(idx, x, dim):
    return tuple(slice(None) if k == dim else slice(0, idx.shape[k]) for k in range(x.ndim))


def _full_index(xp, idx, dim):
    """Index arrays addressing out[..., idx, ...] along `dim`, for use with add.at."""
    n = idx.ndim
    # sparse grids, built by hand (CuPy's indices has no sparse form)
    grids = [xp.arange(s).reshape((1,) * k + (s,) + (1,) * (n - k - 1)) for k, s in enumerate(idx.shape)]
    grids[dim] = idx
    return tuple(grids)


@method()
def gather(input, dim, index, *, sparse_grad=False, out=None):
    _check_index(index, "gather")
    if input.ndim <= 1 and (index.ndim == 0 or input.ndim == 0):  # as in _scatter; the result has index's shape
        return out_copy(gather(_one_dim(input), dim, _one_dim(index)).reshape(index.shape), out)
    d = wrap_dim(dim, input.ndim)
    if index.ndim != input.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as input tensor")
    for k in range(input.ndim):
        if k != d and index.shape[k] > input.shape[k]:
            raise RuntimeError(f"Size does not match at dimension {k} expected index [{index._shape_str()}] to be no "
                               f"larger than self [{input._shape_str()}] apart from dimension {d}")
    _check_bounds(index, d, input.shape[d])
    return out_copy(Gather.apply(input, index, dim=d), out)


@method()
def take_along_dim(input, indices, dim=None):
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    d = wrap_dim(dim, input.ndim)
    if indices.ndim != input.ndim:
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {input.ndim} dimensions for input, and {indices.ndim} dimensions for indices")
    # every dim but `dim` broadcasts between input and indices
    shape = [max(a, b) for a, b in zip(input.shape, indices.shape)]
    return gather(input.expand(*[s if k != d else input.shape[d] for k, s in enumerate(shape)]), d,
                  indices.expand(*[s if k != d else indices.shape[d] for k, s in enumerate(shape)]))


class Scatter(Function):
    def name(self):
        return "ScatterAddBackward0" if self.reduce == "add" else "ScatterBackward1" if self.scalar else "ScatterBackward0"

    def forward(ctx, x, src, idx, dim, reduce=None, scalar=False):
        ctx.scalar = scalar
        ctx.save_for_backward(_HOLDS_INDICES)  # torch's scatter nodes save the index: freed by a backward
        xp = ctx.xp
        out = x.copy()
        full = _full_index(xp, idx, dim)
        s = src[tuple(slice(0, n) for n in idx.shape)] if src.shape != idx.shape else src
        ctx.full, ctx.idx, ctx.dim, ctx.src_shape, ctx.reduce = full, idx, dim, src.shape, reduce
        if reduce == "add":
            _scatter_add_at(xp, out, full, s)
        elif reduce == "multiply":
            at = kernels[xp].ufunc_at("multiply")
            if at is None:
                raise NotImplementedError("scatter(reduce='multiply') is not implemented on CUDA")
            at(out, full, s)
        else:
            out[full] = s
        return out

    def backward(ctx, g, *_):
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            if ctx.reduce is None:
                gx[ctx.full] = 0
        if len(ctx.needs_input_grad) > 1 and ctx.needs_input_grad[1]:
            check_src_grad(ctx)
            gs = g[ctx.full]
        return gx, gs, None


def check_src_grad(node):
    """torch's formula gives src the gradient gathered at the index, of the index's shape, and its engine
    refuses a gradient whose shape differs from the input's: an index smaller than src fails src's backward."""
    if node.idx.shape != node.src_shape:
        shape = lambda s: ", ".join(map(str, s))  # noqa: E731
        raise RuntimeError(f"Function {node.name()} returned an invalid gradient at index 1 - got "
                           f"[{shape(node.idx.shape)}] but expected shape compatible with [{shape(node.src_shape)}]")


def _one_dim(t):
    # torch checks gather/scatter shapes with at least one dimension (ensure_nonempty_dim): on a tensor of one
    # or zero dims, a 0-dim index or src is one element (the official FashionMNIST one-hot is
    # `zeros(10).scatter_(0, tensor(y), value=1)`)
    return t.reshape(1) if isinstance(t, Tensor) and t.ndim == 0 else t


def _scatter(input, dim, index, src, reduce):
    _check_index(index, "scatter")
    if input.ndim <= 1 and 0 in (input.ndim, index.ndim, getattr(src, "ndim", 1)):
        out = _scatter(_one_dim(input), dim, _one_dim(index), _one_dim(src), reduce)
        return out.reshape(()) if input.ndim == 0 else out
    d = wrap_dim(dim, input.ndim)
    _check_scatter_shapes(input, d, index, src)
    scalar = not isinstance(src, Tensor)
    if scalar:
        src = input.new_full(index.shape, src)
    elif src._data.dtype != input._data.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    _check_bounds(index, d, input.shape[d])
    return Scatter.apply(input, src, index, dim=d, reduce=reduce, scalar=scalar)


def _check_scatter_shapes(input, d, index, src):
    if index.ndim != input.ndim and index.numel():
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    if isinstance(src, Tensor) and src.ndim != input.ndim and index.numel():
        raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    for k in range(index.ndim if index.numel() else 0):
        if (k != d and index.shape[k] > input.shape[k]) or (isinstance(src, Tensor) and index.shape[k] > src.shape[k]):
            raise RuntimeError(f"Expected index [{index._shape_str()}] to be no larger than self [{input._shape_str()}] "
                               f"apart from dimension {d} and to be no larger size than src "
                               f"[{src._shape_str() if isinstance(src, Tensor) else index._shape_str()}]")


@method()
def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    return _scatter(input, dim, index, src if src is not None else value, reduce)


@method()
@autocast_op("scatter_add")
def scatter_add(input, dim, index, src):
    return _scatter(input, dim, index, src, "add")


@method()
def scatter_(input, dim, index, src=None, *, value=None, reduce=None):
    from .inplace import assign_indexed_
    return assign_indexed_(input, scatter(input, dim, index, src, value=value, reduce=reduce), src)


@method()
def scatter_add_(input, dim, index, src):
    from .inplace import assign_indexed_
    return assign_indexed_(input, scatter_add(input, dim, index, src), src)


class IndexSelect(Function):
    def forward(ctx, x, idx, dim):
        ctx.shape, ctx.dim, ctx.idx = x.shape, dim, idx
        ctx.save_for_backward(_HOLDS_INDICES)  # as torch's IndexSelectBackward0: freed by a backward
        return ctx.xp.take(x, idx, axis=dim)

    def backward(ctx, g, *_):
        xp = ctx.xp
        out = xp.zeros(ctx.shape, g.dtype)
        key = (slice(None),) * ctx.dim + (ctx.idx,)
        _scatter_add_at(xp, out, key, g)
        return out, None


@method()
def index_select(input, dim, index, *, out=None):
    if index.ndim > 1:
        raise IndexError("index_select(): Index is supposed to be a vector")
    if index._data.dtype.kind not in "iu":
        raise RuntimeError("index_select(): Expected dtype int32/int64 for index")
    if input.ndim == 0 and index.numel() != 1:
        raise RuntimeError(f"index_select(): Index to scalar can have only 1 value, got {index.numel()} value(s)")
    d = wrap_dim(dim, input.ndim) if input.ndim else 0
    n = input.shape[d] if input.ndim else 1
    if index.numel():
        with on_device(index._device):
            hi, lo = int(index._data.max()), int(index._data.min())
        if hi >= n or lo < 0:
            raise IndexError("index out of range in self")
    return out_copy(IndexSelect.apply(input, index.reshape(-1) if index.ndim == 0 else index, dim=d), out)


class IndexAdd(Function):
    def forward(ctx, x, src, idx, dim, alpha=1):
        out = x.copy()
        key = (slice(None),) * dim + (idx,)
        _scatter_add_at(ctx.xp, out, key, src * alpha if alpha != 1 else src)
        ctx.key, ctx.alpha = key, alpha
        ctx.save_for_backward(_HOLDS_INDICES)  # as torch's IndexAddBackward0: freed by a backward
        return out

    def backward(ctx, g, *_):
        gs = g[ctx.key]
        return g, gs * ctx.alpha if ctx.alpha != 1 else gs, None


@method()
@on_input_device
def index_add(input, dim, index, source, *, alpha=1):
    d = wrap_dim(dim, input.ndim)
    if index.ndim > 1:
        raise IndexError("index_add_(): Index is supposed to be a vector")
    if index._data.dtype.kind not in "iu":
        raise RuntimeError("index_add_(): Expected dtype int32/int64 for index")
    if source._data.dtype != input._data.dtype:
        raise RuntimeError(f"index_add_(): self ({_dtype.scalar_name(input.dtype)}) and source "
                           f"({_dtype.scalar_name(source.dtype)}) must have the same scalar type")
    n_src = source.shape[d] if source.ndim else 1
    if index.numel() != n_src:
        raise RuntimeError(f"index_add_(): Number of indices ({index.numel()}) should be equal to source.size(dim): "
                           f"({n_src}), for dim: {d}")
    if source.ndim and (source.ndim != input.ndim or
                        any(a != b for k, (a, b) in enumerate(zip(source.shape, input.shape)) if k != d)):
        raise RuntimeError(f"source tensor shape must match self tensor shape, excluding the specified dimension. "
                           f"Got self.shape = [{input._shape_str()}] source.shape = [{source._shape_str()}]")
    if index.numel() and (int(index._data.max()) >= input.shape[d] or int(index._data.min()) < -input.shape[d]):
        flat = index._data.reshape(-1)  # torch names the first bad entry
        bad = int(flat[((flat >= input.shape[d]) | (flat < -input.shape[d])).nonzero()[0][0]])
        raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size {input.shape[d]}")
    if isinstance(alpha, float) and input._data.dtype.kind in "iu":
        alpha = int(alpha)  # torch casts alpha to an integral self's type (-0.5 -> 0) before it multiplies
    return IndexAdd.apply(input, source, index, dim=d, alpha=alpha)


@method()
def index_add_(input, dim, index, source, *, alpha=1):
    from .inplace import assign_indexed_
    return assign_indexed_(input, index_add(input, dim, index, source, alpha=alpha), source)


@method()
@on_input_device  # the mask is written here, outside Function.apply
def index_fill(input, dim, index, value):
    d = wrap_dim(dim, input.ndim)
    key = [slice(None)] * input.ndim
    key[d] = index
    mask = input.new_zeros(input.shape, dtype=_dtype.bool)
    mask._data[tuple(k._data if isinstance(k, Tensor) else k for k in key)] = True
    return masked_fill(input, mask, value)


# ----------------------------------------------------------------------------------- index_copy, scatter_reduce
class IndexCopy(Function):
    def forward(ctx, x, src, idx, dim):
        ctx.key = (slice(None),) * dim + (idx,)
        ctx.save_for_backward(_HOLDS_INDICES)  # as torch's IndexCopyBackward0: freed by a backward
        out = x.copy()
        out[ctx.key] = src
        return out

    def backward(ctx, g):
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            gx[ctx.key] = 0
        if ctx.needs_input_grad[1]:
            gs = g[ctx.key]
        return gx, gs, None


@on_input_device
def _check_index_copy(input, d, index, source):
    """torch's checks for index_copy, in its order."""
    if index.ndim >= 2:
        raise IndexError(f"index_copy_(): Index should have dimension 1 or 0 (got {index.ndim})")
    n = index.numel()
    if source.ndim == 0 and n != 1:
        raise IndexError(f"index_copy_(): When source is scalar, index should have one element (got {n})")
    if source.ndim != input.ndim and source.ndim and input.ndim:
        raise IndexError(f"index_copy_(): When source and destination are not scalars, their dimensionality must "
                         f"match. Source dimensionality ({source.ndim}), destination dimensionality ({input.ndim})")
    if index.dtype != _dtype.int64:
        raise RuntimeError(f"index_copy_(): Expected a long tensor for index, but got "
                           f"{_dtype.scalar_name(index.dtype)}")
    if source.dtype != input.dtype:
        raise RuntimeError(f"index_copy_(): self and source expected to have the same dtype, but got (self) "
                           f"{_dtype.scalar_name(input.dtype)} and (source) {_dtype.scalar_name(source.dtype)}")
    dst_slice = [s for k, s in enumerate(input.shape) if k != d]
    src_slice = [s for k, s in enumerate(source.shape) if k != d]
    if dst_slice != src_slice:
        raise RuntimeError(f"index_copy_(): Source/destination tensor must have same slice shapes. Destination slice "
                           f"shape: {' '.join(map(str, dst_slice))} at dimension {d} and source slice shape: "
                           f"{' '.join(map(str, src_slice))} at dimension 0.")
    if source.ndim and n != source.shape[d]:
        raise IndexError(f"index_copy_(): Number of indices ({n}) should be equal to source.size(dim) "
                         f"({source.shape[d]})")
    size = input.shape[d] if input.ndim else 1
    bad = index._data.reshape(-1)[(index._data.reshape(-1) < 0) | (index._data.reshape(-1) >= size)]
    if bad.size:
        raise IndexError(f"index_copy_(): index {int(bad[0])} is out of bounds for dimension {d} with size {size}")


@method()
@autocast_op("index_copy")
def index_copy(input, dim, index, source):
    """A copy of input with the slices index[i] along `dim` replaced by the slices i of source."""
    d = wrap_dim(dim, input.ndim)
    _check_index_copy(input, d, index, source)
    x = input.reshape(1) if input.ndim == 0 else input
    src = source.reshape([1 if k == d else s for k, s in enumerate(x.shape)]) if source.ndim == 0 else source
    out = IndexCopy.apply(x, src, index.reshape(-1), dim=d)
    return out.reshape(()) if input.ndim == 0 else out


def _index_copy_(input, dim, index, source):
    from .inplace import assign_indexed_
    return assign_indexed_(input, index_copy(input, dim, index, source), source)


Tensor.index_copy_ = _index_copy_


_REDUCES = ("sum", "prod", "mean", "amax", "amin")
# torch also takes 'max' and 'min' for amax and amin, forward only
_REDUCE_UFUNCS = {"sum": "add", "mean": "add", "prod": "multiply", "amax": "maximum", "amin": "minimum",
                  "max": "maximum", "min": "minimum"}


def _identity(reduce, dtype):
    """The value that leaves `reduce` unchanged: where include_self=False, the start of each scattered slot."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    is_max = reduce in ("amax", "max")
    if dtype.kind == "b":
        return not is_max
    if dtype.kind == "f":
        return -np.inf if is_max else np.inf
    return np.iinfo(dtype).min if is_max else np.iinfo(dtype).max


def _reduce_at(xp, op, out, key, vals):
    """out[key] = op(out[key], vals), repeated keys folded in turn (NumPy's ufunc.at)."""
    at = kernels[xp].ufunc_at(op)
    if at is not None:
        at(out, key, vals)
    else:
        _fold_at(xp, getattr(xp, op), out, key, vals)


def _fold_at(xp, op, out, key, vals):
    """ufunc.at for array modules without it: sort the targets, fold each run of equal targets with a
    segmented log-step scan, apply each run's result once."""
    lin = xp.zeros(vals.shape, np.int64)
    stride = 1
    for k, n in zip(reversed(key), reversed(out.shape)):
        lin = lin + k * stride
        stride *= n
    lin, v = lin.reshape(-1), vals.reshape(-1)
    order = xp.argsort(lin)
    lin, v = lin[order], v[order]
    pos = xp.arange(lin.size)
    start = xp.searchsorted(lin, lin)  # where each run of equal targets begins
    step = 1
    while step < lin.size:
        v = v.copy()
        v[step:] = xp.where(pos[step:] - step >= start[step:], op(v[:-step], v[step:]), v[step:])
        step *= 2
    last = xp.ones(lin.size, bool)
    last[:-1] = lin[1:] != lin[:-1]
    flat = out.reshape(-1)
    flat[lin[last]] = op(flat[lin[last]], v[last])


def _scatter_reduce_array(xp, x, s, full, reduce, include_self):
    out = x.copy()
    if not include_self:
        out[full] = _identity(reduce, x.dtype)
    with np.errstate(invalid="ignore"):  # NaN propagates through amax/amin, silently as in torch
        _reduce_at(xp, _REDUCE_UFUNCS[reduce], out, full, s)
    if reduce == "mean":
        n = xp.ones(x.shape, x.dtype) if include_self else xp.zeros(x.shape, x.dtype)
        _scatter_add_at(xp, n, full, xp.ones(s.shape, x.dtype))
        n[n == 0] = 1
        out = out / n if x.dtype.kind == "f" else out // n  # integer means round down, as in torch
    return out


class ScatterReduce(Function):
    def forward(ctx, x, src, idx, dim, reduce, include_self):
        full = _full_index(ctx.xp, idx, dim)
        s = src[tuple(slice(0, n) for n in idx.shape)]
        out = _scatter_reduce_array(ctx.xp, x, s, full, reduce, include_self)
        ctx.save_for_backward(x, s, out)
        ctx.full, ctx.idx_shape, ctx.src_shape = full, idx.shape, src.shape
        ctx.reduce, ctx.include_self = reduce, include_self
        return out

    def backward(ctx, g):
        # torch's formulas (scatter_reduce_backward), case by case
        if ctx.reduce not in _REDUCES:
            raise RuntimeError(f"Expected 'reduce' to be one of 'sum', 'prod', 'mean', 'amax', 'amin' but got "
                               f"{ctx.reduce}.")
        x, s, out = ctx.saved
        xp, full = ctx.xp, ctx.full
        with np.errstate(divide="ignore", invalid="ignore"):
            gx, gs = getattr(ctx, "_grad_" + ctx.reduce)(g, x, s, out)
        if not ctx.include_self:
            gx = gx.copy()
            gx[full] = 0
        g_src = xp.zeros(ctx.src_shape, g.dtype)
        g_src[tuple(slice(0, n) for n in ctx.idx_shape)] = gs
        return gx, g_src, None

    def _grad_sum(ctx, g, x, s, out):
        return g, g[ctx.full]

    def _grad_mean(ctx, g, x, s, out):
        xp = ctx.xp
        n = xp.ones(g.shape, g.dtype) if ctx.include_self else xp.zeros(g.shape, g.dtype)
        _scatter_add_at(xp, n, ctx.full, xp.ones(s.shape, g.dtype))
        n[n == 0] = 1
        return g / n, (g / n)[ctx.full]

    def _grad_prod(ctx, g, x, s, out):
        # products of the others, exact where one factor is zero: the zero is replaced by one and the product
        # recomputed; two or more zeros in a slot give every factor a zero gradient
        xp, full = ctx.xp, ctx.full
        x1 = xp.where(x == 0, 1, x)
        gx = g * _scatter_reduce_array(xp, x1, s, full, "prod", ctx.include_self) / x1
        zero = s == 0
        zeros_in_slot = xp.zeros(x.shape, g.dtype)
        _scatter_add_at(xp, zeros_in_slot, full, zero.astype(g.dtype))
        single = zero & (zeros_in_slot[full] == 1)
        without = _scatter_reduce_array(xp, x, xp.where(single, 1, s), full, "prod", ctx.include_self)
        gs = xp.where(single, (g * without)[full], (g * out)[full] / xp.where(zero, 1, s))
        return gx, gs

    def _grad_amax(ctx, g, x, s, out):
        # shared evenly between the elements equal to the result; torch counts self's even where
        # include_self=False
        xp, full = ctx.xp, ctx.full
        value = out[full]
        count = (x == out).astype(g.dtype)
        _scatter_add_at(xp, count, full, (s == value).astype(g.dtype))
        share = g / count
        return (x == out) * share, (s == value) * share[full]

    _grad_amin = _grad_amax


@method()
def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """input with the values of src reduced into the slots index names along `dim` ('sum', 'prod', 'mean',
    'amax', 'amin'); with include_self=False the slots' own values take no part."""
    d = wrap_dim(dim, input.ndim)
    if index.numel():
        _check_index(index, "scatter")
    elif index._data.dtype.kind not in "iu":  # an empty index may have any dtype
        index = index.long()
    if src._data.dtype != input._data.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    x, idx, s = (t.reshape(-1) if t.ndim == 0 else t for t in (input, index, src))
    _check_scatter_shapes(x, d, idx, s)
    if reduce not in _REDUCE_UFUNCS:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    if reduce == "mean" and input.dtype == _dtype.bool:
        raise NotImplementedError("\"scatter_gather_tensor_cpu_reduce_mean\" not implemented for 'Bool'")
    _check_bounds(idx, d, x.shape[d])
    out = ScatterReduce.apply(x, s, idx, dim=d, reduce=reduce, include_self=include_self)
    return out.reshape(()) if input.ndim == 0 else out


def _scatter_reduce_(input, dim, index, src, reduce, *, include_self=True):
    from .arith import assign_
    return assign_(input, scatter_reduce(input, dim, index, src, reduce, include_self=include_self))


Tensor.scatter_reduce_ = _scatter_reduce_


# ------------------------------------------------------------------------------------------------- index_reduce
@method()
@on_input_device
def index_reduce(input, dim, index, source, reduce, *, include_self=True):
    """input with source's slices reduced into the slices `index` names along `dim` ('prod', 'mean', 'amax',
    'amin'): scatter_reduce with the index spread over source's other dims."""
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"index_reduce(): Expected reduce to be one of prod, mean, amax or amin but got {reduce}.")
    d = wrap_dim(dim, input.ndim)
    if index.ndim > 1:
        raise IndexError(f"index_reduce_(): Index is supposed to be a vector, but got dim: {index.ndim} with type: "
                         f"{_dtype.scalar_name(index.dtype)} and size: [{index._shape_str()}]")
    if index._data.dtype.kind not in "iu":
        raise RuntimeError(f"index_reduce_(): Expected dtype int32/int64 for index but got: "
                           f"{_dtype.scalar_name(index.dtype)}")
    s = source.reshape(1) if source.ndim == 0 else source
    if s.shape[d] != index.numel():
        raise RuntimeError(f"index_reduce_(): Number of indices ({index.numel()}) should be equal to "
                           f"source.size(dim): ({s.shape[d]}), for dim: {d}")
    shp = tuple(input.shape) or (1,)
    if s.ndim != len(shp) or any(a != b for i, (a, b) in enumerate(zip(s.shape, shp)) if i != d):
        raise RuntimeError(f"source tensor shape must match self tensor shape, excluding the specified dimension. "
                           f"Got self.shape = [{input._shape_str()}] source.shape = [{source._shape_str()}]")
    n = shp[d]
    if index.numel() and (int(index._data.max()) >= n or int(index._data.min()) < -n):
        raise IndexError("index out of range in self")
    idx = index.long() % n if index.numel() else index.long()
    full = idx.reshape([-1 if i == d else 1 for i in range(s.ndim)]).expand(s.shape)
    out = scatter_reduce(input.reshape(1) if input.ndim == 0 else input, d, full, s, reduce,
                         include_self=include_self)
    return out.reshape(()) if input.ndim == 0 else out


def _index_reduce_(input, dim, index, source, reduce, *, include_self=True):
    from .arith import assign_
    return assign_(input, index_reduce(input, dim, index, source, reduce, include_self=include_self))


def _index_fill_(input, dim, index, value):
    from .arith import assign_
    return assign_(input, index_fill(input, dim, index, value))


Tensor.index_reduce_, Tensor.index_fill_ = _index_reduce_, _index_fill_


# ------------------------------------------------------------------------------------------- put, fill_diagonal_
@method()
@on_input_device  # the range check reads the index outside Function.apply
def put(input, index, source, accumulate=False):
    """input as if flattened, with source written (or with accumulate=True, added) at `index`."""
    if index._data.dtype != np.int64:
        raise RuntimeError(f"put_(): Expected a long tensor for index, but got {_dtype.scalar_name(index.dtype)}")
    if source.dtype is not input.dtype:
        raise RuntimeError(f"put_(): self and source expected to have the same dtype, but got self.dtype = "
                           f"{_dtype.scalar_name(input.dtype)} and source.dtype = {_dtype.scalar_name(source.dtype)}")
    if source.numel() != index.numel():
        raise IndexError(f"put_(): Expected source and index to have the same number of elements, but got "
                         f"source.numel() = {source.numel()}, index.numel() = {index.numel()}")
    n = input.numel()
    bad = index._data[(index._data < -n) | (index._data >= n)]
    if bad.size:
        raise IndexError(f"out of range: tried to access index {int(bad.reshape(-1)[0])} on a tensor of {n} "
                         f"elements.")
    from .index import index_put
    flat = index_put(input.reshape(-1), (index.reshape(-1),), source.reshape(-1), accumulate)
    return flat.reshape(input.shape)


def _put_(input, index, source, accumulate=False):
    from .arith import assign_
    return assign_(input, put(input, index, source, accumulate))


@on_input_device  # the mask is made here, on the current device
def _fill_diagonal_(input, fill_value, wrap=False):
    """The main diagonal (all indices equal) set to fill_value; a tall matrix with wrap=True restarts it every
    (columns + 1) rows, as NumPy's fill_diagonal."""
    from .arith import assign_
    if input.ndim < 2:
        raise RuntimeError("dimensions must larger than 1")
    if input.ndim > 2 and len(set(input.shape)) != 1:
        raise RuntimeError("all dimensions of input must be of equal length")
    xp = input._device.xp
    mask = xp.zeros(input.shape, dtype=bool)
    xp.fill_diagonal(mask, True, wrap=wrap)
    from .._tensor import _wrap
    return assign_(input, masked_fill(input, _wrap(mask, input._device), fill_value))


Tensor.put_, Tensor.fill_diagonal_ = _put_, _fill_diagonal_


# ------------------------------------------------------------------------------ select/slice/diagonal_scatter
class ScatterInto(Function):
    """input with `src` written over one region: x[key], or for a diagonal, x with dims (d1, d2) moved last,
    then [..., rows, cols]."""

    def forward(ctx, x, src, key, dims=None):
        ctx.key, ctx.dims = key, dims
        out = x.copy()
        ctx.region(out)[key] = src
        return out

    def region(ctx, a):
        return ctx.xp.moveaxis(a, ctx.dims, (-2, -1)) if ctx.dims else a

    def backward(ctx, g):
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            ctx.region(gx)[ctx.key] = 0
        if ctx.needs_input_grad[1]:
            gs = ctx.xp.ascontiguousarray(ctx.region(g)[ctx.key])
        return gx, gs


def _scatter_into(input, src, slice_shape, key, name, dims=None):
    if tuple(src.shape) != tuple(slice_shape):
        raise RuntimeError(f"expected src to have a size equal to the slice of self. src size = "
                           f"[{src._shape_str()}], slice size = [{', '.join(map(str, slice_shape))}]")
    if src.dtype is not input.dtype:
        src = src.to(input.dtype)
    return ScatterInto.named(name).apply(input, src, key=key, dims=dims)


def select_scatter(input, src, dim, index):
    """A copy of input with src written at input.select(dim, index)."""
    view = input.select(dim, index)  # torch's range checks and errors
    d = wrap_dim(dim, input.ndim)
    return _scatter_into(input, src, view.shape, (slice(None),) * d + (index % input.shape[d],),
                         "SelectScatterBackward0")


def slice_scatter(input, src, dim=0, start=None, end=None, step=1):
    """A copy of input with src written at input[..., start:end:step, ...] (the slice along `dim`)."""
    if step <= 0:
        raise RuntimeError("slice step must be positive")
    d = wrap_dim(dim, input.ndim)
    key = (slice(None),) * d + (slice(start, end, step),)
    return _scatter_into(input, src, input._data[key].shape, key, "SliceScatterBackward0")


@on_input_device  # the diagonal's index arrays are made here, on the current device
def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    """A copy of input with src written along input.diagonal(offset, dim1, dim2)."""
    view = input.diagonal(offset, dim1, dim2)  # torch's dim checks and errors
    d1, d2 = wrap_dim(dim1, input.ndim), wrap_dim(dim2, input.ndim)
    i = np.arange(view.shape[-1])
    rows, cols = (i, i + offset) if offset >= 0 else (i - offset, i)
    xp = input._device.xp
    return _scatter_into(input, src, view.shape, (Ellipsis, xp.asarray(rows), xp.asarray(cols)),
                         "DiagonalScatterBackward0", dims=(d1, d2))


for _fn in (select_scatter, slice_scatter, diagonal_scatter):
    setattr(Tensor, _fn.__name__, _fn)
