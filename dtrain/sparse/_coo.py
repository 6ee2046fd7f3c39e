"""Sparse COO tensors: int64 indices (sparse_dim × nnz) and values (nnz × dense dims), as torch.sparse_coo.

A sparse tensor is a dtrain Tensor whose array is a `_COO` instead of an ndarray. Autograd needs nothing new: the
gradient that flows into a sparse tensor is the gradient of its values (an array shaped like them, in their
order), so each op (_ops.py) is one Function with forward and backward over arrays, as dense ops are, written
once against the array module (`ctx.xp`): a sparse tensor's arrays are NumPy's on the CPU and CuPy's on a CUDA
device. The products go through the backend's kernel table (`kernels[xp].spmm`: SciPy's CSR matrices on the
CPU, cupyx.scipy.sparse's on CUDA). Function.apply and the engine run those with the tensors' CUDA device
current; the array code outside them (the constructor's checks, sparse.sum's index selection, copies) runs under
`on_input_device`, so a tensor on cuda:1 works while device 0 is current. This file: the array, the tensor
class, a sparse leaf's gradient node and the constructors.
"""
import numpy as np

from .. import _backend, _dtype
from .._device import resolve
from .._tensor import Tensor, _wrap, sparse_coo
from .._ops import arith as _arith
from .._ops._util import device_array, on_input_device
from ..autograd.graph import AccumulateGrad


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

    @on_input_device  # copies its arrays outside Function.apply when no gradient is wanted
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
        if dev == self._device:
            dev = None
        if dt is self.dtype:
            dt = None
        if dev is None and dt is None:
            return self.clone() if kwargs.get("copy") else self
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
        # plain pickling (multiprocessing): rebuilt from indices and values through host memory, and made again
        # on this tensor's own device (not on whichever CUDA device is current where it loads); torch.save
        # writes torch's own form
        c = self._data
        return (_rebuild, (_backend.to_numpy(c.indices), _backend.to_numpy(c.values), c.shape, c.coalesced,
                           str(self._device)))

    @on_input_device
    def __deepcopy__(self, memo):
        c = self._data
        t = _sparse(_wrap(_COO(c.indices.copy(), c.values.copy(), c.shape, c.coalesced), self._device))
        memo[id(self)] = t
        return t


_arith.SPARSE_TYPES.add(SparseTensor)  # add/sub of a SparseTensor come here (see _ops.arith)


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
            var.grad._vc.value += 1
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
    out = _from_parts(values, indices, size, is_coalesced)
    if requires_grad:
        out.requires_grad_(True)
    return out


@on_input_device  # the checks and the int64 cast of the indices: array code outside Function.apply
def _from_parts(values, indices, size, is_coalesced):
    """The sparse tensor of `indices` and `values` (tensors on one device), checked against `size`."""
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
        out = _wrap(_COO(idx, values._data, size, coalesced), values._device)
    return _sparse(out)


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


def _rebuild(indices, values, shape, coalesced, device):
    dev = resolve(device)
    return sparse_coo_tensor(_wrap(device_array(indices, dev), dev), _wrap(device_array(values, dev), dev), shape,
                             is_coalesced=coalesced)


# the ops are defined over _COO and SparseTensor above; SparseTensor's methods find them at call time
from ._ops import (Add, Clone, Coalesce, Mm, Mul, SparseAddmm, SparseCooTensorWithDimsAndTensors,  # noqa: E402
                   SparseSum, Sub, T, ToCopy, ToDense, ToSparse, Values, _add_any, _linear_index, _mm)
