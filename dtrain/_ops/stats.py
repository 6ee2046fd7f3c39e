"""Statistics and scans: quantile, nanquantile, nanmedian, mode, histc, cov, trapezoid, cummax, cummin,
logcumsumexp, unique_consecutive, renorm."""
import warnings

import numpy as np

from .. import _dtype
from .._backend import kernels, on_device
from .._tensor import Tensor, _wrap
from ..autograd import graph as _graph
from ..autograd.graph import Function
from ._layout import c_order, c_ordered
from ._util import device_array, method, on_input_device, out_copy, scalar_tensor, wrap_dim
from .index import _scatter_add_at, where
from .reduce import _named, return_cummax, return_mode
from .scatter import Gather, _full_index
from ..amp._dispatch import autocast_op

return_cummin, return_nanmedian = _named("cummin"), _named("nanmedian")


def _scan(op, a, axis, xp):
    """Inclusive scan of the binary ufunc `op` along `axis`: NumPy's accumulate, else log-step doubling (CuPy
    accumulates only add and multiply)."""
    acc = kernels[xp].accumulate
    return acc(op, a, axis) if acc is not None else _doubling_scan(op, a, axis, xp)


def _doubling_scan(op, a, axis, xp):
    """Hillis-Steele: after the pass with step s, each element combines the 2s elements ending at it."""
    a = xp.moveaxis(a, axis, -1).copy()
    step = 1
    while step < a.shape[-1]:
        a[..., step:] = op(a[..., :-step], a[..., step:])
        step *= 2
    return xp.moveaxis(a, -1, axis)


def _positions(n, axis, ndim, xp):
    """0..n-1 laid along `axis` of an `ndim`-d array (broadcastable)."""
    return xp.arange(n).reshape([n if k == axis else 1 for k in range(ndim)])


def _zero_index(input):
    return _wrap(device_array(0, input._device, np.int64), input._device)


def _check_dim_nonempty(input, d, name):
    if input.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


# ---------------------------------------------------------------------------------------------- quantiles
_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile_checks(input, q, interpolation):
    """torch's checks, in its order; returns q as a tensor of input's dtype."""
    if not isinstance(q, Tensor) and not 0 <= q <= 1:
        raise RuntimeError(f"quantile() q must be in the range [0, 1] but got {q:g}")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError("quantile() interpolation must be one of linear, lower, higher, midpoint or nearest, "
                           f"but got {interpolation}")
    if input._data.size == 0:
        raise RuntimeError("quantile() input tensor must be non-empty")
    if isinstance(q, Tensor) and q.ndim > 1:
        raise RuntimeError("quantile() q must be a scalar or 1D tensor")
    if input.dtype not in (_dtype.float32, _dtype.float64):
        raise RuntimeError("quantile() input tensor must be either float or double dtype")
    if not isinstance(q, Tensor):
        return scalar_tensor(q, input.dtype, input._device)
    if q.dtype != input.dtype:
        raise RuntimeError("quantile() q tensor must be same dtype as the input tensor")
    if q._data.size:
        with on_device(q._device):
            ok = bool(((q._data >= 0) & (q._data <= 1)).all())
    if q._data.size and not ok:
        raise RuntimeError("quantile() q values must be in the range [0, 1]")
    return q


def _sorted_rows(input, dim, keepdim):
    """input sorted along the reduced dim, which becomes the last one; the others are the output's."""
    if dim is None:
        lead = (1,) * input.ndim if keepdim else ()
        return input.reshape(-1).sort().values.reshape(lead + (-1,))
    d = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        return input.reshape(1)
    s = input.unsqueeze(-1).transpose(d, -1).sort().values
    return s if keepdim else s.squeeze(d)


