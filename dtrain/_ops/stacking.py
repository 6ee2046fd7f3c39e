"""Joining and splitting along a dim (cat, stack, split, chunk, unbind, ...), and along named axes
(column_stack, dstack, hsplit, vsplit, dsplit); atleast_nd, combinations, diagflat, vander, unravel_index."""
import numpy as np

from .. import _dtype
from .._tensor import Size, Tensor, _wrap
from ..autograd.graph import Function
from .. import _memory_format as _mf
from ._layout import c_order, channels_last_format, empty_strided
from ._util import cast, method, on_input_device, wrap_dim
from .shape import diag
from ..amp._dispatch import autocast_op


def _joined_layout(xp, y, xs):
    """torch lays out cat's (and stack's) result in the inputs' memory format where they all share a
    channels-last one, else contiguously; NumPy keeps any order of dims the inputs share (transposed ones give
    a transposed result, which `.view()` would then refuse where torch's accepts)."""
    fmts = {channels_last_format(x) for x in xs}
    fmt = fmts.pop() if len(fmts) == 1 else None
    if fmt is None:
        return c_order(y)
    if y.ndim != (4 if fmt is _mf.channels_last else 5):
        return y  # stack of channels-last tensors: one dim more, no format of torch's to match
    if channels_last_format(y) is fmt:
        return y
    out = empty_strided(xp, y.shape, _mf.strides(fmt, y.shape), y.dtype)
    out[...] = y
    return out


class Cat(Function):
    def forward(ctx, *xs, dim):
        # torch skips 1-D empty tensors (legacy behaviour); they still get a (0,)-shaped gradient
        ctx.skip = tuple(x.ndim == 1 and x.shape[0] == 0 for x in xs)
        if all(ctx.skip):
            ctx.skip = (False,) + ctx.skip[1:]
        kept = [x for x, s in zip(xs, ctx.skip) if not s]
        ctx.sizes, ctx.dim = [x.shape[dim] for x in kept], dim
        return _joined_layout(ctx.xp, ctx.xp.concatenate(kept, axis=dim), kept)

    def backward(ctx, g):
        parts = iter(ctx.xp.split(g, np.cumsum(ctx.sizes)[:-1].tolist(), axis=ctx.dim))
        return tuple(ctx.xp.zeros((0,), g.dtype) if s else next(parts) for s in ctx.skip)


@autocast_op("cat")
def cat(tensors, dim=0, *, out=None):
    from ._util import out_copy, promote
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("torch.cat(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    skip = [t.ndim == 1 and t.shape[0] == 0 for t in tensors]
    ts = [t for t, s in zip(tensors, skip) if not s] or tensors[:1]
    ref = ts[0]
    d = wrap_dim(dim, ref.ndim)
    for i, t in enumerate(tensors):
        if skip[i]:
            continue
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and {t.ndim}")
        for j in range(ref.ndim):
            if j != d and t.shape[j] != ref.shape[j]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. Expected size "
                                   f"{ref.shape[j]} but got size {t.shape[j]} for tensor number {i} in the list.")
    if any(t._data.dtype != ref._data.dtype for t in tensors):
        tensors, _ = promote(*tensors)
    return out_copy(Cat.apply(*tensors, dim=d), out)


concat = concatenate = cat


@autocast_op("stack")
def stack(tensors, dim=0, *, out=None):
    from ._util import out_copy
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty TensorList")
    shp = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != shp:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got [{tensors[0]._shape_str()}] at "
                               f"entry 0 and [{t._shape_str()}] at entry {i}")
    d = wrap_dim(dim, len(shp) + 1)
    if any(t._data.dtype != tensors[0]._data.dtype for t in tensors):
        from ._util import promote
        tensors, _ = promote(*tensors)
    return out_copy(Stack.apply(*tensors, dim=d), out)


class Stack(Function):
    def forward(ctx, *xs, dim):
        ctx.dim = dim
        return _joined_layout(ctx.xp, ctx.xp.stack(xs, axis=dim), xs)

    def backward(ctx, g):
        return tuple(ctx.xp.moveaxis(g, ctx.dim, 0))


class Unbind(Function):
    _view = True

    def forward(ctx, x, dim):
        ctx.dim = dim
        m = ctx.xp.moveaxis(x, dim, 0)
        return tuple(m[i, ...] for i in range(m.shape[0]))  # `...`: 0-d views, not scalar copies

    def backward(ctx, *gs):
        return ctx.xp.stack(gs, axis=ctx.dim)


def hstack(tensors):
    return cat(tensors, 0 if tensors[0].ndim == 1 else 1)


def vstack(tensors):
    return cat([t.reshape(1, -1) if t.ndim == 1 else t for t in tensors], 0)


