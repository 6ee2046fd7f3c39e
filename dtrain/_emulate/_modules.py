"""The module objects of the emulated backend (cupy, cupy.cuda, cupyx, ...): CuPy 14's names only.

A name is looked up in cupy14_names.json (generated from the real package by _gen_names.py): one CuPy does
not have is an AttributeError, as on any module; one it has is served by an implementation here, else by
NumPy's (or SciPy's) function of that name under the device rules of `_array.call`, else it raises
NotImplementedError naming itself when used.
"""
import functools
import json
import os
import sys
import types

import numpy as np

from . import _array, _runtime as rt
from ._array import ndarray, wrap, call

_NAMES = None


def names():
    global _NAMES
    if _NAMES is None:
        with open(os.path.join(os.path.dirname(__file__), "cupy14_names.json")) as f:
            _NAMES = json.load(f)
    return _NAMES


def _unavailable(qualname):
    def missing(*args, **kwargs):
        raise NotImplementedError(f"{qualname} is not available on emulated CUDA devices")
    missing.__name__ = qualname.rpartition(".")[2]
    missing.__qualname__ = qualname
    return missing


class StrictModule(types.ModuleType):
    """A module that answers only CuPy's names: `impl` first, then `fallback` modules (NumPy, SciPy) whose
    functions run under the device rules, then NotImplementedError for the rest of CuPy's names."""

    def __init__(self, name, impl=None, fallbacks=(), wrap_fallback=True):
        super().__init__(name, f"{name} of dtrain's emulated CUDA backend (CuPy 14's names, host memory).")
        self.__dict__["_emu_names"] = names()["modules"].get(name, {})
        self.__dict__["_emu_impl"] = impl or {}
        self.__dict__["_emu_fallbacks"] = fallbacks
        self.__dict__["_emu_wrap"] = wrap_fallback

    def __getattr__(self, attr):
        d = self.__dict__
        entry = d["_emu_names"].get(attr)
        if entry is None and isinstance(d["_emu_impl"].get(attr), StrictModule):
            entry = {"kind": "module"}  # a submodule CuPy has but does not import with its parent
        if entry is None:
            raise AttributeError(f"module '{self.__name__}' has no attribute '{attr}'")
        value = d["_emu_impl"].get(attr, _MISSING)
        if value is _MISSING:
            value = self._fallback(attr, entry)
        d[attr] = value  # cached: later lookups are plain attribute reads
        return value

    def _fallback(self, attr, entry):
        for mod in self.__dict__["_emu_fallbacks"]:
            obj = getattr(mod, attr, _MISSING)
            if obj is _MISSING:
                continue
            if entry["kind"] == "function" and callable(obj) and not isinstance(obj, type):
                return _device_function(obj, f"{self.__name__}.{attr}") if self.__dict__["_emu_wrap"] else obj
            if entry["kind"] in ("class", "constant") and not callable(obj) or isinstance(obj, type) and \
                    issubclass(obj, (np.generic, np.dtype)) or obj is np.dtype:
                return obj  # dtypes, scalar types and constants (pi, inf, newaxis) are NumPy's in CuPy too
        if entry["kind"] in ("function", "class"):
            return _unavailable(f"{self.__name__}.{attr}")
        raise NotImplementedError(f"{self.__name__}.{attr} is not available on emulated CUDA devices")

    def __dir__(self):
        return sorted(self.__dict__["_emu_names"])


_MISSING = object()


def _device_function(fn, qualname):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        return call(fn, args, kwargs)
    run.__qualname__ = qualname
    return run


def has_cupy_function(func):
    """Whether NumPy's `func` has a CuPy counterpart (for ndarray.__array_function__)."""
    mod = getattr(func, "__module__", "") or ""
    cupy_mod = {"numpy": "cupy", "numpy.linalg": "cupy.linalg", "numpy.fft": "cupy.fft"}.get(mod)
    return cupy_mod is not None and func.__name__ in names()["modules"].get(cupy_mod, {})


