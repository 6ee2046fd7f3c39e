"""Sparse COO tensors: int64 indices (sparse_dim × nnz) and values (nnz × dense dims), as torch.sparse_coo.

A sparse tensor is a dtrain Tensor whose array is a `_COO` instead of an ndarray. Autograd needs nothing new: the
gradient that flows into a sparse tensor is the gradient of its values (an array shaped like them, in their
order), so each op below is one Function with forward and backward over arrays, as dense ops are, written once
against the array module (`ctx.xp`): a sparse tensor's arrays are NumPy's on the CPU and CuPy's on a CUDA
device. The products go through the backend's kernel table (`kernels[xp].spmm`: SciPy's CSR matrices on the
CPU, cupyx.scipy.sparse's on CUDA).
"""
import numpy as np

from .. import _backend, _dtype
from .._device import resolve
from .._tensor import Tensor, _wrap, sparse_coo
from ..autograd.graph import AccumulateGrad, Function


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
        raise _unsupported(ufunc.__name__, self._device_type())

    def __array_function__(self, func, types, args, kwargs):
        raise _unsupported(func.__name__, self._device_type())

    def _device_type(self):
        return "cpu" if isinstance(self.values, np.ndarray) else "cuda"

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")


def _unsupported(op, device_type="cpu"):
    return NotImplementedError(
        f"Could not run 'aten::{op}' with arguments from the 'Sparse{device_type.upper()}' backend: dtrain's sparse "
        "COO tensors support coalesce, to_dense, indices/values, t, add, mul by a scalar, sum and products with "
        "dense matrices (torch.sparse.mm, torch.spmm, @); call .to_dense() first for other ops")


