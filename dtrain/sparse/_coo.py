"""Sparse COO tensors: int64 indices (sparse_dim × nnz) and values (nnz × dense dims), as torch.sparse_coo.

A sparse tensor is a dtrain Tensor whose array is a `_COO` instead of an ndarray. Autograd needs nothing new: the
gradient that flows into a sparse tensor is the gradient of its values (an array shaped like them, in their
order), so each op below is one Function with forward and backward over arrays, as dense ops are. Products go
through SciPy's sparse arrays on the CPU. Sparse tensors live on the CPU only for now: on CUDA each op raises
NotImplementedError naming itself.
"""
import numpy as np

from .. import _dtype
from .._device import resolve
from .._tensor import Tensor, _wrap, sparse_coo
from ..autograd.graph import Function


class _COO:
    """The array behind a sparse tensor (where a dense tensor has its ndarray). It answers the metadata a tensor
    reads (shape, ndim, size, dtype); any NumPy function or ufunc applied to it raises, so a dense op that meets
    a sparse tensor fails naming itself instead of computing on the values."""
    __slots__ = ("indices", "values", "shape", "coalesced")

    def __init__(self, indices, values, shape, coalesced=False):
        self.indices, self.values, self.shape, self.coalesced = indices, values, tuple(shape), coalesced

    base = None  # owns its arrays (autograd's saved-array check asks)
    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))
    dtype = property(lambda self: self.values.dtype)
    itemsize = property(lambda self: self.values.itemsize)
    nbytes = property(lambda self: self.values.nbytes + self.indices.nbytes)
    sparse_dim = property(lambda self: self.indices.shape[0])
    nnz = property(lambda self: self.indices.shape[1])

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise _unsupported(ufunc.__name__)

    def __array_function__(self, func, types, args, kwargs):
        raise _unsupported(func.__name__)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")


def _unsupported(op):
    return NotImplementedError(
        f"Could not run 'aten::{op}' with arguments from the 'SparseCPU' backend: dtrain's sparse COO tensors support "
        "coalesce, to_dense, indices/values, t, mul by a scalar, sum and products with dense matrices "
        "(torch.sparse.mm, torch.spmm, @); call .to_dense() first for other ops")


def _cpu_only(op, *where):
    """Sparse tensors are CPU-only for now: raise naming `op` for a tensor or device elsewhere."""
    for w in where:
        dev = w._device if isinstance(w, Tensor) else w
        if dev.type != "cpu":
            raise NotImplementedError(f"{op}: dtrain's sparse COO tensors are CPU-only for now, but got {dev}; "
                                      "compute on the CPU or use dense tensors")


