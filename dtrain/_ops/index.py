"""Indexing: __getitem__ / __setitem__, gather / scatter, index_select / index_add, masks, where, sort, topk."""
import numpy as np

from .. import _backend, _dtype
from .._tensor import Tensor, _wrap
from ..autograd import grad_mode
from ..autograd.graph import Function
from ._util import method, out_copy, promote, unbroadcast, wrap_dim


def broadcast_error(a, b):
    """torch's RuntimeError for shapes a and b that do not broadcast (checked from the last dim)."""
    n = max(len(a), len(b))
    for i in range(n - 1, -1, -1):
        sa = a[i - n + len(a)] if i - n + len(a) >= 0 else 1
        sb = b[i - n + len(b)] if i - n + len(b) >= 0 else 1
        if sa != sb and sa != 1 and sb != 1:
            return RuntimeError(f"The size of tensor a ({sa}) must match the size of tensor b ({sb}) at non-singleton "
                                f"dimension {i}")
    return None


def _scatter_add_at(xp, out, key, g):
    """out[key] += g with repeated indices summed (np.add.at; cupyx.scatter_add on the GPU)."""
    if xp is np:
        np.add.at(out, key, g)
    else:
        import cupyx
        cupyx.scatter_add(out, key, g)


def _convert_key(key, t):
    """Turn a torch index into one the array module takes; tensors become arrays, checks as torch does."""
    if isinstance(key, list) and len(key) < 32 and any(
            isinstance(k, (Tensor, list, tuple, slice)) or k is None or k is Ellipsis for k in key):
        key = tuple(key)  # torch (like old NumPy) reads such a list as a tuple of indices
    elif not isinstance(key, tuple):
        key = (key,)
    out, advanced, dim = [], False, 0
    xp = t._device.xp
    for k in key:
        if isinstance(k, Tensor):
            kd = k._data
            if kd.dtype.kind not in "iub":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            if kd.dtype == np.uint8:  # torch's deprecated byte masks
                kd = kd.astype(bool)
            if k._device is not t._device and k._data.ndim:
                kd = xp.asarray(kd) if t._device.type == "cuda" else k.cpu()._data
            if kd.dtype.kind == "b":
                _check_mask(kd, t, dim)
                dim += kd.ndim
            else:
                _check_range(kd, t, dim)
                dim += 1
            advanced = True
            out.append(kd)
        elif isinstance(k, (list,)) or (isinstance(k, np.ndarray)):
            arr = np.asarray(k)
            if arr.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            arr = xp.asarray(arr)
            if arr.dtype.kind != "b":
                _check_range(arr, t, dim)
            dim += arr.ndim if arr.dtype.kind == "b" else 1
            advanced = True
            out.append(arr)
        elif k is None:
            out.append(None)
        elif k is Ellipsis:
            out.append(k)
            dim = t.ndim - sum(1 for x in key[key.index(Ellipsis) + 1:] if x is not None)
        elif isinstance(k, (bool, np.bool_)):
            out.append(bool(k))
            advanced = True
        elif isinstance(k, (int, np.integer)):
            if dim >= t.ndim:
                raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
            n = t.shape[dim]
            if k < -n or k >= n:
                raise IndexError(f"index {k} is out of bounds for dimension {dim} with size {n}")
            out.append(int(k))
            dim += 1
        elif isinstance(k, slice):
            if k.step is not None and k.step == 0:
                raise ValueError("slice step cannot be zero")
            if k.step is not None and k.step < 0:
                raise ValueError("step must be greater than zero")
            out.append(slice(*(int(v) if isinstance(v, Tensor) else v for v in (k.start, k.stop, k.step))))
            dim += 1
        elif isinstance(k, str):
            raise TypeError(f"new(): invalid data type 'str'")
        else:
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or byte Variables are "
                             "valid indices (got " + type(k).__name__ + ")")
    if dim > t.ndim:
        raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
    shapes = [k.shape for k in out if hasattr(k, "shape") and k.dtype.kind != "b"]
    if len(shapes) > 1:
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes " +
                             ", ".join(f"[{', '.join(map(str, sh))}]" for sh in shapes)) from None
    return tuple(out), advanced