class Split(Function):
    _view = True

    def forward(ctx, x, bounds, dim, label="SplitBackward0"):
        # label: torch's node (SplitWithSizes for explicit sizes); tensor_split's pieces are separate
        # slices in torch, which may be written in place, unlike split's
        ctx.shape, ctx.dim, ctx.bounds, ctx.label = x.shape, dim, bounds, label
        ctx._multi_output = label != "SliceBackward0"
        sl = [slice(None)] * x.ndim
        out = []
        for a, b in bounds:
            sl[dim] = slice(a, b)
            out.append(x[tuple(sl)])
        return tuple(out)

    def name(self):
        return self.label

    def backward(ctx, *gs):
        return ctx.xp.concatenate(gs, axis=ctx.dim)


def _split_bounds(n, sizes):
    b, a = [], 0
    for s in sizes:
        b.append((a, a + s))
        a += s
    return b


@method()
def split(tensor, split_size_or_sections, dim=0):
    d = wrap_dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        s = split_size_or_sections
        if s < 0:
            raise RuntimeError(f"split expects split_size be non-negative, but got split_size={s}")
        if s <= 0 and not (s == 0 and n == 0):
            raise RuntimeError(f"split_size can only be 0 if dimension size is 0, but got dimension size of {n}")
        sizes = [s] * (n // s) + ([n % s] if n % s else []) if s and n else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                               f"dimension {d}), but got split_sizes={sizes}")
        return Split.apply(tensor, bounds=tuple(_split_bounds(n, sizes)), dim=d, label="SplitWithSizesBackward0")
    return Split.apply(tensor, bounds=tuple(_split_bounds(n, sizes)), dim=d)


@method()
def split_with_sizes(input, split_sizes, dim=0):
    return split(input, list(split_sizes), dim)


@method()
def tensor_split(input, indices_or_sections, dim=0):
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)
    else:
        idx = [0] + [min(max(i, 0), n) for i in indices_or_sections] + [n]
        sizes = [max(b - a, 0) for a, b in zip(idx, idx[1:])]
    return Split.apply(input, bounds=tuple(_split_bounds(n, sizes)), dim=d, label="SliceBackward0")


@method()
def chunk(input, chunks, dim=0):
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    if n == 0:  # torch returns `chunks` empty pieces
        return split(input, [0] * chunks, d)
    return split(input, -(-n // chunks), d)


@method()
def unbind(input, dim=0):
    d = wrap_dim(dim, input.ndim)
    return Unbind.apply(input, dim=d) if input.shape[d] else ()


def column_stack(tensors):
    """Tensors side by side as columns: 0-d and 1-d ones become (n, 1) columns first."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("column_stack expects a non-empty TensorList")
    return cat([t.reshape(t.numel(), 1) if t.ndim <= 1 else t for t in tensors], 1)


def _atleast_3d(t):
    if t.ndim == 0:
        return t.reshape(1, 1, 1)
    if t.ndim == 1:
        return t.reshape(1, -1, 1)
    return t.unsqueeze(-1) if t.ndim == 2 else t


def dstack(tensors):
    """Tensors stacked depthwise (along dim 2), after making each at least 3-d as (1, n, 1) or (m, n, 1)."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("dstack expects a non-empty TensorList")
    return cat([_atleast_3d(t) for t in tensors], 2)


def _split_along(input, indices_or_sections, name, min_ndim, dim):
    if input.ndim < min_ndim:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_ndim} dimension, but got a tensor with "
                           f"{input.ndim} dimensions!")
    if isinstance(indices_or_sections, Tensor):
        indices_or_sections = indices_or_sections.tolist()
    if not isinstance(indices_or_sections, int):
        return input.tensor_split(list(indices_or_sections), dim)
    n, k = input.shape[dim], indices_or_sections
    if k == 0 or n % k:
        raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but the size of the dimension {n} "
                           f"is not divisible by the split_size {k}!")
    if k < 0:
        raise RuntimeError(f"number of sections must be larger than 0, got {k}")
    return input.tensor_split(k, dim)


def hsplit(input, indices_or_sections):
    """tensor_split along dim 1 (dim 0 for 1-d tensors); a number of sections must divide the size."""
    return _split_along(input, indices_or_sections, "hsplit", 1, 0 if input.ndim == 1 else 1)


def vsplit(input, indices_or_sections):
    """tensor_split along dim 0 of a tensor of at least 2 dims; a number of sections must divide the size."""
    return _split_along(input, indices_or_sections, "vsplit", 2, 0)


def dsplit(input, indices_or_sections):
    """tensor_split along dim 2 of a tensor of at least 3 dims; a number of sections must divide the size."""
    return _split_along(input, indices_or_sections, "dsplit", 3, 2)


