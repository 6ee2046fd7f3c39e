"""dtrain: the PyTorch programming model on NumPy (CPU) and CuPy (CUDA), distributed over MPI and NCCL.

`import dtrain as torch` is how it is meant to be used."""
__version__ = "0.1.0"

import builtins

from . import _backend, _launch_env, _parallel

_launch_env.export()  # RANK & co. under a plain srun/mpiexec too, before the script reads them
_backend.numpy_errors_as_torch()  # no RuntimeWarnings where torch prints nothing (the why: its docstring)

from . import _dtype
from ._dtype import (bfloat16, bool, cdouble, cfloat, complex64, complex128, double, dtype, finfo, float, float16,
                     float32, float64, get_default_dtype, half, iinfo, int, int8, int16, int32, int64, long,
                     promote_types, set_default_dtype, short, uint8)
from ._device import device, get_default_device, set_default_device
from ._tensor import Size, Tensor, is_tensor
from .autograd import graph as _graph
from . import _tensor as _tensor_module

_graph._wrap = _tensor_module._wrap  # the op hot path calls it without an import per call
from .autograd.grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .random import Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from ._tensor_str import get_printoptions, printoptions, set_printoptions
from ._tensor import layout, sparse_coo, strided
from ._memory_format import (memory_format, contiguous_format, preserve_format, channels_last,  # noqa
                             channels_last_3d)


def _export(module):
    # the public functions of the op families (not the helpers an op module imports from elsewhere)
    names = getattr(module, "__all__", None) or [
        n for n, v in vars(module).items()
        if not n.startswith("_") and callable(v) and not isinstance(v, type)
        and getattr(v, "__module__", "").startswith("dtrain._ops.") and v.__module__ != "dtrain._ops._util"]
    g = globals()
    for n in names:
        if n not in g or n in ("max", "min", "abs", "all", "any", "sum", "round", "pow"):
            g[n] = getattr(module, n)


# the op families (imported as a package so that `dtrain.linalg` stays free for torch's linalg namespace)
from . import _ops  # noqa: E402
from ._ops import (activation as _a, arith as _b, composite as _c, conversion as _d, creation as _e,  # noqa
                   index as _f, linalg as _g, mutation as _h, pointwise as _i, reduce as _j, shape as _k,
                   special as _l, stacking as _n, stats as _o, scatter as _p, sort as _q,
                   spectral as _r)
for _m in (_e, _d, _b, _i, _j, _k, _f, _p, _q, _g, _h, _a, _c, _l, _n, _o, _r):
    _export(_m)
del _m, _a, _b, _c, _d, _e, _f, _g, _h, _i, _j, _k, _l, _n, _o, _p, _q, _r

from .autograd import grad_mode as _grad_mode  # noqa
from .storage import TypedStorage, UntypedStorage  # noqa: E402
from . import storage as _storage  # noqa: E402
Tensor.untyped_storage, Tensor.storage = _storage.untyped_storage, _storage.storage
from . import autograd, cuda, random  # noqa


def is_floating_point(input):
    return input.is_floating_point()


def is_complex(input):
    return input.is_complex()


def numel(input):
    return input.numel()


def result_type(tensor1, tensor2):
    return _dtype.result_type_of([tensor1, tensor2])


def can_cast(from_, to):
    """torch.can_cast: a cast is allowed unless it lowers the kind (complex > float > int > bool)."""
    return from_._kind <= to._kind


def is_nonzero(input):
    if input.numel() != 1:
        raise RuntimeError(f"Boolean value of Tensor with {'no values' if input.numel() == 0 else 'more than one value'} is ambiguous")
    return bool(input.item())


def get_num_threads():
    """The threads dtrain's elementwise work and fused CPU kernels use: set_num_threads's count, else
    OMP_NUM_THREADS (set per rank by dtrain-run), else every core."""
    return _parallel.threads()


def set_num_threads(n):
    """Sets the threads of dtrain's own elementwise work and fused CPU kernels. NumPy's BLAS keeps the count it
    loaded with (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before the first import), so this warns when n differs."""
    import builtins
    import warnings
    if isinstance(n, builtins.bool) or not isinstance(n, builtins.int):
        raise RuntimeError(f"set_num_threads expects an int, but got {type(n).__name__}")
    if n <= 0:
        raise RuntimeError("set_num_threads expects a positive integer")
    if n != _parallel.threads():
        warnings.warn("set_num_threads: the matrix products keep the thread count NumPy's BLAS loaded with "
                      "(set OMP_NUM_THREADS before starting Python to change it); dtrain's elementwise work and "
                      "fused kernels use the new count", stacklevel=2)
    _parallel._threads = n


_deterministic = {"mode": False, "warn_only": False}


def use_deterministic_algorithms(mode, *, warn_only=False):
    """Recorded for are_deterministic_algorithms_enabled(). dtrain's CPU kernels are deterministic; no op
    consults the setting (torch raises for its nondeterministic CUDA kernels)."""
    if not isinstance(mode, builtins.bool):
        raise TypeError(f"_set_deterministic_algorithms(): argument 'mode' (position 1) must be bool, not "
                        f"{type(mode).__name__}")
    _deterministic.update(mode=mode, warn_only=builtins.bool(warn_only))