def _quantile(input, q, dim, keepdim, interpolation, ignore_nan):
    """torch's algorithm, step for step (so that the gradients, to q as well, are torch's): sort, find the
    fractional rank of each q, gather its neighbours and interpolate. NaN sorts last; quantile returns NaN for
    rows holding one, nanquantile ranks among the non-NaN values only."""
    qt = _quantile_checks(input, q, interpolation)
    s = _sorted_rows(input, dim, keepdim)
    qv = qt.reshape(-1)
    if ignore_nan:
        ranks = qv * (s.isnan().logical_not().sum(-1, keepdim=True) - 1)
        ranks = ranks.masked_fill(ranks < 0, 0)
    else:
        last = s.shape[-1] - 1
        ranks = (qv * last).masked_fill(s.isnan().any(-1, keepdim=True), last)
    if interpolation in ("lower", "higher", "nearest"):
        ranks = {"lower": ranks.floor, "higher": ranks.ceil, "nearest": ranks.round}[interpolation]()
    below = ranks.long()
    values = s.gather(-1, below)
    if interpolation in ("linear", "midpoint"):
        from .creation import full_like
        weights = ranks - below if interpolation == "linear" else full_like(ranks, 0.5)
        values = values.lerp(s.gather(-1, ranks.ceil().long()), weights)
    if qt.ndim == 0:
        return values.squeeze(-1)
    return values.unsqueeze(0).transpose(0, -1).squeeze(-1)


@method()
@autocast_op("quantile")
def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None):
    """The q-th quantiles of each row along `dim` (of all elements when None); a 1-D q adds a leading dim."""
    return out_copy(_quantile(input, q, dim, keepdim, interpolation, False), out)


@method()
@autocast_op("nanquantile")
def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear", out=None):
    """quantile that ignores NaN values (NaN only where a row holds nothing else)."""
    return out_copy(_quantile(input, q, dim, keepdim, interpolation, True), out)


# ------------------------------------------------------------------------------------------- median, mode
class SelectEvenly(Function):
    """A value picked from the whole of x (median, nanmedian); its gradient is shared evenly between the
    elements equal to it, NaN counting as equal to NaN (torch's rule)."""

    def name(self):
        return self.label

    def forward(ctx, x, value, label):
        ctx.save_for_backward(x, value)
        ctx.label = label
        return value.copy()

    def backward(ctx, g):
        x, v = ctx.saved
        xp = ctx.xp
        mask = (x == v) | (xp.isnan(x) & xp.isnan(v)) if x.dtype.kind == "f" else x == v
        with np.errstate(divide="ignore", invalid="ignore"):  # nothing to share out of an empty input
            return mask * (g / mask.sum())


def _check_median_dtype(input, kernel):
    if input._data.dtype.kind == "b":
        raise NotImplementedError(f"\"{kernel}\" not implemented for 'Bool'")


def _nan_last_sort(a, d, xp):
    """(sorting indices, count of non-NaN values) along d: NaN sorts last, ties keep their order."""
    idx = xp.argsort(a, axis=d, kind="stable")
    count = (~xp.isnan(a)).sum(axis=d, keepdims=True) if a.dtype.kind == "f" else \
        xp.full(a.shape[:d] + (1,) + a.shape[d + 1:], a.shape[d])
    return idx, count


@method()
def nanmedian(input, dim=None, keepdim=False, *, out=None):
    """The lower median of the non-NaN values: of everything (a value), or along `dim` (values, indices)."""
    return out_copy(_median(input, dim, keepdim, True, "Nanmedian", return_nanmedian), out)


@method()
def median(input, dim=None, keepdim=False):
    """The lower median: of everything (a value; NaN if there is one), or along `dim` (values, indices: a row
    holding a NaN gives NaN and the index of its first NaN)."""
    from .reduce import return_median
    return _median(input, dim, keepdim, False, "Median", return_median)


def _median_at(count, n, skip_nan, xp):
    """Sorted position (NaN last, stable) of the median among n values of which `count` are not NaN: the
    (k-1)//2-th non-NaN one (skip_nan; the first NaN when all are), else the first NaN wherever there is one."""
    return xp.maximum(count - 1, 0) // 2 if skip_nan else xp.where(count < n, count, (n - 1) // 2)


@on_input_device
def _median(input, dim, keepdim, skip_nan, name, result):
    if dim is None:
        _check_median_dtype(input, "median_cpu")
        return SelectEvenly.apply(input, value=_flat_median(input, skip_nan), label=f"{name}Backward0")
    _check_median_dtype(input, "median_out")
    d = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        return result(input.clone(), _zero_index(input))
    _check_dim_nonempty(input, d, "median")
    xp = input._device.xp
    order, count = _nan_last_sort(input._data, d, xp)
    pick = c_order(xp.take_along_axis(order, _median_at(count, input.shape[d], skip_nan, xp), axis=d).astype(np.int64))
    idx = _wrap(pick if keepdim else pick.squeeze(d), input._device)
    values = Gather.apply(input, _wrap(pick, input._device), dim=d, label=f"{name}Backward1")
    return result(values if keepdim else _graph.renamed(values.squeeze(d), f"{name}Backward1"), idx)


