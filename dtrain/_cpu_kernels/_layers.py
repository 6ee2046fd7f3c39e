"""The embedding backward and the 2-D convolution's im2col and col2im."""
import numpy as np
from numba import prange

from ._jit import _chunks, _kernel


# ---- embedding backward -------------------------------------------------------------------------------------------
@_kernel()
def _embedding_backward(idx, g, gw, n_chunks):
    # each thread owns a band of columns and walks every index in order: no two threads write one element,
    # and each element's sum runs in index order, as np.add.at's does (the same bits, run to run)
    m, c = g.shape
    num = gw.shape[0]
    per = (c + n_chunks - 1) // n_chunks
    for k in prange(n_chunks):
        lo, hi = k * per, min(c, (k + 1) * per)
        for i in range(m):
            r = idx[i]
            if r < 0:
                r += num
            for j in range(lo, hi):
                gw[r, j] += g[i, j]


def embedding_backward(idx, g, num):
    """The (num, C) gradient of a row lookup weight[idx] whose output gradient is g (idx.shape + (C,))."""
    idx = np.ascontiguousarray(idx).reshape(-1)
    g2 = np.ascontiguousarray(g).reshape(idx.shape[0], -1)
    gw = np.zeros((num, g2.shape[1]), g2.dtype)
    if g2.size:
        _embedding_backward(idx.astype(np.int64, copy=False), g2, gw, _chunks(g2.shape[1]))
    return gw


# ---- 2-D convolution: im2col and col2im straight from and to (N, C, H, W) ---------------------------------------
@_kernel()
def _im2col2d(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    # col[(b, i, j), (ki, kj, ch)] = x[b, ch, i*sh - ph + ki*dh, j*sw - pw + kj*dw], 0 in the padding; each image
    # is first turned channels-last in a buffer of its own, so that the gather copies runs of C values
    n, c, h, w = x.shape
    for b in prange(n):
        xt = np.empty((h, w, c), x.dtype)
        for ch in range(c):
            for y in range(h):
                for xx in range(w):
                    xt[y, xx, ch] = x[b, ch, y, xx]
        for i in range(oh):
            for j in range(ow):
                r = (b * oh + i) * ow + j
                for ki in range(kh):
                    y = i * sh - ph + ki * dh
                    for kj in range(kw):
                        xx = j * sw - pw + kj * dw
                        base = (ki * kw + kj) * c
                        if 0 <= y < h and 0 <= xx < w:
                            for ch in range(c):
                                col[r, base + ch] = xt[y, xx, ch]
                        else:
                            for ch in range(c):
                                col[r, base + ch] = 0


@_kernel()
def _col2im2d(col, gx, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    # the adjoint of _im2col2d: each image's gradient is summed channels-last by one thread (no shared writes),
    # then written out as (C, H, W)
    n, c, h, w = gx.shape
    for b in prange(n):
        acc = np.zeros((h, w, c), gx.dtype)
        for i in range(oh):
            for j in range(ow):
                r = (b * oh + i) * ow + j
                for ki in range(kh):
                    y = i * sh - ph + ki * dh
                    if y < 0 or y >= h:
                        continue
                    for kj in range(kw):
                        xx = j * sw - pw + kj * dw
                        if xx < 0 or xx >= w:
                            continue
                        base = (ki * kw + kj) * c
                        for ch in range(c):
                            acc[y, xx, ch] += col[r, base + ch]
        for ch in range(c):
            for y in range(h):
                for xx in range(w):
                    gx[b, ch, y, xx] = acc[y, xx, ch]


def im2col2d(x, k, stride, pads, dilation, out, col):
    """Fills `col` (N*oh*ow, kh*kw*C), C-contiguous, with the columns of a 2-D convolution over x (N, C, H, W);
    pads = (top, bottom, left, right) (only top and left matter: the output size says where windows stop)."""
    x = np.ascontiguousarray(x)
    if col.size:
        _im2col2d(x, col, k[0], k[1], stride[0], stride[1], pads[0], pads[2], dilation[0], dilation[1], *out)
    return col


def col2im2d(col, x_shape, k, stride, pads, dilation, out):
    """The adjoint of im2col2d: the (N, C, H, W) sum of the columns' entries over the pixels they came from."""
    gx = (np.empty if col.size else np.zeros)(x_shape, col.dtype)  # every element is written when col is not empty
    if col.size:
        _col2im2d(np.ascontiguousarray(col), gx, k[0], k[1], stride[0], stride[1], pads[0], pads[2],
                  dilation[0], dilation[1], *out)
    return gx
