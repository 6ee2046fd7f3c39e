"""Convolutions as im2col + one matmul per group, written once for NumPy and CuPy (CuPy 14 has no cuDNN).

Windows are gathered with `as_strided` into a column matrix, so each convolution is one large GEMM per group,
and col2im (the input gradient) is kh*kw strided adds: never a Python loop over the batch or output pixels."""
import weakref

import numpy as np

from ..._tensor import Tensor
from ...autograd.graph import Function

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "unfold", "fold"]


_free = {}  # nbytes -> spare host buffers for column matrices


def _workspace(xp, shape, dtype):
    """An uninitialised array for a column matrix that lives inside one op (saved for its backward only).

    # NOTE: on the CPU a fresh multi-megabyte array costs a page fault per 4 KiB on first touch, which made the
    # im2col copy 3x slower than the copy itself; buffers are recycled once the array that used them is freed.
    # CuPy has its own memory pool, so this is NumPy-only."""
    if xp is not np:
        return xp.empty(shape, dtype=dtype)
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
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


def _im2col(xp, xp_cn, k, stride, dil, out_hw):
    """Columns (C*kh*kw, N*Ho*Wo) from a padded input laid out as (C, N, Hp, Wp), C-contiguous."""
    c, n = xp_cn.shape[:2]
    s = xp_cn.strides
    v = _as_strided(xp, xp_cn, (c, k[0], k[1], n, out_hw[0], out_hw[1]),
                    (s[0], s[2] * dil[0], s[3] * dil[1], s[1], s[2] * stride[0], s[3] * stride[1]))
    return v.reshape(c * k[0] * k[1], n * out_hw[0] * out_hw[1])


def _col2im(xp, cols, cn_padded_shape, k, stride, dil, out_hw):
    """The adjoint of _im2col: sums columns back into a (C, N, Hp, Wp) buffer, one strided add per offset."""
    c, n = cn_padded_shape[:2]
    ho, wo = out_hw
    buf = xp.zeros(cn_padded_shape, dtype=cols.dtype)
    cols = cols.reshape(c, k[0], k[1], n, ho, wo)
    for i in range(k[0]):
        hs = i * dil[0]
        for j in range(k[1]):
            ws = j * dil[1]
            buf[:, :, hs:hs + stride[0] * (ho - 1) + 1:stride[0], ws:ws + stride[1] * (wo - 1) + 1:stride[1]] += \
                cols[:, i, j]
    return buf


def _grouped_mm(xp, a, b, groups, out=None):
    """Block-diagonal product: a (G*p, q) with b (G*q', r) split by rows; one matmul per group."""
    if groups == 1:
        return xp.matmul(a, b)
    pa, pb = a.shape[0] // groups, b.shape[0] // groups
    return xp.concatenate([xp.matmul(a[g * pa:(g + 1) * pa], b[g * pb:(g + 1) * pb]) for g in range(groups)])


