"""The numba kernels behind `dtrain._cpu_kernels` (imported only when numba is installed and enabled).

Each public function takes NumPy arrays of one float dtype (float32 or float64), makes them contiguous, and
returns new arrays; the op beside its NumPy path decides when to call it. Rows are the last dim (a (..., C)
array is n rows of C), shared out among the threads with prange.

Every kernel takes error_model="numpy": a division by zero gives inf or NaN as in NumPy and torch, where numba's
default raises ZeroDivisionError and, checking each division, keeps LLVM from vectorizing the loop (the Adam
step ran 10x slower with it).

Precision: sums along a row accumulate in the data's dtype, as torch's kernels do, but over the lanes of a
vector (`_FM` lets LLVM reassociate them, and contract a*b+c into an FMA), which keeps float32 rounding
errors near sqrt(C) ulp; sums over the rows (the weight gradients of the norms) accumulate in float64. Nothing
assumes finite values: NaN and inf propagate as in torch (a row of -inf gives a NaN softmax, as torch's does)."""
import math
import os
import threading
import types as _pytypes

import numpy as np

from .. import _parallel

# numba sizes its thread pool from NUMBA_NUM_THREADS when it loads: no more threads than dtrain may use
# (dtrain-run gives each rank one), read before the import below
os.environ.setdefault("NUMBA_NUM_THREADS", str(_parallel.threads()))
# numba's workqueue threading layer, not the OpenMP one it prefers: GNU OpenMP aborts a forked child (a data-loader
# worker) that runs a parallel kernel after its parent did; workqueue is fork-safe, and the lock below gives it
# the thread safety it lacks. NUMBA_THREADING_LAYER, when set, still decides.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
import numba  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import intrinsic, overload  # noqa: E402

_FM = {"reassoc", "contract"}


# ---- exp that vectorizes ----------------------------------------------------------------------------------------
# NOTE: numba calls libm's expf one element at a time (~2.5 ns each here); NumPy's exp is SIMD (~0.6 ns), and a
# softmax written over libm's exp lost to NumPy's. `_exp` on float32 is Cephes' expf (range reduction by ln 2, a
# degree-6 polynomial, 2^k built in the exponent bits), straight-line code that LLVM vectorizes: within 1 ulp of
# exp over the whole float32 range (checked against float64 on 2 M points), ~0.7 ns per element. float64 keeps
# libm's exp.
@intrinsic
def _f32_from_bits(typingctx, v):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))
    return types.float32(types.int32), codegen


@njit(inline="always")
def _expf(x):
    xc = min(max(x, np.float32(-104.0)), np.float32(89.0))  # e^-104 rounds to 0 and e^89 to inf in float32
    # k = round(x / ln 2) by the 1.5 * 2^23 trick (no call to floor, so the loop vectorizes)
    k = (xc * np.float32(1.44269504088896341) + np.float32(12582912.0)) - np.float32(12582912.0)
    r = xc - k * np.float32(0.693359375)  # ln 2 in two parts: r exact
    r = r - k * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    ki = np.int32(k)
    k1 = ki >> 1  # 2^k as 2^k1 * 2^k2: both normal floats over the whole range, subnormal results included
    k2 = ki - k1
    y = p * _f32_from_bits((k1 + np.int32(127)) << np.int32(23)) * _f32_from_bits((k2 + np.int32(127)) << np.int32(23))
    return x if x != x else y


def _exp(x):
    """exp in x's precision (compiled code only)."""


@overload(_exp, inline="always")
def _exp_impl(x):
    if x == types.float32:
        return lambda x: _expf(x)
    return lambda x: math.exp(x)


def _as(v, like):
    """v in the float type of `like` (compiled code only)."""


@overload(_as, inline="always")
def _as_impl(v, like):
    if like == types.float32:
        return lambda v, like: np.float32(v)
    return lambda v, like: np.float64(v)
# the workqueue threading layer aborts when two threads launch parallel kernels at once; a lock makes concurrent
# callers (data-loader or hook threads) wait their turn instead
_lock = threading.Lock()
_local = threading.local()


_PARALLEL_MIN = 1 << 15  # elements (of the largest array) below which a kernel runs its serial build


class _Kernel:
    """A compiled loop in two builds: over numba's threads (prange), and serial, for small work and for one
    thread (a rank under dtrain-run). Serial calls skip the thread pool's start-up (~20-50 µs a call on the
    workqueue layer: cross_entropy over 128x10 took 156 µs forward+backward in parallel, 100 serial) and need
    no lock."""

    def __init__(self, fn, opts):
        self.parallel = njit(parallel=True, cache=True, error_model="numpy", **opts)(fn)
        # a second function object of its own name: numba's on-disk cache keys entries by name and signature,
        # not by the parallel flag
        serial = _pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                       fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"
        self.serial = njit(cache=True, nogil=True, error_model="numpy", **opts)(serial)

    def __call__(self, *args):
        work = max(a.size for a in args if isinstance(a, np.ndarray))
        if work >= _PARALLEL_MIN and numba.get_num_threads() > 1:
            with _lock:
                return self.parallel(*args)
        return self.serial(*args)