def _check_range(idx, t, dim):
    if dim >= t.ndim:
        raise IndexError(f"too many indices for tensor of dimension {t.ndim}")
    n = t.shape[dim]
    if idx.size and (int(idx.max()) >= n or int(idx.min()) < -n):
        bad = int(idx.max()) if int(idx.max()) >= n else int(idx.min())
        raise IndexError(f"index {bad} is out of bounds for dimension {dim} with size {n}")


def _check_mask(mask, t, dim):
    for i, s in enumerate(mask.shape):
        if dim + i >= t.ndim or t.shape[dim + i] != s:
            raise IndexError(f"The shape of the mask [{', '.join(map(str, mask.shape))}] at index {i} does not match "
                             f"the shape of the indexed tensor [{t._shape_str()}] at index {dim + i}")


class BasicIndex(Function):
    _view = True

    def forward(ctx, x, key):
        ctx.shape, ctx.dtype, ctx.key = x.shape, x.dtype, key
        # a trailing Ellipsis keeps NumPy from returning a scalar copy when every dim gets an int: a 0-d view
        return x[key if any(k is Ellipsis for k in key) else key + (Ellipsis,)]

    def name(self):
        # torch indexes one dim at a time; its node is the last step that did something
        for k in reversed(self.key):
            if isinstance(k, int):
                return "SelectBackward0"
            if k is None:
                return "UnsqueezeBackward0"
            if isinstance(k, slice) and k != slice(None):
                return "SliceBackward0"
        return "AliasBackward0"

    def backward(ctx, g):
        out = ctx.xp.zeros(ctx.shape, ctx.dtype)
        out[ctx.key] = g
        return out


class AdvancedIndex(Function):
    def forward(ctx, x, key, label="IndexBackward0"):
        ctx.shape, ctx.dtype, ctx.key, ctx.label = x.shape, x.dtype, key, label
        return x[key]

    def name(self):
        return self.label

    def backward(ctx, g):
        out = ctx.xp.zeros(ctx.shape, ctx.dtype)
        _scatter_add_at(ctx.xp, out, ctx.key, g)
        return out


def _getitem(self, key):
    if type(key) is int and not (self._requires_grad and grad_mode.is_grad_enabled()):
        # the commonest index (a dataset's x[i]), without building a graph: a view, as the general path makes
        a = self._data
        if a.ndim and -a.shape[0] <= key < a.shape[0]:
            t = _wrap(a[key, ...], self._device)  # `...` keeps a 0-d result a view rather than a scalar
            t._version, t._base = self._version, self._base if self._base is not None else self
            return t
    k, advanced = _convert_key(key, self)
    if advanced:
        return AdvancedIndex.apply(self, key=k)
    return BasicIndex.apply(self, key=k)


class IndexPut(Function):
    def forward(ctx, x, v, key, accumulate=False):
        ctx.key, ctx.vshape, ctx.accumulate = key, v.shape, accumulate
        out = x.copy()
        if accumulate:
            _scatter_add_at(ctx.xp, out, key, v)
        else:
            out[key] = v
        return out

    def backward(ctx, g):
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            if not ctx.accumulate:
                gx[ctx.key] = 0
        if ctx.needs_input_grad[1]:
            gv = unbroadcast(g[ctx.key], ctx.vshape) if g[ctx.key].ndim >= len(ctx.vshape) else g[ctx.key].sum()
            gv = gv.reshape(ctx.vshape) if gv.size == int(np.prod(ctx.vshape)) else gv
        return gx, gv


def _setitem(self, key, value):
    from .arith import assign_, check_inplace
    k, advanced = _convert_key(key, self)
    if not isinstance(value, Tensor):
        value = _wrap(self._device.xp.asarray(value, dtype=self._data.dtype), self._device)
    elif value._data.dtype != self._data.dtype:
        value = value.to(self.dtype)
    if value._device is not self._device:
        if value._data.ndim == 0:
            value = value.to(self._device)
        else:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{self._device} and {value._device}!")
    lead = 0
    while lead < value.ndim and value.shape[lead] == 1:
        lead += 1
    if lead:  # torch drops a value's leading size-1 dims before broadcasting it
        value = value.reshape(value.shape[lead:])
    _check_value_shape(self, k, advanced, value)
    if grad_mode.is_grad_enabled() and (self._requires_grad or value._requires_grad):
        check_inplace(self)
        assign_(self, IndexPut.apply(self, value, key=k))
        return
    check_inplace(self)
    self._data[k] = value._data
    self._version.value += 1