class SparseTensor(Tensor):
    """A tensor of layout torch.sparse_coo (its type is dtrain's Tensor's subclass; torch's is Tensor itself)."""
    __slots__ = ()

    layout = property(lambda self: sparse_coo)
    is_sparse = property(lambda self: True)

    def __getattribute__(self, name):
        # dense methods read the array as an ndarray: only the ones that know a sparse tensor may run
        if name[0] != "_" and name not in _SUPPORTED and hasattr(Tensor, name):
            raise _unsupported(name)
        return object.__getattribute__(self, name)

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.grad_fn is None:
            raise NotImplementedError(
                "dtrain does not accumulate gradients into sparse leaf tensors: make the values require grad and "
                "build the tensor from them (torch.sparse_coo_tensor(indices, values, size)); gradients then reach "
                "the values")
        return Tensor.requires_grad_(self, requires_grad)

    def _nnz(self):
        return self._data.nnz

    def sparse_dim(self):
        return self._data.sparse_dim

    def dense_dim(self):
        return self._data.ndim - self._data.sparse_dim

    def is_coalesced(self):
        return self._data.coalesced

    def _indices(self):
        return _wrap(self._data.indices, self._device)

    def _values(self):
        return _wrap(self._data.values, self._device)

    def indices(self):
        if not self._data.coalesced:
            raise RuntimeError("Cannot get indices on an uncoalesced tensor, please call .coalesce() first")
        return self._indices()

    def values(self):
        if not self._data.coalesced:
            raise RuntimeError("Cannot get values on an uncoalesced tensor, please call .coalesce() first")
        return Values.apply(self)

    def coalesce(self):
        if self._data.coalesced:
            return self
        return _sparse(Coalesce.apply(self))

    def to_dense(self, dtype=None, *, masked_grad=None):
        out = ToDense.apply(self)
        return out if dtype is None else out.to(dtype)

    def detach(self):
        return _sparse(_wrap(self._data, self._device))

    def clone(self, *, memory_format=None):
        c = self._data
        return _sparse(Clone.apply(self)) if self.requires_grad else \
            _sparse(_wrap(_COO(c.indices.copy(), c.values.copy(), c.shape, c.coalesced), self._device))

    def to(self, *args, **kwargs):
        dev, dt = kwargs.get("device"), kwargs.get("dtype")
        for a in args:
            if isinstance(a, _dtype.dtype):
                dt = a
            elif isinstance(a, Tensor):
                dev, dt = a._device, a.dtype
            elif a is not None and not isinstance(a, bool):
                dev = a
        if dev is not None:
            _cpu_only("to", resolve(dev))
        if dt is None or dt is self.dtype:
            return self
        return _sparse(ToCopy.apply(self, dtype=dt))

    def cpu(self, memory_format=None):
        return self

    def float(self, memory_format=None):
        return self.to(_dtype.float32)

    def double(self, memory_format=None):
        return self.to(_dtype.float64)

    def half(self, memory_format=None):
        return self.to(_dtype.float16)

    def type_name(self):
        return f"torch.sparse.{_dtype.scalar_name(self.dtype)}Tensor"

    def type(self, dtype=None, non_blocking=False, **kwargs):
        if dtype is None:
            return self.type_name()
        raise NotImplementedError("type(dtype) of a sparse COO tensor: use .to(dtype)")

    def t(self):
        if self._data.ndim != 2 or self._data.sparse_dim != 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 sparse and 0 dense dimensions, but got "
                               f"{self._data.sparse_dim} sparse and {self.dense_dim()} dense dimensions")
        return _sparse(T.apply(self))

    def transpose(self, dim0, dim1):
        n = self._data.ndim
        d0, d1 = self._wrap_dim(dim0, n), self._wrap_dim(dim1, n)
        if {d0, d1} == {0, 1} and self._data.sparse_dim == 2 and n == 2:
            return self.t()
        if d0 == d1:
            return self
        raise NotImplementedError("transpose of sparse COO tensors: dtrain supports swapping the two dimensions "
                                  "of a 2-D sparse matrix only")

    def mul(self, other):
        if isinstance(other, Tensor) or not isinstance(other, (int, float, bool)):
            raise NotImplementedError("mul of a sparse COO tensor: dtrain supports a Python number as the other "
                                      f"operand, not {type(other).__name__}")
        return _sparse(Mul.apply(self, factor=other))

    __mul__ = __rmul__ = mul

    def div(self, other):
        if isinstance(other, Tensor) or not isinstance(other, (int, float)):
            raise NotImplementedError("div of a sparse COO tensor: dtrain supports a Python number as the divisor, "
                                      f"not {type(other).__name__}")
        return _sparse(Mul.apply(self, factor=1.0 / other))

    __truediv__ = div

    def numpy(self, *, force=False):
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")

    def __add__(self, other):
        if isinstance(other, SparseTensor):
            raise NotImplementedError("add of two sparse COO tensors is not supported by dtrain; add their dense "
                                      "forms (.to_dense())")
        raise RuntimeError("add(sparse, dense) is not supported. Use add(dense, sparse) instead.")

    add = __add__

    def __neg__(self):
        return self.mul(-1)

    def mm(self, mat2):
        return _mm(Mm, self, mat2)

    def matmul(self, other):
        return _mm(Mm, self, other)

    __matmul__ = matmul

    def sum(self, dim=None, keepdim=False, dtype=None):
        if keepdim:
            raise NotImplementedError("sum of a sparse COO tensor with keepdim=True is not supported")
        from . import sum as sparse_sum
        return sparse_sum(self, dim, dtype)

    def __repr__(self, *, tensor_contents=None):
        from ._repr import sparse_repr
        return sparse_repr(self)

    __str__ = __repr__

    def __reduce_ex__(self, proto):
        # plain pickling (multiprocessing): rebuilt from indices and values; torch.save writes torch's own form
        c = self._data
        return (_rebuild, (_wrap(c.indices, self._device), _wrap(c.values, self._device), c.shape, c.coalesced))

    def __deepcopy__(self, memo):
        c = self._data
        t = _sparse(_wrap(_COO(c.indices.copy(), c.values.copy(), c.shape, c.coalesced), self._device))
        memo[id(self)] = t
        return t


