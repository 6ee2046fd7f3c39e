"""Sorting and what builds on it: sort, argsort, topk, kthvalue, median, unique, bincount, searchsorted."""
import numpy as np

from .. import _dtype
from ..autograd import graph as _graph
from .._tensor import Tensor, _wrap
from ._layout import c_order, empty_preserving
from ._util import method, on_input_device, wrap_dim
from .scatter import Gather


@method()
@on_input_device
def sort(input, dim=-1, descending=False, stable=False):
    s = _sort(input, dim, descending)
    a = input._data
    if a.ndim > 1 and not a.flags.c_contiguous:  # torch lays out values and indices as the input (preserve_format)
        for t in s:
            t._data = _like_input(input._device.xp, a, t._data)
    return s


@on_input_device
def _sort(input, dim=-1, descending=False):
    """sort's values and indices in C order (what topk and kthvalue build on)."""
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


def _like_input(xp, a, r):
    """r (computed from `a`, fresh) in a's preserve_format layout."""
    out = empty_preserving(xp, a, r.dtype)
    xp.copyto(out, r)
    return out


@method()
def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable).indices


@method()
def msort(input):
    return sort(input, 0).values


@method()
@on_input_device
def topk(input, k, dim=-1, largest=True, sorted=True):
    from .reduce import return_topk
    d = wrap_dim(dim, input.ndim) if input.ndim else 0
    n = input.shape[d] if input.ndim else 1
    if k > n or k < 0:
        raise RuntimeError(f"selected index k out of range")
    s = _sort(input, d, descending=largest)
    idx = _wrap(c_order(s.indices._data[(slice(None),) * d + (slice(0, k),)]), input._device) if input.ndim \
        else s.indices
    return return_topk(Gather.apply(input, idx, dim=d, label="TopkBackward0") if input.ndim else input.clone(), idx)


@method()
def kthvalue(input, k, dim=-1, keepdim=False):
    from .reduce import return_kthvalue
    d = wrap_dim(dim, max(input.ndim, 1))  # a 0-d tensor is one value along dim 0 (or -1), as in torch
    n = input.shape[d] if input.ndim else 1
    if k < 1 or k > n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    s = _sort(input, d)
    if input.ndim:
        v, i = s.values.select(d, k - 1), s.indices.select(d, k - 1)
        if keepdim:
            v, i = v.unsqueeze(d), i.unsqueeze(d)
    else:
        v, i = s.values, s.indices
    return return_kthvalue(_graph.renamed(v, "KthvalueBackward0"), i)


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
@on_input_device
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
@on_input_device
def bincount(input, weights=None, minlength=0):
    xp = input._device.xp
    return _wrap(xp.bincount(input._data, None if weights is None else weights._data, minlength), input._device)


@on_input_device
def searchsorted(sorted_sequence, values, *, right=False, side=None, out_int32=False):
    xp = sorted_sequence._device.xp
    v = values._data if isinstance(values, Tensor) else xp.asarray(values)
    r = xp.searchsorted(sorted_sequence._data, v, side="right" if right or side == "right" else "left")
    return _wrap(r.astype(np.int32 if out_int32 else np.int64), sorted_sequence._device)


def bucketize(input, boundaries, *, out_int32=False, right=False):
    return searchsorted(boundaries, input, right=right, out_int32=out_int32)