@on_input_device
def _flat_median(input, skip_nan):
    xp = input._device.xp
    a = input._data.reshape(-1)
    if a.size == 0:
        with np.errstate(invalid="ignore"):
            return xp.asarray(np.nan).astype(a.dtype)
    order, count = _nan_last_sort(a, 0, xp)
    return a[order[int(_median_at(count, a.size, skip_nan, xp)[0])]]


@method()
@on_input_device
def mode(input, dim=-1, keepdim=False):
    """The most frequent value along `dim` (the smallest among equally frequent ones) and the index of its
    last occurrence."""
    d = wrap_dim(dim, input.ndim)
    if input.ndim == 0:
        return return_mode(input.clone(), _zero_index(input))
    _check_dim_nonempty(input, d, "mode")
    xp = input._device.xp
    if input._data.size:
        pick = c_order(_mode_index(input._data, d, xp))
    else:
        pick = xp.zeros(input.shape[:d] + (1,) + input.shape[d + 1:], np.int64)
    idx = _wrap(pick if keepdim else pick.squeeze(d), input._device)
    values = Gather.apply(input, _wrap(pick, input._device), dim=d, label="ModeBackward0")
    return return_mode(values if keepdim else values.squeeze(d), idx)


def _mode_index(a, d, xp):
    """Index (keepdim) of the mode along d: runs of equal values in a stable sort; the end of the first
    longest run is the smallest most frequent value at its last position."""
    order = xp.argsort(a, axis=d, kind="stable")
    s = xp.take_along_axis(a, order, axis=d)
    n = a.shape[d]
    pos = _positions(n, d, a.ndim, xp)
    diff = xp.moveaxis(xp.moveaxis(s, d, -1)[..., 1:] != xp.moveaxis(s, d, -1)[..., :-1], -1, d)
    edge = xp.ones(s.shape[:d] + (1,) + s.shape[d + 1:], bool)
    starts = xp.concatenate([edge, diff], axis=d)
    ends = xp.concatenate([diff, edge], axis=d)
    start = _scan(xp.maximum, xp.where(starts, pos, 0), d, xp)
    length = xp.where(ends, pos - start + 1, 0)
    best = xp.argmax(length, axis=d, keepdims=True)
    return xp.take_along_axis(order, best, axis=d).astype(np.int64)


# ------------------------------------------------------------------------------------------- histc, cov
@method()
@on_input_device
def histc(input, bins=100, min=0, max=0, *, out=None):
    """Counts in `bins` equal bins over [min, max] (the data's range when min == max); not differentiable."""
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"histogram_cpu\" not implemented for '{_dtype.scalar_name(input.dtype)}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    xp, a = input._device.xp, input._data.reshape(-1)
    lo, hi = float(min), float(max)
    if lo == hi and a.size:
        with np.errstate(invalid="ignore"):  # NaN data gives a NaN range, refused below
            lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{lo:g}, {hi:g}] is not finite")
    if not lo < hi:
        raise RuntimeError("torch.histc: max must be larger than min")
    # the bin by one division in the input's precision (torch's arithmetic); the last edge belongs to the last bin
    left, right = a.dtype.type(lo), a.dtype.type(hi)
    a = a[(a >= left) & (a <= right)]
    pos = xp.minimum(((a - left) * a.dtype.type(bins) / (right - left)).astype(np.int64), bins - 1)
    hist = xp.bincount(pos, minlength=bins).astype(a.dtype)
    return out_copy(_wrap(hist, input._device), out)


return_histogram = _named("histogram", ("hist", "bin_edges"))


