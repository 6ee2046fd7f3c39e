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


_NUMPY_DEFAULT_ERRSTATE = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}


def numpy_errors_as_torch():
    """torch reports no floating-point exceptions: log(0) is -inf, 0/0 nan, exp(1000) and an overflowing cast
    inf, all without a word; NumPy warns for each ("divide by zero encountered in log", "overflow encountered in
    cast"), and turns them into errors under warnings.simplefilter("error"). Called once at `import dtrain`.

    The policy is NumPy's own process-wide switch, np.seterr(all="ignore"), because guarding each op costs too
    much: an np.errstate block takes 3.6 us, about half the time of a small op (a 16-element exp: 7.9 us), and
    the warnings come from hundreds of places (forward and backward formulas, casts, optimizers, printing).
    It is not done behind the user's back where they have a say: a process whose NumPy error state is no longer
    NumPy's default has chosen one and keeps it; DTRAIN_NUMPY_ERRSTATE=keep leaves NumPy alone; np.seterr after
    the import wins (dtrain's ops then warn or raise as asked). NumPy keeps the state per thread (a context
    variable): a thread started later runs with NumPy's default. Returns whether it changed the state."""
    import os
    if os.environ.get("DTRAIN_NUMPY_ERRSTATE", "").lower() == "keep" or np.geterr() != _NUMPY_DEFAULT_ERRSTATE:
        return False
    np.seterr(all="ignore")
    return True


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
