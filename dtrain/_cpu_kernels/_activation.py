"""GELU (exact and tanh), the backward of tanh, sigmoid and relu, softmax and log_softmax over the last dim, and
cross-entropy with class indices."""
import math

import numpy as np
from numba import njit, prange

from ._jit import _FM, _as, _exp, _exp_normalize, _kernel, _rowmax, _rows


# ---- GELU ----------------------------------------------------------------------------------------------------
# exact GELU on float32: erf(z) for |z| <= 4 as z * P(z^2) / Q(z^2) in double precision (Eigen's minimax fit for
# float, within 1.6 ulp once rounded: see dtrain._ops.pointwise); float64 takes libm's erf
_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
      -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
      -1.42647390514189e-02)
_SQRT1_2 = math.sqrt(0.5)
_1_OVER_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


@_kernel()
def _gelu_f32(x, y, cdf):
    for i in prange(x.size):
        z = min(max(np.float64(x[i]) * _SQRT1_2, -4.0), 4.0)
        z2 = z * z
        num = ((((((_P[0] * z2 + _P[1]) * z2 + _P[2]) * z2 + _P[3]) * z2 + _P[4]) * z2 + _P[5]) * z2 + _P[6]) * z
        den = (((_Q[0] * z2 + _Q[1]) * z2 + _Q[2]) * z2 + _Q[3]) * z2 + _Q[4]
        c = np.float32(min(max(0.5 * (num / den + 1.0), 0.0), 1.0))  # the fit overshoots by ~1e-7 near |z| = 4
        cdf[i] = c
        y[i] = x[i] * c


@_kernel()
def _gelu_f64(x, y, cdf):
    for i in prange(x.size):
        c = 0.5 * (1.0 + math.erf(x[i] * _SQRT1_2))
        cdf[i] = c
        y[i] = x[i] * c


@_kernel()
def _gelu_backward(g, x, cdf, gx, half, beta):
    # GELU' = Φ(x) + x φ(x), φ(x) = exp(-x²/2) / √(2π); half and beta come typed as x's dtype
    for i in prange(x.size):
        xi = x[i]
        gx[i] = g[i] * (cdf[i] + xi * (_exp(-half * xi * xi) * beta))


def gelu(x):
    """(GELU(x), Φ(x)): the normal CDF is kept for the backward, which then needs no erf."""
    xf = np.ascontiguousarray(x).reshape(-1)
    y, cdf = np.empty_like(xf), np.empty_like(xf)
    (_gelu_f32 if xf.dtype == np.float32 else _gelu_f64)(xf, y, cdf)
    return y.reshape(x.shape), cdf.reshape(x.shape)


def gelu_backward(g, x, cdf):
    gf, xf, cf = (np.ascontiguousarray(a).reshape(-1) for a in (g, x, cdf))
    gx = np.empty_like(xf)
    t = xf.dtype.type
    _gelu_backward(gf, xf, cf, gx, t(0.5), t(_1_OVER_SQRT_2PI))
    return gx.reshape(x.shape)


@_kernel()
def _gelu_tanh(x, y, t, k, a, half, one):
    # inner = k (x + a x³), the cube as x·x·x as in torch; y = ½ x (1 + tanh(inner)) = x s with the logistic
    # s = 1 / (1 + exp(-2 inner)): the vectorized exp instead of libm's tanh (7x slower per element than NumPy's);
    # t = 2s - 1 is kept for the backward, exact to an ulp of 1, which is all the backward's 1 ± t needs
    for i in prange(x.size):
        xi = x[i]
        u = k * (xi + a * (xi * xi * xi))
        s = one / (one + _exp(-(u + u)))
        t[i] = s + s - one
        y[i] = xi * s


@_kernel()
def _gelu_tanh_backward(g, x, t, gx, k, a3, half, one):
    # d/dx = ½ (1 + t) + ½ x (1 - t²) k (1 + 3a x²)
    for i in prange(x.size):
        xi, ti = x[i], t[i]
        gx[i] = g[i] * (half * (one + ti) + half * xi * (one - ti * ti) * k * (one + a3 * xi * xi))