def _kernel(**opts):
    return lambda fn: _Kernel(fn, opts)


def use_threads():
    """numba's thread count for this thread = dtrain's (set_num_threads, OMP_NUM_THREADS); numba keeps it
    per calling thread."""
    n = max(1, min(_parallel.threads(), numba.config.NUMBA_NUM_THREADS))
    if getattr(_local, "threads", None) != n:
        numba.set_num_threads(n)
        _local.threads = n


def _rows(x):
    """x as a contiguous (rows, last dim) array (a copy only when x is not contiguous)."""
    x = np.ascontiguousarray(x)
    c = x.shape[-1] if x.ndim else 1
    return x.reshape(-1, c)


def _chunks(n):
    """How many row ranges the reductions over rows use: one per thread, fewer for few rows."""
    return max(1, min(numba.get_num_threads(), n))


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


# ---- softmax and log_softmax over the last dim ------------------------------------------------------------------
@njit(inline="always")
def _rowmax(x, i, c):
    """max(x[i, :c]) with eight running maxima (so that the loop vectorizes: one running max is a serial
    chain); a NaN is skipped here and turns the row to NaN in the exp that follows, as in torch."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = x[i, 0]
    j = 0
    while j + 8 <= c:
        v0, v1, v2, v3 = x[i, j], x[i, j + 1], x[i, j + 2], x[i, j + 3]
        v4, v5, v6, v7 = x[i, j + 4], x[i, j + 5], x[i, j + 6], x[i, j + 7]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        m4 = v4 if v4 > m4 else m4
        m5 = v5 if v5 > m5 else m5
        m6 = v6 if v6 > m6 else m6
        m7 = v7 if v7 > m7 else m7
        j += 8
    while j < c:
        v = x[i, j]
        m0 = v if v > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@_kernel(fastmath=_FM)
def _softmax(x, y):
    n, c = x.shape
    for i in prange(n):
        m = _rowmax(x, i, c)
        s = _as(0.0, m)
        for j in range(c):
            e = _exp(x[i, j] - m)
            y[i, j] = e
            s += e
        r = _as(1.0, m) / s
        for j in range(c):
            y[i, j] *= r


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


@_kernel(fastmath=_FM)
def _log_softmax(x, z):
    n, c = x.shape
    for i in prange(n):
        m = _rowmax(x, i, c)
        s = _as(0.0, m)
        for j in range(c):
            s += _exp(x[i, j] - m)
        lse = m + _as(math.log(s), m)
        for j in range(c):
            z[i, j] = x[i, j] - lse


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
def _cross_entropy(x, t, w, has_w, ignore_index, ls, loss, lse, w_t):
    # per row: lse = logsumexp(x); loss = (1-ls) w_t (lse - x_t) + ls/C sum_k w_k (lse - x_k); 0 where ignored
    n, c = x.shape
    for i in prange(n):
        m = _rowmax(x, i, c)
        s = _as(0.0, m)
        for j in range(c):
            s += _exp(x[i, j] - m)
        li = m + math.log(s)  # float64 from here: one value per row
        lse[i] = li
        ti = t[i]
        if ti == ignore_index:
            loss[i] = 0.0
            w_t[i] = 0.0
            continue
        wi = w[ti] if has_w else 1.0
        w_t[i] = wi
        v = (1.0 - ls) * wi * (li - x[i, ti])
        if ls != 0.0:
            sm = 0.0
            for j in range(c):
                sm += (w[j] if has_w else 1.0) * (li - x[i, j])
            v += ls / c * sm
        loss[i] = v


@_kernel(fastmath=_FM)
def _cross_entropy_backward(x, t, lse, w, has_w, wsum, w_t, scale, ignore_index, ls, gx):
    # d loss_i / d x_ik = (1-ls) w_t (p_k - [k = t]) + ls/C (wsum p_k - w_k), times the row's scale; 0 if ignored
    n, c = x.shape
    for i in prange(n):
        wi = w_t[i]
        si = scale[i]
        if t[i] == ignore_index:
            for j in range(c):
                gx[i, j] = 0.0
            continue
        a = (1.0 - ls) * wi
        b = ls / c
        li = _as(lse[i], x[i, 0])
        for j in range(c):
            p = _exp(x[i, j] - li)
            v = a * p + b * (wsum * p - (w[j] if has_w else 1.0))
            gx[i, j] = si * v
        ti = t[i]
        gx[i, ti] = gx[i, ti] - si * a


def cross_entropy(x, t, w, ignore_index, label_smoothing):
    """Per-row losses (float64), the rows' logsumexp (float64) and the rows' target weights (0 where
    ignored) of logits x (N, C) against class indices t (N,)."""
    x = np.ascontiguousarray(x)
    n = x.shape[0]
    loss, lse, w_t = np.empty(n), np.empty(n), np.empty(n)
    if n and x.shape[1]:
        has_w = w is not None
        wv = np.ascontiguousarray(w, dtype=np.float64) if has_w else np.ones(1)
        _cross_entropy(x, np.ascontiguousarray(t, dtype=np.int64), wv, has_w, int(ignore_index),
                       float(label_smoothing), loss, lse, w_t)
    return loss, lse, w_t


def cross_entropy_backward(x, t, lse, w, w_t, scale, ignore_index, label_smoothing):
    """The gradient of sum_i scale_i * loss_i with respect to x."""
    x = np.ascontiguousarray(x)
    gx = np.empty_like(x)
    if x.size:
        has_w = w is not None
        wv = np.ascontiguousarray(w, dtype=np.float64) if has_w else np.ones(1)
        wsum = float(wv.sum()) if has_w else float(x.shape[1])
        _cross_entropy_backward(x, np.ascontiguousarray(t, dtype=np.int64), lse, wv, has_w, wsum, w_t,
                                np.ascontiguousarray(scale, dtype=np.float64), int(ignore_index),
                                float(label_smoothing), gx)
    return gx


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


# ---- Adam / AdamW over a flat chunk --------------------------------------------------------------------------------
@intrinsic
def _fma(typingctx, a, b, c):
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, b, c), codegen


@njit(inline="always")
def _adam_moments(pi, g, mi, vi, maximize, decay, decoupled, wd, w1, neg_one_minus_w1, big_w1, beta2,
                  one_minus_beta2):
    # the NumPy path's operations one element at a time, each rounded as there (and as torch's CPU kernels):
    # the L2 decay grad + wd·p and the lerp are fused multiply-adds (torch's add with alpha and lerp), the rest
    # one rounding per operation, in torch's order
    if maximize:
        g = -g
    if decay and decoupled:
        pi = pi * wd
    elif decay:
        g = _fma(wd, pi, g)
    d = g - mi
    mi = _fma(neg_one_minus_w1, d, g) if big_w1 else _fma(w1, d, mi)
    vi = vi * beta2 + (g * one_minus_beta2) * g
    return pi, mi, vi


# serial and without the GIL: the optimizer already runs blocks of its flat buffers on every core
@njit(cache=True, nogil=True, error_model="numpy")
def _adam(p, grad, m, v, maximize, decay, decoupled, wd, w1, neg_one_minus_w1, big_w1, beta2, one_minus_beta2,
          bc2_sqrt, eps, neg_step_size):
    for i in range(p.size):
        pi, mi, vi = _adam_moments(p[i], grad[i], m[i], v[i], maximize, decay, decoupled, wd, w1, neg_one_minus_w1,
                                   big_w1, beta2, one_minus_beta2)
        m[i] = mi
        v[i] = vi
        p[i] = pi + (mi * neg_step_size) / (math.sqrt(vi) / bc2_sqrt + eps)


@njit(cache=True, nogil=True, error_model="numpy")
def _adam_amsgrad(p, grad, m, v, vmax, maximize, decay, decoupled, wd, w1, neg_one_minus_w1, big_w1, beta2,
                  one_minus_beta2, bc2_sqrt, eps, neg_step_size):
    for i in range(p.size):
        pi, mi, vi = _adam_moments(p[i], grad[i], m[i], v[i], maximize, decay, decoupled, wd, w1, neg_one_minus_w1,
                                   big_w1, beta2, one_minus_beta2)
        m[i] = mi
        v[i] = vi
        vi = vi if vi > vmax[i] or vi != vi else vmax[i]  # np.maximum: a NaN on either side wins
        vmax[i] = vi
        p[i] = pi + (mi * neg_step_size) / (math.sqrt(vi) / bc2_sqrt + eps)


def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step, amsgrad, beta1, beta2, lr, weight_decay,
         eps, maximize, decoupled_weight_decay):
    """One Adam/AdamW step in place over C-contiguous arrays of one shape (see dtrain.optim._functional.adam)."""
    t = param.dtype.type
    decay = weight_decay != 0
    w1 = 1 - beta1
    big_w1 = not abs(w1) < 0.5  # torch's lerp: end - (1 - w)(end - self) from w = 0.5 on
    bc2_sqrt = (1 - beta2 ** step) ** 0.5
    neg_step_size = -(lr / (1 - beta1 ** step))
    flat = [a.reshape(-1) for a in (param, grad, exp_avg, exp_avg_sq)]
    rule = (bool(maximize), decay, bool(decoupled_weight_decay),
            t(1 - lr * weight_decay) if decoupled_weight_decay else t(weight_decay), t(w1), -(t(1) - t(w1)), big_w1,
            t(beta2), t(1 - beta2), t(bc2_sqrt), t(eps), t(neg_step_size))
    if amsgrad:
        _adam_amsgrad(*flat, max_exp_avg_sq.reshape(-1), *rule)
    else:
        _adam(*flat, *rule)


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
