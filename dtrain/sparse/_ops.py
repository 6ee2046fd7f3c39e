"""The Functions of sparse COO tensors: each one forward and backward over arrays (a `_COO`, or the values'
gradient), written once against the array module `ctx.xp`; what differs between NumPy and CuPy comes from the
backend's kernel table (`kernels[xp].scatter_add`, `.spmm`, `.sparse_add_merges`)."""
import numpy as np

from .. import _backend, _dtype
from .._tensor import Tensor
from ..autograd.graph import Function
from ._coo import _COO, SparseTensor, _sparse


def _linear_index(xp, indices, shape):
    """One int64 key per column of `indices` that orders them as torch's coalesce does (row-major)."""
    keys = xp.zeros(indices.shape[1], np.int64)
    for d, n in enumerate(shape):
        keys = keys * n + indices[d]
    return keys


class SparseCooTensorWithDimsAndTensors(Function):
    """values → a sparse tensor with the given indices; the values' gradient is the sparse tensor's."""

    def forward(ctx, values, indices, shape, coalesced):
        return _COO(indices, values, shape, coalesced)

    def backward(ctx, g):
        return g


class Coalesce(Function):
    """Sort the indices row-major and sum the values of repeated ones; each input value's gradient is that of
    the output value it was summed into."""

    def forward(ctx, c):
        xp = ctx.xp
        keys = _linear_index(xp, c.indices, c.shape[:c.sparse_dim])
        uniq, first, inverse = xp.unique(keys, return_index=True, return_inverse=True)
        values = xp.zeros((len(uniq),) + c.values.shape[1:], c.values.dtype)
        _backend.kernels[xp].scatter_add(values, inverse.reshape(-1), c.values)
        ctx.inverse = inverse.reshape(-1)
        return _COO(c.indices[:, first], values, c.shape, True)

    def backward(ctx, g):
        return g[ctx.inverse]


class SparseSum(Coalesce):
    """torch.sparse.sum over some sparse dimensions: the values regrouped by the remaining indices and coalesced."""


class ToDense(Function):
    def forward(ctx, c):
        ctx.indices = c.indices
        dense = ctx.xp.zeros(c.shape, c.values.dtype)
        # repeated indices add up, as in an uncoalesced tensor
        _backend.kernels[ctx.xp].scatter_add(dense, tuple(c.indices[d] for d in range(c.sparse_dim)), c.values)
        return dense

    def backward(ctx, g):
        return g[tuple(ctx.indices[d] for d in range(ctx.indices.shape[0]))]


class ToSparse(Function):
    """dense → its nonzero entries (over the leading `sparse_dim` dimensions: a slice that is not all zero)."""

    def forward(ctx, a, sparse_dim):
        xp = ctx.xp
        if sparse_dim == 0:  # one entry: the whole tensor
            ctx.nz, ctx.shape = (), a.shape
            return _COO(xp.zeros((0, 1), np.int64), a[None].copy(), a.shape, True)
        lead = a.reshape(a.shape[:sparse_dim] + (-1,)) if sparse_dim < a.ndim else a[..., None]
        nz = xp.nonzero(xp.any(lead != 0, axis=-1))
        indices = xp.stack(nz).astype(np.int64)
        ctx.nz, ctx.shape = nz, a.shape
        return _COO(indices, a[nz].copy(), a.shape, True)

    def backward(ctx, g):
        if ctx.nz == ():
            return g[0].copy()
        out = ctx.xp.zeros(ctx.shape, g.dtype)
        out[ctx.nz] = g
        return out


class Values(Function):
    def forward(ctx, c):
        return c.values

    def backward(ctx, g):
        return g


class Clone(Function):
    def forward(ctx, c):
        return _COO(c.indices.copy(), c.values.copy(), c.shape, c.coalesced)

    def backward(ctx, g):
        return g


