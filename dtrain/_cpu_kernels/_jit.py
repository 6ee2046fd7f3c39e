"""How dtrain's CPU kernels are compiled: numba set up for dtrain's threads, each kernel in a parallel and a serial
build (`_kernel`), and what the kernels share: a vectorizable exp, a row maximum, a fused multiply-add.

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

import numba
from numba import njit, types
from numba.extending import intrinsic, overload

# numba's workqueue threading layer, not the OpenMP one it prefers: GNU OpenMP aborts a forked child (a data-loader
# worker) that runs a parallel kernel after its parent did; workqueue is fork-safe, and the lock below gives it
# the thread safety it lacks. Set in numba's config, not in os.environ, which child processes would inherit;
# NUMBA_THREADING_LAYER, when set, still decides. The pool's size stays numba's (one thread per core): dtrain's
# count (set_num_threads, OMP_NUM_THREADS) is applied per call by use_threads, and with one thread (a rank under
# dtrain-run) the kernels take their serial builds and the pool is never started.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

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
        n = _threads()
        if work >= _PARALLEL_MIN and n > 1:
            if getattr(_local, "numba_threads", None) != n:  # numba keeps the count per calling thread
                numba.set_num_threads(n)  # (this starts numba's pool on its first call)
                _local.numba_threads = n
            with _lock:
                return self.parallel(*args)
        return self.serial(*args)


def _kernel(**opts):
    return lambda fn: _Kernel(fn, opts)


def use_threads():
    """Takes dtrain's thread count (set_num_threads, OMP_NUM_THREADS) for the kernels this thread calls next."""
    _local.threads = max(1, min(_parallel.threads(), numba.config.NUMBA_NUM_THREADS))


def _threads():
    return getattr(_local, "threads", 1)


def _rows(x):
    """x as a contiguous (rows, last dim) array (a copy only when x is not contiguous)."""
    x = np.ascontiguousarray(x)
    c = x.shape[-1] if x.ndim else 1
    return x.reshape(-1, c)


def _chunks(n):
    """How many row ranges the reductions over rows use: one per thread, fewer for few rows."""
    return max(1, min(_threads(), n))


# ---- row maximum and fused multiply-add ------------------------------------------------------------------------
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


@njit(inline="always")
def _exp_normalize(x, y, i, c, m):
    """y[i, :c] = exp(x[i, :c] - m) / their sum: the row's softmax given its maximum m (y may be x)."""
    t = _as(0.0, m)
    for j in range(c):
        e = _exp(x[i, j] - m)
        y[i, j] = e
        t += e
    w = _as(1.0, m) / t
    for j in range(c):
        y[i, j] *= w


@intrinsic
def _fma(typingctx, a, b, c):
    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, b, c), codegen
