"""Scaled-dot-product attention, softmax(q k^T * scale + bias) @ v: the products in BLAS, everything between them
in one compiled pass each way.

# NOTE: chosen by measurement (64 slabs of 64x32, float32, one thread): q k^T as compiled loops took 590-850 µs
# (numba's own loops, however arranged, do not reach a BLAS micro-kernel) against 260 µs for NumPy's batched
# matmul, so the four products stay in BLAS; what NumPy spends between them (scale, mask, max, exp, sum,
# divide: five passes over the (N, L, S) scores forward, four backward) is one pass here, in place on the
# product's output."""
import numpy as np
from numba import prange

from ._jit import _FM, _as, _exp_normalize, _kernel, _rowmax


@_kernel(fastmath=_FM)
def _masked_softmax(s, scale, bias, causal, lq):
    # s (rows, S) = the scores q k^T of N slabs of lq rows each, replaced by softmax(s * scale + bias); bias
    # (Nb, lq, S) with Nb in {0, 1, N} (0: none); causal: keys after the query's own position are masked
    # (top-left aligned). A row with every key masked becomes zeros, as torch's attention gives.
    rows, ls = s.shape
    nb = bias.shape[0]
    for r in prange(rows):
        i = r % lq
        stop = min(i + 1, ls) if causal else ls
        for j in range(stop):
            s[r, j] *= scale
        if nb > 0:
            # (int64 both ways: prange's unsigned index divided by a signed int would be typed as a float)
            bb = np.int64(r) // np.int64(lq) if nb > 1 else np.int64(0)
            for j in range(stop):
                s[r, j] += bias[bb, i, j]
        for j in range(stop, ls):
            s[r, j] = 0
        m = _rowmax(s, r, stop)  # (stop >= 1: the caller passes no empty rows)
        if m == -np.inf:
            for j in range(stop):
                s[r, j] = 0
            continue
        _exp_normalize(s, s, r, stop, m)


@_kernel(fastmath=_FM)
def _masked_softmax_backward(dp, p, keep, scale):
    # dp (rows, S) = g v^T, replaced by the scores' gradient: with dp' = dp * keep (dropout's mask, when keep
    # is not empty), ds = p (dp' - sum(dp' p)) * scale; masked keys have p = 0 and get 0
    rows, ls = p.shape
    dropout = keep.shape[0] > 0
    for r in prange(rows):
        if dropout:
            for j in range(ls):
                dp[r, j] *= keep[r, j]
        t = _as(0.0, scale)
        for j in range(ls):
            t += dp[r, j] * p[r, j]
        for j in range(ls):
            dp[r, j] = p[r, j] * (dp[r, j] - t) * scale


_NONE = {}  # dtype -> an empty array standing for "no bias" / "no dropout" (one compiled signature per dtype)


def _empty(dt, ndim):
    a = _NONE.get((dt, ndim))
    if a is None:
        a = _NONE[dt, ndim] = np.empty((0,) * ndim, dt)
    return a


def masked_softmax(s, scale, bias, causal):
    """softmax(s * scale + bias) over the last dim of the scores s (N, L, S), in place (s must be a fresh
    C-contiguous array); bias None or (1 or N, L, S); causal masks the keys after each query."""
    dt = s.dtype
    n, lq, ls = s.shape
    _masked_softmax(s.reshape(n * lq, ls), dt.type(scale),
                    _empty(dt, 3) if bias is None else np.ascontiguousarray(bias, dt), bool(causal), lq)
    return s


def masked_softmax_backward(dp, p, keep, scale):
    """The gradient of masked_softmax's input s from dp = (its output's gradient), in place on dp (a fresh
    C-contiguous (N, L, S) array); keep None or dropout's scaled mask, applied to dp first."""
    dt = p.dtype
    ls = p.shape[-1]
    keep2 = _empty(dt, 2) if keep is None else np.ascontiguousarray(keep, dt).reshape(-1, ls)
    _masked_softmax_backward(dp.reshape(-1, ls), p.reshape(-1, ls), keep2, dt.type(scale))
    return dp
