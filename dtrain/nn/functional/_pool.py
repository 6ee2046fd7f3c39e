"""Max, average and adaptive pooling over strided slices of a padded input, for NumPy and CuPy alike.

A pooling window of kh*kw (or kd*kh*kw) offsets is as many strided slices of the padded input, each of the
output's shape: forward reduces across them and backward adds into them, so the Python loop runs over kernel
offsets only, for any number of spatial dims. The slices are taken from a channels-last copy (N, *padded, C):
in (N, C, H, W) a slice's innermost run is a handful of elements (Wo, at a stride), and NumPy pays its per-run
overhead on every one of them — a 2x2 pooling's backward was ~15x slower there than the same arithmetic over
runs of C contiguous channels."""
import functools

import numpy as np

from ... import _cpu_kernels
from ..._backend import kernels
from ..._ops._util import on_input_device
from ...autograd.graph import Function
from ..._ops._layout import channels_last_format, in_input_format
from ._conv import _every, _first, _keep_inputs, _last, _offsets, _prod
from ...amp._dispatch import autocast_op
from ...autograd import graph as _graph

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
           "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
           "adaptive_max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices"]


def _pair(v, n=2):
    if isinstance(v, (tuple, list)):
        return tuple(int(a) for a in v) if len(v) == n else tuple(int(v[0]) for _ in range(n))
    return (int(v),) * n


def _out_size(size, k, s, p, d, ceil_mode):
    num = size + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input or left padding
        out -= 1
    return out


def _padded(xp, x, k, s, p, d, out, value):
    """x (N, C, *spatial) as a channels-last (N, *padded, C) copy, padded by (p, enough) on each spatial dim with
    `value` so that every window of the output fits."""
    size = x.shape[2:]
    need = [(o - 1) * st + dd * (kk - 1) + 1 for o, st, dd, kk in zip(out, s, d, k)]
    padded = tuple(max(nn, sz + pp) for nn, sz, pp in zip(need, size, p))
    if padded == size:
        return xp.ascontiguousarray(x.transpose(_last(len(size))))
    buf = xp.full((x.shape[0],) + padded + (x.shape[1],), value, dtype=x.dtype)
    buf[(slice(None),) + tuple(slice(pp, pp + sz) for pp, sz in zip(p, size))] = x.transpose(_last(len(size)))
    return buf


def _unpadded(buf, x_shape, p):
    """The (N, C, *spatial) gradient of the input whose channels-last padded copy `buf` is the gradient of."""
    nd = len(p)
    return buf[(slice(None),) + tuple(slice(pp, pp + sz) for pp, sz in zip(p, x_shape[2:]))].transpose(
        _first(nd)).copy()


def _window(a, off, s, d, out):
    """Kernel offset `off` (one index per spatial dim) of every window: a strided (N, *out, C) slice of the
    channels-last `a`."""
    return a[(slice(None),) + tuple(_every(o * dd, st, m) for o, dd, st, m in zip(off, d, s, out))]


def _in_input(xp, off, s, p, d, out, size):
    """Where kernel offset `off` of each window lies inside the input, not in its padding: a (1, *out, 1) mask,
    or None where it does everywhere."""
    mask = None
    for i, (o, st, pp, dd, m, sz) in enumerate(zip(off, s, p, d, out, size)):
        pos = np.arange(m) * st - pp + o * dd
        if pos.min(initial=0) >= 0 and pos.max(initial=0) < sz:
            continue
        inside = ((pos >= 0) & (pos < sz)).reshape((1,) + (1,) * i + (m,) + (1,) * (len(out) - i - 1) + (1,))
        mask = inside if mask is None else mask & inside
    return None if mask is None else xp.asarray(mask)


