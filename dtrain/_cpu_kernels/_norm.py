"""Layer norm and RMS norm over the last dim, forward and backward."""
import math

import numpy as np
from numba import prange

from ._jit import _FM, _as, _chunks, _kernel, _rows


# ---- layer norm and RMS norm over the last dim --------------------------------------------------------------------
@_kernel(fastmath=_FM)
def _layer_norm(x, w, b, eps, y, mean, rstd):
    n, c = x.shape
    for i in prange(n):
        s = _as(0.0, x[i, 0])
        for j in range(c):
            s += x[i, j]
        m = s / _as(c, s)
        v = _as(0.0, s)
        for j in range(c):
            d = x[i, j] - m
            v += d * d
        r = 1.0 / math.sqrt(v / c + eps)
        mean[i], rstd[i] = m, r
        rr = _as(r, s)
        for j in range(c):
            y[i, j] = (x[i, j] - m) * rr * w[j] + b[j]


@_kernel(fastmath=_FM)
def _layer_norm_backward(g, x, mean, rstd, w, gx, gw, gb):
    # gx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)), gxhat = g w; gw and gb are summed per chunk of
    # rows (gw[k], gb[k]: one chunk per thread, no shared writes) and over the chunks by the caller
    n, c = x.shape
    k_n = gw.shape[0]
    per = (n + k_n - 1) // k_n
    for k in prange(k_n):
        for i in range(k * per, min(n, (k + 1) * per)):
            m, r = _as(mean[i], x[i, 0]), _as(rstd[i], x[i, 0])
            s1 = _as(0.0, m)
            s2 = _as(0.0, m)
            for j in range(c):
                h = (x[i, j] - m) * r
                gh = g[i, j] * w[j]
                s1 += gh
                s2 += gh * h
                gw[k, j] += g[i, j] * h
                gb[k, j] += g[i, j]
            s1 /= _as(c, m)
            s2 /= _as(c, m)
            for j in range(c):
                h = (x[i, j] - m) * r
                gx[i, j] = r * (g[i, j] * w[j] - s1 - h * s2)


def layer_norm(x, w, b, eps):
    """(y, mean, rstd) of a layer norm over the last dim; w, b of shape (C,) or None; mean and rstd are
    float64, one per row."""
    xr = _rows(x)
    n, c = xr.shape
    y = np.empty_like(xr)
    mean, rstd = np.empty(n), np.empty(n)
    if xr.size:
        _layer_norm(xr, np.ones(c, xr.dtype) if w is None else np.ascontiguousarray(w),
                    np.zeros(c, xr.dtype) if b is None else np.ascontiguousarray(b), float(eps), y, mean, rstd)
    return y.reshape(x.shape), mean, rstd


def layer_norm_backward(g, x, mean, rstd, w):
    """(gx, gw, gb) of layer_norm; gw and gb as if w and b were given (the caller drops what it does not need)."""
    gr, xr = _rows(g), _rows(x)
    n, c = xr.shape
    gx = np.empty_like(xr)
    k = _chunks(n)
    gw, gb = np.zeros((k, c)), np.zeros((k, c))
    if xr.size:
        _layer_norm_backward(gr, xr, mean, rstd, np.ones(c, xr.dtype) if w is None else np.ascontiguousarray(w),
                             gx, gw, gb)
    return gx.reshape(x.shape), gw.sum(0).astype(xr.dtype), gb.sum(0).astype(xr.dtype)


@_kernel(fastmath=_FM)
def _rms_norm(x, w, eps, y, rstd):
    n, c = x.shape
    for i in prange(n):
        s = 0.0
        for j in range(c):
            s += x[i, j] * x[i, j]
        r = 1.0 / math.sqrt(s / c + eps)
        rstd[i] = r
        for j in range(c):
            y[i, j] = x[i, j] * r * w[j]


@_kernel(fastmath=_FM)
def _rms_norm_backward(g, x, rstd, w, gx, gw):
    # y = x r w with r = (mean(x²) + eps)^-½: gx = r g w - x r³ mean(g w x); gw = sum over rows of g x r
    n, c = x.shape
    k_n = gw.shape[0]
    per = (n + k_n - 1) // k_n
    for k in prange(k_n):
        for i in range(k * per, min(n, (k + 1) * per)):
            r = rstd[i]
            s = 0.0
            for j in range(c):
                s += g[i, j] * w[j] * x[i, j]
                gw[k, j] += g[i, j] * x[i, j] * r
            s = s * r * r * r / c
            for j in range(c):
                gx[i, j] = r * g[i, j] * w[j] - x[i, j] * s


def rms_norm(x, w, eps):
    """(y, rstd) of an RMS norm over the last dim; w of shape (C,) or None; rstd is float64, one per row."""
    xr = _rows(x)
    n, c = xr.shape
    y = np.empty_like(xr)
    rstd = np.empty(n)
    if xr.size:
        _rms_norm(xr, np.ones(c, xr.dtype) if w is None else np.ascontiguousarray(w), float(eps), y, rstd)
    return y.reshape(x.shape), rstd


def rms_norm_backward(g, x, rstd, w):
    """(gx, gw) of rms_norm (gw as if w were given)."""
    gr, xr = _rows(g), _rows(x)
    n, c = xr.shape
    gx = np.empty_like(xr)
    gw = np.zeros((_chunks(n), c))
    if xr.size:
        _rms_norm_backward(gr, xr, rstd, np.ones(c, xr.dtype) if w is None else np.ascontiguousarray(w), gx, gw)
    return gx.reshape(x.shape), gw.sum(0).astype(xr.dtype)