def gelu_tanh(x):
    """(tanh-GELU(x), the tanh term), the tanh kept for the backward."""
    xf = np.ascontiguousarray(x).reshape(-1)
    y, t = np.empty_like(xf), np.empty_like(xf)
    c = xf.dtype.type
    _gelu_tanh(xf, y, t, c(_SQRT_2_OVER_PI), c(0.044715), c(0.5), c(1))
    return y.reshape(x.shape), t.reshape(x.shape)


def gelu_tanh_backward(g, x, t):
    gf, xf, tf = (np.ascontiguousarray(a).reshape(-1) for a in (g, x, t))
    gx = np.empty_like(xf)
    c = xf.dtype.type
    _gelu_tanh_backward(gf, xf, tf, gx, c(_SQRT_2_OVER_PI), c(3 * 0.044715), c(0.5), c(1))
    return gx.reshape(x.shape)


# ---- tanh, sigmoid, relu backward: one pass where NumPy makes two or three, each rounded as there -------------------
@_kernel()
def _tanh_backward(g, y, gx, one):
    for i in prange(g.size):
        gx[i] = g[i] * (one - y[i] * y[i])


@_kernel()
def _sigmoid_backward(g, y, gx, one):
    for i in prange(g.size):
        gx[i] = g[i] * y[i] * (one - y[i])


@_kernel()
def _relu_backward(g, y, gx, zero):
    # torch's threshold_backward: 0 where the output is <= 0 (a NaN gradient too), else the gradient (a NaN
    # output's too)
    for i in prange(g.size):
        gx[i] = zero if y[i] <= zero else g[i]


def _pointwise_backward(kernel, g, y, c):
    gf, yf = np.ascontiguousarray(g).reshape(-1), np.ascontiguousarray(y).reshape(-1)
    gx = np.empty_like(yf)
    kernel(gf, yf, gx, yf.dtype.type(c))
    return gx.reshape(np.shape(y))


def tanh_backward(g, y):
    return _pointwise_backward(_tanh_backward, g, y, 1)


def sigmoid_backward(g, y):
    return _pointwise_backward(_sigmoid_backward, g, y, 1)


def relu_backward(g, y):
    return _pointwise_backward(_relu_backward, g, y, 0)


# ---- softmax and log_softmax over the last dim ------------------------------------------------------------------
@_kernel(fastmath=_FM)
def _softmax(x, y):
    n, c = x.shape
    for i in prange(n):
        _exp_normalize(x, y, i, c, _rowmax(x, i, c))


@_kernel(fastmath=_FM)
def _softmax_backward(g, y, gx):
    # gx = y * (g - sum(g * y))
    n, c = y.shape
    for i in prange(n):
        s = _as(0.0, y[i, 0])
        for j in range(c):
            s += g[i, j] * y[i, j]
        for j in range(c):
            gx[i, j] = y[i, j] * (g[i, j] - s)


@njit(inline="always")
def _log_softmax_row(x, z, i, c):
    """z[i] = log_softmax(x[i]) over its c values (max subtracted first)."""
    m = _rowmax(x, i, c)
    s = _as(0.0, m)
    for j in range(c):
        s += _exp(x[i, j] - m)
    lse = m + _as(math.log(s), m)
    for j in range(c):
        z[i, j] = x[i, j] - lse


@_kernel(fastmath=_FM)
def _log_softmax(x, z):
    n, c = x.shape
    for i in prange(n):
        _log_softmax_row(x, z, i, c)


@_kernel(fastmath=_FM)
def _log_softmax_backward(g, z, gx):
    # gx = g - exp(z) * sum(g)
    n, c = z.shape
    for i in prange(n):
        s = _as(0.0, z[i, 0])
        for j in range(c):
            s += g[i, j]
        for j in range(c):
            gx[i, j] = g[i, j] - _exp(z[i, j]) * s


