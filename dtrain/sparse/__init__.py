"""torch.sparse for COO tensors: `mm` and `sum`, with `sparse_coo_tensor`, `Tensor.to_sparse` and `torch.spmm` at the
top level, on the CPU and on CUDA (SciPy's or cupyx's sparse matrices do the products); see _coo.py for what a
sparse tensor supports."""
from .._ops._util import on_input_device
from ._coo import SparseTensor, _sparse, sparse_coo_tensor, to_sparse
from ._ops import Mm, SparseAddmm, SparseCooTensorWithDimsAndTensors, SparseSum, Values, _add_any, _mm

__all__ = ["mm", "sum", "sparse_coo_tensor", "spmm"]


def mm(mat1, mat2, reduce=None):
    """sparse (n×k) @ dense (k×m) → dense (n×m); gradients reach the dense operand and the sparse one's values."""
    if reduce is not None:
        raise NotImplementedError(f"torch.sparse.mm with reduce={reduce!r} is not supported by dtrain")
    return _mm(SparseAddmm, mat1, mat2)


def spmm(input, mat2):
    """torch.spmm: sparse @ dense, as torch.mm does it."""
    return _mm(Mm, input, mat2)


@on_input_device  # the kept dimensions' indices are selected here, outside Function.apply
def sum(input, dim=None, dtype=None):
    """Sum of a sparse tensor's values: over everything (a dense 0-d tensor), or over `dim` (a sparse tensor of the
    remaining dimensions, or a dense one when every sparse dimension is summed)."""
    if not isinstance(input, SparseTensor):
        return input.sum() if dim is None else input.sum(dim)
    values = Values.apply(input)
    if dtype is not None:
        values = values.to(dtype)
    if dim is None:
        return values.sum()
    c = input._data
    n, sd = c.ndim, c.sparse_dim
    dims = sorted({input._wrap_dim(d, n) for d in ((dim,) if isinstance(dim, int) else dim)})
    dense_dims = [d - sd + 1 for d in dims if d >= sd]
    if dense_dims:
        values = values.sum(dense_dims)
    keep = [d for d in range(sd) if d not in dims]
    if not keep:
        return values.sum(0)
    shape = tuple(c.shape[d] for d in range(n) if d not in dims)
    out = SparseCooTensorWithDimsAndTensors.apply(values, indices=c.indices[keep], shape=shape, coalesced=False) \
        if values.requires_grad else None
    if out is None:
        from .._tensor import _wrap
        from ._coo import _COO
        out = _wrap(_COO(c.indices[keep], values._data, shape), input._device)
    return _sparse(SparseSum.apply(_sparse(out)))