class ToCopy(Function):
    """A dtype and/or device change of the values (and a device change of the indices); the gradient goes back
    to the source dtype and device."""

    def forward(ctx, c, device, dtype, src_device):
        from .._ops.conversion import _move
        ctx.src_device, ctx.in_dtype = src_device, c.values.dtype
        if device is None:
            return _COO(c.indices, c.values.astype(dtype.np), c.shape, c.coalesced)
        return _COO(_move(c.indices, device, _dtype.int64), _move(c.values, device, dtype), c.shape, c.coalesced)

    def backward(ctx, g):
        from .._device import device_of
        from .._ops.conversion import _move
        if device_of(g) != ctx.src_device:
            return _move(g, ctx.src_device, _dtype.from_numpy_dtype(ctx.in_dtype))
        return g.astype(ctx.in_dtype, copy=False)


class T(Function):
    def forward(ctx, c):
        return _COO(c.indices[::-1].copy(), c.values, c.shape[::-1], False)

    def backward(ctx, g):
        return g


class Mul(Function):
    def forward(ctx, c, factor):
        ctx.factor = factor
        return _COO(c.indices, c.values * c.values.dtype.type(factor), c.shape, c.coalesced)

    def backward(ctx, g):
        return g * g.dtype.type(ctx.factor)


