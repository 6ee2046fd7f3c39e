"""y += alpha * x rounded once, as torch computes `add(..., alpha=)` on the CPU.

torch's CPU kernel for ``a.add(b, alpha=c)`` (and so ``sub``, ``add_``, and every optimizer's
``param.add_(update, alpha=-lr)``) is a fused multiply-add: ``a + c*b`` rounded once, with `c` first cast to
the tensor's dtype. Computing ``c*b`` and then the sum rounds twice, and differs from torch in the last bit
of a few percent of the elements. BLAS's axpy is that fused multiply-add (OpenBLAS's kernels use FMA
instructions), and it makes one pass over memory where the two-step form makes two.
"""
import ctypes
import glob
import os

import numpy as np


def _numpy_blas(libs=None):
    """{dtype: axpy(n, alpha, x_ptr, incx, y_ptr, incy)} from the BLAS NumPy itself loaded, or None.

    NumPy's Linux wheels bundle an ILP64 OpenBLAS in `numpy.libs` whose CBLAS symbols carry a ``64_`` suffix.
    Calling NumPy's library, not SciPy's own copy, matters: each OpenBLAS keeps a pool of threads that spin
    for a while after every threaded call, and two pools on the same cores slowed a one-process training
    step 5x. Other layouts (macOS and Windows wheels, conda's NumPy on a system BLAS, another OpenBLAS
    build) find nothing here, and SciPy's axpy is used instead (`_load`)."""
    if libs is None:
        libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_cblas_", "cblas_"):
            try:
                fns = {np.dtype(np.float32): (getattr(lib, prefix + "saxpy64_"), ctypes.c_float),
                       np.dtype(np.float64): (getattr(lib, prefix + "daxpy64_"), ctypes.c_double)}
            except AttributeError:
                continue
            for fn, real in fns.values():
                fn.restype = None
                fn.argtypes = [ctypes.c_int64, real, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                               ctypes.c_int64]
            table = {dt: fn for dt, (fn, _) in fns.items()}
            if _works(lambda dt, a, x, y: table[dt](x.size, a, x.ctypes.data, 1, y.ctypes.data, 1)):
                _load_extras(lib, prefix)
                return table
    return None


_SCAL = {}  # {dtype: scal(n, alpha, x_ptr, incx)} from NumPy's OpenBLAS, beside its axpy
_blas_threads = None  # the thread count NumPy's OpenBLAS runs with (None: unknown, taken as 1)


def _load_extras(lib, prefix):
    global _blas_threads
    try:
        fns = {np.dtype(np.float32): (getattr(lib, prefix + "sscal64_"), ctypes.c_float),
               np.dtype(np.float64): (getattr(lib, prefix + "dscal64_"), ctypes.c_double)}
        count = getattr(lib, "scipy_openblas_get_num_threads64_", None) or getattr(lib, "openblas_get_num_threads")
    except AttributeError:
        return
    for fn, real in fns.values():
        fn.restype = None
        fn.argtypes = [ctypes.c_int64, real, ctypes.c_void_p, ctypes.c_int64]
    for dt, (fn, _) in fns.items():
        x = np.arange(1, 6, dtype=dt)
        y = np.ones(7, dt)
        y[:5] = x
        fn(5, 0.5, y.ctypes.data, 1)
        if y.tolist() != [0.5, 1.0, 1.5, 2.0, 2.5, 1.0, 1.0]:
            return
    count.restype = ctypes.c_int
    count.argtypes = []
    _SCAL.update({dt: fn for dt, (fn, _) in fns.items()})
    _blas_threads = count()


def _scipy_blas():
    """SciPy's axpy, in pieces below OpenBLAS's threading threshold so that its thread pool never wakes."""
    from scipy.linalg import blas

    def piecewise(axpy):
        def run(n, alpha, x, y):
            for i in range(0, n, _PIECE):
                done = axpy(x[i:i + _PIECE], y[i:i + _PIECE], a=alpha)
                if not np.shares_memory(done, y):  # scipy wrote a copy: never for these arrays
                    y[i:i + _PIECE] = done
        return run
    return {np.dtype(np.float32): piecewise(blas.saxpy), np.dtype(np.float64): piecewise(blas.daxpy)}


def _works(call):
    """Whether `call(dtype, alpha, x, y)` computes y += alpha * x for both dtypes (a library whose symbols
    have other argument types, 32-bit integers say, fails this instead of corrupting memory later)."""
    for dt in (np.dtype(np.float32), np.dtype(np.float64)):
        x = np.arange(1, 6, dtype=dt)
        y = np.full(7, 1, dt)  # two guard elements that must stay untouched
        try:
            call(dt, 0.5, x, y[:5])
        except Exception:
            return False
        if y.tolist() != [1.5, 2.0, 2.5, 3.0, 3.5, 1.0, 1.0]:
            return False
    return True


