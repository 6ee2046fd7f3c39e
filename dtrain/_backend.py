"""Device → array module. The one place that knows about CuPy: it is imported lazily, here only."""
import os
import sys

import numpy as np

_cupy = None
_cupy_error = None
_cupy_ndarray = ()  # the array class of the CUDA module once loaded (isinstance of () is always False)


def _real_cupy():
    import cupy as cp
    if cp.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no CUDA device found")
    return cp


def _gpu_may_exist():
    """Cheap: whether real CuPy is installed and an NVIDIA driver node exists (else don't try to import it)."""
    import importlib.util
    import os
    return os.path.exists("/dev/nvidiactl") and importlib.util.find_spec("cupy") is not None


def _load_cupy():
    """The array module for CUDA: real CuPy, or with DTRAIN_EMULATE_CUDA=N and no real GPU, dtrain's emulated
    stand-in (a real GPU wins: the variable is then ignored, with a warning)."""
    from . import _emulate
    n = _emulate.device_count_from_env()
    if not n:
        return _real_cupy()
    if _gpu_may_exist():
        try:
            cp = _real_cupy()
        except Exception:  # no usable GPU after all: emulate
            pass
        else:
            import warnings
            warnings.warn(f"DTRAIN_EMULATE_CUDA={n} is ignored: CuPy sees {cp.cuda.runtime.getDeviceCount()} "
                          "real CUDA device(s)", RuntimeWarning, stacklevel=3)
            return cp
    return _emulate.install(n)


def cupy():
    """The cupy module, imported on first use; raises a RuntimeError naming why when CUDA is unusable."""
    global _cupy, _cupy_error, _cupy_ndarray
    if _cupy is None and _cupy_error is None:
        try:
            _cupy = _load_cupy()
            _cupy_ndarray = _cupy.ndarray
        except Exception as e:  # ImportError, CUDARuntimeError, ... : all mean "no CUDA here"
            _cupy_error = e
    if _cupy is None:
        raise RuntimeError(f"CUDA is not available: {_cupy_error}")
    return _cupy


def cuda_available():
    try:
        cupy()
        return True
    except RuntimeError:
        return False


def is_emulated():
    """Whether CUDA here is dtrain's emulated stand-in (DTRAIN_EMULATE_CUDA) rather than a real GPU."""
    from . import _emulate
    return _cupy is not None and _emulate.is_emulated()


class _CupyImport:
    """With DTRAIN_EMULATE_CUDA set, a script's own `import cupy` / `import cupyx` (even before dtrain's first
    CUDA call) gets the module dtrain uses: the stand-in, or real CuPy where a real GPU wins."""
    _busy = False

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if cls._busy or name.partition(".")[0] not in ("cupy", "cupyx"):
            return None
        cls._busy = True
        try:
            cupy()
        except RuntimeError:
            return None
        finally:
            cls._busy = False
        if name not in sys.modules:
            return None
        import importlib.util
        return importlib.util.spec_from_loader(name, cls)

    @staticmethod
    def create_module(spec):
        return sys.modules[spec.name]

    @staticmethod
    def exec_module(module):
        pass


if os.environ.get("DTRAIN_EMULATE_CUDA"):
    sys.meta_path.insert(0, _CupyImport)


def xp_of(array):
    """The array module that owns `array` (numpy or cupy)."""
    return np if isinstance(array, (np.ndarray, np.generic)) else cupy()


def is_cupy_array(array):
    return isinstance(array, _cupy_ndarray)


def to_numpy(array):
    return array.get() if is_cupy_array(array) else np.asarray(array)