def _check_value_shape(t, key, advanced, value):
    """torch's errors for a value that does not broadcast to t[key]. Advanced keys are checked on the host from
    their shapes only, so a GPU index never travels to the CPU for this."""
    # (a boolean mask's count of True decides the shape: like torch, that synchronises with the GPU)
    probe_key = tuple((np.zeros(k.shape, np.intp) if k.dtype.kind != "b" else _backend.to_numpy(k))
                      if hasattr(k, "shape") else k for k in key)
    probe = np.lib.stride_tricks.as_strided(np.empty(1, np.int8), shape=t.shape, strides=(0,) * t.ndim)
    try:
        target = probe[probe_key].shape
    except IndexError:
        return  # the real indexing raises its own error
    if not advanced:
        value.expand(target)  # raises torch's own message for a value that does not fit a view
        return
    try:
        np.broadcast_shapes(value.shape, target)
        if len(value.shape) > len(target) and any(s != 1 for s in value.shape[:len(value.shape) - len(target)]):
            raise ValueError
    except ValueError:
        raise RuntimeError(f"shape mismatch: value tensor of shape [{value._shape_str()}] cannot be broadcast to "
                           f"indexing result of shape [{', '.join(map(str, target))}]") from None


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


@method()
def index_put(input, indices, values, accumulate=False):
    k, _ = _convert_key(tuple(indices), input)
    _check_value_shape(input, k, True, values)
    return IndexPut.apply(input, values, key=k, accumulate=accumulate)


@method()
def index_put_(input, indices, values, accumulate=False):
    from .arith import assign_
    return assign_(input, index_put(input, indices, values, accumulate))


# ------------------------------------------------------------------------------------- gather and scatter
def _check_index(index, name="index"):
    if not isinstance(index, Tensor) or index._data.dtype.kind not in "iu":
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index")


def _check_bounds(index, d, n):
    """gather/scatter take no negative indices (unlike indexing)."""
    if index.numel():
        hi, lo = int(index._data.max()), int(index._data.min())
        if hi >= n or lo < 0:
            raise RuntimeError(f"index {hi if hi >= n else lo} is out of bounds for dimension {d} with size {n}")


class Gather(Function):
    def name(self):
        return self.label

    def forward(ctx, x, idx, dim, label="GatherBackward0"):
        ctx.shape, ctx.dim, ctx.idx, ctx.label = x.shape, dim, idx, label
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
        xp = ctx.xp
        out = x.copy()
        full = _full_index(xp, idx, dim)
        s = src[tuple(slice(0, n) for n in idx.shape)] if src.shape != idx.shape else src
        ctx.full, ctx.idx, ctx.dim, ctx.src_shape, ctx.reduce = full, idx, dim, src.shape, reduce
        if reduce == "add":
            _scatter_add_at(xp, out, full, s)
        elif reduce == "multiply":
            if xp is not np:
                raise NotImplementedError("scatter(reduce='multiply') is not implemented on CUDA")
            np.multiply.at(out, full, s)
        else:
            out[full] = s
        return out

    def backward(ctx, g, *_):
        xp = ctx.xp
        gx = gs = None
        if ctx.needs_input_grad[0]:
            gx = g.copy()
            if ctx.reduce is None:
                gx[ctx.full] = 0
        if len(ctx.needs_input_grad) > 1 and ctx.needs_input_grad[1]:
            gs = xp.zeros(ctx.src_shape, g.dtype)
            gs[tuple(slice(0, n) for n in ctx.idx.shape)] = g[ctx.full]
        return gx, gs, None