# ---------------------------------------------------------------- cupy: what NumPy cannot stand in for
def _host_data(x):
    """Host data for cupy.array from Python/NumPy data, taking device arrays of the current device in lists."""
    if x.__class__ is ndarray:
        return _array.unwrap(x, rt.current())
    if isinstance(x, (list, tuple)):
        return [_host_data(v) for v in x]
    if hasattr(x, "__cuda_array_interface__"):
        raise TypeError(f"Unsupported type {type(x)}: device memory of another library cannot be read by "
                        "dtrain's emulated CUDA backend")
    return x


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if obj.__class__ is ndarray:
        if copy is False and (dtype is None or np.dtype(dtype) == obj.dtype) and obj.ndim >= ndmin:
            return obj
        # CuPy copies an array of another device to the current one
        a = obj._a.astype(dtype if dtype is not None else obj.dtype, order=order, copy=True)
        return wrap(a if a.ndim >= ndmin else a.reshape((1,) * (ndmin - a.ndim) + a.shape))
    return wrap(np.array(_host_data(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asarray(a, dtype=None, order=None, *, blocking=False):
    if a.__class__ is ndarray and (dtype is None or np.dtype(dtype) == a.dtype) and order in (None, "K", "A"):
        return a
    return array(a, dtype=dtype, copy=False, order=order or "K")


def asanyarray(a, dtype=None, order=None, *, blocking=False):
    return asarray(a, dtype, order)


def ascontiguousarray(a, dtype=None):
    if a.__class__ is not ndarray:
        return array(a, dtype=dtype, order="C")
    return call(np.ascontiguousarray, (a,), {"dtype": dtype})


def asfortranarray(a, dtype=None):
    if a.__class__ is not ndarray:
        return array(a, dtype=dtype, order="F")
    return call(np.asfortranarray, (a,), {"dtype": dtype})


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if a.__class__ is ndarray:
        return a.get(order=order, out=out)
    r = np.asarray(a, order=order)
    if out is not None:
        out[...] = r
        return out
    return r


def get_array_module(*args):
    for a in args:
        if a.__class__ is ndarray:
            return sys.modules["cupy"]
    return np


def from_dlpack(x, *, device=None, copy=None):
    if x.__class__ is ndarray:
        return x
    raise NotImplementedError("cupy.from_dlpack of a foreign array is not available on emulated CUDA devices "
                              f"(got {type(x).__name__})")


def copyto(dst, src, casting="same_kind", where=True):
    call(np.copyto, (dst, src), {"casting": casting, "where": where})


def _isscalar(x):
    return np.isscalar(x)


def cupy_impl():
    from . import _kernels
    return {"ndarray": ndarray, "array": array, "asarray": asarray, "asanyarray": asanyarray,
            "ascontiguousarray": ascontiguousarray, "asfortranarray": asfortranarray, "asnumpy": asnumpy,
            "get_array_module": get_array_module, "from_dlpack": from_dlpack, "copyto": copyto,
            "isscalar": _isscalar, "dtype": np.dtype, "ufunc": np.ufunc,
            "RawKernel": _kernels.RawKernel, "ElementwiseKernel": _kernels.ElementwiseKernel,
            "ReductionKernel": _kernels.ReductionKernel, "RawModule": _kernels.RawModule,
            "get_default_memory_pool": rt.get_default_memory_pool,
            "get_default_pinned_memory_pool": rt.get_default_pinned_memory_pool,
            "is_available": lambda: rt._count > 0, "show_config": lambda **kw: print(
                f"dtrain emulated CUDA: {rt._count} device(s), host memory, CuPy 14's names")}


# ---------------------------------------------------------------- cupy.random: one generator per device
class RandomState:
    """cupy.random.RandomState on NumPy's legacy RandomState; draws land on the current device."""

    def __init__(self, seed=None):
        self._rs = np.random.RandomState(seed)

    def seed(self, seed=None):
        self._rs.seed(seed)

    def __getattr__(self, name):
        if name.startswith("_") or name not in names()["classes"]["cupy.random.RandomState"]:
            raise AttributeError(f"'RandomState' object has no attribute '{name}'")
        fn = getattr(self._rs, name)
        return lambda *args, **kwargs: call(fn, args, kwargs)


class Generator:
    """cupy.random.Generator on NumPy's Generator (PCG64 here; CuPy's default is XORWOW: other numbers)."""

    def __init__(self, bit_generator):
        self._g = np.random.Generator(bit_generator)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        fn = getattr(self._g, name)
        return lambda *args, **kwargs: call(fn, args, kwargs)


def _default_rng(seed=None):
    return Generator(np.random.PCG64(seed))


_random_states = {}


def get_random_state():
    d = rt.current()
    rs = _random_states.get(d)
    if rs is None:
        rs = _random_states[d] = RandomState()
    return rs


def _random_seed(seed=None):
    get_random_state().seed(seed)


class _RandomModule(StrictModule):
    def _fallback(self, attr, entry):
        if entry["kind"] == "function" and hasattr(np.random.RandomState, attr):
            return lambda *args, **kwargs: getattr(get_random_state(), attr)(*args, **kwargs)
        return super()._fallback(attr, entry)


# ---------------------------------------------------------------- cupyx
def scatter_add(a, slices, value):
    call(lambda x, s, v: np.add.at(x, s, v), (a, slices, value), {})


def scatter_max(a, slices, value):
    call(lambda x, s, v: np.maximum.at(x, s, v), (a, slices, value), {})


def scatter_min(a, slices, value):
    call(lambda x, s, v: np.minimum.at(x, s, v), (a, slices, value), {})


class errstate:
    """cupyx.errstate(linalg=...): NumPy's linear algebra always raises on a singular matrix, which is CuPy's
    'raise'; 'ignore' (CuPy's default: results filled with NaN) cannot be reproduced and warns."""

    def __init__(self, *, linalg=None):
        if linalg not in (None, "raise", "ignore"):
            raise ValueError(f"linalg must be one of ignore, raise: got {linalg!r}")
        self.linalg = linalg

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _rsqrt(x, out=None):
    return call(lambda a: 1 / np.sqrt(a), (x,), {})


def cupyx_impl():
    return {"scatter_add": scatter_add, "scatter_max": scatter_max, "scatter_min": scatter_min,
            "errstate": errstate, "rsqrt": _rsqrt,
            "zeros_pinned": lambda shape, dtype=float, order="C": np.zeros(shape, dtype, order),
            "empty_pinned": lambda shape, dtype=float, order="C": np.empty(shape, dtype, order),
            "empty_like_pinned": lambda a, dtype=None, order="K", subok=None, shape=None: np.empty_like(
                a, dtype, order, shape=shape),
            "zeros_like_pinned": lambda a, dtype=None, order="K", subok=None, shape=None: np.zeros_like(
                a, dtype, order, shape=shape)}