@method()
@on_input_device
def histogram(input, bins, *, range=None, weight=None, density=False, out=None):
    """Counts (or weight sums) of input's values in `bins` equal bins over `range` (the data's range by
    default) or between given edges; the last edge belongs to the last bin. Not differentiable."""
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"histogramdd\" not implemented for '{_dtype.scalar_name(input.dtype)}'")
    xp, a = input._device.xp, input._data.reshape(-1)
    if isinstance(bins, Tensor):
        if bins.ndim != 1 or bins.numel() < 1:
            raise RuntimeError(f"torch.histogram(): bins tensor should have one dimension and at least 1 element, "
                               f"but got {bins.ndim} dimensions and {bins.numel()} elements")
        edges = bins._data.astype(a.dtype, copy=False)
    else:
        if bins <= 0:
            raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
        if range is not None:
            lo, hi = float(range[0]), float(range[1])
        elif a.size:
            lo, hi = float(a.min()), float(a.max())
        else:
            lo = hi = 0.0
        if lo > hi:
            raise RuntimeError(f"torch.histogram(): min should not exceed max, but got min {lo:g} max {hi:g} for "
                               f"dimension 0")
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise RuntimeError(f"torch.histogram(): range of [{lo:g}, {hi:g}] is not finite")
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        from .creation import linspace
        edges = linspace(lo, hi, bins + 1, dtype=input.dtype, device=input.device)._data
    n = edges.shape[0] - 1
    inside = (a >= edges[0]) & (a <= edges[-1])
    pos = xp.minimum(xp.searchsorted(edges, a[inside], side="right") - 1, n - 1)
    w = weight._data.reshape(-1)[inside] if weight is not None else None
    hist = xp.bincount(pos, weights=w, minlength=n).astype(a.dtype) if n else xp.zeros(0, a.dtype)
    if density:
        hist = hist / (hist.sum() * xp.diff(edges))
    result = return_histogram(_wrap(hist.astype(a.dtype, copy=False), input._device),
                              _wrap(xp.array(edges), input._device))
    if out is not None:
        out_copy(result.hist, out[0]), out_copy(result.bin_edges, out[1])
        return return_histogram(*out)
    return result


@method()
def corrcoef(input):
    """Pearson correlation coefficients of the rows (variables), clipped to [-1, 1]; composed from cov."""
    if input.ndim > 2:
        raise RuntimeError(f"corrcoef(): expected input to have two or fewer dimensions but got an input with "
                           f"{input.ndim} dimensions")
    c = cov(input)
    if c.ndim == 0:
        return c / c
    stddev = c.diagonal().sqrt()
    c = c / stddev.reshape(-1, 1)
    c = c / stddev.reshape(1, -1)
    return c.clip(-1, 1)


def _check_weights(w, name, n, integral):
    if w.ndim > 1:
        raise RuntimeError(f"cov(): expected {name} to have one or fewer dimensions but got {name} with {w.ndim} "
                           "dimensions")
    kind = w._data.dtype.kind
    if not (kind in "iu" if integral else kind == "f"):
        raise RuntimeError(f"cov(): expected {name} to have {'integral' if integral else 'floating point'} dtype "
                           f"but got {name} with "
                           f"{_dtype.scalar_name(w.dtype)} dtype")
    if w.numel() != n:
        raise RuntimeError(f"cov(): expected {name} to have the same numel as there are observations in the input "
                           f"but got {w.numel()} != {n}")
    if n and bool((w._data < 0).any()):
        raise RuntimeError(f"cov(): {name} cannot be negative")


@method()
@on_input_device
def cov(input, *, correction=1, fweights=None, aweights=None):
    """Covariance of the rows (variables) over the columns (observations), with frequency and importance
    weights; composed from tensor ops, as torch does."""
    if input.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an input with "
                           f"{input.ndim} dimensions")
    if input._data.dtype.kind == "b":
        raise RuntimeError("cov(): bool dtype is not supported for input")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    n = x.shape[1]
    w = None
    if fweights is not None:
        _check_weights(fweights, "fweights", n, True)
        w = fweights
    if aweights is not None:
        _check_weights(aweights, "aweights", n, False)
        w = aweights if w is None else w * aweights
    w_sum = w.sum() if w is not None else scalar_tensor(n, _dtype.int64, x._device)
    if w is not None and not bool(w_sum._data != 0):
        raise RuntimeError("cov(): weights sum to zero, can't be normalized")
    avg = (x * w if w is not None else x).sum(1) / w_sum
    if w is not None and aweights is not None and correction != 0:
        norm = w_sum - correction * (w * aweights).sum() / w_sum
    else:
        norm = w_sum - correction
    if bool(norm._data <= 0):
        warnings.warn("cov(): degrees of freedom is <= 0. Correction should be strictly less than the number of "
                      "observations.", UserWarning, stacklevel=2)
        norm = norm * 0
    x = x - avg.unsqueeze(1)
    c = x @ (x * w if w is not None else x).t()
    return (c / norm).squeeze()


