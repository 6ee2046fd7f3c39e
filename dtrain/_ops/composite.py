"""Functions composed from the primitive ops (their gradients come from those): torch names that scripts
use in passing — meshgrid, repeat_interleave, diff, tensordot, cdist, logaddexp, erfinv, ..."""
import numpy as np

from .. import _backend, _dtype
from .._backend import kernels
from .._tensor import Tensor, _wrap
from ..autograd import graph as _graph
from ..autograd.graph import Function
from ._util import method, nondiff, on_input_device, wrap_dim
from ..amp._dispatch import autocast_op


def meshgrid(*tensors, indexing="ij"):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    shape = [t.numel() for t in tensors]
    if indexing == "xy" and len(tensors) >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, t in enumerate(tensors):
        view = [1] * len(tensors)
        d = i if indexing == "ij" or len(tensors) < 2 or i > 1 else 1 - i
        view[d] = t.numel()
        out.append(t.reshape(view).expand(shape))
    return tuple(out)


@method()
@on_input_device
def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    if repeats is None:  # torch.repeat_interleave(repeats): indices repeated by their counts
        reps = input
        return _wrap(input._device.xp.repeat(input._device.xp.arange(reps.numel()), reps._data), input._device)
    x = input.reshape(-1) if dim is None else input
    d = 0 if dim is None else wrap_dim(dim, x.ndim)
    # the counts size the output, so they are read on the host (torch synchronises for a CUDA `repeats` too)
    r = _backend.to_numpy(repeats._data) if isinstance(repeats, Tensor) else np.asarray(repeats)
    idx = np.repeat(np.arange(x.shape[d]), r if np.ndim(r) else int(r))
    return x.index_select(d, _wrap(x._device.xp.asarray(idx), x._device))


@method()
def diff(input, n=1, dim=-1, prepend=None, append=None):
    from .stacking import cat
    d = wrap_dim(dim, input.ndim)
    x = input
    if prepend is not None or append is not None:
        x = cat([t for t in (prepend, x, append) if t is not None], d)
    for _ in range(n):
        x = x.narrow(d, 1, x.shape[d] - 1) - x.narrow(d, 0, x.shape[d] - 1)
    return x


@autocast_op("tensordot")
def tensordot(a, b, dims=2, out=None):
    if isinstance(dims, int):
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = [list(x) if isinstance(x, (list, tuple)) else [x] for x in dims]
    da = [wrap_dim(d, a.ndim) for d in da]
    db = [wrap_dim(d, b.ndim) for d in db]
    fa = [d for d in range(a.ndim) if d not in da]
    fb = [d for d in range(b.ndim) if d not in db]
    k = int(np.prod([a.shape[d] for d in da])) if da else 1
    am = a.permute(*fa, *da).reshape(-1, k)
    bm = b.permute(*db, *fb).reshape(k, -1)
    return (am @ bm).reshape([a.shape[d] for d in fa] + [b.shape[d] for d in fb])


@method()
def type_as(input, other):
    return input.to(other.dtype)


@method()
@on_input_device
def take(input, index):
    """input as if flattened, read at `index` (the result has index's shape)."""
    if index._data.dtype != np.int64:
        raise RuntimeError(f"take(): Expected a long tensor for index, but got {_dtype.scalar_name(index.dtype)}")
    n = input.numel()
    if index.numel() and not bool(((index._data >= -n) & (index._data < n)).all()):
        bad = index._data[(index._data < -n) | (index._data >= n)].reshape(-1)[0]
        raise IndexError(f"out of range: tried to access index {int(bad)} on a tensor of {n} elements.")
    return input.reshape(-1)[index]


def _tri_indices(row, col, offset, lower, dtype, device):
    r, c = np.tril_indices(row, offset, col) if lower else np.triu_indices(row, offset, col)
    from .creation import tensor
    return tensor(np.stack([r, c]), dtype=dtype or _dtype.int64, device=device)


def tril_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _tri_indices(row, col, offset, True, dtype, device)


def triu_indices(row, col, offset=0, *, dtype=None, device=None, layout=None):
    return _tri_indices(row, col, offset, False, dtype, device)


@autocast_op("cdist")
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    diff_ = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    if p == 2.0:
        d = diff_.square().sum(-1).sqrt()
    elif p == 1.0:
        d = diff_.abs().sum(-1)
    elif p == float("inf"):
        d = diff_.abs().amax(-1)
    else:
        d = diff_.abs().pow(p).sum(-1).pow(1.0 / p)
    return _graph.renamed(d, "CdistBackward0")  # composed here, one node in torch