def _flat_argmax(xp, a, y, geom):
    """The flat (per-plane) input index of each window's first maximum, in (N, C, *out) order: the indices
    max_pool returns, and what its double backward gathers by. `a` is the padded input and `y` the maxima,
    both channels-last, as the forward has them."""
    x_shape, k, s, p, d, out = geom
    nd, size = len(k), x_shape[2:]
    arg = xp.zeros(y.shape, dtype=xp.int64)
    for i, (off, hit) in enumerate(_first_max(xp, a, y, k, s, d, out, p, size)):
        if i:
            arg[hit] = i
    arg = arg.transpose(_first(nd))
    flat = 0
    for i in range(nd):  # input coordinate along dim i of each maximum, folded into the flat index
        start = (xp.arange(out[i]) * s[i] - p[i]).reshape((-1,) + (1,) * (nd - 1 - i))
        flat = flat * size[i] + start + (arg // _prod(k[i + 1:]) % k[i]) * d[i]
    return flat


def _first_max(xp, a, y, k, s, d, out, p, size):
    """Yields (offset, mask) with mask marking where offset holds the window's maximum: the first of tied
    values, but the last NaN (NaN counts as the maximum), as torch's kernels pick them; padding never (a window
    of -inf inputs has its maximum at its first input element, not in the -inf padding). The mask is one
    buffer, rewritten for each offset."""
    nan = None
    if bool((y != y).any()):
        nan = xp.full(y.shape, -1, dtype=xp.int64)  # the last offset holding NaN, per window (row-major number)
        for i, off in enumerate(_offsets(k)):
            v = _window(a, off, s, d, out)
            nan[v != v] = i
    hit, free, last = xp.empty(y.shape, dtype=bool), None, _prod(k) - 1
    for i, off in enumerate(_offsets(k)):
        v = _window(a, off, s, d, out)
        xp.equal(v, y, out=hit)  # never true in a NaN window
        pad = _in_input(xp, off, s, p, d, out, size)
        if pad is not None:
            hit &= pad
        if nan is not None:
            hit |= nan == i
        if free is None:
            free = ~hit
        else:
            hit &= free
            if i != last:
                xp.greater(free, hit, out=free)  # free and not hit
        yield off, hit


class MaxPoolNd(Function):
    """Window maxima over (N, C, *spatial), and with `indices` the flat (prod(spatial)) input index of each (ties
    go to the first offset).

    # NOTE: on NumPy float32/float64 2-D input a compiled kernel keeps each window's index on the way and
    # backward scatters to it (cnn step, 128x64x8x8: 0.9 + 0.17 ms against 0.65 + 1.65 ms, one thread).
    # Elsewhere the forward is a running xp.maximum over the kernel offsets (no argmax bookkeeping: ~10x faster
    # than NumPy's), and backward finds each window's first maximum again from the saved input and output."""

    def forward(ctx, x, k=(1, 1), s=(1, 1), p=(0, 0), d=(1, 1), ceil_mode=False, indices=False):
        xp = ctx.xp
        nd = len(k)
        size = x.shape[2:]
        out = tuple(_out_size(size[i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(nd))
        fused = ctx.fused = _cpu_kernels.get(x) if nd == 2 else None
        if fused is not None:
            # maxima and their indices in one compiled pass over (N, C, H, W); backward scatters to the indices
            y, arg = fused.max_pool2d(x, k, s, p, d, out)
            ctx.save_for_backward(arg)  # when returned too, a write to the indices is refused, as in torch
            _keep_inputs(ctx, x)
            ctx.geom = (x.shape,)
            return in_input_format(ctx, (y, arg) if indices else y, x)
        fill = -xp.inf if x.dtype.kind in "fV" else xp.iinfo(x.dtype).min  # V: bfloat16
        a = _padded(xp, x, k, s, p, d, out, fill)
        y = None
        for off in _offsets(k):
            if y is None:
                y = _window(a, off, s, d, out).copy()
            else:
                xp.maximum(y, _window(a, off, s, d, out), out=y)
        ctx.save_for_backward(a, y)  # y stays private: the output returned is a copy in (N, C, *out)
        _keep_inputs(ctx, x)
        ctx.geom = (x.shape, k, s, p, d, out)
        y_first = xp.ascontiguousarray(y.transpose(_first(nd)))
        if not indices:
            return in_input_format(ctx, y_first, x)  # channels-last for a channels-last input, as torch's
        flat = _flat_argmax(xp, a, y, ctx.geom)
        # saved with the rest although backward does not read it: a write to the returned indices is refused, as
        # torch's node (which scatters through them) refuses it
        ctx.save_for_backward(*ctx.saved, flat)
        return in_input_format(ctx, (y_first, flat), x)

    def backward(ctx, gy, _gidx=None):
        if ctx.fused is not None:
            return ctx.fused.max_pool2d_backward(gy, ctx.saved[1], ctx.geom[0])
        a, y = ctx.saved[1:3]
        xp = ctx.xp
        x_shape, k, s, p, d, out = ctx.geom
        g = xp.ascontiguousarray(gy.transpose(_last(len(k))))
        buf = xp.zeros(a.shape, dtype=gy.dtype)
        # on the CPU, windows that never overlap cover each input element once: the masked gradient is written
        # as a product with the mask (cheaper than a select), unless a non-finite gradient would leave NaN where
        # the mask is 0; on a GPU the check itself would cost a synchronisation
        disjoint = (kernels[xp].host and all(dd * (kk - 1) < ss for kk, ss, dd in zip(k, s, d))
                    and bool(np.isfinite(g).all()))
        for off, hit in _first_max(xp, a, y, k, s, d, out, p, x_shape[2:]):
            win = _window(buf, off, s, d, out)
            if disjoint:
                xp.multiply(g, hit, out=win)
            else:
                win += xp.where(hit, g, 0)
        return _unpadded(buf, x_shape, p)


def _avg_divisor(size, k, s, p, out, count_include_pad):
    """Per-output divisor along one dim, by torch's rule (windows clipped to input+padding, or to input)."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if count_include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, size) - np.maximum(start, 0)).astype(np.float64)


class AvgPoolNd(Function):
    def forward(ctx, x, k=(1, 1), s=(1, 1), p=(0, 0), ceil_mode=False, count_include_pad=True,
                divisor_override=None):
        xp = ctx.xp
        nd = len(k)
        size = x.shape[2:]
        d = (1,) * nd
        out = tuple(_out_size(size[i], k[i], s[i], p[i], 1, ceil_mode) for i in range(nd))
        a = _padded(xp, x, k, s, p, d, out, 0)
        y = None
        for off in _offsets(k):
            if y is None:
                y = _window(a, off, s, d, out).copy()
            else:
                y += _window(a, off, s, d, out)
        if divisor_override:
            div = float(divisor_override)
        else:
            div = functools.reduce(np.multiply.outer, [_avg_divisor(size[i], k[i], s[i], p[i], out[i],
                                                                    count_include_pad) for i in range(nd)])
            div = xp.asarray(div.astype(x.dtype))[..., None]  # (*out, 1): channels last
        y /= div
        _keep_inputs(ctx, x)  # backward needs only the shapes, but torch's node saves the input and checks it
        ctx.div = div
        ctx.geom = (x.shape, a.shape, k, s, p, out)
        if nd == 2 and channels_last_format(x) is not None:
            return y.transpose(_first(nd))  # channels-last, as torch's 2-D kernel writes for such an input (3-D not)
        return xp.ascontiguousarray(y.transpose(_first(nd)))

    def backward(ctx, gy):
        xp = ctx.xp
        x_shape, pad_shape, k, s, p, out = ctx.geom
        g = gy.transpose(_last(len(k))) / ctx.div
        buf = xp.zeros(pad_shape, dtype=gy.dtype)
        for off in _offsets(k):
            _window(buf, off, s, (1,) * len(k), out)[...] += g
        return _unpadded(buf, x_shape, p)


def _check_pool(input, k, s, p, d, nd, name):
    if input.ndim not in (nd + 1, nd + 2) and nd == 3:
        raise RuntimeError("non-empty 4D or 5D (batch mode) tensor expected for input")
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"{name}: Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with optional 0 dim batch "
                           f"size for input, but got: {list(input.shape)}" if nd == 2 else
                           f"{name}() Expected {nd + 1}D or {nd + 2}D input tensor, but got {list(input.shape)}")
    for kk, pp, dd in zip(k, p, d):
        if pp * 2 > (kk - 1) * dd + 1:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation={dd}")
    if any(v <= 0 for v in s):
        raise RuntimeError("stride should be greater than zero, but got " + " ".join(f"s={v}" for v in s))


def _pool(input, nd, fn):
    """Run a pooling op on (C, *), (N, C, *) inputs; 1-D runs as 2-D over a height of 1."""
    unbatched = input.ndim == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    if nd == 1:
        x = x.unsqueeze(2)
    out = fn(x)
    outs = out if isinstance(out, tuple) else (out,)
    if nd == 1:
        outs = tuple(o.squeeze(2) for o in outs)
    if unbatched:
        outs = tuple(o.squeeze(0) for o in outs)
    return outs if isinstance(out, tuple) else outs[0]


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, nd, name):
    k = _pair(kernel_size, nd)
    s = _pair(stride, nd) if stride is not None and stride != [] and stride != () else k
    p, d = _pair(padding, nd), _pair(dilation, nd)
    _check_pool(input, k, s, p, d, nd, name)
    if nd == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    op = MaxPoolNd.named(f"MaxPool{max(nd, 2)}DWithIndicesBackward0")  # torch's node (1-D: squeezed after)
    return _pool(input, nd, lambda x: op.apply(x, k=k, s=s, p=p, d=d, ceil_mode=ceil_mode, indices=return_indices))


@autocast_op("max_pool3d")
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """3-D max pooling over (N, C, D, H, W) or (C, D, H, W); with return_indices also the flat (D*H*W) index of
    every maximum."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 3, "max_pool3d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-D max pooling; with return_indices also the flat (H*W) index of every maximum."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2, "max_pool2d")


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """1-D max pooling over (N, C, L) or (C, L)."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1, "max_pool1d")


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool3d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, nd, name):
    k = _pair(kernel_size, nd)
    s = _pair(stride, nd) if stride is not None and stride != [] and stride != () else k
    p = _pair(padding, nd)
    for kk, pp in zip(k, p):
        if pp * 2 > kk:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got pad={pp}, "
                               f"kernel_size={kk} and dilation=1" if nd >= 2 else
                               f"{name}: pad should be at most half of kernel size, but got pad={pp} and "
                               f"kernel_size={kk}")
    _check_pool(input, k, s, (0,) * nd, (1,) * nd, nd, name)
    if nd == 1:
        k, s, p = (1,) + k, (1,) + s, (0,) + p
    op = AvgPoolNd.named(f"AvgPool{max(nd, 2)}DBackward0")
    return _pool(input, nd, lambda x: op.apply(x, k=k, s=s, p=p, ceil_mode=ceil_mode,
                                               count_include_pad=count_include_pad,
                                               divisor_override=divisor_override))


@autocast_op("avg_pool3d")
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """3-D average pooling over (N, C, D, H, W) or (C, D, H, W)."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 3,
                     "avg_pool3d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """2-D average pooling; count_include_pad counts zero padding in the divisor, as in torch."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2,
                     "avg_pool2d")


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """1-D average pooling."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1, "avg_pool1d")


def _adaptive_bounds(size, out):
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _adaptive_size(input, output_size, nd):
    osz = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * nd
    if len(osz) != nd:
        raise RuntimeError(f"adaptive_avg_pool{nd}d: output_size must be {nd}")
    return tuple(input.shape[-nd + i] if o is None else int(o) for i, o in enumerate(osz))


class AdaptiveAvgPoolNd(Function):
    """Averages over torch's adaptive windows of the last nd dims, one dim at a time (a mean per window: a NaN
    stays in its own windows, where an averaging product would spread it over the row); backward spreads each
    window's gradient over it. One node, as torch's, which saves its input (a write to it before backward is
    refused although the gradient does not read it)."""

    def forward(ctx, x, out=(1, 1)):
        xp = ctx.xp
        nd = len(out)
        y = x
        for i, o in enumerate(out):
            d = x.ndim - nd + i
            parts = [y[(slice(None),) * d + (slice(a, b),)].mean(d, keepdims=True)
                     for a, b in _adaptive_bounds(x.shape[d], o)]
            y = xp.concatenate(parts, d) if parts else xp.zeros(y.shape[:d] + (0,) + y.shape[d + 1:], x.dtype)
        _keep_inputs(ctx, x)
        ctx.x_shape, ctx.out = x.shape, out
        return in_input_format(ctx, xp.ascontiguousarray(y.astype(x.dtype, copy=False)), x)

    def backward(ctx, g):
        xp = ctx.xp
        nd = len(ctx.out)
        for i in reversed(range(nd)):
            d = g.ndim - nd + i
            gx = xp.zeros(g.shape[:d] + (ctx.x_shape[d],) + g.shape[d + 1:], g.dtype)
            for j, (a, b) in enumerate(_adaptive_bounds(ctx.x_shape[d], ctx.out[i])):
                gx[(slice(None),) * d + (slice(a, b),)] += g[(slice(None),) * d + (slice(j, j + 1),)] / (b - a)
            g = gx
        return g


def _adaptive_avg(input, output_size, nd):
    out = _adaptive_size(input, output_size, nd)
    if all(o == 1 for o in out):  # torch's kernel is a mean here (MeanBackward1)
        return input.mean(tuple(range(-nd, 0)), keepdim=True)
    return AdaptiveAvgPoolNd.named(f"AdaptiveAvgPool{nd}DBackward0").apply(input, out=out)


@autocast_op("adaptive_avg_pool3d")
def adaptive_avg_pool3d(input, output_size):
    """Average over torch's adaptive windows of (N, C, D, H, W) or (C, D, H, W) input."""
    if input.ndim not in (4, 5):
        raise RuntimeError(f"adaptive_avg_pool3d(): Expected 4D or 5D tensor, but got {list(input.shape)}")
    return _adaptive_avg(input, output_size, 3)


@autocast_op("adaptive_avg_pool2d")
def adaptive_avg_pool2d(input, output_size):
    """Average over torch's adaptive windows of (N, C, H, W) or (C, H, W) input."""
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    return _adaptive_avg(input, output_size, 2)


def adaptive_avg_pool1d(input, output_size):
    if input.ndim not in (2, 3):
        raise RuntimeError(f"adaptive_avg_pool1d(): Expected 2D or 3D tensor, but got {list(input.shape)}")
    (o,) = _adaptive_size(input, output_size, 1)
    # torch runs it as the 2-D pool over a height of 1: the result's node is the squeeze (SqueezeBackward1)
    return _adaptive_avg(input.unsqueeze(-2), (1, o), 2).squeeze(-2)


class AdaptiveMaxPoolNd(Function):
    """Max over adaptive windows of the last nd dims, gathered at once, with the flat (prod(spatial)) input index
    of each maximum; backward adds the gradient at those indices. One node, as torch's, which saves its input
    and the indices (a write to either before backward is refused).

    Along each dim, window i covers [start_i, end_i); it is read as kmax = max(end - start) positions from
    start_i, the overflow clamped to end_i - 1 (a repeat of the window's last element changes neither the
    maximum nor which element is first to hold it). One gather builds (..., o_0, k_0, o_1, k_1, ...) and one
    argmax over the flattened window axis gives values and positions; no loop over output positions."""

    def forward(ctx, x, out=(1, 1), indices=False):
        xp = ctx.xp
        nd = len(out)
        sizes, lead = x.shape[-nd:], x.ndim - nd
        picks = []  # picks[i]: (out_i, kmax_i) input positions along dim i
        for size, o in zip(sizes, out):
            bounds = np.array(_adaptive_bounds(size, o), dtype=np.int64).reshape(-1, 2)
            kmax = int((bounds[:, 1] - bounds[:, 0]).max()) if o else 1
            picks.append(np.minimum(bounds[:, :1] + np.arange(kmax), bounds[:, 1:] - 1))
        index = []  # dim i's picks, shaped to broadcast as (o_0, k_0, o_1, k_1, ...)
        for i, pk in enumerate(picks):
            shape = [1] * (2 * nd)
            shape[2 * i], shape[2 * i + 1] = pk.shape
            index.append(xp.asarray(pk.reshape(shape)))
        block = x[(Ellipsis,) + tuple(index)]
        order = tuple(range(lead)) + tuple(lead + 2 * i for i in range(nd)) + \
            tuple(lead + 2 * i + 1 for i in range(nd))
        block = block.transpose(order).reshape(x.shape[:lead] + tuple(out) + (-1,))
        arg = block.argmax(-1)
        if x.dtype.kind == "f" and block.size:  # a NaN is the maximum, the window's last one, as torch's kernel
            nan = xp.isnan(block)
            arg = xp.where(nan.any(-1), nan.shape[-1] - 1 - nan[..., ::-1].argmax(-1), arg)
        y = xp.take_along_axis(block, arg[..., None], -1)[..., 0]
        ks, flat = [pk.shape[1] for pk in picks], 0
        for i, pk in enumerate(picks):  # the input position along dim i of each maximum, folded into the flat index
            rows = xp.arange(out[i]).reshape((-1,) + (1,) * (nd - 1 - i))
            flat = flat * sizes[i] + xp.asarray(pk)[rows, arg // _prod(ks[i + 1:]) % ks[i]]
        flat = xp.ascontiguousarray(xp.broadcast_to(flat, y.shape)).astype(xp.int64)
        _keep_inputs(ctx, x)
        ctx.save_for_backward(*ctx.saved, flat)
        ctx.x_shape, ctx.nd = x.shape, nd
        return in_input_format(ctx, (y, flat) if indices else y, x)

    def backward(ctx, g, _gidx=None):
        xp = ctx.xp
        flat, x_shape = ctx.saved[-1], ctx.x_shape
        spatial = _prod(x_shape[-ctx.nd:])
        planes = _prod(x_shape) // spatial
        gx = xp.zeros((planes, spatial), g.dtype)
        rows = xp.arange(planes).reshape(-1, 1)
        kernels[xp].scatter_add(gx, (rows, flat.reshape(planes, -1)), xp.ascontiguousarray(g).reshape(planes, -1))
        return gx.reshape(x_shape)


def _adaptive_max(input, output_size, return_indices, nd):
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected 2 to 3 dimensions, but got {input.ndim}-dimensional tensor for argument #1 "
                           f"'self' (while checking arguments for adaptive_max_pool1d)" if nd == 1 else
                           f"adaptive_max_pool{nd}d(): Expected {nd + 1}D or {nd + 2}D tensor, but got: "
                           f"{list(input.shape)}")
    out = _adaptive_size(input, output_size, nd)
    lead = input.ndim - nd
    for i, size in enumerate(input.shape[-nd:]):
        if size == 0:
            raise RuntimeError(f"adaptive_max_pool{nd}d(): Expected input to have non-zero size for non-batch "
                               f"dimensions, but input has sizes {list(input.shape)} with dimension {lead + i} "
                               f"being empty")
    if nd == 1:  # torch runs it as the 2-D pool over a height of 1: the results' node is the squeeze
        res = _adaptive_max(input.unsqueeze(-2), (1,) + out, return_indices, 2)
        return tuple(r.squeeze(-2) for r in res) if return_indices else res.squeeze(-2)
    return AdaptiveMaxPoolNd.named(f"AdaptiveMaxPool{nd}DBackward0").apply(input, out=out, indices=return_indices)


@autocast_op("adaptive_max_pool3d")
def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 3)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 2)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max(input, output_size, return_indices, 1)