def _scatter(input, dim, index, src, reduce):
    _check_index(index, "scatter")
    d = wrap_dim(dim, input.ndim)
    _check_scatter_shapes(input, d, index, src)
    scalar = not isinstance(src, Tensor)
    if scalar:
        src = input.new_full(index.shape, src)
    elif src._data.dtype != input._data.dtype:
        raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype")
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
def scatter_add(input, dim, index, src):
    return _scatter(input, dim, index, src, "add")


@method()
def scatter_(input, dim, index, src=None, *, value=None, reduce=None):
    from .arith import assign_
    return assign_(input, scatter(input, dim, index, src, value=value, reduce=reduce))


@method()
def scatter_add_(input, dim, index, src):
    from .arith import assign_
    return assign_(input, scatter_add(input, dim, index, src))


class IndexSelect(Function):
    def forward(ctx, x, idx, dim):
        ctx.shape, ctx.dim, ctx.idx = x.shape, dim, idx
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
    if index.numel() and (int(index._data.max()) >= n or int(index._data.min()) < 0):
        bad = int(index._data.max()) if int(index._data.max()) >= n else int(index._data.min())
        raise IndexError(f"index out of range in self")
    return out_copy(IndexSelect.apply(input, index.reshape(-1) if index.ndim == 0 else index, dim=d), out)


class IndexAdd(Function):
    def forward(ctx, x, src, idx, dim, alpha=1):
        out = x.copy()
        key = (slice(None),) * dim + (idx,)
        _scatter_add_at(ctx.xp, out, key, src * alpha if alpha != 1 else src)
        ctx.key, ctx.alpha = key, alpha
        return out

    def backward(ctx, g, *_):
        gs = g[ctx.key]
        return g, gs * ctx.alpha if ctx.alpha != 1 else gs, None


@method()
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
        raise IndexError(f"index out of range in self")
    return IndexAdd.apply(input, source, index, dim=d, alpha=alpha)


@method()
def index_add_(input, dim, index, source, *, alpha=1):
    from .arith import assign_
    return assign_(input, index_add(input, dim, index, source, alpha=alpha))


@method()
def index_fill(input, dim, index, value):
    d = wrap_dim(dim, input.ndim)
    key = [slice(None)] * input.ndim
    key[d] = index
    mask = input.new_zeros(input.shape, dtype=_dtype.bool)
    mask._data[tuple(k._data if isinstance(k, Tensor) else k for k in key)] = True
    return masked_fill(input, mask, value)


# ---------------------------------------------------------------------------------------------- masks, where
class Where(Function):
    def forward(ctx, x, y, cond):
        ctx.cond, ctx.shapes = cond, (x.shape, y.shape)
        return ctx.xp.where(cond, x, y)

    def backward(ctx, g):
        c, xp = ctx.cond, ctx.xp
        sx, sy = ctx.shapes
        # a select, not a product with the mask: a NaN or inf gradient must not leak into the other branch
        gx = unbroadcast(xp.where(c, g, 0), sx) if ctx.needs_input_grad[0] else None
        gy = unbroadcast(xp.where(c, 0, g), sy) if ctx.needs_input_grad[1] else None
        return gx, gy, None


def where(condition, input=None, other=None, *, out=None):
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    if not isinstance(condition, Tensor):
        raise TypeError("where(): argument 'condition' must be Tensor")
    if condition._data.dtype.kind != "b":
        raise RuntimeError(f"where expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{_dtype.scalar_name(condition.dtype)}")
    (x, y), _ = promote(input, other)
    err = broadcast_error(condition.shape, x.shape)
    if err is None:
        err = broadcast_error(np.broadcast_shapes(condition.shape, x.shape), y.shape)
    if err is not None:
        raise err
    return out_copy(Where.apply(x, y, condition), out)


Tensor.where = lambda self, condition, other: where(condition, self, other)


class MaskedFill(Function):
    def forward(ctx, x, mask, value):
        ctx.mask, ctx.shape = mask, x.shape
        return ctx.xp.where(mask, ctx.xp.asarray(value, dtype=x.dtype), x)

    def backward(ctx, g):
        return unbroadcast(ctx.xp.where(ctx.mask, 0, g), ctx.shape), None


# the C++ type names torch's masked_fill message prints
_C_TYPE_NAMES = dict(uint8="unsigned char", int8="signed char", int16="short int", int32="int", int64="long int",
                     float16="c10::Half", bfloat16="c10::BFloat16", float32="float", float64="double")