def _load():
    """(NumPy's axpy table or None, the table in use): SciPy's where NumPy's is not found, and {} where neither
    works, so `fusable` is False everywhere and callers take their two-rounding path."""
    try:
        own = _numpy_blas()
    except Exception:  # a layout this code does not know: fall back, never fail the import
        own = None
    if own is not None:
        return own, own
    try:
        table = _scipy_blas()
    except ImportError:
        return None, {}
    return None, table if _works(lambda dt, a, x, y: table[dt](x.size, a, x, y)) else {}


_PIECE = 8192
_NUMPY_AXPY, _AXPY = _load()


def fusable(y, x):
    """Whether `axpy_(y, x, alpha)` applies: C-contiguous NumPy float32/float64 arrays of one dtype and shape."""
    return (type(y) is np.ndarray and type(x) is np.ndarray and y.dtype in _AXPY and x.dtype == y.dtype
            and x.shape == y.shape and y.flags.c_contiguous and x.flags.c_contiguous)


def blas_threads():
    """The threads NumPy's OpenBLAS shares a level-1 call out to (1 where that BLAS is not the one found)."""
    return _blas_threads or 1


def axpy_(y, x, alpha, whole=False):
    """y += alpha * x in place with one rounding; False (nothing done) where `fusable(y, x)` is not so.

    `whole`: one BLAS call, which NumPy's OpenBLAS shares out among its own threads; only for a caller that
    runs no other BLAS call at the same time (see `scal_`)."""
    if not fusable(y, x):
        return False
    if y.size:
        if _NUMPY_AXPY is not None and (whole or y.size <= _PIECE or not _blas_threads or _blas_threads == 1):
            # one call where BLAS has no threads to wake (pieces only cost calls: 65 K floats took 20 µs in
            # pieces against 10 µs whole); the same bits, since each element gets the same FMA either way
            _NUMPY_AXPY[y.dtype](y.size, float(alpha), x.ctypes.data, 1, y.ctypes.data, 1)
        elif _NUMPY_AXPY is not None:
            # in pieces below OpenBLAS's threading threshold (n <= 10000): the optimizers already split a
            # large update among the cores, and OpenBLAS's own threads woken from two of ours at once made a
            # block's axpy over 100x slower here
            fn, n, a, item = _NUMPY_AXPY[y.dtype], y.size, float(alpha), y.itemsize
            px, py = x.ctypes.data, y.ctypes.data
            for i in range(0, n, _PIECE):
                fn(min(_PIECE, n - i), a, px + i * item, 1, py + i * item, 1)
        else:
            _AXPY[y.dtype](y.size, float(alpha), x.reshape(-1), y.reshape(-1))
    return True


def scal_(y, alpha):
    """y *= alpha in place in one call of NumPy's OpenBLAS (the same bits as NumPy's multiply: one rounding),
    which shares a large array out among its own threads; False (nothing done) where it does not apply.

    Why BLAS for a multiply: after each matrix product OpenBLAS's worker threads spin for a while waiting for
    more work, holding the other cores; an update run on threads of dtrain's own then fights them for those
    cores (the mlp-wide SGD step took ~10 ms in the training loop against 3 ms alone), while a BLAS call
    hands its share to the spinning workers at once. From one thread at a time only: OpenBLAS's workers
    woken by two callers at once made a call over 100x slower."""
    if type(y) is not np.ndarray or not y.flags.c_contiguous or not 0 < abs(alpha) < float("inf"):
        return False  # (OpenBLAS's scal writes zeros for alpha 0, whatever y holds: NaN * 0 must stay NaN)
    fn = _SCAL.get(y.dtype)
    if fn is None:
        return False
    if y.size:
        fn(y.size, float(alpha), y.ctypes.data, 1)
    return True


def add_scaled(y, x, alpha):
    """A new array y + alpha * x as torch rounds it (see the module docstring), broadcasting as NumPy does."""
    if type(y) is np.ndarray and type(x) is np.ndarray and y.dtype in _AXPY and x.dtype == y.dtype:
        shape = np.broadcast_shapes(y.shape, x.shape)
        out = np.array(np.broadcast_to(y, shape), order="C")
        if axpy_(out, np.ascontiguousarray(np.broadcast_to(x, shape)), alpha):
            return out
    return y + x * alpha
