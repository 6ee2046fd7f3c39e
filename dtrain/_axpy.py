"""y += alpha * x rounded once, as torch computes `add(..., alpha=)` on the CPU.

torch's CPU kernel for ``a.add(b, alpha=c)`` (and so ``sub``, ``add_``, and every optimizer's
``param.add_(update, alpha=-lr)``) is a fused multiply-add: ``a + c*b`` rounded once, with `c` first cast to
the tensor's dtype. Computing ``c*b`` and then the sum rounds twice, and differs from torch in the last bit
of a few percent of the elements. BLAS's axpy is that fused multiply-add (OpenBLAS's kernels use FMA
instructions), and it makes one pass over memory where the two-step form makes two.
"""
import numpy as np
from scipy.linalg import blas as _blas

_AXPY = {np.dtype(np.float32): _blas.saxpy, np.dtype(np.float64): _blas.daxpy}


def fusable(y, x):
    """Whether `axpy_(y, x, alpha)` applies: C-contiguous NumPy float32/float64 arrays of one dtype and shape."""
    return (type(y) is np.ndarray and type(x) is np.ndarray and y.dtype in _AXPY and x.dtype == y.dtype
            and x.shape == y.shape and y.flags.c_contiguous and x.flags.c_contiguous)


def axpy_(y, x, alpha):
    """y += alpha * x in place with one rounding; False (nothing done) where `fusable(y, x)` is not so."""
    if not fusable(y, x):
        return False
    if y.size:
        flat = y.reshape(-1)
        done = _AXPY[y.dtype](x.reshape(-1), flat, a=alpha)
        if done is not flat and not np.shares_memory(done, flat):  # scipy wrote a copy: never for these arrays
            flat[...] = done
    return True


def add_scaled(y, x, alpha):
    """A new array y + alpha * x as torch rounds it (see the module docstring), broadcasting as NumPy does."""
    if type(y) is np.ndarray and type(x) is np.ndarray and y.dtype in _AXPY and x.dtype == y.dtype:
        shape = np.broadcast_shapes(y.shape, x.shape)
        out = np.array(np.broadcast_to(y, shape), order="C")
        if axpy_(out, np.ascontiguousarray(np.broadcast_to(x, shape)), alpha):
            return out
    return y + x * alpha