# ---- power-average pooling and max unpooling --------------------------------------------------------------
__all__ += ["lp_pool1d", "lp_pool2d", "max_unpool1d", "max_unpool2d", "max_unpool3d"]


def _lp_root(out, window, norm_type):
    from ... import sign
    from ..._ops.pointwise import relu
    # torch's form: sign(out) * relu(|out|) keeps the root of a negative average (odd powers) at zero
    return (sign(out) * relu(out.abs())).mul(window).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """(sum over each window of x^p)^(1/p), as an average pool of x^p times the window size."""
    (k,) = _pair(kernel_size, 1)
    out = avg_pool1d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return _lp_root(out, k, norm_type)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    kh, kw = _pair(kernel_size)
    out = avg_pool2d(input.pow(norm_type), kernel_size, stride, 0, ceil_mode)
    return _lp_root(out, kh * kw, norm_type)


class MaxUnpool(Function):
    """Writes each value of x (N, C, L) at its flat index into a zero (N, C, size) output; backward reads the
    gradient back from the same places."""

    def forward(ctx, x, idx, size):
        xp = ctx.xp
        n, c = x.shape[:2]
        rows = xp.arange(n * c)[:, None]
        flat = idx.reshape(n * c, -1)
        out = xp.zeros((n * c, size), dtype=x.dtype)
        out[rows, flat] = x.reshape(n * c, -1)
        ctx.spots = (rows, flat, x.shape)
        return out.reshape(n, c, size)

    def backward(ctx, g):
        rows, flat, shape = ctx.spots
        return g.reshape(rows.shape[0], -1)[rows, flat].reshape(shape)