class Conv2d(Function):
    """y = conv(x, w) + b over (N, C, H, W) arrays; pads = (top, bottom, left, right).

    The columns are gathered channels-last, (N*Ho*Wo, kh*kw*C): the gather copies contiguous channel runs, and
    all three products contract or expand along the tall N*Ho*Wo axis in the layouts OpenBLAS runs fastest
    (`cols @ W.T`, `g.T @ cols`, `g @ W`) — the textbook (C*kh*kw, N*Ho*Wo) layout makes the weight gradient
    an `A @ B.T` product over a long inner axis, 10-20x slower there."""

    def forward(ctx, x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
        xp = ctx.xp
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        ho = (h + pads[0] + pads[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        wo = (wd + pads[2] + pads[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        buf = xp.zeros((n, h + pads[0] + pads[1], wd + pads[2] + pads[3], c), dtype=x.dtype)
        buf[:, pads[0]:pads[0] + h, pads[2]:pads[2] + wd] = x.transpose(0, 2, 3, 1)
        s = buf.strides
        win = _as_strided(xp, buf, (n, ho, wo, kh, kw, c),
                          (s[0], s[1] * stride[0], s[2] * stride[1], s[1] * dilation[0], s[2] * dilation[1], s[3]))
        og, m = o // groups, n * ho * wo
        cols, w2s = [], []
        y2 = xp.empty((m, o), dtype=x.dtype) if groups > 1 else None
        for g in range(groups):
            col = _workspace(xp, (m, kh * kw * cg), x.dtype)  # the saved array itself owns the finalizer
            col.reshape(n, ho, wo, kh, kw, cg)[...] = win if groups == 1 else win[..., g * cg:(g + 1) * cg]
            cols.append(col)
            w2s.append(w[g * og:(g + 1) * og].transpose(0, 2, 3, 1).reshape(og, kh * kw * cg))
            if groups == 1:
                y2 = xp.matmul(cols[0], w2s[0].T)
            else:
                y2[:, g * og:(g + 1) * og] = xp.matmul(cols[g], w2s[g].T)
        if b is not None:
            y2 += b
        ctx.save_for_backward(*cols)
        ctx.w2s = w2s
        ctx.geom = (x.shape, buf.shape, w.shape, stride, pads, dilation, groups, (ho, wo))
        return xp.ascontiguousarray(y2.reshape(n, ho * wo, o).transpose(0, 2, 1)).reshape(n, o, ho, wo)

    def backward(ctx, gy):
        cols = ctx.saved
        xp = ctx.xp
        x_shape, buf_shape, w_shape, stride, pads, dilation, groups, (ho, wo) = ctx.geom
        o, cg, kh, kw = w_shape
        n, c, h, wd = x_shape
        og = o // groups
        g2 = xp.ascontiguousarray(gy.transpose(0, 2, 3, 1)).reshape(-1, o)  # (N*Ho*Wo, O)
        nig = ctx.needs_input_grad
        gx = gw = gb = None
        if nig[1]:
            gw = xp.concatenate([xp.matmul(g2[:, g * og:(g + 1) * og].T, cols[g]) for g in range(groups)]) \
                if groups > 1 else xp.matmul(g2.T, cols[0])
            gw = xp.ascontiguousarray(gw.reshape(o, kh, kw, cg).transpose(0, 3, 1, 2))
        if nig[0]:
            # col2im one kernel offset at a time: a (N*Ho*Wo, C) product per offset, added into its strided window.
            # With stride 1 along W the window is a contiguous run of Wo*C values per row, so the add is fast.
            buf = xp.zeros(buf_shape, dtype=gy.dtype)
            flat = stride[1] == 1 and groups == 1
            bufv = buf.reshape(n, buf_shape[1], -1) if flat else buf
            for g in range(groups):
                gg = g2[:, g * og:(g + 1) * og] if groups > 1 else g2
                w3 = ctx.w2s[g].reshape(og, kh * kw, cg).transpose(1, 0, 2)
                part = xp.empty((gg.shape[0], cg), dtype=gy.dtype)
                for i in range(kh):
                    hs = i * dilation[0]
                    rows = slice(hs, hs + stride[0] * (ho - 1) + 1, stride[0])
                    for j in range(kw):
                        ws = j * dilation[1]
                        xp.matmul(gg, w3[i * kw + j], out=part)
                        if flat:
                            bufv[:, rows, ws * c:(ws + wo) * c] += part.reshape(n, ho, wo * c)
                        else:
                            buf[:, rows, ws:ws + stride[1] * (wo - 1) + 1:stride[1], g * cg:(g + 1) * cg] += \
                                part.reshape(n, ho, wo, cg)
            gx = xp.ascontiguousarray(buf[:, pads[0]:pads[0] + h, pads[2]:pads[2] + wd].transpose(0, 3, 1, 2))
        if len(nig) > 2 and nig[2]:
            gb = g2.sum(0)
        return gx, gw, gb


class ConvTranspose2d(Function):
    """The adjoint of Conv2d with respect to its input: x (N, Cin, H, W), w (Cin, Cout/G, kh, kw)."""

    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1),
                groups=1):
        xp = ctx.xp
        n, cin, h, wd = x.shape
        _, cog, kh, kw = w.shape
        full = tuple((s - 1) * st + d * (k - 1) + 1 + op
                     for s, st, d, k, op in zip((h, wd), stride, dilation, (kh, kw), output_padding))
        out = (full[0] - 2 * padding[0], full[1] - 2 * padding[1])
        x2 = xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(cin, -1)  # (Cin, N*H*W)
        cig = cin // groups
        cols = _grouped_mm(xp, w.reshape(groups, cig, cog * kh * kw).transpose(0, 2, 1).reshape(-1, cig),
                           x2, groups)  # (Cout*kh*kw, NHW)
        buf = _col2im(xp, cols, (cog * groups, n) + full, (kh, kw), stride, dilation, (h, wd))
        y = buf[:, :, padding[0]:padding[0] + out[0], padding[1]:padding[1] + out[1]]
        if b is not None:
            y += b[:, None, None, None]
        ctx.save_for_backward(x2, w)
        ctx.geom = (x.shape, full, stride, padding, dilation, groups)
        return xp.ascontiguousarray(y.transpose(1, 0, 2, 3))

    def backward(ctx, gy):
        x2, w = ctx.saved
        xp = ctx.xp
        x_shape, full, stride, padding, dilation, groups = ctx.geom
        n, cin, h, wd = x_shape
        _, cog, kh, kw = w.shape
        cig = cin // groups
        nig = ctx.needs_input_grad
        gx = gw = gb = None
        oh, ow = gy.shape[2:]
        buf = xp.zeros((cog * groups, n) + full, dtype=gy.dtype)
        buf[:, :, padding[0]:padding[0] + oh, padding[1]:padding[1] + ow] = gy.transpose(1, 0, 2, 3)
        cols = _im2col(xp, buf, (kh, kw), stride, dilation, (h, wd))  # (Cout*K, NHW)
        r = cog * kh * kw
        if nig[0]:
            w3 = w.reshape(groups, cig, r)
            gx = xp.concatenate([xp.matmul(w3[g], cols[g * r:(g + 1) * r]) for g in range(groups)]) \
                if groups > 1 else xp.matmul(w3[0], cols)
            gx = xp.ascontiguousarray(gx.reshape(cin, n, h, wd).transpose(1, 0, 2, 3))
        if nig[1]:
            gw = xp.concatenate([xp.matmul(x2[g * cig:(g + 1) * cig], cols[g * r:(g + 1) * r].T)
                                 for g in range(groups)]) if groups > 1 else xp.matmul(x2, cols.T)
            gw = gw.reshape(w.shape)
        if len(nig) > 2 and nig[2]:
            gb = gy.sum((0, 2, 3))
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
    """(top, bottom, left, right) from an int/tuple or 'same'/'valid' (torch puts an odd extra pad at the end)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        pads = []
        for kk, d in zip(k, dil):
            total = d * (kk - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    p = _pair(padding)
    return (p[0], p[0], p[1], p[1])


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
        stride, dilation = _pair(stride), _pair(dilation)
        pads = _conv_pads(padding, weight.shape[2:], dilation, stride)
    for s, size in enumerate(x.shape[2:]):
        k_eff = dilation[s] * (w.shape[2 + s] - 1) + 1
        if size + pads[2 * s] + pads[2 * s + 1] < k_eff:
            pin = [size + pads[2 * s] + pads[2 * s + 1] for s, size in enumerate(x.shape[2:])][2 - nd:]
            raise RuntimeError(f"Calculated padded input size per channel: ({' x '.join(map(str, pin))}). Kernel "
                               f"size: ({' x '.join(str(k) for k in weight.shape[2:])}). Kernel size can't be greater"
                               f" than actual input size")
    args = (x, w) if bias is None else (x, w, bias)
    y = Conv2d.apply(*args, stride=stride, pads=pads, dilation=dilation, groups=groups)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution over (N, C, H, W) or (C, H, W) input; padding may be an int, a pair, 'same' or 'valid'."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


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
        stride, padding, output_padding, dilation = _pair(stride), _pair(padding), _pair(output_padding), \
            _pair(dilation)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise RuntimeError(f"output padding must be smaller than either stride or dilation, but got "
                               f"output_padding_height: {output_padding[0]} output_padding_width: "
                               f"{output_padding[1]} stride_height: {stride[0]} stride_width: {stride[1]} "
                               f"dilation_height: {dilation[0]} dilation_width: {dilation[1]}")
    args = (x, w) if bias is None else (x, w, bias)
    y = ConvTranspose2d.apply(*args, stride=stride, padding=padding, output_padding=output_padding,
                              dilation=dilation, groups=groups)
    if nd == 1:
        y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 2-D convolution (the gradient of conv2d with respect to its input); weight (Cin, Cout/G, kh, kw)."""
    return _conv_t(input, weight, bias, stride, padding, output_padding, groups, dilation, 2, "conv_transpose2d")


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 1-D convolution."""
    return _conv_t(input, weight, bias, stride, padding, output_padding, groups, dilation, 1, "conv_transpose1d")


class Unfold(Function):
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
