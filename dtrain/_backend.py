"""Device → array module. The one place that knows about CuPy: it is imported lazily, here only."""
import numpy as np

_cupy = None
_cupy_error = None


def cupy():
    """The cupy module, imported on first use. Where CUDA is unusable it raises what torch's CPU build raises for
    any CUDA request (AssertionError: Torch not compiled with CUDA enabled), followed by why: the one place
    every CUDA tensor, `.cuda()`, `.to("cuda")` and torch.cuda call comes through."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy as cp
            if cp.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no CUDA device found")
            _cupy = cp
        except Exception as e:  # ImportError, CUDARuntimeError, ... : all mean "no CUDA here"
            _cupy_error = e
    if _cupy is None:
        raise AssertionError(f"Torch not compiled with CUDA enabled (dtrain: CUDA is not usable here, CuPy and a "
                             f"CUDA device are needed: {_cupy_error})")
    return _cupy


def cuda_available():
    try:
        cupy()
        return True
    except AssertionError:
        return False


def xp_of(array):
    """The array module that owns `array` (numpy or cupy)."""
    return np if isinstance(array, (np.ndarray, np.generic)) else cupy()


def is_cupy_array(array):
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def to_numpy(array):
    return array.get() if is_cupy_array(array) else np.asarray(array)