# what a sparse tensor keeps of Tensor's public attributes (metadata and autograd state)
_SUPPORTED = frozenset(
    n for n in vars(SparseTensor) if not n.startswith("_")) | {
    "shape", "size", "dim", "ndim", "ndimension", "numel", "nelement", "dtype", "device", "is_cuda", "is_cpu",
    "is_meta", "requires_grad", "grad", "grad_fn", "is_leaf", "output_nr", "element_size", "is_floating_point",
    "is_complex", "get_device", "is_quantized", "is_mkldnn", "is_nested"}
# not backward, register_hook or retain_grad: the gradient a sparse tensor's node sees is that of its values


def _sparse(t):
    """Make tensor `t` (whose array is a _COO) a SparseTensor."""
    t.__class__ = SparseTensor
    return t


# ------------------------------------------------------------------------------------------------------- ops

def _linear_index(indices, shape):
    """One int64 key per column of `indices` that orders them as torch's coalesce does (row-major)."""
    if indices.shape[0] == 0:
        return np.zeros(indices.shape[1], np.int64)
    return np.ravel_multi_index(tuple(indices), shape) if indices.shape[1] else np.zeros(0, np.int64)


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
        keys = _linear_index(c.indices, c.shape[:c.sparse_dim])
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        values = np.zeros((len(uniq),) + c.values.shape[1:], c.values.dtype)
        np.add.at(values, inverse, c.values)
        ctx.inverse = inverse
        return _COO(c.indices[:, first], values, c.shape, True)

    def backward(ctx, g):
        return g[ctx.inverse]


class SparseSum(Coalesce):
    """torch.sparse.sum over some sparse dimensions: the values regrouped by the remaining indices and coalesced."""


class ToDense(Function):
    def forward(ctx, c):
        ctx.indices = c.indices
        dense = np.zeros(c.shape, c.values.dtype)
        np.add.at(dense, tuple(c.indices), c.values)  # repeated indices add up, as in an uncoalesced tensor
        return dense

    def backward(ctx, g):
        return g[tuple(ctx.indices)]


class ToSparse(Function):
    """dense → its nonzero entries (over the leading `sparse_dim` dimensions: a slice that is not all zero)."""

    def forward(ctx, a, sparse_dim):
        if sparse_dim == 0:  # one entry: the whole tensor
            ctx.nz, ctx.shape = (), a.shape
            return _COO(np.zeros((0, 1), np.int64), a[None].copy(), a.shape, True)
        lead = a.reshape(a.shape[:sparse_dim] + (-1,)) if sparse_dim < a.ndim else a[..., None]
        nz = np.nonzero(np.any(lead != 0, axis=-1))
        indices = np.stack(nz).astype(np.int64)
        ctx.nz, ctx.shape = nz, a.shape
        return _COO(indices, a[nz].copy(), a.shape, True)

    def backward(ctx, g):
        if ctx.nz == ():
            return g[0].copy()
        out = np.zeros(ctx.shape, g.dtype)
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
    def forward(ctx, c, dtype):
        ctx.in_dtype = c.values.dtype
        return _COO(c.indices, c.values.astype(dtype.np), c.shape, c.coalesced)

    def backward(ctx, g):
        return g.astype(ctx.in_dtype)



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



def _csr(c):
    import scipy.sparse
    return scipy.sparse.csr_array((c.values, (c.indices[0], c.indices[1])), shape=c.shape)


class SparseAddmm(Function):
    """sparse (n×k) @ dense (k×m) through SciPy; gradients: dense ← Sᵀ @ g, values ← (g @ denseᵀ) at the
    indices (only the nnz entries are computed, never the dense n×k matrix)."""

    def forward(ctx, c, dense):
        s = _csr(c)
        ctx.c, ctx.s = c, s
        ctx.save_for_backward(dense)
        return np.asarray(s @ dense, dtype=dense.dtype)

    def backward(ctx, g):
        (dense,) = ctx.saved
        c = ctx.c
        gv = gd = None
        if ctx.needs_input_grad[0]:
            rows, cols = c.indices
            gv = np.einsum("ij,ij->i", g[rows], dense[cols]).astype(c.values.dtype, copy=False)
        if ctx.needs_input_grad[1]:
            gd = np.asarray(ctx.s.T @ g, dtype=dense.dtype)
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
    _cpu_only("mm", sparse, dense)
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
    return cls.apply(sparse, dense)


