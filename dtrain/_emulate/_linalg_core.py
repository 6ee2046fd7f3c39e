"""cupy._core._routines_linalg's compute-type state: which cuBLAS compute type CuPy uses per dtype.

CuPy 14 keeps one compute type for each of float16, float32 (and complex64) and float64, all "to be
decided" at start; its first product of a dtype decides it (get_compute_type: TF32 for float32 when the
CUPY_TF32 variable is set then, else the default) and it stays so until set_compute_type changes it. So a
program that changes CUPY_TF32 after its first float32 product changes nothing in CuPy. The stand-in keeps
the same state, and its matmul, dot and @ decide it on their first product as CuPy's do, so code that sets
the compute type can be tested against CuPy's behaviour; the products themselves stay NumPy's."""
import os
import warnings

import numpy as np

from . import _runtime as rt

COMPUTE_TYPE_TBD = 0
COMPUTE_TYPE_DEFAULT = 1
COMPUTE_TYPE_PEDANTIC = 2
COMPUTE_TYPE_FP16 = 3
COMPUTE_TYPE_FP32 = 4
COMPUTE_TYPE_FP64 = 5
COMPUTE_TYPE_BF16 = 6
COMPUTE_TYPE_TF32 = 7

_NAMES = {v: k for k, v in globals().items() if k.startswith("COMPUTE_TYPE_")}
compute_types = [COMPUTE_TYPE_TBD] * 3  # float16, float32 and complex64, float64 (process-wide, as CuPy's)


def to_compute_type_index(dtype):
    c = np.dtype(dtype).char
    if c == "e":
        return 0
    if c in "fF":
        return 1
    if c in "dD":
        return 2
    raise TypeError(f"dtype is not supported: {dtype}")


def get_compute_type(dtype):
    i = to_compute_type_index(dtype)
    if compute_types[i] == COMPUTE_TYPE_TBD:
        ct = COMPUTE_TYPE_DEFAULT
        if np.dtype(dtype).char in "fF" and int(os.getenv("CUPY_TF32", "0")) > 0:
            ct = COMPUTE_TYPE_TF32
        set_compute_type(dtype, ct)
    return compute_types[i]


def set_compute_type(dtype, compute_type):
    i = to_compute_type_index(dtype)
    if compute_type in (COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC, COMPUTE_TYPE_FP16,
                        COMPUTE_TYPE_FP32, COMPUTE_TYPE_FP64):
        compute_types[i] = compute_type
    elif compute_type in (COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32):
        if int(rt.Device(rt.current()).compute_capability) >= 80:
            compute_types[i] = compute_type
        else:
            warnings.warn("COMPUTE_TYPE_BF16 and COMPUTE_TYPE_TF32 are only available on GPUs with compute "
                          "capability 8.0 or higher. COMPUTE_TYPE_DEFAULT will be used instead.")
            compute_types[i] = COMPUTE_TYPE_DEFAULT
    else:
        raise ValueError(f"Unknown compute type: {compute_type}")


def compute_type_to_str(compute_type):
    return _NAMES.get(compute_type, f"unknown ({compute_type})")


def deciding(fn):
    """`fn` (a matmul or dot over host arrays) that first decides its floating result dtype's compute type,
    as CuPy's cuBLAS products do."""
    def run(*args, **kwargs):
        out = fn(*args, **kwargs)
        dt = getattr(out, "dtype", None)
        if dt is not None and dt.char in "efFdD":
            get_compute_type(dt)
        return out
    run.__name__ = getattr(fn, "__name__", "matmul")
    return run