@method()
@autocast_op("dist")
def dist(input, other, p=2):
    return (input - other).norm(p)


@method()
def hypot(input, other):
    return (input * input + other * other).sqrt()


Tensor.hypot_ = lambda self, other: _assign(self, hypot(self, other))


def _assign(t, result):
    from .arith import assign_
    return assign_(t, result)


@method()
@autocast_op("cross")
def cross(input, other, dim=None):
    d = wrap_dim(-1 if dim is None else dim, input.ndim)
    a = [input.select(d, i) for i in range(3)]
    b = [other.select(d, i) for i in range(3)]
    from .stacking import stack
    return stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], d)


@method()
def rot90(input, k=1, dims=(0, 1)):
    k %= 4
    d0, d1 = dims
    if k == 1:
        return input.flip(d1).transpose(d0, d1)
    if k == 2:
        return input.flip((d0, d1))
    if k == 3:
        return input.transpose(d0, d1).flip(d1)
    return input.clone()


def cartesian_prod(*tensors):
    from .stacking import stack
    grids = meshgrid(*tensors, indexing="ij")
    return stack([g.reshape(-1) for g in grids], 1) if len(tensors) > 1 else tensors[0].clone()


def block_diag(*tensors):
    from .creation import zeros
    mats = [t.reshape(1, -1) if t.ndim == 1 else (t.reshape(1, 1) if t.ndim == 0 else t) for t in tensors]
    rows, cols = sum(m.shape[0] for m in mats), sum(m.shape[1] for m in mats)
    from .._dtype import result_type_of
    out = zeros(rows, cols, dtype=result_type_of(mats), device=mats[0].device)
    r = c = 0
    for m in mats:
        out[r:r + m.shape[0], c:c + m.shape[1]] = m
        r, c = r + m.shape[0], c + m.shape[1]
    return out


@method()
def kron(input, other):
    """Kronecker product of tensors of any rank (the smaller rank padded with leading 1s)."""
    for arg, pos, x in (("input", 1, input), ("other", 2, other)):
        if not isinstance(x, Tensor):
            raise TypeError(f"kron(): argument '{arg}' (position {pos}) must be Tensor, not {type(x).__name__}")
    n = max(input.ndim, other.ndim)
    sa = (1,) * (n - input.ndim) + tuple(input.shape)
    sb = (1,) * (n - other.ndim) + tuple(other.shape)
    # a as (a0, 1, a1, 1, ...) times b as (1, b0, 1, b1, ...): each block a_i * b, laid out in place
    a = input.reshape([d for s in sa for d in (s, 1)])
    b = other.reshape([d for s in sb for d in (1, s)])
    return (a * b).reshape([x * y for x, y in zip(sa, sb)])


@method()
def heaviside(input, values):
    if input.dtype is not values.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")
    xp = input._device.xp
    return nondiff(lambda x, v: xp.where(x == 0, v, (x > 0).astype(x.dtype)), input, values)


Tensor.heaviside_ = lambda self, values: _assign(self, heaviside(self, values))


class Erfinv(Function):
    def forward(ctx, x):
        y = kernels[ctx.xp].special("erfinv")(x).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (np.sqrt(np.pi) / 2) * ctx.xp.exp(y * y).astype(y.dtype, copy=False)


@method()
@autocast_op("erfinv")
def erfinv(input):
    from ._util import to_float
    return Erfinv.apply(to_float(input))


Tensor.erfinv_ = lambda self: __import__("dtrain")._ops.arith.assign_(self, erfinv(self))


@method()
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    d1, d2 = wrap_dim(dim1, input.ndim + 1), wrap_dim(dim2, input.ndim + 1)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    from .creation import zeros
    n = input.shape[-1] + abs(offset)
    out = zeros(*input.shape[:-1], n, n, dtype=input.dtype, device=input.device)
    i = np.arange(input.shape[-1])
    r, c = (i, i + offset) if offset >= 0 else (i - offset, i)
    out[..., r.tolist(), c.tolist()] = input  # an index-put in the graph: the gradient reaches `input`
    _graph.renamed(out, "DiagEmbedBackward0")
    return out if (dim1, dim2) in ((-2, -1), (out.ndim - 2, out.ndim - 1)) else out.movedim((-2, -1), (dim1, dim2))
