"""Emulated CUDA: `DTRAIN_EMULATE_CUDA=N` gives dtrain N CUDA devices backed by host memory.

A strict stand-in for CuPy 14 (see README, "Emulated CUDA"): CuPy's names only, no implicit host conversion,
arrays that belong to a device with CuPy's cross-device error, a current device per thread, streams and
events tracked for ordering checks, per-device memory statistics, NCCL communicators over MPI, and CUDA
source kernels replaced by registered array-level references. `dtrain._backend.cupy()` returns it when the
variable is set and no real GPU is usable; it is also registered as `cupy`/`cupyx` in sys.modules, so user
scripts that import CuPy get it too. What it cannot show: speed, real NCCL behaviour, kernel bugs.
"""
import os
import sys

from . import _runtime
from ._kernels import get_reference, reference

__all__ = ["device_count_from_env", "get_reference", "install", "is_emulated", "reference", "strict_streams", "memory_stats",
           "reset_peak_memory_stats"]

_installed = None


def device_count_from_env():
    """N of DTRAIN_EMULATE_CUDA=N (0 when unset); a value that is not a positive integer is a ValueError."""
    v = os.environ.get("DTRAIN_EMULATE_CUDA", "").strip()
    if not v:
        return 0
    try:
        n = int(v)
    except ValueError:
        n = -1
    if n < 1:
        raise ValueError(f"DTRAIN_EMULATE_CUDA must be a number of devices >= 1, got {v!r}")
    return n


def is_emulated():
    """Whether the emulated backend is the one in use."""
    return _installed is not None


def install(n):
    """Builds the stand-in modules for `n` devices, registers them as cupy, cupyx, ... and returns `cupy`."""
    global _installed
    if _installed is not None:
        return _installed
    from . import _array, _modules, _nccl
    from ._modules import StrictModule
    import numpy as np
    import numpy.fft
    import numpy.linalg
    import numpy.lib.stride_tricks
    _runtime._count = n
    _runtime._StreamCheck.enabled = os.environ.get("DTRAIN_EMULATE_STRICT_STREAMS", "") not in ("", "0")

    runtime = StrictModule("cupy.cuda.runtime", {k: v for k, v in vars(_runtime.runtime).items()
                                                 if not k.startswith("_")})
    for k in list(runtime.__dict__["_emu_impl"]):
        v = runtime.__dict__["_emu_impl"][k]
        if isinstance(v, staticmethod):
            runtime.__dict__["_emu_impl"][k] = v.__func__
    memory = StrictModule("cupy.cuda.memory", {
        "MemoryPool": _runtime.MemoryPool, "PinnedMemoryPool": _runtime.PinnedMemoryPool,
        "OutOfMemoryError": _runtime.OutOfMemoryError, "MemoryPointer": _array.MemoryPointer})
    nccl = StrictModule("cupy.cuda.nccl", {k: v for k, v in vars(_nccl).items()
                                           if k.isupper() or k in ("available", "get_unique_id", "get_version",
                                                                   "get_build_version", "groupStart", "groupEnd",
                                                                   "NcclCommunicator", "NcclError")})
    cuda = StrictModule("cupy.cuda", {
        "runtime": runtime, "memory": memory, "nccl": nccl, "Device": _runtime.Device,
        "Stream": _runtime.Stream, "Event": _runtime.Event, "get_current_stream": _runtime.get_current_stream,
        "get_elapsed_time": _runtime.get_elapsed_time, "MemoryPool": _runtime.MemoryPool,
        "PinnedMemoryPool": _runtime.PinnedMemoryPool, "MemoryPointer": _array.MemoryPointer,
        "get_device_id": _runtime.current, "is_available": lambda: n > 0,
        "set_allocator": _runtime.set_allocator,
        "set_pinned_memory_allocator": _no_allocator("cupy.cuda.set_pinned_memory_allocator")})
    rng = _modules._RandomModule("cupy.random", {
        "RandomState": _modules.RandomState, "Generator": _modules.Generator, "default_rng": _modules._default_rng,
        "get_random_state": _modules.get_random_state, "seed": _modules._random_seed})
    fft = StrictModule("cupy.fft", fallbacks=(numpy.fft,))
    linalg = StrictModule("cupy.linalg", {"LinAlgError": np.linalg.LinAlgError}, fallbacks=(numpy.linalg,))
    stride_tricks = StrictModule("cupy.lib.stride_tricks", fallbacks=(numpy.lib.stride_tricks,))
    lib = StrictModule("cupy.lib", {"stride_tricks": stride_tricks})
    impl = _modules.cupy_impl()
    impl.update({"cuda": cuda, "random": rng, "fft": fft, "linalg": linalg, "lib": lib,
                 "__version__": "14.0.0+dtrain.emulated"})
    cupy = StrictModule("cupy", impl, fallbacks=(np,))

    import scipy.linalg
    import scipy.special
    special = StrictModule("cupyx.scipy.special", fallbacks=(scipy.special,))
    slinalg = StrictModule("cupyx.scipy.linalg", fallbacks=(scipy.linalg,))
    from . import _sparse
    ssparse = StrictModule("cupyx.scipy.sparse", _sparse.module_impl())
    cscipy = StrictModule("cupyx.scipy", {"special": special, "linalg": slinalg, "sparse": ssparse})
    cupyx_impl = _modules.cupyx_impl()
    cupyx_impl["scipy"] = cscipy
    cupyx = StrictModule("cupyx", cupyx_impl)

    # cupy._core._routines_linalg: only its compute-type switches (set_compute_type and friends), which
    # programs use to change TF32 after CuPy has started; the rest of cupy._core is CuPy's internals
    from . import _linalg_core
    routines = StrictModule("cupy._core._routines_linalg", {
        k: getattr(_linalg_core, k) for k in dir(_linalg_core)
        if k.startswith("COMPUTE_TYPE_") or k in ("get_compute_type", "set_compute_type", "to_compute_type_index",
                                                   "compute_type_to_str")})
    core = StrictModule("cupy._core")
    core.__dict__["_routines_linalg"] = routines  # a private name: set directly, as the import system would
    cupy.__dict__["_core"] = core
    mods = [cupy, cuda, runtime, memory, nccl, rng, fft, linalg, lib, stride_tricks, cupyx, cscipy, special,
            slinalg, ssparse, core, routines]
    for m in mods:
        m.__dict__["__path__"] = []  # a package, so `import cupy.cuda.nccl` finds its parts in sys.modules
        sys.modules[m.__name__] = m
    _array._install_methods(_modules.names()["classes"]["cupy.ndarray"])
    _installed = cupy
    return cupy


def _no_allocator(name):
    def refuse(allocator=None):
        raise NotImplementedError(f"{name} is not available on emulated CUDA devices (their memory is the "
                                  "host's)")
    return refuse


def strict_streams(enabled=True):
    """Turns stream-order checking on or off (DTRAIN_EMULATE_STRICT_STREAMS=1 starts with it on): with it on, an operation that reads an array produced on another
    stream raises RuntimeError unless the reading stream waited for an event recorded after it (or the host
    synchronised). Returns the previous setting."""
    prev = _runtime._StreamCheck.enabled
    _runtime._StreamCheck.enabled = bool(enabled)
    return prev


def memory_stats(device):
    """{'used', 'peak', 'cached'} bytes of emulated `device` (live arrays, their peak, freed but kept)."""
    return _runtime.memory_stats(device)


def reset_peak_memory_stats(device):
    _runtime.reset_peak(device)
