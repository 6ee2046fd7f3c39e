"""Fused CPU kernels for the chains torch fuses (GELU, layer/RMS norm, softmax, cross-entropy, embedding
backward), compiled by numba when the optional extra `dtrain[fast]` is installed.

    k = _cpu_kernels.get(x)          # the kernel module, or None: then the op keeps its NumPy path
    if k is not None:
        y, cdf = k.gelu(x)

`get` answers None (and nothing is compiled or imported) when numba is missing, when DTRAIN_NUMBA=0, or when an
array is not a float32/float64 NumPy array. The NumPy path beside each use stays the reference: it runs on
machines without numba and on every other dtype and device, and the tests run both.

# NOTE: numba is imported on the first `get` that can use it, never by `import dtrain` (importing numba costs
# ~0.3 s); each kernel compiles on its first call for a dtype and is cached on disk (cache=True), so a machine
# compiles it once (BENCHMARKS.md gives the cost)."""
import os

import numpy as np

ENABLED = os.environ.get("DTRAIN_NUMBA", "1") != "0"  # tests switch the fused path off through this flag
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_module = None  # the loaded kernel module once imported; False when numba could not be imported


def available():
    """Whether the numba kernels can run here (importing numba on the first call)."""
    global _module
    if not ENABLED:
        return False
    if _module is None:
        try:
            from . import _numba
        except ImportError:  # numba (or llvmlite) not installed: the NumPy paths do the work
            _module = False
        else:
            _module = _numba
    return _module is not False


def get(*arrays):
    """The kernel module when every array is a float32/float64 NumPy array of one dtype, else None."""
    if not ENABLED:
        return None
    dt = None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype not in _FLOATS or (dt is not None and a.dtype != dt):
            return None
        dt = a.dtype
    if not available():
        return None
    _module.use_threads()
    return _module