def are_deterministic_algorithms_enabled():
    return _deterministic["mode"]


def is_deterministic_algorithms_warn_only_enabled():
    return _deterministic["warn_only"]


def typename(obj):
    """'torch.FloatTensor' for a tensor (as Tensor.type()), else the module-qualified name of obj or its type."""
    if isinstance(obj, Tensor):
        return obj.type()
    module = getattr(obj, "__module__", "") or ""
    if hasattr(obj, "__qualname__"):
        qualname = obj.__qualname__
    elif hasattr(obj, "__name__"):
        qualname = obj.__name__
    else:
        module, qualname = type(obj).__module__ or "", type(obj).__qualname__
    return qualname if module in ("", "builtins") else f"{module}.{qualname}"


def is_storage(obj):
    from . import serialization, storage
    return isinstance(obj, (serialization.TypedStorage, storage.UntypedStorage, storage.TypedStorage))


def _deprecated_range(start=0, end=None, step=1, *, out=None, dtype=None, layout=None, device=None,
                      requires_grad=False):
    """torch.range: like arange but with `end` included, in the default float dtype unless told otherwise."""
    import warnings
    warnings.warn("torch.range is deprecated and will be removed in a future release because its behavior is "
                  "inconsistent with Python's range builtin. Instead, use torch.arange, which produces values in "
                  "[start, end).", UserWarning, stacklevel=2)
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if vals[2] == 0:
        raise RuntimeError("step must be nonzero")
    if (vals[1] - vals[0]) * vals[2] < 0:
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    n = builtins.int((vals[1] - vals[0]) // vals[2]) + 1  # torch: floor((end - start) / step) + 1 values
    idx = arange(n, dtype=float64, device=device)
    return (idx * vals[2] + vals[0]).to(dtype or get_default_dtype()).requires_grad_(requires_grad)


range = _deprecated_range  # noqa: A001 (torch's name; nothing in this module uses the builtin)


_matmul_precision = None  # None: "high" where TF32 is on from the start (CUPY_TF32=1), else "highest"


def set_float32_matmul_precision(precision):
    """'highest' keeps float32 matmuls in float32; 'high' and 'medium' let CUDA's use TF32 tensor cores (CuPy
    has no bfloat16-based float32 product, so 'medium' is 'high' there). Takes effect at once, also after
    products have run. The CPU's products are NumPy's float32 whatever the setting."""
    global _matmul_precision
    if precision not in ("highest", "high", "medium"):
        import warnings
        warnings.warn(f"{precision} is not one of 'highest', 'high', or 'medium'; the current"
                      "setFloat32MatmulPrecision call has no effect.")
        return
    _matmul_precision = precision
    from . import _backend
    _backend.set_matmul_tf32(precision != "highest")


def get_float32_matmul_precision():
    if _matmul_precision is None:
        from . import _backend
        return "high" if _backend.matmul_tf32() else "highest"
    return _matmul_precision


def compiled_with_cxx11_abi():
    return True


# Subpackages and a few top-level names load on first use: `import dtrain` stays fast, and torch code that
# touches `dtrain.nn`, `dtrain.save` or `dtrain.distributed` gets them all the same.
_LAZY_MODULES = {"nn", "optim", "utils", "distributed", "amp", "backends", "testing", "futures", "serialization", "cpu",
                 "linalg", "special", "fft", "func", "multiprocessing", "version", "accelerator", "onnx", "compiler",
                 "profiler", "_dynamo", "sparse"}
_LAZY_ATTRS = {"save": "serialization", "load": "serialization", "compile": "_compile", "autocast": "amp",
               "sparse_coo_tensor": "sparse", "spmm": "sparse",
               "FloatTensor": "_legacy", "DoubleTensor": "_legacy", "LongTensor": "_legacy", "IntTensor": "_legacy",
               "BoolTensor": "_legacy", "HalfTensor": "_legacy", "ByteTensor": "_legacy", "CharTensor": "_legacy",
               "ShortTensor": "_legacy", "BFloat16Tensor": "_legacy",
               **{n: "amp.autocast_mode" for n in (
                   "is_autocast_enabled", "set_autocast_enabled", "get_autocast_dtype", "set_autocast_dtype",
                   "is_autocast_cpu_enabled", "set_autocast_cpu_enabled", "get_autocast_cpu_dtype",
                   "set_autocast_cpu_dtype", "get_autocast_gpu_dtype", "set_autocast_gpu_dtype",
                   "is_autocast_cache_enabled", "set_autocast_cache_enabled", "clear_autocast_cache",
                   "autocast_increment_nesting", "autocast_decrement_nesting", "is_autocast_available")}}


def __getattr__(name):
    import importlib
    if name in _LAZY_MODULES:
        return importlib.import_module(f"dtrain.{name}")  # a missing module is an AttributeError, as hasattr expects
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(f"dtrain.{_LAZY_ATTRS[name]}"), name)
    if name == "OutOfMemoryError":  # torch.OutOfMemoryError is torch.cuda's
        return cuda.OutOfMemoryError
    raise AttributeError(f"module 'dtrain' has no attribute '{name}'")
