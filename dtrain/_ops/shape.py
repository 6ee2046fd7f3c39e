"""Shape ops: views (view, transpose, permute, expand, ...) share memory and the version counter with
their input; the rest (repeat, flip, tril, ...) copy. Joining and splitting along a dim live in stacking."""
import math

import numpy as np

from .._tensor import Size, Tensor, _wrap
from ..autograd import graph as _graph
from ..autograd.graph import Function
from ._layout import c_ordered, empty_preserving
from ._util import method, normalize_shape, wrap_dim, wrap_dims
from .inplace import view_at
from ..amp._dispatch import autocast_op


def _infer_shape(shape, numel):
    shape = list(shape)
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for s in shape:
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s}")
    known = math.prod(s for s in shape if s != -1)
    if neg:
        if known == 0 and numel == 0:
            raise RuntimeError(f"cannot reshape tensor of 0 elements into shape [{', '.join(str(s) for s in shape)}] "
                               "because the unspecified dimension size -1 can be any value and is ambiguous")
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '[{', '.join(str(s) for s in shape)}]' is invalid for input of size {numel}")
        shape[neg[0]] = numel // known
    elif known != numel:
        raise RuntimeError(f"shape '[{', '.join(str(s) for s in shape)}]' is invalid for input of size {numel}")
    return tuple(shape)