class Add(Function):
    """sparse + alpha · sparse of one size, as torch's kernels: on the CPU a merge of the two entry lists (walked
    together; equal indices add up; coalesced when both are, and then sorted), on CUDA the two lists one after
    the other, uncoalesced (torch's CUDA kernel spares the merge's synchronisation). Each input value's gradient
    is that of the entry it went into."""

    def forward(ctx, a, b, alpha, dtype):
        xp = ctx.xp
        va = a.values.astype(dtype, copy=False)
        vb = b.values.astype(dtype, copy=False) * dtype.type(alpha)
        ctx.dtypes, ctx.alpha = (a.values.dtype, b.values.dtype), alpha
        indices = xp.concatenate([a.indices, b.indices], axis=1)
        if not _backend.kernels[xp].sparse_add_merges:
            ctx.pos_a, ctx.pos_b = slice(0, a.nnz), slice(a.nnz, None)
            return _COO(indices, xp.concatenate([va, vb]), a.shape, False)
        sd = a.sparse_dim
        ka, kb = _linear_index(xp, a.indices, a.shape[:sd]), _linear_index(xp, b.indices, b.shape[:sd])
        if a.coalesced and b.coalesced:  # the merge of two sorted lists: their sorted union
            keys, first, inverse = xp.unique(xp.concatenate([ka, kb]), return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
            n = len(keys)
        else:
            first, inverse = _merge(ka, kb)
            n = len(first)
        ctx.pos_a, ctx.pos_b = inverse[:a.nnz], inverse[a.nnz:]
        values = xp.zeros((n,) + va.shape[1:], dtype)
        values[ctx.pos_a] = va
        values[ctx.pos_b] += vb  # no position twice within one input: a merge takes each entry once
        return _COO(indices[:, first], values, a.shape, a.coalesced and b.coalesced)

    def backward(ctx, g):
        ga, gb = g[ctx.pos_a], g[ctx.pos_b] * g.dtype.type(ctx.alpha)
        return ga.astype(ctx.dtypes[0], copy=False), gb.astype(ctx.dtypes[1], copy=False)


class Sub(Add):
    """sparse - alpha · sparse: Add with -alpha, under torch's name for it."""


def _merge(ka, kb):
    """torch's CPU merge of two entry lists by their keys (NumPy arrays), walked together: the smaller key is
    taken first, equal ones together. Returns, per output entry, the position of its index among the two
    lists concatenated, and, per input entry, its output position. A Python loop (torch's is C++): only
    uncoalesced CPU additions come here."""
    ka, kb = ka.tolist(), kb.tolist()
    na, nb = len(ka), len(kb)
    first, out = [], [0] * (na + nb)
    i = j = 0
    while i < na or j < nb:
        take_a = j >= nb or (i < na and ka[i] <= kb[j])
        take_b = i >= na or (j < nb and kb[j] <= ka[i])
        first.append(i if take_a else na + j)
        if take_a:
            out[i] = len(first) - 1
            i += 1
        if take_b:
            out[na + j] = len(first) - 1
            j += 1
    return np.array(first, np.int64), np.array(out, np.int64)


class SparseAddmm(Function):
    """sparse (n×k) @ dense (k×m) through the device's sparse matrices (SciPy or cupyx); gradients: dense ←
    Sᵀ @ g, values ← (g @ denseᵀ) at the indices (only the nnz entries are computed, never the dense n×k
    matrix)."""

    def forward(ctx, c, dense):
        ctx.c = c
        ctx.save_for_backward(dense)
        rows, cols = c.indices
        return _backend.kernels[ctx.xp].spmm(c.values, rows, cols, c.shape, dense)

    def backward(ctx, g):
        (dense,) = ctx.saved
        c = ctx.c
        gv = gd = None
        rows, cols = c.indices
        if ctx.needs_input_grad[0]:
            gv = (g[rows] * dense[cols]).sum(axis=1).astype(c.values.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            gd = _backend.kernels[ctx.xp].spmm(c.values, cols, rows, c.shape[::-1], g)
        return gv, gd


class Mm(SparseAddmm):
    """`sparse @ dense`, torch.mm and torch.spmm: the product of torch.sparse.mm under torch's name for it."""


def _mm(cls, sparse, dense):
    if not isinstance(sparse, SparseTensor):
        raise TypeError(f"expected a sparse COO tensor as the first argument, got a {sparse.layout} tensor")
    if isinstance(dense, SparseTensor):
        raise NotImplementedError("products of two sparse COO tensors are not supported by dtrain; make one of "
                                  "them dense with .to_dense()")
    if not isinstance(dense, Tensor):
        raise TypeError(f"mm(): argument 'mat2' must be Tensor, not {type(dense).__name__}")
    c = sparse._data
    if c.ndim != 2 or c.sparse_dim != 2:
        raise RuntimeError(f"mm: the sparse operand must be a 2-D matrix with 2 sparse dimensions, got size "
                           f"{list(c.shape)} with {c.sparse_dim} sparse dimensions")
    if dense.dim() != 2:
        raise RuntimeError(f"addmm: matrices expected, got {dense.dim()}D tensor")
    if dense.shape[0] != c.shape[1]:
        raise RuntimeError(f"addmm: Argument #3 (dense): Expected dim 0 size {c.shape[1]}, got {dense.shape[0]}")
    if dense.dtype is not sparse.dtype:
        raise RuntimeError(f"expected scalar type {_dtype.scalar_name(sparse.dtype)} but found "
                           f"{_dtype.scalar_name(dense.dtype)}")
    if sparse._device != dense._device:
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                           f"{sparse._device} and {dense._device}!")
    return cls.apply(sparse, dense)


def _add_any(input, other, alpha, subtract=False):
    """torch.add / torch.sub where an operand is sparse: sparse ± sparse is sparse, dense ± sparse dense."""
    if isinstance(input, SparseTensor):
        if not isinstance(other, SparseTensor):
            raise RuntimeError("add(sparse, dense) is not supported. Use add(dense, sparse) instead.")
        if input.shape != other.shape:
            raise RuntimeError(f"add: expected sizes of 'self' and 'other' to match, but {list(input.shape)} != "
                               f"{list(other.shape)}")
        if input._data.sparse_dim != other._data.sparse_dim:
            raise RuntimeError(f"add: expected 'self' and 'other' to have same sparse dimensions, but got "
                               f"{input._data.sparse_dim} and {other._data.sparse_dim}")
        if input._device != other._device:
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"{input._device} and {other._device}!")
        dtype = _dtype.promote_types(input.dtype, other.dtype).np
        cls = Sub if subtract else Add
        return _sparse(cls.apply(input, other, alpha=-alpha if subtract else alpha, dtype=dtype))
    dense = other.to_dense()  # dense ± sparse: the gradient reaches the sparse operand's values through it
    return input.sub(dense, alpha=alpha) if subtract else input.add(dense, alpha=alpha)