# ------------------------------------------------------------------------------------------------ trapezoid
def trapezoid(y, x=None, *, dx=None, dim=-1):
    """Integral of y along `dim` by the trapezoidal rule, at points x or a constant spacing dx (default 1)."""
    if x is not None and (dx is not None or not isinstance(x, Tensor)):
        raise TypeError("trapezoid() received an invalid combination of arguments - expected (Tensor y, Tensor x, "
                        "*, int dim) or (Tensor y, *, Number dx, int dim)")
    if y.ndim == 0:
        raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = wrap_dim(dim, y.ndim)
    n = y.shape[d]
    if n == 0:
        from .creation import zeros
        return zeros(y.shape[:d] + y.shape[d + 1:], dtype=y.dtype, device=y.device)
    if x is None and y.dtype == _dtype.bool:
        raise RuntimeError("trapezoid: received a bool input for `y`, but bool is not supported")
    if x is not None and _dtype.bool in (x.dtype, y.dtype):
        raise RuntimeError("trapezoid: received a bool input for `x` or `y`, but bool is not supported")
    if x is None:
        dx = 1 if dx is None else dx
        if isinstance(dx, (bool, complex)):
            raise RuntimeError("trapezoid: Currently, we only support dx as a real number.")
        return (y.sum(d) - (y.select(d, 0) + y.select(d, -1)) * 0.5) * dx
    if x.ndim == 1:
        if x.shape[0] != n:
            raise RuntimeError("trapezoid: There must be one `x` value for each sample point")
        x = x.reshape([n if k == d else 1 for k in range(y.ndim)])
    elif x.ndim < y.ndim:
        x = x.reshape((1,) * (y.ndim - x.ndim) + tuple(x.shape))
    m = x.shape[d] - 1
    spacing = x.narrow(d, 1, m) - x.narrow(d, 0, m)
    return (spacing * (y.narrow(d, 1, n - 1) + y.narrow(d, 0, n - 1)) / 2.0).sum(d)


trapz = trapezoid


# ------------------------------------------------------------------------------------------------ scans
class CumMaxMin(Function):
    """cummax / cummin with indices. Among ties the latest index wins; a NaN, once met, stays (with the index
    of the latest NaN). The gradient of each output goes to the input its index names."""

    def name(self):
        return "CummaxBackward0" if self.is_max else "CumminBackward0"

    @c_ordered
    def forward(ctx, x, dim, is_max):
        xp = ctx.xp
        v = _scan(xp.maximum if is_max else xp.minimum, x, dim, xp)
        hit = x == v  # where the running extremum was (re)set
        if x.dtype.kind == "f":
            hit |= xp.isnan(x)
        idx = _scan(xp.maximum, xp.where(hit, _positions(x.shape[dim], dim, x.ndim, xp), 0), dim, xp)
        ctx.shape, ctx.dim, ctx.idx, ctx.is_max = x.shape, dim, idx, is_max
        ctx.mark_non_differentiable(1)
        return v, idx.astype(np.int64, copy=False)

    def backward(ctx, g, _):
        out = ctx.xp.zeros(ctx.shape, g.dtype)
        _scatter_add_at(ctx.xp, out, _full_index(ctx.xp, ctx.idx, ctx.dim), g)
        return out


def _cummaxmin(input, dim, is_max):
    d = wrap_dim(dim, input.ndim)
    ret = return_cummax if is_max else return_cummin
    if input.ndim == 0:
        return ret(input.clone(), _zero_index(input))
    return ret(*CumMaxMin.apply(input, dim=d, is_max=is_max))


@method()
def cummax(input, dim, *, out=None):
    """Running maximum along `dim` and the index where each was reached (the latest, among ties)."""
    r = _cummaxmin(input, dim, True)
    return r if out is None else type(r)(*(out_copy(a, o) for a, o in zip(r, out)))


@method()
def cummin(input, dim, *, out=None):
    """Running minimum along `dim` and the index where each was reached (the latest, among ties)."""
    r = _cummaxmin(input, dim, False)
    return r if out is None else type(r)(*(out_copy(a, o) for a, o in zip(r, out)))