@method()
def masked_fill(input, mask, value):
    if mask._data.dtype.kind != "b":
        raise RuntimeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                           f"{_C_TYPE_NAMES.get(mask.dtype.name, mask.dtype.name)}")
    err = broadcast_error(mask.shape, input.shape)
    if err is not None:
        raise err
    shape = np.broadcast_shapes(mask.shape, input.shape)
    if shape != tuple(input.shape):  # the out-of-place form takes the broadcast shape
        input = input.expand(shape)
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with "
                               f"{value.ndim} dimension(s).")
        if value._requires_grad and grad_mode.is_grad_enabled():
            # the filled positions are differentiable with respect to the value
            v = value if value._data.dtype == input._data.dtype else value.to(input.dtype)
            return Where.apply(v.expand(input.shape), input, mask.expand(input.shape))
        value = value.item()
    return MaskedFill.apply(input, mask, value=value)


@method()
def masked_fill_(input, mask, value):
    from .arith import assign_
    err = broadcast_error(input.shape, mask.shape)
    if err is not None:
        raise err
    return assign_(input, masked_fill(input, mask, value))


@method()
def masked_select(input, mask):
    x, m = input, mask
    if m._data.dtype.kind != "b":
        raise RuntimeError(f"masked_select: expected BoolTensor for mask")
    if x.shape != m.shape:
        err = broadcast_error(m.shape, x.shape)
        if err is not None:
            raise err
        shp = np.broadcast_shapes(x.shape, m.shape)
        x, m = x.expand(shp), m.expand(shp)
    return AdvancedIndex.apply(x, key=(m._data,), label="MaskedSelectBackward0")


@method()
def masked_scatter(input, mask, source):
    n = int(mask._data.sum())
    out = input.clone()
    out[mask.expand(input.shape)] = source.reshape(-1)[:n]
    return out


@method()
def nonzero(input, *, as_tuple=False):
    xp = input._device.xp
    if input.ndim == 0:
        n = int(bool(input._data))
        if as_tuple:
            return (_wrap(xp.zeros(n, np.int64), input._device),)
        return _wrap(xp.zeros((n, 0), np.int64), input._device)
    idx = xp.nonzero(input._data)
    if as_tuple:
        return tuple(_wrap(i.astype(np.int64, copy=False), input._device) for i in idx)
    return _wrap(xp.stack(idx, axis=1).astype(np.int64, copy=False) if idx else xp.zeros((0, 0), np.int64),
                 input._device)


@method()
def argwhere(input):
    return nonzero(input)


# --------------------------------------------------------------------------------------------- sort, topk
@method()
def sort(input, dim=-1, descending=False, stable=False):
    from .reduce import return_sort
    d = wrap_dim(dim, input.ndim) if input.ndim else 0
    xp = input._device.xp
    if input.ndim == 0:
        return return_sort(input.clone(), input.new_zeros((), dtype=_dtype.int64))
    a = input._data
    if descending:
        # stable descending order: sort the negated keys (reversing a stable ascending sort breaks tie order)
        key = -a if a.dtype.kind in "fi" else ~a if a.dtype.kind == "b" else -a.astype(np.int64)
        idx = xp.argsort(key, axis=d, kind="stable")
        if a.dtype.kind == "f" and bool(xp.isnan(a).any()):
            # torch orders NaN above +inf: a second stable pass moves the NaNs to the front
            first = xp.take_along_axis(~xp.isnan(a), idx, axis=d)
            idx = xp.take_along_axis(idx, xp.argsort(first, axis=d, kind="stable"), axis=d)
    else:
        idx = xp.argsort(a, axis=d, kind="stable")
    it = _wrap(idx.astype(np.int64, copy=False), input._device)
    return return_sort(Gather.apply(input, it, dim=d, label="SortBackward0"), it)


@method()
def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable).indices


@method()
def msort(input):
    return sort(input, 0).values