def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None, pin_memory=False,
                      requires_grad=False, check_invariants=None, is_coalesced=None):
    """A sparse COO tensor from `indices` (sparse_dim × nnz) and `values` (nnz × dense dims); `size` defaults to
    the smallest that holds the indices. Unlike torch (whose checks are off by default), indices out of `size`
    always raise here."""
    from .._ops.creation import tensor as _tensor
    if pin_memory:
        raise NotImplementedError("pin_memory=True is not supported for dtrain's sparse tensors")
    if not isinstance(indices, Tensor):
        indices = _tensor(indices)
    if not isinstance(values, Tensor):
        values = _tensor(values, dtype=dtype)
    _cpu_only("sparse_coo_tensor", indices, values, *(() if device is None else (resolve(device),)))
    dev = values._device
    if dtype is not None and dtype is not values.dtype:
        values = values.to(dtype)
    idx = np.asarray(indices.detach()._data)
    if idx.ndim != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: {list(idx.shape)}")
    idx = idx.astype(np.int64, copy=False)
    if values.dim() == 0 or values.shape[0] != idx.shape[1]:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from indices: {idx.shape[1]}, nnz "
                           f"from values: {values.shape[0] if values.dim() else 0}")
    sparse_dim = idx.shape[0]
    dense_shape = tuple(values.shape[1:])
    if size is None:
        size = tuple(int(m) + 1 for m in idx.max(axis=1)) if idx.shape[1] else (0,) * sparse_dim
        size = size + dense_shape
    size = tuple(int(s) for s in size)
    if len(size) != sparse_dim + len(dense_shape):
        raise RuntimeError(f"number of dimensions must be sparse_dim ({sparse_dim}) + dense_dim "
                           f"({len(dense_shape)}), but got {len(size)}")
    if size[sparse_dim:] != dense_shape:
        raise RuntimeError(f"values has incorrect size, expected {[idx.shape[1], *size[sparse_dim:]]}, got "
                           f"{list(values.shape)}")
    if idx.shape[1]:
        lo, hi = idx.min(axis=1), idx.max(axis=1)
        for d in range(sparse_dim):
            if lo[d] < 0:
                raise RuntimeError(f"found negative index {lo[d]} for dim {d}")
            if hi[d] >= size[d]:
                raise RuntimeError(f"size is inconsistent with indices: for dim {d}, size is {size[d]} but found "
                                   f"index {hi[d]}")
    coalesced = bool(is_coalesced) or idx.shape[1] <= 1
    if values.requires_grad:
        out = SparseCooTensorWithDimsAndTensors.apply(values, indices=idx, shape=size, coalesced=coalesced)
    else:
        out = _wrap(_COO(idx, values._data, size, coalesced), dev)
    out = _sparse(out)
    if requires_grad:
        out.requires_grad_(True)
    return out


def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
    """Tensor.to_sparse: the nonzero entries of a dense tensor as a coalesced sparse COO tensor."""
    if layout not in (None, sparse_coo) or blocksize is not None or dense_dim is not None:
        raise NotImplementedError(f"to_sparse: dtrain supports only the sparse COO layout, got layout={layout}, "
                                  f"blocksize={blocksize}, dense_dim={dense_dim}")
    if isinstance(self, SparseTensor):
        return self
    _cpu_only("to_sparse", self)
    n = self.dim()
    sparse_dim = n if sparse_dim is None else sparse_dim
    if not 0 <= sparse_dim <= n:
        raise RuntimeError(f"sparse_dim argument must be in [0, {n}] but got {sparse_dim}")
    return _sparse(ToSparse.apply(self, sparse_dim=sparse_dim))


def _rebuild(indices, values, shape, coalesced):
    return sparse_coo_tensor(indices, values, shape, is_coalesced=coalesced)