def _unpool_output_size(input, kernel_size, stride, padding, output_size):
    nd = len(kernel_size)
    default = [(input.shape[-nd + d] - 1) * stride[d] + kernel_size[d] - 2 * padding[d] for d in range(nd)]
    if output_size is None:
        return default
    output_size = list(output_size)
    if len(output_size) == nd + 2:
        output_size = output_size[2:]
    if len(output_size) != nd:
        raise ValueError(f"output_size should be a sequence containing {nd} or {nd + 2} elements, but it has a "
                         f"length of '{len(output_size)}'")
    for d in range(nd):
        lo, hi = default[d] - stride[d], default[d] + stride[d]
        if not lo < output_size[d] < hi:
            raise ValueError(f'invalid output_size "{output_size}" (dim {d} must be between {lo} and {hi})')
    return output_size


@on_input_device
def _max_unpool(input, indices, kernel_size, stride, padding, output_size, nd):
    k = _pair(kernel_size, nd)
    s = _pair(stride, nd) if stride is not None else k
    size = _unpool_output_size(input, k, s, _pair(padding, nd), output_size)
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"max_unpool{nd}d: Expected {nd + 1}D or {nd + 2}D (batch mode) tensor with optional 0 "
                           f"dim batch size for input, but got: {list(input.shape)}")
    if indices.shape != input.shape:
        raise RuntimeError(f"Expected shape of indices to be same as that of the input tensor "
                           f"({list(input.shape)}) but got indices tensor with shape: {list(indices.shape)}")
    if indices._data.dtype.kind not in "iu":
        raise RuntimeError(f"elements in indices should be type int64 but got: {indices.type()}")
    total = int(np.prod(size))
    idx = indices._data
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= total):
        bad = int(idx.max()) if int(idx.max()) >= total else int(idx.min())
        raise RuntimeError(f"Found an invalid max index: {bad} (output volumes are of size "
                           f"{'x'.join(str(v) for v in size)}" + ("x1)" if nd == 1 else ")"))
    unbatched = input.ndim == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    n, c = x.shape[:2]
    out = MaxUnpool.apply(x.reshape(n, c, -1), idx=idx.reshape(n, c, -1), size=total)
    out = out.reshape([n, c] + list(size))
    # torch's node; its max_unpool1d runs the 2-D one and squeezes
    _graph.renamed(out, f"MaxUnpool{nd}DBackward0" if nd > 1 else "SqueezeBackward1")
    return out.squeeze(0) if unbatched else out


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of max_pool1d: each value written back at its index, zeros elsewhere."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 1)


@autocast_op("max_unpool2d")
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of max_pool2d: each value written back at its flat (H*W) index, zeros elsewhere."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 2)


@autocast_op("max_unpool3d")
def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of max_pool3d: each value written back at its flat (D*H*W) index, zeros elsewhere."""
    return _max_unpool(input, indices, kernel_size, stride, padding, output_size, 3)
