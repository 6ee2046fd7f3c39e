"""2-D max pooling straight over (N, C, H, W): the maxima and their flat (H*W) indices in one pass, and the
backward as one scatter of the gradient to those indices.

# NOTE: the NumPy path makes a padded channels-last copy of the input, takes the running maximum over
# kh*kw strided slices, and in backward finds each window's first maximum again (kh*kw compares and masks)
# before writing the gradient through masks: ~2.3 ms forward+backward for the cnn step's 128x64x8x8 input.
# Here each image plane is read once and the index is kept on the way, as torch's kernel does."""
import numpy as np
from numba import njit, prange

from ._jit import _kernel


@njit(inline="always")
def _take(v, best):
    # torch's rule: a value replaces the maximum when greater or NaN (ties keep the first, NaN the last)
    return (v > best) | (v != v)


@_kernel()
def _max_pool2d(x, y, idx, kh, kw, sh, sw, ph, pw, dh, dw, neg_inf):
    # x (planes, H, W), read flat per plane; y and idx (planes, oh, ow). A window inside the input runs
    # without bounds checks, a 2x2 one unrolled (numba's loops of two trips cost 3x the compares they run);
    # at the border, padding is skipped and the maximum starts at -inf on the window's first in-range position
    # (the start moved up by the dilation until inside, as torch's kernel does), which a window of padding
    # only (possible with dilation) keeps
    planes = x.shape[0]
    h, w = x.shape[1], x.shape[2]
    oh, ow = y.shape[1], y.shape[2]
    xf = x.reshape(planes, h * w)
    for q in prange(planes):
        for i in range(oh):
            hs = i * sh - ph
            for j in range(ow):
                ws = j * sw - pw
                if hs >= 0 and ws >= 0 and hs + (kh - 1) * dh < h and ws + (kw - 1) * dw < w:
                    base = hs * w + ws
                    if kh == 2 and kw == 2:
                        o1, o2 = base + dw, base + dh * w
                        o3 = o2 + dw
                        best, arg = xf[q, base], base
                        v = xf[q, o1]
                        t = _take(v, best)
                        best, arg = (v if t else best), (o1 if t else arg)
                        v = xf[q, o2]
                        t = _take(v, best)
                        best, arg = (v if t else best), (o2 if t else arg)
                        v = xf[q, o3]
                        t = _take(v, best)
                        best, arg = (v if t else best), (o3 if t else arg)
                    else:
                        best, arg = xf[q, base], base
                        for ki in range(kh):
                            r = base + ki * dh * w
                            for kj in range(kw):
                                o = r + kj * dw
                                v = xf[q, o]
                                t = _take(v, best)
                                best, arg = (v if t else best), (o if t else arg)
                else:
                    h0, w0 = hs, ws
                    while h0 < 0:
                        h0 += dh
                    while w0 < 0:
                        w0 += dw
                    best, arg = neg_inf, h0 * w + w0  # -inf in x's dtype: best keeps one type
                    for ki in range(kh):
                        yy = hs + ki * dh
                        if yy < 0 or yy >= h:
                            continue
                        for kj in range(kw):
                            xx = ws + kj * dw
                            if xx < 0 or xx >= w:
                                continue
                            v = xf[q, yy * w + xx]
                            t = _take(v, best)
                            best, arg = (v if t else best), (yy * w + xx if t else arg)
                y[q, i, j] = best
                idx[q, i, j] = arg


@_kernel()
def _max_pool2d_backward(g, idx, gx):
    # one thread per image plane: the windows that share an input element add into it in window order
    planes, m = g.shape
    for q in prange(planes):
        for r in range(gx.shape[1]):
            gx[q, r] = 0
        for r in range(m):
            gx[q, idx[q, r]] += g[q, r]


def max_pool2d(x, k, s, p, d, out):
    """Maxima (N, C, *out) of x (N, C, H, W) over windows of size k, stride s, padding p, dilation d, and the
    flat (H*W) index of each, int64."""
    n, c, h, w = x.shape
    xc = np.ascontiguousarray(x).reshape(n * c, h, w)
    y = np.empty((n * c,) + tuple(out), x.dtype)
    idx = np.empty((n * c,) + tuple(out), np.int64)
    if y.size:
        _max_pool2d(xc, y, idx, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1], x.dtype.type(-np.inf))
    return y.reshape((n, c) + tuple(out)), idx.reshape((n, c) + tuple(out))


def max_pool2d_backward(g, idx, x_shape):
    """The (N, C, H, W) gradient of max_pool2d: g (N, C, *out) summed into the places `idx` names."""
    n, c, h, w = x_shape
    gx = np.empty((n * c, h * w), g.dtype)
    if gx.size:
        _max_pool2d_backward(np.ascontiguousarray(g).reshape(n * c, -1), np.ascontiguousarray(idx).reshape(n * c, -1),
                             gx)
    return gx.reshape(x_shape)
