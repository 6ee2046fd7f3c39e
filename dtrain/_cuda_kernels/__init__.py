"""Fused CUDA kernels for the chains torch fuses (GELU, layer/RMS norm, softmax, log-softmax, cross-entropy, the
Adam/AdamW update): the CUDA twin of `dtrain._cpu_kernels`, with the same interface.

    k = _cuda_kernels.get(x)         # the kernel module, or None: then the op keeps its array-level path
    if k is not None:
        y, saved = k.gelu(x)

`get` answers the module when every array is a float32/float64 CuPy array of one dtype, and None otherwise or
when DTRAIN_CUDA_KERNELS=0. bfloat16 reaches the float32 kernels where an op computes it in float32 copies
(`_ops._lowp.widened`: GELU, softmax, cross-entropy); float16, which CuPy computes natively, keeps the
array-level path. Each kernel is a self-contained CUDA C source (`_source`) compiled by CuPy through NVRTC
on its first launch for a dtype; each has an array-level reference (`_reference`) registered under its name,
which is what the emulated devices (DTRAIN_EMULATE_CUDA) run and what a real GPU checks the kernel against
(DTRAIN_CUDA_KERNELS_CHECK=1: every launch also runs the reference on copies and compares).

# NOTE: nothing here imports CuPy, and the kernel module itself is imported on the first `get` that can use it:
# `import dtrain` and CPU-only programs never load it (`_backend.is_cupy_array` is False for everything until
# CuPy is loaded)."""
import os

from .. import _backend

ENABLED = os.environ.get("DTRAIN_CUDA_KERNELS", "1") != "0"  # tests switch the fused path off through this flag
_FLOATS = ("float32", "float64")
_module = None  # the kernel module once imported


def get(*arrays):
    """The kernel module when every array is a float32/float64 CuPy array of one dtype, else None."""
    if not ENABLED or not arrays:
        return None
    dt = None
    for a in arrays:
        if not _backend.is_cupy_array(a) or a.dtype.name not in _FLOATS or (dt is not None and a.dtype != dt):
            return None
        dt = a.dtype
    return _load()


def _load():
    global _module
    if _module is None:
        from . import _kernels
        _module = _kernels
    return _module