class SparseTensor(Tensor):
    """A tensor of layout torch.sparse_coo (its type is dtrain's Tensor's subclass; torch's is Tensor itself)."""
    __slots__ = ()

    layout = property(lambda self: sparse_coo)
    is_sparse = property(lambda self: True)

    def __getattribute__(self, name):
        # dense methods read the array as an ndarray: only the ones that know a sparse tensor may run
        if name[0] != "_" and name not in _SUPPORTED and hasattr(Tensor, name):
            raise _unsupported(name, object.__getattribute__(self, "_device").type)
        return object.__getattribute__(self, name)

    def _grad_accumulator(self):
        acc = self._accum() if self._accum is not None else None
        if acc is None:
            import weakref
            acc = _SparseAccumulateGrad(self)
            self._accum = weakref.ref(acc)
        return acc

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
        dev = None if dev is None else resolve(dev)
        if dev is self._device:
            dev = None
        if dt is self.dtype:
            dt = None
        if dev is None and dt is None:
            return self
        out = ToCopy.apply(self, device=dev, dtype=dt or self.dtype, src_device=self._device)
        out._device = dev or self._device
        return _sparse(out)

    def cpu(self, memory_format=None):
        return self.to("cpu")

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        from .._device import device as _device_cls
        return self.to(_device_cls("cuda", device) if isinstance(device, int) else (device or "cuda"))

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
        if self._device.type != "cpu" and not force:
            raise TypeError(f"can't convert {self._device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                            "tensor to host memory first.")
        raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")

    def add(self, other, *, alpha=1):
        return _add_any(self, other, alpha)

    __add__ = add

    def sub(self, other, *, alpha=1):
        return _add_any(self, other, alpha, subtract=True)

    __sub__ = sub

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


class _SparseAccumulateGrad(AccumulateGrad):
    """A sparse leaf's node. The gradient that reaches it is that of the leaf's values; its `.grad` is, as in
    torch, the sparse tensor of those at the leaf's (coalesced) indices, and the gradient of a later pass is
    added to it as a sparse tensor (torch.add of two sparse tensors)."""
    __slots__ = ()

    def accumulate(self, g, owned):
        from ..autograd.grad_mode import no_grad
        var = self.variable
        if not self.live():
            return
        c = var._data
        indices = c.indices
        if not c.coalesced:
            # torch's gradient is the dense one masked by the leaf (sparse_mask): at its indices coalesced. Entries
            # of one index all have that index's gradient, so the first of each stands for it
            xp = _backend.xp_of(g)
            with _backend.on_device(var._device):
                _, first = xp.unique(_linear_index(xp, indices, c.shape[:c.sparse_dim]), return_index=True)
                indices, g, owned = indices[:, first], g[first], True
        grad = _sparse(_wrap(_COO(indices, g if owned else g.copy(), c.shape, True), var._device))
        for hook in list(var._hooks.values()) if var._hooks else ():
            r = hook(grad)
            if r is not None:
                grad = r
        if var.grad is None:
            var.grad = grad
        else:  # in place, as torch's `grad += new_grad`: a reference to .grad taken before sees the sum
            with no_grad():
                var.grad._data = (var.grad + grad)._data
            var.grad._version.value += 1
        for hook in list(var._post_acc_hooks.values()) if var._post_acc_hooks else ():
            hook(var)


# what a sparse tensor keeps of Tensor's public attributes (metadata and autograd state)
_SUPPORTED = frozenset(
    n for n in vars(SparseTensor) if not n.startswith("_")) | {
    "shape", "size", "dim", "ndim", "ndimension", "numel", "nelement", "dtype", "device", "is_cuda", "is_cpu",
    "is_meta", "requires_grad", "grad", "grad_fn", "is_leaf", "output_nr", "element_size", "is_floating_point",
    "is_complex", "get_device", "is_quantized", "is_mkldnn", "is_nested", "requires_grad_"}
# not backward, register_hook or retain_grad: the gradient a sparse tensor's node sees is that of its values


def _sparse(t):
    """Make tensor `t` (whose array is a _COO) a SparseTensor."""
    t.__class__ = SparseTensor
    return t


# ------------------------------------------------------------------------------------------------------- ops

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


def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None, pin_memory=False,
                      requires_grad=False, check_invariants=None, is_coalesced=None):
    """A sparse COO tensor from `indices` (sparse_dim × nnz) and `values` (nnz × dense dims), on `device`
    (default: that of `values`); `size` defaults to the smallest that holds the indices. Unlike torch (whose
    checks are off by default), indices out of `size` always raise here."""
    from .._ops.creation import tensor as _tensor
    if pin_memory:
        raise NotImplementedError("pin_memory=True is not supported for dtrain's sparse tensors")
    if not isinstance(indices, Tensor):
        indices = _tensor(indices)
    if not isinstance(values, Tensor):
        values = _tensor(values, dtype=dtype)
    if device is not None:
        values = values.to(resolve(device))
    dev = values._device
    indices = indices.to(dev)  # as torch's constructor: the indices go where the values are
    if dtype is not None and dtype is not values.dtype:
        values = values.to(dtype)
    idx = indices.detach()._data
    if idx.ndim != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: {list(idx.shape)}")
    idx = idx.astype(np.int64, copy=False)
    if values.dim() == 0 or values.shape[0] != idx.shape[1]:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from indices: {idx.shape[1]}, nnz "
                           f"from values: {values.shape[0] if values.dim() else 0}")
    sparse_dim = idx.shape[0]
    dense_shape = tuple(values.shape[1:])
    # the bounds of the indices, on the host (one small transfer for a CUDA tensor)
    lo, hi = (_backend.to_numpy(idx.min(axis=1)), _backend.to_numpy(idx.max(axis=1))) if idx.shape[1] else (None,
                                                                                                             None)
    if size is None:
        size = tuple(int(m) + 1 for m in hi) if idx.shape[1] else (0,) * sparse_dim
        size = size + dense_shape
    size = tuple(int(s) for s in size)
    if len(size) != sparse_dim + len(dense_shape):
        raise RuntimeError(f"number of dimensions must be sparse_dim ({sparse_dim}) + dense_dim "
                           f"({len(dense_shape)}), but got {len(size)}")
    if size[sparse_dim:] != dense_shape:
        raise RuntimeError(f"values has incorrect size, expected {[idx.shape[1], *size[sparse_dim:]]}, got "
                           f"{list(values.shape)}")
    if idx.shape[1]:
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


def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
    """Tensor.to_sparse: the nonzero entries of a dense tensor as a coalesced sparse COO tensor."""
    if layout not in (None, sparse_coo) or blocksize is not None or dense_dim is not None:
        raise NotImplementedError(f"to_sparse: dtrain supports only the sparse COO layout, got layout={layout}, "
                                  f"blocksize={blocksize}, dense_dim={dense_dim}")
    if isinstance(self, SparseTensor):
        return self
    n = self.dim()
    sparse_dim = n if sparse_dim is None else sparse_dim
    if not 0 <= sparse_dim <= n:
        raise RuntimeError(f"sparse_dim argument must be in [0, {n}] but got {sparse_dim}")
    return _sparse(ToSparse.apply(self, sparse_dim=sparse_dim))


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    """torch.zeros_like of a sparse tensor: a sparse tensor of its size and sparse dimensions, with no entries
    (coalesced)."""
    dev = input._device if device is None else resolve(device)
    dt = input.dtype if dtype is None else dtype
    xp = dev.xp
    c = input._data
    with _backend.on_device(dev):
        indices = xp.zeros((c.sparse_dim, 0), np.int64)
        values = xp.zeros((0,) + c.shape[c.sparse_dim:], dt.np)
    out = _sparse(_wrap(_COO(indices, values, c.shape, True), dev))
    if requires_grad:
        out.requires_grad_(True)
    return out


def _rebuild(indices, values, shape, coalesced):
    return sparse_coo_tensor(indices, values, shape, is_coalesced=coalesced)
