"""Convolutions as im2col + one matmul per group, written once for NumPy and CuPy (CuPy 14 has no cuDNN).

Windows are gathered with `as_strided` into a column matrix, so each convolution is one large GEMM per group,
and col2im (the input gradient) is one strided add per kernel offset (kh*kw, or kd*kh*kw in 3-D): never a
Python loop over the batch or output pixels. One implementation serves every number of spatial dims; 1-D runs
as 2-D over a height of 1."""
import itertools
import weakref

import numpy as np

from ... import _cpu_kernels
from ..._backend import kernels
from ..._tensor import Tensor
from ...autograd.graph import Function
from ...amp._dispatch import autocast_op
from ...autograd import graph as _graph
from ..._ops._layout import in_input_format
from ..._ops._lowp import widened

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "unfold", "fold"]


_free = {}  # nbytes -> spare host buffers for column matrices


def _workspace(xp, shape, dtype):
    """An uninitialised array for a column matrix that lives inside one op (saved for its backward only).

    # NOTE: on the CPU a fresh multi-megabyte array costs a page fault per 4 KiB on first touch, which made the
    # im2col copy 3x slower than the copy itself; buffers are recycled once the array that used them is freed.
    # CuPy has its own memory pool, so this is NumPy-only."""
    if not kernels[xp].host:
        return xp.empty(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    nbytes = _prod(shape) * dtype.itemsize
    try:
        mem = _free[nbytes].pop()
    except (KeyError, IndexError):  # none spare (pop is atomic, so threads never share a buffer)
        mem = np.empty(nbytes, dtype=np.uint8)
    arr = mem.view(dtype).reshape(shape)
    weakref.finalize(arr, _recycle, nbytes, mem)
    return arr


_SPARE_LIMIT = 256 << 20  # bytes kept for reuse, across all sizes


def _recycle(nbytes, mem):
    spare = _free.setdefault(nbytes, [])
    if len(spare) < 4 and sum(k * len(v) for k, v in list(_free.items())) + nbytes <= _SPARE_LIMIT:
        spare.append(mem)


def _pair(v, n=2):
    if isinstance(v, (tuple, list)):
        return tuple(int(a) for a in v) if len(v) == n else tuple(int(v[0]) for _ in range(n))
    return (int(v),) * n


def _as_strided(xp, a, shape, strides):
    return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


def _pad4(xp, x, pads, value=0.0, order=(0, 1)):
    """x (N, C, H, W) padded by pads=(top, bottom, left, right), with the two leading axes in `order`."""
    pt, pb, pl, pr = pads
    x = x.transpose(order + (2, 3)) if order != (0, 1) else x
    a, b, h, w = x.shape
    if not any(pads) and x.flags.c_contiguous:
        return x
    out = xp.full((a, b, h + pt + pb, w + pl + pr), value, dtype=x.dtype) if value else \
        xp.zeros((a, b, h + pt + pb, w + pl + pr), dtype=x.dtype)
    out[:, :, pt:pt + h, pl:pl + w] = x
    return out


def _offsets(k):
    """Every kernel offset (i, j, ...) of a kernel of shape k, in row-major order."""
    return itertools.product(*(range(kk) for kk in k))


def _every(start, step, count):
    """The slice of `count` positions from `start`, `step` apart."""
    return slice(start, start + step * (count - 1) + 1, step)


def _inside(pads, size):
    """Slices of the padded spatial dims that hold the input of spatial `size`; pads = (lo, hi, lo, hi, ...)."""
    return tuple(slice(pads[2 * i], pads[2 * i] + sz) for i, sz in enumerate(size))


def _im2col(xp, xp_cn, k, stride, dil, out):
    """Columns (C*prod(k), N*prod(out)) from a padded input laid out as (C, N, *spatial), C-contiguous."""
    c, n = xp_cn.shape[:2]
    s = xp_cn.strides
    nd = len(k)
    v = _as_strided(xp, xp_cn, (c,) + tuple(k) + (n,) + tuple(out),
                    (s[0],) + tuple(s[2 + i] * dil[i] for i in range(nd)) + (s[1],) +
                    tuple(s[2 + i] * stride[i] for i in range(nd)))
    return v.reshape(c * _prod(k), n * _prod(out))


def _col2im(xp, cols, cn_padded_shape, k, stride, dil, out):
    """The adjoint of _im2col: sums columns back into a (C, N, *spatial) buffer, one strided add per offset."""
    c, n = cn_padded_shape[:2]
    buf = xp.zeros(cn_padded_shape, dtype=cols.dtype)
    cols = cols.reshape((c,) + tuple(k) + (n,) + tuple(out))
    for off in _offsets(k):
        buf[(slice(None), slice(None)) + tuple(_every(o * d, st, m) for o, d, st, m in zip(off, dil, stride, out))] \
            += cols[(slice(None),) + off]
    return buf


def _prod(shape):
    r = 1
    for v in shape:
        r *= int(v)
    return r


def _grouped_mm(xp, a, b, groups, out=None):
    """Block-diagonal product: a (G*p, q) with b (G*q', r) split by rows; one matmul per group."""
    if groups == 1:
        return xp.matmul(a, b)
    pa, pb = a.shape[0] // groups, b.shape[0] // groups
    return xp.concatenate([xp.matmul(a[g * pa:(g + 1) * pa], b[g * pb:(g + 1) * pb]) for g in range(groups)])


def _last(nd):
    """Axes that move channels last: (0, 2, ..., nd + 1, 1)."""
    return (0,) + tuple(range(2, nd + 2)) + (1,)


def _first(nd):
    """Axes that move channels back from last: (0, nd + 1, 1, ..., nd)."""
    return (0, nd + 1) + tuple(range(1, nd + 1))


def _keep_inputs(ctx, *inputs):
    """Puts the op's input arrays in front of what its forward saved (`ctx.saved`), so that backward fails with
    torch's RuntimeError when one of them was written in place since: torch's node saves them and checks their
    versions, while ours reads only its own copies (the column matrices), and would silently return the
    gradient of the old values. Saved arrays that are the inputs' own arrays are what the engine checks (it
    matches them by identity); a lower-precision input, widened to a float32 copy, still passes its own."""
    ctx.save_for_backward(*inputs, *ctx.saved)


# C*kh*kw up to which the direct kernel beats im2col + GEMM: forward + weight and bias gradients of 128 8x8
# images, 3x3, 32 outputs, one thread, alternating pairs on a loaded machine: 1 channel 0.94-0.99 against
# 0.95-1.09 ms, 2 channels 1.5-1.9 against 4.6-5.7, 3 channels 2.0-3.9 against 5.1-6.3; at 16 channels
# the GEMM path wins (7-10 against 16.5 ms)
_DIRECT_MAX_TAPS = 27


class ConvNd(Function):
    """y = conv(x, w) + b over (N, C, *spatial) arrays of any number of spatial dims; pads = (lo, hi) per dim.

    The columns are gathered channels-last, (N*prod(out), prod(k)*C): the gather copies contiguous channel runs,
    and all three products contract or expand along the tall N*prod(out) axis in the layouts OpenBLAS runs
    fastest (`cols @ W.T`, `g.T @ cols`, `g @ W`) — the textbook (C*prod(k), N*prod(out)) layout makes the
    weight gradient an `A @ B.T` product over a long inner axis, 10-20x slower there."""
    _grad_fn_name = "ConvolutionBackward0"

    def forward(ctx, x, w, b=None, **geom):
        y = ctx.run(x, w, b, **geom)
        _keep_inputs(ctx, x, w)
        return in_input_format(ctx, y, x, w)  # torch's: channels-last when the input or the weight is

    @widened
    def run(ctx, x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        xp = ctx.xp
        nd = x.ndim - 2
        n, c = x.shape[:2]
        size = x.shape[2:]
        o, cg = w.shape[:2]
        k = w.shape[2:]
        padded = tuple(sz + pads[2 * i] + pads[2 * i + 1] for i, sz in enumerate(size))
        out = tuple((padded[i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(nd))
        # the compiled kernels (2-D, one group): up to _DIRECT_MAX_TAPS taps the direct kernel; beyond, col2im in
        # backward always, and im2col from 8 channels on, where a compiled gather beats the strided copy below
        # (at 1 channel NumPy's copy was faster: 150 against 200 µs for 128 8x8 images)
        fused = ctx.fused = _cpu_kernels.get(x, w) if nd == 2 and groups == 1 else None
        ctx.direct = fused is not None and c * _prod(k) <= _DIRECT_MAX_TAPS
        if ctx.direct:
            # few taps per output (a first layer): no column matrix at all (the kernel module says why)
            ctx.geom = (stride, pads, dilation)
            return fused.conv2d_direct(x, w, b, stride, pads, dilation, out)
        if fused is not None and c >= 8:
            # the columns gathered from x in one compiled pass: no padded channels-last copy of x first
            m, kk = n * _prod(out), _prod(k)
            col = fused.im2col2d(x, k, stride, pads, dilation, out, _workspace(xp, (m, kk * c), x.dtype))
            w2 = w.transpose(_last(nd)).reshape(o, kk * c)
            y2 = xp.matmul(col, w2.T)
            ctx.save_for_backward(col)
            ctx.w2s = [w2]
            ctx.geom = (x.shape, None, w.shape, stride, pads, dilation, groups, out)
            return fused.rows_to_planes(y2, b, (n, o) + out)  # + b, in (N, O, *out): one pass
        buf = xp.zeros((n,) + padded + (c,), dtype=x.dtype)
        buf[(slice(None),) + _inside(pads, size)] = x.transpose(_last(nd))
        s = buf.strides
        win = _as_strided(xp, buf, (n,) + out + tuple(k) + (c,),
                          (s[0],) + tuple(s[1 + i] * stride[i] for i in range(nd)) +
                          tuple(s[1 + i] * dilation[i] for i in range(nd)) + (s[-1],))
        og, m, kk = o // groups, n * _prod(out), _prod(k)
        cols, w2s = [], []
        y2 = xp.empty((m, o), dtype=x.dtype) if groups > 1 else None
        for g in range(groups):
            col = _workspace(xp, (m, kk * cg), x.dtype)  # the saved array itself owns the finalizer
            col.reshape((n,) + out + tuple(k) + (cg,))[...] = win if groups == 1 else win[..., g * cg:(g + 1) * cg]
            cols.append(col)
            w2s.append(w[g * og:(g + 1) * og].transpose(_last(nd)).reshape(og, kk * cg))
            if groups == 1:
                y2 = xp.matmul(cols[0], w2s[0].T)
            else:
                y2[:, g * og:(g + 1) * og] = xp.matmul(cols[g], w2s[g].T)
        if b is not None:
            y2 += b
        ctx.save_for_backward(*cols)
        ctx.w2s = w2s
        ctx.geom = (x.shape, buf.shape, w.shape, stride, pads, dilation, groups, out)
        return xp.ascontiguousarray(y2.reshape(n, m // n, o).transpose(0, 2, 1)).reshape((n, o) + out)

    @widened
    def backward(ctx, gy):
        nig = ctx.needs_input_grad
        if ctx.direct:
            x, w = (a.astype(gy.dtype, copy=False) for a in ctx.saved[:2])  # the inputs, widened as gy was
            gx, gw, gb = ctx.fused.conv2d_direct_backward(gy, x, w, *ctx.geom, bool(nig[0]))
            return gx, (gw if nig[1] else None), (gb if len(nig) > 2 and nig[2] else None)
        cols = ctx.saved[2:]
        xp = ctx.xp
        x_shape, buf_shape, w_shape, stride, pads, dilation, groups, out = ctx.geom
        nd = len(out)
        o, cg = w_shape[:2]
        k = w_shape[2:]
        n, c = x_shape[:2]
        og = o // groups
        if ctx.fused is not None:  # the rows and the bias gradient in one pass
            g2, gb = ctx.fused.planes_to_rows(gy)
        else:
            g2, gb = xp.ascontiguousarray(gy.transpose(_last(nd))).reshape(-1, o), None  # (N*prod(out), O)
        gx = gw = None
        if nig[1]:
            gw = xp.concatenate([xp.matmul(g2[:, g * og:(g + 1) * og].T, cols[g]) for g in range(groups)]) \
                if groups > 1 else xp.matmul(g2.T, cols[0])
            gw = xp.ascontiguousarray(gw.reshape((o,) + tuple(k) + (cg,)).transpose(_first(nd)))
        if nig[0] and ctx.fused is not None:
            # one product for every kernel offset, (N*oh*ow, O) @ (O, kh*kw*C), summed back into (N, C, H, W)
            w2 = ctx.w2s[0]
            dcol = xp.matmul(g2, w2, out=_workspace(xp, (g2.shape[0], w2.shape[1]), g2.dtype))
            gx = ctx.fused.col2im2d(dcol, x_shape, k, stride, pads, dilation, out)
        elif nig[0]:
            # col2im one kernel offset at a time: a (N*prod(out), C) product per offset, added into its strided
            # window. With stride 1 along the last dim the window is a contiguous run of out[-1]*C values per
            # row, so the add is fast.
            buf = xp.zeros(buf_shape, dtype=gy.dtype)
            flat = stride[-1] == 1 and groups == 1
            bufv = buf.reshape(buf_shape[:-2] + (-1,)) if flat else buf
            wo = out[-1]
            for g in range(groups):
                gg = g2[:, g * og:(g + 1) * og] if groups > 1 else g2
                w3 = ctx.w2s[g].reshape(og, -1, cg).transpose(1, 0, 2)
                part = xp.empty((gg.shape[0], cg), dtype=gy.dtype)
                for idx, off in enumerate(_offsets(k)):
                    lead = (slice(None),) + tuple(_every(off[i] * dilation[i], stride[i], out[i])
                                                  for i in range(nd - 1))
                    ws = off[-1] * dilation[-1]
                    xp.matmul(gg, w3[idx], out=part)
                    if flat:
                        bufv[lead + (slice(ws * c, (ws + wo) * c),)] += part.reshape((n,) + out[:-1] + (wo * c,))
                    else:
                        buf[lead + (_every(ws, stride[-1], wo), slice(g * cg, (g + 1) * cg))] += \
                            part.reshape((n,) + out + (cg,))
            gx = xp.ascontiguousarray(buf[(slice(None),) + _inside(pads, x_shape[2:])].transpose(_first(nd)))
        if len(nig) > 2 and nig[2]:
            gb = g2.sum(0) if gb is None else gb
        else:
            gb = None
        return gx, gw, gb


class ConvTransposeNd(Function):
    """The adjoint of ConvNd with respect to its input: x (N, Cin, *spatial), w (Cin, Cout/G, *k)."""
    _grad_fn_name = "ConvolutionBackward0"

    def forward(ctx, x, w, b=None, **geom):
        y = ctx.run(x, w, b, **geom)
        _keep_inputs(ctx, x, w)
        return in_input_format(ctx, y, x, w)  # torch's: channels-last when the input or the weight is

    @widened
    def run(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups=1):
        xp = ctx.xp
        nd = x.ndim - 2
        n, cin = x.shape[:2]
        size = x.shape[2:]
        cog = w.shape[1]
        k = w.shape[2:]
        full = tuple((sz - 1) * st + d * (kk - 1) + 1 + op
                     for sz, st, d, kk, op in zip(size, stride, dilation, k, output_padding))
        x2 = xp.ascontiguousarray(x.swapaxes(0, 1)).reshape(cin, -1)  # (Cin, N*prod(size))
        cig = cin // groups
        cols = _grouped_mm(xp, w.reshape(groups, cig, -1).transpose(0, 2, 1).reshape(-1, cig),
                           x2, groups)  # (Cout*prod(k), N*prod(size))
        buf = _col2im(xp, cols, (cog * groups, n) + full, k, stride, dilation, size)
        y = buf[(slice(None), slice(None)) + tuple(slice(p, f - p) for p, f in zip(padding, full))]
        if b is not None:
            y += b.reshape((-1,) + (1,) * (nd + 1))
        ctx.save_for_backward(x2, w)
        ctx.geom = (x.shape, full, stride, padding, dilation, groups)
        return xp.ascontiguousarray(y.swapaxes(0, 1))

    @widened
    def backward(ctx, gy):
        x2, w = ctx.saved[2:]
        xp = ctx.xp
        x_shape, full, stride, padding, dilation, groups = ctx.geom
        nd = len(full)
        n, cin = x_shape[:2]
        cog = w.shape[1]
        k = w.shape[2:]
        cig = cin // groups
        nig = ctx.needs_input_grad
        gx = gw = gb = None
        buf = xp.zeros((cog * groups, n) + full, dtype=gy.dtype)
        buf[(slice(None), slice(None)) + tuple(slice(p, f - p) for p, f in zip(padding, full))] = gy.swapaxes(0, 1)
        cols = _im2col(xp, buf, k, stride, dilation, x_shape[2:])  # (Cout*K, N*prod(size))
        r = cog * _prod(k)
        if nig[0]:
            w3 = w.reshape(groups, cig, r)
            gx = xp.concatenate([xp.matmul(w3[g], cols[g * r:(g + 1) * r]) for g in range(groups)]) \
                if groups > 1 else xp.matmul(w3[0], cols)
            gx = xp.ascontiguousarray(gx.reshape((cin, n) + tuple(x_shape[2:])).swapaxes(0, 1))
        if nig[1]:
            gw = xp.concatenate([xp.matmul(x2[g * cig:(g + 1) * cig], cols[g * r:(g + 1) * r].T)
                                 for g in range(groups)]) if groups > 1 else xp.matmul(x2, cols.T)
            gw = gw.reshape(w.shape)
        if len(nig) > 2 and nig[2]:
            gb = gy.sum((0,) + tuple(range(2, nd + 2)))
        return gx, gw, gb


def _check_conv(input, weight, bias, groups, nd, name, transposed=False):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}() received an invalid combination of arguments - got ({type(input).__name__}, ...)")
    if input.ndim not in (nd + 1, nd + 2):
        raise RuntimeError(f"Expected {nd + 1}D (unbatched) or {nd + 2}D (batched) input to {name}, but got input "
                           f"of size: {list(input.shape)}")
    if weight.ndim != nd + 2:
        raise RuntimeError(f"expected stride to be a single integer value or a list of {weight.ndim - 2} values to "
                           f"match the convolution dimensions, but got stride={[1] * nd}")
    shape = list(input.shape) if input.ndim == nd + 2 else [1] + list(input.shape)
    c = shape[1]
    if transposed:
        if c != weight.shape[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input{shape} to "
                               f"have {weight.shape[0]} channels, but got {c} channels instead")
    else:
        if weight.shape[0] % groups:
            raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
                               f"but got weight of size {list(weight.shape)} instead")
        if c != weight.shape[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {list(weight.shape)}, expected input{shape} to "
                               f"have {weight.shape[1] * groups} channels, but got {c} channels instead")
    if input._data.dtype != weight._data.dtype:
        raise RuntimeError(f"expected scalar type {_scalar(input)} but found {_scalar(weight)}")
    if bias is not None:
        if bias._data.dtype != input._data.dtype:
            raise RuntimeError(f"Input type ({_scalar(input).lower()}) and bias type ({_scalar(bias).lower()}) "
                               f"should be the same")
        nout = weight.shape[1] * groups if transposed else weight.shape[0]
        if bias.ndim != 1 or bias.shape[0] != nout:
            raise RuntimeError(f"Given weight of size {list(weight.shape)}, expected bias to be 1-dimensional with "
                               f"{nout} elements, but got bias of size {list(bias.shape)} instead")


def _scalar(t):
    return {"float64": "Double", "float32": "Float", "float16": "Half", "bfloat16": "BFloat16"}.get(
        str(t.dtype).replace("torch.", ""), str(t.dtype))


def _conv_pads(padding, k, dil, stride):
    """(lo, hi) per spatial dim, flattened, from an int/tuple or 'same'/'valid' (torch puts an odd extra pad at
    the end)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0) * len(k)
        if padding != "same":
            raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        pads = []
        for kk, d in zip(k, dil):
            total = d * (kk - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    return tuple(v for p in _pair(padding, len(k)) for v in (p, p))


def _conv(input, weight, bias, stride, padding, dilation, groups, nd, name):
    _check_conv(input, weight, bias, groups, nd, name)
    unbatched = input.ndim == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    w = weight
    if nd == 1:  # a 1-d convolution is a 2-d one over a height of 1
        x, w = x.unsqueeze(2), w.unsqueeze(2)
        stride, dilation = (1,) + _pair(stride, 1), (1,) + _pair(dilation, 1)
        pads = _conv_pads(padding, (1, weight.shape[-1]), dilation, stride) if isinstance(padding, str) else \
            (0, 0) + (_pair(padding, 1) * 2)
    else:
        stride, dilation = _pair(stride, nd), _pair(dilation, nd)
        pads = _conv_pads(padding, weight.shape[2:], dilation, stride)
    for s, size in enumerate(x.shape[2:]):
        k_eff = dilation[s] * (w.shape[2 + s] - 1) + 1
        if size + pads[2 * s] + pads[2 * s + 1] < k_eff:
            pin = [size + pads[2 * s] + pads[2 * s + 1] for s, size in enumerate(x.shape[2:])][x.ndim - 2 - nd:]
            raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, pin))}). Kernel "
                               f"size: ({' x '.join(str(k) for k in weight.shape[2:])}). Kernel size can't be greater"
                               f" than actual input size")
    args = (x, w) if bias is None else (x, w, bias)
    y = ConvNd.apply(*args, stride=stride, pads=pads, dilation=dilation, groups=groups)
    if nd == 1:  # run as 2-D here, one node in torch
        y = _graph.renamed(y.squeeze(2), "ConvolutionBackward0")
    return y.squeeze(0) if unbatched else y


@autocast_op("conv3d")
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-D convolution over (N, C, D, H, W) or (C, D, H, W) input; padding may be an int, a triple, 'same' or
    'valid'."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


@autocast_op("conv2d")
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution over (N, C, H, W) or (C, H, W) input; padding may be an int, a pair, 'same' or 'valid'."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


@autocast_op("conv1d")
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution over (N, C, L) or (C, L) input."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def _conv_t(input, weight, bias, stride, padding, output_padding, groups, dilation, nd, name):
    _check_conv(input, weight, bias, groups, nd, name, transposed=True)
    unbatched = input.ndim == nd + 1
    x = input.unsqueeze(0) if unbatched else input
    w = weight
    if nd == 1:
        x, w = x.unsqueeze(2), w.unsqueeze(2)
        stride, dilation = (1,) + _pair(stride, 1), (1,) + _pair(dilation, 1)
        padding, output_padding = (0,) + _pair(padding, 1), (0,) + _pair(output_padding, 1)
    else:
        stride, padding, output_padding, dilation = (_pair(v, nd) for v in (stride, padding, output_padding,
                                                                             dilation))
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            names = ("depth", "height", "width")[3 - len(stride):]
            raise RuntimeError("output padding must be smaller than either stride or dilation, but got " + " ".join(
                f"{what}_{dim}: {v}" for what, vals in (("output_padding", output_padding), ("stride", stride),
                                                        ("dilation", dilation)) for dim, v in zip(names, vals)))
    args = (x, w) if bias is None else (x, w, bias)
    y = ConvTransposeNd.apply(*args, stride=stride, padding=padding, output_padding=output_padding,
                              dilation=dilation, groups=groups)
    if nd == 1:
        y = _graph.renamed(y.squeeze(2), "ConvolutionBackward0")
    return y.squeeze(0) if unbatched else y


@autocast_op("conv_transpose3d")
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 3-D convolution (the gradient of conv3d with respect to its input); weight
    (Cin, Cout/G, kd, kh, kw)."""
    return _conv_t(input, weight, bias, stride, padding, output_padding, groups, dilation, 3, "conv_transpose3d")


@autocast_op("conv_transpose2d")
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 2-D convolution (the gradient of conv2d with respect to its input); weight (Cin, Cout/G, kh, kw)."""
    return _conv_t(input, weight, bias, stride, padding, output_padding, groups, dilation, 2, "conv_transpose2d")


@autocast_op("conv_transpose1d")
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 1-D convolution."""
    return _conv_t(input, weight, bias, stride, padding, output_padding, groups, dilation, 1, "conv_transpose1d")


class Unfold(Function):
    _grad_fn_name = "Im2ColBackward0"

    def forward(ctx, x, kernel_size=(1, 1), dilation=(1, 1), padding=(0, 0), stride=(1, 1)):
        xp = ctx.xp
        n, c, h, w = x.shape
        pads = (padding[0], padding[0], padding[1], padding[1])
        ho = (h + 2 * padding[0] - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1
        wo = (w + 2 * padding[1] - dilation[1] * (kernel_size[1] - 1) - 1) // stride[1] + 1
        xpad = _pad4(xp, x, pads, order=(1, 0))
        cols = _im2col(xp, xpad, kernel_size, stride, dilation, (ho, wo))
        ctx.geom = (x.shape, xpad.shape, kernel_size, stride, dilation, padding, (ho, wo))
        k = cols.shape[0]
        return xp.ascontiguousarray(cols.reshape(k, n, ho * wo).transpose(1, 0, 2))

    def backward(ctx, g):
        xp = ctx.xp
        x_shape, pad_shape, k, stride, dil, padding, out_hw = ctx.geom
        cols = xp.ascontiguousarray(g.transpose(1, 0, 2)).reshape(g.shape[1], -1)
        buf = _col2im(xp, cols, pad_shape, k, stride, dil, out_hw)
        h, w = x_shape[2:]
        return xp.ascontiguousarray(buf[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w]
                                    .transpose(1, 0, 2, 3))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of a (N, C, H, W) input as (N, C*kh*kw, L) columns (im2col)."""
    unbatched = input.ndim == 3
    x = input.unsqueeze(0) if unbatched else input
    if x.ndim != 4:
        raise RuntimeError(f"Input Error: Only 3D or 4D input Tensors are supported (got {input.ndim}D)")
    y = Unfold.apply(x, kernel_size=_pair(kernel_size), dilation=_pair(dilation), padding=_pair(padding),
                     stride=_pair(stride))
    return y.squeeze(0) if unbatched else y


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: sums (N, C*kh*kw, L) columns into a (N, C, H, W) output."""
    unbatched = input.ndim == 2
    cols = input.unsqueeze(0) if unbatched else input
    k, d, p, s = _pair(kernel_size), _pair(dilation), _pair(padding), _pair(stride)
    n, ck, _ = cols.shape
    osz = _pair(output_size)
    ho = (osz[0] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    wo = (osz[1] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    y = Fold.apply(cols.reshape(n, ck, ho, wo), out=osz, k=k, d=d, p=p, s=s)
    return y.squeeze(0) if unbatched else y


class Fold(Function):
    _grad_fn_name = "Col2ImBackward0"

    def forward(ctx, x, out=(1, 1), k=(1, 1), d=(1, 1), p=(0, 0), s=(1, 1)):
        xp = ctx.xp
        n, ck, ho, wo = x.shape
        c = ck // (k[0] * k[1])
        pad_shape = (c, n, out[0] + 2 * p[0], out[1] + 2 * p[1])
        cols = xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(ck, -1)
        buf = _col2im(xp, cols, pad_shape, k, s, d, (ho, wo))
        ctx.geom = (x.shape, k, d, p, s)
        return xp.ascontiguousarray(buf[:, :, p[0]:p[0] + out[0], p[1]:p[1] + out[1]].transpose(1, 0, 2, 3))

    def backward(ctx, g):
        xp = ctx.xp
        x_shape, k, d, p, s = ctx.geom
        n, ck, ho, wo = x_shape
        gpad = _pad4(xp, g, (p[0], p[0], p[1], p[1]), order=(1, 0))
        cols = _im2col(xp, gpad, k, s, d, (ho, wo))
        return xp.ascontiguousarray(cols.reshape(ck, n, ho, wo).transpose(1, 0, 2, 3))
