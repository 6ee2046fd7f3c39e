"""A direct 2-D convolution for inputs of few channels (a network's first layer): forward, and backward for the
input, weight and bias, straight over (N, C, H, W) with no column matrix.

# NOTE: with C*kh*kw small (1 channel, 3x3: 9) the im2col path is all copying: the column matrix, a GEMM with
# an inner dimension of 9 that OpenBLAS runs far below its speed, and two layout changes of the (N, O, H, W)
# output and its gradient. Here each output pixel's O channels are one vector: for every kernel tap in range,
# acc[:] += x * w[tap, :] (forward), gw[tap, :] += x * g[:] (weight gradient), gx += w[tap, :] . g[:] (input
# gradient). Each image is handled by one thread, its output (or gradient) turned between (P, O) and (O, P) in
# a buffer of its own; the weight gradient is summed per thread and the partial sums added at the end."""
import numpy as np
from numba import prange

from ._jit import _FM, _chunks, _kernel


@_kernel(fastmath=_FM)
def _conv2d_direct(x, wt, bias, y, kh, kw, sh, sw, ph, pw, dh, dw):
    # x (N, C, H, W); wt (C*kh*kw, O) the weight with its taps first; y (N, O, oh, ow)
    n, c, h, w = x.shape
    o = wt.shape[1]
    oh, ow = y.shape[2], y.shape[3]
    for b in prange(n):
        acc = np.empty((oh * ow, o), y.dtype)
        for i in range(oh):
            for j in range(ow):
                r = i * ow + j
                a = acc[r]
                for q in range(o):
                    a[q] = bias[q]
                for ch in range(c):
                    for ki in range(kh):
                        yy = i * sh - ph + ki * dh
                        if yy < 0 or yy >= h:
                            continue
                        for kj in range(kw):
                            xx = j * sw - pw + kj * dw
                            if xx < 0 or xx >= w:
                                continue
                            v = x[b, ch, yy, xx]
                            wr = wt[(ch * kh + ki) * kw + kj]
                            for q in range(o):
                                a[q] += v * wr[q]
        for q in range(o):
            for i in range(oh):
                for j in range(ow):
                    y[b, q, i, j] = acc[i * ow + j, q]


@_kernel(fastmath=_FM)
def _conv2d_direct_backward(g, x, wt, gx, gwt, gb, kh, kw, sh, sw, ph, pw, dh, dw, n_chunks, need_x):
    # g (N, O, oh, ow); gwt (n_chunks, C*kh*kw, O) and gb (n_chunks, O): one partial sum per chunk of images;
    # gx (N, C, H, W), written when need_x
    n, c, h, w = x.shape
    o = wt.shape[1]
    oh, ow = g.shape[2], g.shape[3]
    per = (n + n_chunks - 1) // n_chunks
    for k in prange(n_chunks):
        gv = np.empty((oh * ow, o), g.dtype)
        for q in range(gwt.shape[1]):
            for p in range(o):
                gwt[k, q, p] = 0
        for p in range(o):
            gb[k, p] = 0
        for b in range(k * per, min(n, (k + 1) * per)):
            for q in range(o):
                for i in range(oh):
                    for j in range(ow):
                        gv[i * ow + j, q] = g[b, q, i, j]
            if need_x:
                for ch in range(c):
                    for yy in range(h):
                        for xx in range(w):
                            gx[b, ch, yy, xx] = 0
            for i in range(oh):
                for j in range(ow):
                    r = i * ow + j
                    gbr = gb[k]
                    for q in range(o):
                        gbr[q] += gv[r, q]
                    for ch in range(c):
                        for ki in range(kh):
                            yy = i * sh - ph + ki * dh
                            if yy < 0 or yy >= h:
                                continue
                            for kj in range(kw):
                                xx = j * sw - pw + kj * dw
                                if xx < 0 or xx >= w:
                                    continue
                                t = (ch * kh + ki) * kw + kj
                                v = x[b, ch, yy, xx]
                                gr, wr, gwr = gv[r], wt[t], gwt[k, t]
                                for q in range(o):
                                    gwr[q] += v * gr[q]
                                if need_x:
                                    s = gr[0] * wr[0]
                                    for q in range(1, o):
                                        s += gr[q] * wr[q]
                                    gx[b, ch, yy, xx] += s