def _rowwise(kernel, *arrays):
    """kernel(*rows of arrays, out) over the last dim; the result has the first array's shape."""
    rows = [_rows(a) for a in arrays]
    out = np.empty_like(rows[0])
    if out.size:
        kernel(*rows, out)
    return out.reshape(np.shape(arrays[0]))


def softmax(x):
    return _rowwise(_softmax, x)


def softmax_backward(g, y):
    return _rowwise(_softmax_backward, g, y)


def log_softmax(x):
    return _rowwise(_log_softmax, x)


def log_softmax_backward(g, z):
    return _rowwise(_log_softmax_backward, g, z)


# ---- cross-entropy with class indices (log_softmax + nll in one pass) -----------------------------------------
@_kernel(fastmath=_FM)
def _cross_entropy(x, t, w, has_w, ignore_index, ls, loss, w_t, z):
    # per row: z = log_softmax(x) (kept for the backward, as torch keeps it); loss = -(1-ls) w_t z_t -
    # ls/C sum_k w_k z_k, 0 where ignored
    n, c = x.shape
    for i in prange(n):
        _log_softmax_row(x, z, i, c)
        ti = t[i]
        if ti == ignore_index:
            loss[i] = 0.0
            w_t[i] = 0.0
            continue
        wi = w[ti] if has_w else 1.0
        w_t[i] = wi
        v = -(1.0 - ls) * wi * z[i, ti]
        if ls != 0.0:
            sm = 0.0
            for j in range(c):
                sm += (w[j] if has_w else 1.0) * z[i, j]
            v -= ls / c * sm
        loss[i] = v


@_kernel(fastmath=_FM)
def _cross_entropy_backward(z, t, w, has_w, wsum, w_t, scale, ignore_index, ls, gx):
    # d loss_i / d x_ik = (1-ls) w_t (p_k - [k = t]) + ls/C (wsum p_k - w_k), p = exp(z), times the row's scale;
    # 0 where ignored
    n, c = z.shape
    for i in prange(n):
        wi = w_t[i]
        si = scale[i]
        if t[i] == ignore_index:
            for j in range(c):
                gx[i, j] = 0.0
            continue
        a = (1.0 - ls) * wi
        b = ls / c
        for j in range(c):
            p = _exp(z[i, j])
            v = a * p + b * (wsum * p - (w[j] if has_w else 1.0))
            gx[i, j] = si * v
        ti = t[i]
        gx[i, ti] = gx[i, ti] - si * a


def cross_entropy(x, t, w, ignore_index, label_smoothing):
    """(per-row losses (float64), the rows' target weights (float64, 0 where ignored), log_softmax(x)) of logits
    x (N, C) against class indices t (N,)."""
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    loss, w_t, z = np.empty(n), np.empty(n), np.empty_like(x)
    if n and x.shape[1]:
        has_w = w is not None
        wv = np.ascontiguousarray(w, dtype=np.float64) if has_w else np.ones(1)
        _cross_entropy(x, np.ascontiguousarray(t, dtype=np.int64), wv, has_w, int(ignore_index),
                       float(label_smoothing), loss, w_t, z)
    return loss, w_t, z


def cross_entropy_backward(z, t, w, w_t, scale, ignore_index, label_smoothing):
    """The gradient of sum_i scale_i * loss_i with respect to the logits, from their log_softmax z."""
    gx = np.empty_like(z)
    if z.size:
        has_w = w is not None
        wv = np.ascontiguousarray(w, dtype=np.float64) if has_w else np.ones(1)
        wsum = float(wv.sum()) if has_w else float(z.shape[1])
        _cross_entropy_backward(z, np.ascontiguousarray(t, dtype=np.int64), wv, has_w, wsum, w_t,
                                np.ascontiguousarray(scale, dtype=np.float64), int(ignore_index),
                                float(label_smoothing), gx)
    return gx