def _rev_logcumsumexp(a, dim, xp):
    return xp.flip(_scan(xp.logaddexp, xp.flip(a, dim), dim, xp), dim)


class LogCumSumExp(Function):
    _grad_fn_name = "LogcumsumexpBackward0"

    @c_ordered
    def forward(ctx, x, dim):
        y = _scan(ctx.xp.logaddexp, x, dim, ctx.xp)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    def backward(ctx, g):
        # NOTE: torch's formula: grad_j = exp(x_j) sum_{i >= j} g_i exp(-y_i), the positive and negative parts
        # of g summed apart in log space so that nothing overflows
        x, y = ctx.saved
        xp, dim = ctx.xp, ctx.dim
        low = np.finfo(g.dtype).min
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_abs = xp.log(xp.abs(g))
            pos = _rev_logcumsumexp(xp.where(g > 0, log_abs, low) - y, dim, xp)
            neg = _rev_logcumsumexp(xp.where(g < 0, log_abs, low) - y, dim, xp)
            return xp.exp(pos + x) - xp.exp(neg + x)


@method()
def logcumsumexp(input, dim, *, out=None):
    """log(cumsum(exp(input))) along `dim`, computed without overflow."""
    if input._data.dtype.kind != "f":
        raise NotImplementedError(f"\"logcumsumexp_out_cpu\" not implemented for '{_dtype.scalar_name(input.dtype)}'")
    d = wrap_dim(dim, input.ndim)
    return out_copy(input.clone() if input.ndim == 0 else LogCumSumExp.apply(input, dim=d), out)


# -------------------------------------------------------------------------------------- unique_consecutive
class UniqueConsecutive(Function):
    """Forward only: torch has no derivative for unique_consecutive and says so on backward."""

    def forward(ctx, x, dim):
        xp = ctx.xp
        a = x.reshape(-1) if dim is None else xp.moveaxis(x, dim, 0)
        rows = a.reshape(a.shape[0], int(np.prod(a.shape[1:])))
        new = xp.ones(a.shape[0], bool)
        new[1:] = (rows[1:] != rows[:-1]).any(axis=1)
        starts = xp.nonzero(new)[0]
        inverse = xp.cumsum(new, dtype=np.int64) - 1
        counts = xp.diff(xp.concatenate([starts, xp.asarray([a.shape[0]])]))
        values = a[starts] if dim is None else xp.moveaxis(a[starts], 0, dim)
        ctx.mark_non_differentiable(1, 2)
        return values, inverse.reshape(x.shape if dim is None else -1), counts.astype(np.int64)

    def backward(ctx, *grads):
        raise NotImplementedError("the derivative for 'unique_consecutive' is not implemented.")


@method()
def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """The first element of each run of equal consecutive elements (slices along `dim`), with the run each
    element belongs to (return_inverse) and the run lengths (return_counts)."""
    d = None
    if dim is not None:
        if input.ndim == 0:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        d = wrap_dim(dim, input.ndim)
        if sum(s == 0 for s in input.shape) > 1:
            raise RuntimeError("Number of zero sized dimensions is more than one, so unique cannot be applied ")
        if input.numel() == 0 and input.shape[d]:
            raise RuntimeError("There are 0 sized dimensions, and they aren't selected, so unique cannot be applied")
    values, inverse, counts = UniqueConsecutive.apply(input, dim=d)
    out = (values,) + ((inverse,) if return_inverse else ()) + ((counts,) if return_counts else ())
    return out if len(out) > 1 else values


# ------------------------------------------------------------------------------------------------ renorm
@method()
@autocast_op("renorm")
def renorm(input, p, dim, maxnorm):
    """Each slice along `dim` whose p-norm exceeds maxnorm, scaled down to norm maxnorm (torch's 1e-7 guard
    included)."""
    if p <= 0:
        raise RuntimeError("renorm: non-positive-norm not supported")
    if maxnorm < 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm:g}")
    if input.ndim < 2:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {input.ndim} dimensions")
    d = wrap_dim(dim, input.ndim)
    norm = input.norm(p, [k for k in range(input.ndim) if k != d], keepdim=True)
    return input * where(norm > maxnorm, maxnorm / (norm + 1e-7), 1.0)


def _renorm_(self, p, dim, maxnorm):
    from .arith import assign_
    return assign_(self, renorm(self, p, dim, maxnorm))


Tensor.renorm_ = _renorm_