def _viewable(a, shape):
    """Whether an array of a's shape and strides can be reshaped to `shape` without a copy (decided on a
    zero-stride NumPy stand-in, so it works for CuPy arrays too and touches no data)."""
    if a.flags.c_contiguous:
        return True
    probe = np.lib.stride_tricks.as_strided(np.empty(1, np.int8), shape=a.shape,
                                            strides=tuple(s // a.itemsize for s in a.strides))
    try:
        np.reshape(probe, shape, copy=False)
        return True
    except ValueError:
        return False


def _view_strides(shape, strides, new_shape):
    """torch's strides for a view of (shape, strides) as new_shape (its computeStride; None where no view
    can be made). Where a dim has size 1 the stride is free, and torch's choice differs from NumPy's: it
    shows in stride(), and in whether a copy between the two is a partial overlap."""
    numel = 1
    for n in shape:
        numel *= n
    if numel == 0:
        if tuple(shape) == tuple(new_shape):
            return tuple(strides)
        out, acc = [0] * len(new_shape), 1
        for d in range(len(new_shape) - 1, -1, -1):
            out[d] = acc
            acc *= max(new_shape[d], 1)
        return tuple(out)
    out = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_base = strides[-1] if strides else 1
    tensor_numel = view_numel = 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                out[view_d] = view_numel * chunk_base
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                chunk_base, tensor_numel, view_numel = strides[d - 1], 1, 1
    return tuple(out) if view_d == -1 else None


def torch_view(xp, x, shape):
    """x.reshape(shape) as a view with torch's strides (the caller has checked that it is a view)."""
    y = x.reshape(shape)
    if (1 in shape or 0 in shape) and x.ndim:
        st = _view_strides(x.shape, tuple(s // x.itemsize for s in x.strides), tuple(shape))
        if st is not None:
            st = tuple(s * x.itemsize for s in st)
            if st != y.strides:
                y = xp.lib.stride_tricks.as_strided(y, shape, st)
    return y


class View(Function):
    _view = True

    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        if not _viewable(x, shape):
            raise RuntimeError("view size is not compatible with input tensor's size and stride (at least one "
                               "dimension spans across two contiguous subspaces). Use .reshape(...) instead.")
        return torch_view(ctx.xp, x, shape)

    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


class ReshapeCopy(Function):
    _grad_fn_name = "UnsafeViewBackward0"  # torch's node for a reshape that had to copy

    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape).copy()

    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


@method()
def view(input, *shape):
    from .. import _dtype
    if len(shape) == 1 and isinstance(shape[0], _dtype.dtype):
        return _view_dtype(input, shape[0])
    shape = _infer_shape(normalize_shape(shape), input._data.size)
    return View.apply(input, shape=shape)


def _view_dtype(input, dt):
    t = _wrap(input._data.view(dt.np), input._device)
    t._vc = input._vc  # the same memory: a write through either is a new version of both
    return t


@method()
def reshape(input, *shape):
    shape = _infer_shape(normalize_shape(shape), input._data.size)
    if _viewable(input._data, shape):
        return View.apply(input, shape=shape)
    return ReshapeCopy.apply(input, shape=shape)


@method()
def view_as(input, other):
    return view(input, other.shape)


@method()
def reshape_as(input, other):
    return reshape(input, other.shape)


@method()
def flatten(input, start_dim=0, end_dim=-1):
    if input.ndim == 0:
        return reshape(input, 1)
    s, e = wrap_dim(start_dim, input.ndim), wrap_dim(end_dim, input.ndim)
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    if s == e:
        return input
    shp = input.shape
    return reshape(input, shp[:s] + (math.prod(shp[s:e + 1]),) + shp[e + 1:])


ravel = lambda input: reshape(input, -1)
Tensor.ravel = ravel


@method()
def unflatten(input, dim, sizes):
    d = wrap_dim(dim, input.ndim)
    sizes = tuple(sizes)
    if -1 in sizes:
        sizes = _infer_shape(sizes, input.shape[d])
    if math.prod(sizes) != input.shape[d]:
        raise RuntimeError(f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} "
                           f"({input.shape[d]}) in the input tensor")
    return view(input, input.shape[:d] + sizes + input.shape[d + 1:])


class Permute(Function):
    _view = True

    def forward(ctx, x, dims, label="PermuteBackward0"):
        ctx.dims, ctx.label = dims, label  # label: torch's node name (transpose and t are permutes here)
        return x.transpose(dims)

    def name(self):
        return self.label

    def backward(ctx, g):
        return g.transpose(tuple(np.argsort(ctx.dims).tolist()))  # Python ints: an axes argument, not an array


@method()
def permute(input, *dims):
    if not dims:
        raise TypeError('permute() missing 1 required positional arguments: "dims"')
    dims = normalize_shape(dims)
    if len(dims) != input.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does not match the length "
                           f"of the desired ordering of dimensions i.e. input.dim() = {input.ndim} is not equal to "
                           f"len(dims) = {len(dims)}")
    dims = tuple(wrap_dim(d, input.ndim) for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return Permute.apply(input, dims=dims)


@method()
def transpose(input, dim0, dim1):
    n = input.ndim
    if n == 0:
        wrap_dim(dim0, 0), wrap_dim(dim1, 0)
        return input.view(())
    d0, d1 = wrap_dim(dim0, n), wrap_dim(dim1, n)
    dims = list(range(n))
    dims[d0], dims[d1] = d1, d0
    return Permute.apply(input, dims=tuple(dims), label="TransposeBackward0")


swapaxes = swapdims = transpose
Tensor.swapaxes = Tensor.swapdims = transpose


def _view_inplace(t, view):
    """`t` becomes `view` of itself (transpose_, squeeze_, ...): same storage, new shape and strides."""
    from .arith import check_inplace
    check_inplace(t)
    t._data = view._data
    if view.grad_fn is not None:
        t.grad_fn, t._output_nr = view.grad_fn, view._output_nr
    t._vc.value += 1
    return t


Tensor.transpose_ = Tensor.swapaxes_ = Tensor.swapdims_ = \
    lambda self, dim0, dim1: _view_inplace(self, transpose(self, dim0, dim1))


@method()
def t(input):
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return Permute.apply(input, dims=(1, 0), label="TBackward0") if input.ndim == 2 else input.view(input.shape)


Tensor.t_ = lambda self: _view_inplace(self, t(self))


@method()
def adjoint(input):
    """The conjugate transpose of the last two dims (a view)."""
    if input.ndim < 2:
        raise RuntimeError(f"tensor.adjoint() is only supported on matrices or batches of matrices. Got "
                           f"{input.ndim}-D tensor.")
    return conj(transpose(input, -2, -1))


Tensor.T = property(lambda self: Permute.apply(self, dims=tuple(range(self.ndim))[::-1]))
Tensor.mT = property(lambda self: transpose(self, -2, -1))
Tensor.H = property(lambda self: self.T.conj() if self.is_complex() else self.T)
Tensor.mH = property(lambda self: self.mT.conj() if self.is_complex() else self.mT)


@method()
def conj(input):
    return input if not input.is_complex() else _Conj.apply(input)


class _Conj(Function):
    def forward(ctx, x):
        return x.conj()

    def backward(ctx, g):
        return g.conj()


@method()
def movedim(input, source, destination):
    source = [source] if isinstance(source, int) else list(source)
    destination = [destination] if isinstance(destination, int) else list(destination)
    if len(source) != len(destination):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({source} dims) should contain the "
                           f"same number of dims as destination ({destination} dims)")
    src = [wrap_dim(s, input.ndim) for s in source]
    dst = [wrap_dim(d, input.ndim) for d in destination]
    for name, given, dims in (("source", source, src), ("destination", destination, dst)):
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({given})")
    order = [d for d in range(input.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return Permute.apply(input, dims=tuple(order))


moveaxis = movedim
Tensor.moveaxis = movedim


class Squeeze(Function):
    _view = True

    def forward(ctx, x, shape, label="SqueezeBackward0"):
        ctx.in_shape, ctx.label = x.shape, label
        return x.reshape(shape)

    def name(self):
        return self.label

    def backward(ctx, g):
        return g.reshape(ctx.in_shape)


@method()
def squeeze(input, dim=None):
    shp = input.shape
    if dim is None:
        new = tuple(s for s in shp if s != 1)
    else:
        dims = wrap_dims(dim, input.ndim) if input.ndim else ()
        if input.ndim == 0:
            wrap_dim(dim, 0) if isinstance(dim, int) else None
        new = tuple(s for i, s in enumerate(shp) if not (i in dims and s == 1))
    return Squeeze.apply(input, shape=new, label="SqueezeBackward0" if dim is None else
                         "SqueezeBackward1" if isinstance(dim, int) else "SqueezeBackward2")


@method()
def unsqueeze(input, dim):
    d = wrap_dim(dim, input.ndim + 1)
    shp = input.shape
    return Squeeze.apply(input, shape=shp[:d] + (1,) + shp[d:], label="UnsqueezeBackward0")


Tensor.squeeze_ = lambda self, dim=None: _view_inplace(self, squeeze(self, dim))
Tensor.unsqueeze_ = lambda self, dim: _view_inplace(self, unsqueeze(self, dim))


def _strided_like(xp, x, template):
    """`template` (a view of x that the array module made read-only: broadcast_to, diagonal) as a writable
    view of x, as torch's views are: writes into it are refused only where elements overlap (check_overlap)."""
    if getattr(template.flags, "writeable", True):
        return template
    return view_at(xp, x, template)


def _torch_strides(xp, view, x):
    """broadcast_to's view of x with torch's strides (inferExpandGeometry): a size-1 dim that stays 1 keeps
    its stride, a new leading dim of size 1 gets the span of the dims after it; NumPy puts 0 in both. Only
    the strides of size-1 dims differ, which torch compares when it tells how two tensors overlap."""
    lead = view.ndim - x.ndim
    strides = list(view.strides)
    for i in range(view.ndim - 1, -1, -1):
        if view.shape[i] != 1:
            continue
        if i >= lead:
            strides[i] = x.strides[i - lead]
        else:
            strides[i] = view.itemsize if i == view.ndim - 1 else strides[i + 1] * view.shape[i + 1]
    if tuple(strides) == view.strides:
        return view
    return xp.lib.stride_tricks.as_strided(x, view.shape, tuple(strides))  # same start address as the view


class Expand(Function):
    _view = True

    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return _strided_like(ctx.xp, x, _torch_strides(ctx.xp, ctx.xp.broadcast_to(x, shape), x))

    def backward(ctx, g):
        from ._util import unbroadcast
        return unbroadcast(g, ctx.in_shape)


@method()
def expand(input, *sizes):
    sizes = normalize_shape(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(f"expand({input.type_name()}{{[{input._shape_str()}]}}, size=[{', '.join(map(str, sizes))}]): "
                           f"the number of sizes provided ({len(sizes)}) must be greater or equal to the number of "
                           f"dimensions in the tensor ({input.ndim})")
    lead = len(sizes) - input.ndim
    shape = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in a leading, non-existing "
                                   f"dimension {i}")
            shape.append(s)
            continue
        cur = input.shape[i - lead]
        if s == -1:
            s = cur
        elif cur != s and cur != 1:
            raise RuntimeError(f"The expanded size of the tensor ({s}) must match the existing size ({cur}) at "
                               f"non-singleton dimension {i}.  Target sizes: [{', '.join(map(str, sizes))}].  "
                               f"Tensor sizes: [{input._shape_str()}]")
        shape.append(s)
    return Expand.apply(input, shape=tuple(shape))


@method()
def expand_as(input, other):
    return expand(input, other.shape)


@method()
def broadcast_to(input, size):
    return expand(input, size)


@method()
def sum_to_size(self, *size):
    """Sum down to `size`, which must expand to self's shape (the backward of broadcasting)."""
    size = normalize_shape(size)
    shp = tuple(self.shape)
    n = len(shp) - len(size)
    if n < 0 or any(s != 1 and s != d for s, d in zip(size, shp[n:])):
        raise RuntimeError(f"size {{[{', '.join(map(str, size))}]}} is not expandable to size "
                           f"{{[{', '.join(map(str, shp))}]}}.")
    out = self.sum(tuple(range(n))) if n else self
    keep = tuple(i for i, s in enumerate(size) if s == 1 and shp[n + i] != 1)
    return out.sum(keep, keepdim=True) if keep else out


def broadcast_shapes(*shapes):
    try:
        return Size(np.broadcast_shapes(*[tuple(s) if not isinstance(s, int) else (s,) for s in shapes]))
    except ValueError:
        raise RuntimeError(f"Shape mismatch: objects cannot be broadcast to a single shape") from None


def broadcast_tensors(*tensors):
    shape = broadcast_shapes(*(t.shape for t in tensors))
    return tuple(expand(t, shape) for t in tensors)


class Repeat(Function):
    @c_ordered
    def forward(ctx, x, reps):
        ctx.in_shape, ctx.reps = x.shape, reps
        return ctx.xp.tile(x, reps)

    def backward(ctx, g):
        reps, shp = ctx.reps, ctx.in_shape
        lead = len(reps) - len(shp)
        full = (1,) * lead + tuple(shp)
        split = []
        for r, s in zip(reps, full):
            split += [r, s]
        g = g.reshape(split).sum(axis=tuple(range(0, 2 * len(reps), 2)))
        return g.reshape(shp)


@method()
def repeat(input, *sizes):
    reps = normalize_shape(sizes)
    if len(reps) < input.ndim:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    if any(r < 0 for r in reps):
        out = [r * s for r, s in zip(reps, (1,) * (len(reps) - input.ndim) + tuple(input.shape))]
        raise RuntimeError(f"Trying to create tensor with negative dimension {min(out)}: [{', '.join(map(str, out))}]")
    return Repeat.apply(input, reps=reps)


@method()
def tile(input, dims):
    dims = tuple(dims)
    if len(dims) < input.ndim:
        dims = (1,) * (input.ndim - len(dims)) + dims
    return repeat(input, dims)


@method()
def narrow(input, dim, start, length):
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    if isinstance(start, Tensor):
        start = int(start.item())
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if start < -n or start > n:
        raise IndexError(f"start out of range (expected to be in range of [{-n}, {n}], but got {start})")
    if start < 0:
        start += n
    if start + length > n:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    sl = [slice(None)] * input.ndim
    sl[d] = slice(start, start + length)
    return input[tuple(sl)]


@method()
def narrow_copy(input, dim, start, length):
    return narrow(input, dim, start, length).clone()


@method()
def select(input, dim, index):
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]
    if index < -n or index >= n:
        raise IndexError(f"select(): index {index} out of range for tensor of size [{input._shape_str()}] at "
                         f"dimension {d}")
    sl = [slice(None)] * input.ndim
    sl[d] = index
    return input[tuple(sl)]


class Flip(Function):
    def forward(ctx, x, dims):
        ctx.dims = dims
        out = empty_preserving(ctx.xp, x)  # laid out as the input, as torch's flip
        ctx.xp.copyto(out, ctx.xp.flip(x, dims))
        return out

    def backward(ctx, g):
        return ctx.xp.flip(g, ctx.dims)


def flip(input, dims):
    dims = wrap_dims(dims if not isinstance(dims, int) else (dims,), input.ndim)
    return Flip.apply(input, dims=dims)


def _flip_method(self, *dims, **kwargs):
    """Tensor.flip takes its dims as one sequence or spread out (x.flip(0, 2)), as torch's method does;
    torch.flip takes one sequence."""
    if "dims" in kwargs:
        if dims:
            raise TypeError("flip() got multiple values for argument 'dims'")
        dims = (kwargs.pop("dims"),)
    if kwargs:
        raise TypeError(f"flip() got an unexpected keyword argument '{next(iter(kwargs))}'")
    if not dims:
        raise TypeError('flip() missing 1 required positional arguments: "dims"')
    return flip(self, dims[0] if len(dims) == 1 else dims)


Tensor.flip = _flip_method


@method()
def fliplr(input):
    return flip(input, (1,))


@method()
def flipud(input):
    return flip(input, (0,))


class Roll(Function):
    @c_ordered
    def forward(ctx, x, shifts, dims):
        ctx.shifts, ctx.dims = shifts, dims
        return ctx.xp.roll(x, shifts, dims)

    def backward(ctx, g):
        neg = tuple(-s for s in ctx.shifts) if isinstance(ctx.shifts, tuple) else -ctx.shifts
        return ctx.xp.roll(g, neg, ctx.dims)


@method()
def roll(input, shifts, dims=None):
    if dims is None:  # roll the flattened tensor, keep the shape
        if not isinstance(shifts, int):
            shifts = tuple(shifts)
            if len(shifts) != 1:
                raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
            shifts = shifts[0]
        return Roll.apply(input, shifts=shifts, dims=None)
    if isinstance(dims, int):
        dims, shifts = (dims,), (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = tuple(wrap_dim(d, input.ndim) for d in dims)
    shifts = tuple(shifts) if not isinstance(shifts, int) else (shifts,)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    return Roll.apply(input, shifts=shifts, dims=dims)


class Tri(Function):
    @c_ordered
    def forward(ctx, x, k, upper):
        ctx.k, ctx.upper = k, upper
        return (ctx.xp.triu if upper else ctx.xp.tril)(x, k)

    def name(self):
        return "TriuBackward0" if self.upper else "TrilBackward0"

    def backward(ctx, g):
        return (ctx.xp.triu if ctx.upper else ctx.xp.tril)(g, ctx.k)


@method()
def tril(input, diagonal=0, *, out=None):
    if input.ndim < 2:
        raise RuntimeError("tril: input tensor must have at least 2 dimensions")
    from ._util import out_copy
    return out_copy(Tri.apply(input, k=diagonal, upper=False), out)


@method()
def triu(input, diagonal=0, *, out=None):
    if input.ndim < 2:
        raise RuntimeError("triu: input tensor must have at least 2 dimensions")
    from ._util import out_copy
    return out_copy(Tri.apply(input, k=diagonal, upper=True), out)


Tensor.tril_ = lambda self, diagonal=0: __import__("dtrain")._ops.arith.assign_(self, tril(self, diagonal))
Tensor.triu_ = lambda self, diagonal=0: __import__("dtrain")._ops.arith.assign_(self, triu(self, diagonal))


class Diagonal(Function):
    _view = True

    def forward(ctx, x, offset, dim1, dim2):
        ctx.shape, ctx.args = x.shape, (offset, dim1, dim2)
        return _strided_like(ctx.xp, x, ctx.xp.diagonal(x, offset, dim1, dim2))

    def backward(ctx, g):
        return _diag_embed(ctx.xp, ctx.xp.zeros(ctx.shape, g.dtype), g, *ctx.args)


def _diag_embed(xp, out, g, offset, d1, d2):
    i = xp.arange(g.shape[-1])
    r, c = (i, i + offset) if offset >= 0 else (i - offset, i)
    o = xp.moveaxis(out, (d1, d2), (-2, -1))
    o[..., r, c] = g
    return out


class DiagEmbed(Function):
    def forward(ctx, v, offset):
        n = v.shape[0] + abs(offset)
        ctx.offset = offset
        return _diag_embed(ctx.xp, ctx.xp.zeros((n, n), v.dtype), v, offset, 0, 1)

    def backward(ctx, g):
        return ctx.xp.diagonal(g, ctx.offset).copy()


class Unfold(Function):
    """Windows of `size` every `step` along `dim`, as a new last dim: a view whose windows may overlap."""
    _view = True

    def forward(ctx, x, dim, size, step):
        ctx.shape, ctx.args = x.shape, (dim, size, step)
        n = (x.shape[dim] - size) // step + 1
        shape = x.shape[:dim] + (n,) + x.shape[dim + 1:] + (size,)
        strides = x.strides[:dim] + (x.strides[dim] * step,) + x.strides[dim + 1:] + (x.strides[dim],)
        return ctx.xp.lib.stride_tricks.as_strided(x, shape, strides)

    def backward(ctx, g):
        dim, size, step = ctx.args
        out = ctx.xp.zeros(ctx.shape, g.dtype)
        n = g.shape[dim]
        o = ctx.xp.moveaxis(out, dim, -1)
        gm = ctx.xp.moveaxis(g, dim, -2)  # (..., n, size)
        for j in range(size):  # window position j of every window: elements j, j + step, ... (sums overlaps)
            o[..., j:j + step * (n - 1) + 1:step] += gm[..., j]
        return out


@method()
def unfold(input, dimension, size, step):
    """Tensor.unfold: sliding windows of `size` along `dimension` (every `step`), as a new last dim (a view)."""
    d = wrap_dim(dimension, max(input.ndim, 1))
    if input.ndim == 0:
        if size > 1:
            raise RuntimeError(f"maximum size for tensor at dimension 0 is 1 but size is {size}")
        return input.view(1)
    n = input.shape[d]
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    return Unfold.apply(input, dim=d, size=size, step=step)


@method()
def as_strided(input, size, stride, storage_offset=None):
    """A view of input's storage (its base's memory) with the given size, stride and offset, in elements."""
    from .inplace import as_strided as strided_view
    return strided_view(input, size, stride, storage_offset)


@method()
def diagonal(input, offset=0, dim1=0, dim2=1):
    d1, d2 = wrap_dim(dim1, input.ndim), wrap_dim(dim2, input.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return Diagonal.apply(input, offset=offset, dim1=d1, dim2=d2)


@method()
def diag(input, diagonal=0):
    if input.ndim == 1:
        return DiagEmbed.apply(input, offset=diagonal)
    return Diagonal.apply(input, offset=diagonal, dim1=0, dim2=1).clone()


@method()
@autocast_op("trace")
def trace(input):
    return _graph.renamed(diagonal(input).sum(), "TraceBackward0")


@method()
def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
    from .creation import zeros
    return zeros(*size, dtype=dtype or self.dtype, device=device or self._device, requires_grad=requires_grad)


@method()
def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
    from .creation import ones
    return ones(*size, dtype=dtype or self.dtype, device=device or self._device, requires_grad=requires_grad)


@method()
def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
    from .creation import empty
    return empty(*size, dtype=dtype or self.dtype, device=device or self._device, requires_grad=requires_grad)


@method()
def new_empty_strided(self, size, stride, *, dtype=None, device=None, requires_grad=False):
    from .creation import empty_strided
    return empty_strided(size, stride, dtype=dtype or self.dtype, device=device or self._device,
                         requires_grad=requires_grad)


@method()
def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    from .creation import full
    return full(size, fill_value, dtype=dtype or self.dtype, device=device or self._device, requires_grad=requires_grad)


@method()
def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    from .creation import tensor
    return tensor(data, dtype=dtype or self.dtype, device=device or self._device, requires_grad=requires_grad)


class Einsum(Function):
    def forward(ctx, *xs, eq):
        ctx.save_for_backward(*xs)
        ctx.eq = eq
        return ctx.xp.einsum(eq, *xs, optimize=len(xs) > 2)

    def name(self):
        # torch's einsum is a decomposition whose last node depends on the equation: a sum (one operand, a
        # letter summed out), a permute (one operand), a view after bmm (a letter summed between operands) or a mul
        ins, out = self.eq.split("->")
        summed = set(ins.replace(",", "")) - set(out)
        if "," not in ins:
            return "SumBackward1" if summed else "PermuteBackward0"
        return "ViewBackward0" if summed else "MulBackward0"

    def backward(ctx, g):
        xs = ctx.saved
        ins, out = ctx.eq.split("->")
        subs = ins.split(",")
        grads = []
        for i, x in enumerate(xs):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [s for j, s in enumerate(subs) if j != i]
            arrays = [a for j, a in enumerate(xs) if j != i]
            target = subs[i]
            avail = set(out) | set("".join(others))
            uniq = "".join(dict.fromkeys(target))  # a repeated letter is a diagonal of this operand
            size = {c: x.shape[target.index(c)] for c in uniq}
            # letters only in this operand were summed out: broadcast them back afterwards
            keep = "".join(c for c in uniq if c in avail)
            r = ctx.xp.einsum(",".join([out] + others) + "->" + keep, g, *arrays, optimize=True)
            # a dim of size 1 broadcast against the others' (an ellipsis dim, or a letter NumPy broadcasts)
            wide = tuple(k for k, c in enumerate(keep) if size[c] == 1 and r.shape[k] != 1)
            if wide:
                r = r.sum(axis=wide, keepdims=True)
            if keep != uniq:
                r = ctx.xp.broadcast_to(r.reshape([size[c] if c in keep else 1 for c in uniq]),
                                        [size[c] for c in uniq])
            if uniq != target:  # onto the diagonal: a strided view of zeros that steps along every repeat at once
                full = ctx.xp.zeros(x.shape, r.dtype)
                step = {c: sum(full.strides[k] for k, d in enumerate(target) if d == c) for c in uniq}
                ctx.xp.lib.stride_tricks.as_strided(full, [size[c] for c in uniq], [step[c] for c in uniq])[...] = r
                r = full
            grads.append(r)
        return tuple(grads)


def _spell_out_ellipsis(eq, operands):
    """`eq` with each '...' replaced by letters of its own: an operand's ellipsis stands for its dims left
    over by its letters, aligned on the right with the other operands' (broadcast); an implicit output puts
    them first, as torch and NumPy do."""
    ins, arrow, out = eq.partition("->")
    subs = ins.split(",")
    if len(subs) != len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation" if len(operands) >
                           len(subs) else "einsum(): fewer operands were provided than specified in the equation")
    spare = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
    counts = []
    for sub, t in zip(subs, operands):
        named = len(sub.replace("...", ""))
        if "..." in sub and t.ndim < named:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({named}) is more than the "
                               f"number of dimensions ({t.ndim}) for operand {len(counts)}")
        counts.append(t.ndim - named if "..." in sub else 0)
    k = max(counts, default=0)
    letters = "".join(spare[:k])
    subs = [sub.replace("...", letters[k - n:]) for sub, n in zip(subs, counts)]
    if arrow:
        out = out.replace("...", letters)
    else:
        flat = "".join(subs)
        out = letters + "".join(sorted(c for c in set(flat) if flat.count(c) == 1 and c not in letters))
    return ",".join(subs) + "->" + out


def _einsum(equation, *operands):
    eq = equation.replace(" ", "")
    if "..." in eq:
        eq = _spell_out_ellipsis(eq, operands)
    if "->" not in eq:
        ins = eq.split(",")
        letters = sorted(c for c in set("".join(ins)) if "".join(ins).count(c) == 1)
        eq = eq + "->" + "".join(letters)
    return Einsum.apply(*operands, eq=eq)