def _taps_first(w):
    """The (O, C, kh, kw) weight as (C*kh*kw, O), contiguous: each tap's O values one vector."""
    return np.ascontiguousarray(w.reshape(w.shape[0], -1).T)


def conv2d_direct(x, w, b, stride, pads, dilation, out):
    """conv2d(x, w, b) of x (N, C, H, W) and w (O, C, kh, kw), one group; pads = (top, bottom, left, right)."""
    n = x.shape[0]
    o, _, kh, kw = w.shape
    y = np.empty((n, o) + tuple(out), x.dtype)
    if y.size:
        bias = b if b is not None else np.zeros(o, x.dtype)
        _conv2d_direct(np.ascontiguousarray(x), _taps_first(w), np.ascontiguousarray(bias), y, kh, kw, stride[0],
                       stride[1], pads[0], pads[2], dilation[0], dilation[1])
    return y


def conv2d_direct_backward(g, x, w, stride, pads, dilation, need_x):
    """(gx or None, gw, gb) of conv2d_direct for its output gradient g (N, O, oh, ow)."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    chunks = _chunks(n)
    gwt = np.empty((chunks, c * kh * kw, o), g.dtype)
    gb = np.empty((chunks, o), g.dtype)
    gx = np.empty(x.shape, g.dtype) if need_x else np.empty((0, 0, 0, 0), g.dtype)
    if g.size:
        _conv2d_direct_backward(np.ascontiguousarray(g), np.ascontiguousarray(x), _taps_first(w), gx, gwt, gb,
                                kh, kw, stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1], chunks,
                                need_x)
    else:
        gwt[...], gb[...] = 0, 0
        gx[...] = 0
    gw = np.ascontiguousarray(gwt.sum(0).T).reshape(w.shape)
    return (gx if need_x else None), gw, gb.sum(0)


# ---- the GEMM path's layout changes, with the bias folded in ------------------------------------------------------
@_kernel()
def _rows_to_planes(y2, bias, y, has_bias):
    # y[b, o, p] = y2[b*P + p, o] (+ bias[o]): the product's (N*P, O) rows turned into (N, O, P) planes
    n, o, p = y.shape
    for b in prange(n):
        for q in range(o):
            if has_bias:
                c = bias[q]
                for r in range(p):
                    y[b, q, r] = y2[b * p + r, q] + c
            else:  # no add of 0: -0.0 stays -0.0, as in torch
                for r in range(p):
                    y[b, q, r] = y2[b * p + r, q]


@_kernel()
def _planes_to_rows(g, g2, gb, n_chunks):
    # g2[b*P + p, o] = g[b, o, p], and gb[k, o] the sum of chunk k's images over their pixels
    n, o, p = g.shape
    per = (n + n_chunks - 1) // n_chunks
    for k in prange(n_chunks):
        for q in range(o):
            gb[k, q] = 0
        for b in range(k * per, min(n, (k + 1) * per)):
            for q in range(o):
                s = gb[k, q]
                for r in range(p):
                    v = g[b, q, r]
                    g2[b * p + r, q] = v
                    s += v
                gb[k, q] = s


def rows_to_planes(y2, b, shape):
    """The (N*P, O) product of the GEMM path as the (N, O, *spatial) output `shape`, plus the bias b (or None):
    one pass where NumPy makes two (the add, then the transposing copy)."""
    n, o = shape[:2]
    y = np.empty(shape, y2.dtype)
    if y.size:
        _rows_to_planes(np.ascontiguousarray(y2), np.ascontiguousarray(b) if b is not None else np.zeros(1, y2.dtype),
                        y.reshape(n, o, -1), b is not None)
    return y


def planes_to_rows(g):
    """The (N, O, *spatial) output gradient g as (N*P, O) rows, and its sum over N and P (the bias gradient)."""
    n, o = g.shape[:2]
    g3 = np.ascontiguousarray(g).reshape(n, o, -1)
    chunks = _chunks(n)
    g2 = np.empty((g3.shape[0] * g3.shape[2], o), g.dtype)
    gb = np.empty((chunks, o), g.dtype)
    if g.size:
        _planes_to_rows(g3, g2, gb, chunks)
    else:
        gb[...] = 0
    return g2, gb.sum(0)