def _split_method(fn):
    # the Tensor methods also take the indices as separate arguments: x.hsplit(1, 2)
    return lambda self, *indices_or_sections: fn(
        self, indices_or_sections[0] if len(indices_or_sections) == 1 else indices_or_sections)


Tensor.hsplit, Tensor.vsplit, Tensor.dsplit = (_split_method(f) for f in (hsplit, vsplit, dsplit))


@method()
def diagflat(input, offset=0):
    """The flattened input as the `offset` diagonal of a square matrix."""
    return diag(input.reshape(-1), offset)


def vander(x, N=None, increasing=False):
    """Vandermonde matrix of a 1-d x: columns x^(N-1), ..., x^0 (ascending with `increasing`). Integer and bool
    inputs give int64. The powers are a cumulative product, as in torch, which is also the gradient's path."""
    if x.ndim != 1:
        raise RuntimeError("x must be a one-dimensional tensor.")
    n = x.shape[0] if N is None else N
    if n < 0:
        raise RuntimeError("N must be non-negative.")
    dt = _dtype.promote_types(x.dtype, _dtype.int64)
    x = cast(x, dt) if x.dtype != dt else x
    from .creation import ones
    cols = [ones(x.shape[0], min(n, 1), dtype=dt, device=x.device)]
    if n > 1:
        cols.append(x.unsqueeze(1).expand(x.shape[0], n - 1).cumprod(1))
    r = cat(cols, 1)
    return r if increasing else r.flip(1)


@on_input_device
def unravel_index(indices, shape):
    """The coordinates, one int64 tensor per dim of `shape`, of flat indices into a tensor of that shape
    (negative indices count from the end, as floor division and modulo make them)."""
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == _dtype.bool:
        raise TypeError(f"expected 'indices' to be integer dtype, but got {indices.dtype}")
    if not isinstance(shape, (int, np.integer, tuple, list, Size)):
        raise TypeError(f"expected 'shape' to be int or sequence of ints, but got {type(shape)}")
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    for s in shape:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"expected 'shape' sequence to only contain ints, but got {type(s)}")
    if any(s < 0 for s in shape):
        raise ValueError(f"'shape' cannot have negative values, but got {shape}")
    xp = indices._device.xp
    if 0 in shape and indices.numel():
        raise RuntimeError("ZeroDivisionError")
    coefs = np.cumprod((1,) + shape[:0:-1])[::-1].astype(np.int64)
    a = indices._data.astype(np.int64)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        coords = a // xp.asarray(coefs) % xp.asarray(np.asarray(shape, np.int64))
    return tuple(_wrap(coords[..., k], indices._device) for k in range(len(shape)))


def _atleast(fn_name, min_ndim, tensors):
    one = len(tensors) == 1 and isinstance(tensors[0], Tensor)
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for t in tensors:
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn_name}() expected Tensor or a sequence of Tensors, but got {type(t).__name__}")
    out = []
    for t in tensors:
        if t.ndim >= min_ndim:
            out.append(t)
        elif min_ndim == 3:
            out.append(_atleast_3d(t))
        else:  # leading 1s: a vector becomes a row
            out.append(t.reshape((1,) * (min_ndim - t.ndim) + tuple(t.shape)))
    return out[0] if one else tuple(out)


def atleast_1d(*tensors):
    """Each tensor viewed with at least one dim; one tensor in, one out, otherwise a tuple."""
    return _atleast("atleast_1d", 1, tensors)


def atleast_2d(*tensors):
    """Each tensor viewed with at least two dims (a vector as a row)."""
    return _atleast("atleast_2d", 2, tensors)


def atleast_3d(*tensors):
    """Each tensor viewed with at least three dims: (n,) as (1, n, 1), (m, n) as (m, n, 1)."""
    return _atleast("atleast_3d", 3, tensors)


@on_input_device  # the positions become an index array here
def combinations(input, r=2, with_replacement=False):
    """The length-r combinations of a vector's elements as rows, in lexicographic order of positions
    (itertools.combinations, or combinations_with_replacement)."""
    if input.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape [{input._shape_str()}]")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return input.new_empty(0)
    n = input.shape[0]
    # every r-tuple of positions (C order is lexicographic), kept where the positions increase
    grid = np.indices((n,) * r).reshape(r, -1)
    step = np.diff(grid, axis=0)
    keep = (step >= 0 if with_replacement else step > 0).all(axis=0)
    pos = grid[:, keep].T
    picked = input.index_select(0, _wrap(input._device.xp.asarray(pos.reshape(-1)), input._device))
    return picked.reshape(-1, r)