@method()
def topk(input, k, dim=-1, largest=True, sorted=True):
    from .reduce import return_topk
    d = wrap_dim(dim, input.ndim) if input.ndim else 0
    n = input.shape[d] if input.ndim else 1
    if k > n or k < 0:
        raise RuntimeError(f"selected index k out of range")
    s = sort(input, d, descending=largest)
    idx = s.indices.narrow(d, 0, k) if input.ndim else s.indices
    return return_topk(Gather.apply(input, idx, dim=d, label="TopkBackward0") if input.ndim else input.clone(), idx)


@method()
def kthvalue(input, k, dim=-1, keepdim=False):
    from .reduce import return_kthvalue
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    if k < 1 or k > n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    s = sort(input, d)
    v, i = s.values.select(d, k - 1), s.indices.select(d, k - 1)
    if keepdim:
        v, i = v.unsqueeze(d), i.unsqueeze(d)
    return return_kthvalue(v, i)


@method()
def median(input, dim=None, keepdim=False):
    from .reduce import return_median
    if dim is None:
        flat = input.reshape(-1)
        return sort(flat).values[(flat.numel() - 1) // 2]
    d = wrap_dim(dim, input.ndim)
    s = sort(input, d)
    m = (input.shape[d] - 1) // 2
    v, i = s.values.select(d, m), s.indices.select(d, m)
    if keepdim:
        v, i = v.unsqueeze(d), i.unsqueeze(d)
    return return_median(v, i)


def one_hot(tensor, num_classes=-1):
    if tensor._data.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    xp = tensor._device.xp
    if num_classes == -1:
        num_classes = int(tensor._data.max()) + 1 if tensor.numel() else 0
    if tensor.numel() and (int(tensor._data.min()) < 0):
        raise RuntimeError("Class values must be non-negative.")
    if tensor.numel() and int(tensor._data.max()) >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    out = (tensor._data[..., None] == xp.arange(num_classes)).astype(np.int64)
    return _wrap(out, tensor._device)


@method()
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    xp = input._device.xp
    res = xp.unique(input._data.reshape(-1) if dim is None else input._data, return_inverse=return_inverse,
                    return_counts=return_counts, axis=dim)
    if not isinstance(res, tuple):
        return _wrap(res, input._device)
    out = [_wrap(res[0], input._device)]
    for r in res[1:]:
        out.append(_wrap(r.astype(np.int64).reshape(input.shape) if r.size == input.numel() and return_inverse and
                         len(out) == 1 else r.astype(np.int64), input._device))
    return tuple(out)


@method()
def bincount(input, weights=None, minlength=0):
    xp = input._device.xp
    return _wrap(xp.bincount(input._data, None if weights is None else weights._data, minlength), input._device)


def searchsorted(sorted_sequence, values, *, right=False, side=None, out_int32=False):
    xp = sorted_sequence._device.xp
    v = values._data if isinstance(values, Tensor) else xp.asarray(values)
    r = xp.searchsorted(sorted_sequence._data, v, side="right" if right or side == "right" else "left")
    return _wrap(r.astype(np.int32 if out_int32 else np.int64), sorted_sequence._device)


def bucketize(input, boundaries, *, out_int32=False, right=False):
    return searchsorted(boundaries, input, right=right, out_int32=out_int32)


# ----------------------------------------------------------------------------------- index_copy, scatter_reduce
class IndexCopy(Function):
    def forward(ctx, x, src, idx, dim):
        ctx.key = (slice(None),) * dim + (idx,)
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
def index_copy(input, dim, index, source):
    """A copy of input with the slices index[i] along `dim` replaced by the slices i of source."""
    d = wrap_dim(dim, input.ndim)
    _check_index_copy(input, d, index, source)
    x = input.reshape(1) if input.ndim == 0 else input
    src = source.reshape([1 if k == d else s for k, s in enumerate(x.shape)]) if source.ndim == 0 else source
    out = IndexCopy.apply(x, src, index.reshape(-1), dim=d)
    return out.reshape(()) if input.ndim == 0 else out


def _index_copy_(input, dim, index, source):
    from .arith import assign_
    return assign_(input, index_copy(input, dim, index, source))


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
    if xp is np:
        getattr(np, op).at(out, key, vals)
    elif op == "add":
        _scatter_add_at(xp, out, key, vals)
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
