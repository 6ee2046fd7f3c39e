"""Device → array module. The one place that knows about CuPy: it is imported lazily, here only."""
import contextlib
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
    """The cupy module, imported on first use. Where CUDA is unusable it raises what torch's CPU build raises for
    any CUDA request (AssertionError: Torch not compiled with CUDA enabled), followed by why: the one place
    every CUDA tensor, `.cuda()`, `.to("cuda")` and torch.cuda call comes through."""
    global _cupy, _cupy_error, _cupy_ndarray
    if _cupy is None and _cupy_error is None:
        try:
            _cupy = _load_cupy()
            _cupy_ndarray = _cupy.ndarray
            if _tf32 is not None:
                _apply_tf32(_cupy)
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


# ---------------------------------------------------------------------------------------------- TF32
# torch.backends.cuda.matmul.allow_tf32 / torch.set_float32_matmul_precision. CuPy decides float32's cuBLAS
# compute type on its first float32 product, reading CUPY_TF32 then, and keeps it: setting the variable
# later changes nothing. So the switch is applied through CuPy's set_compute_type whenever it changes (and
# once when CuPy loads), and the variable is kept in step for CuPy's own reading and for child processes.
# (CuPy's batched float32 products, ndim > 2, never use TF32; its 2-D ones do.)
_tf32 = None  # None: never set in this process, CUPY_TF32 decides (CuPy's and torch's default: off)


def matmul_tf32():
    """Whether float32 products on CUDA may use TF32 tensor cores."""
    if _tf32 is None:
        import os
        try:
            return int(os.environ.get("CUPY_TF32", "0") or 0) > 0
        except ValueError:
            return False
    return _tf32


def set_matmul_tf32(enabled):
    global _tf32
    import os
    _tf32 = bool(enabled)
    os.environ["CUPY_TF32"] = "1" if _tf32 else "0"
    if _cupy is not None:
        _apply_tf32(_cupy)


def _apply_tf32(cp):
    import importlib
    linalg = importlib.import_module("cupy._core._routines_linalg")
    tf32 = _tf32
    if tf32:
        # CuPy warns and keeps the default below compute capability 8.0; torch just has no TF32 there
        tf32 = int(cp.cuda.Device().compute_capability) >= 80
    # one entry serves float32 and complex64, for every device of the process (the values are CuPy 14's
    # cpdef enum, should a build not export the names)
    on, off = getattr(linalg, "COMPUTE_TYPE_TF32", 7), getattr(linalg, "COMPUTE_TYPE_DEFAULT", 1)
    linalg.set_compute_type(np.float32, on if tf32 else off)


# ---------------------------------------------------------------------------------------------- kernels
def non_finite_check_and_unscale_(grads, found, inv_scale):
    """torch's _amp_foreach_non_finite_check_and_unscale_ over the raw arrays of one device: multiply each of
    `grads` by `inv_scale` (a 0-d float32 array) in place, and set `found` (a 0-d float32 array) to 1.0 if
    one of them held an inf or NaN before. Nothing is read back to the host.

    CUDA: one fused pass per gradient (check and scale the same elements; every gradient raises the one flag
    of the device) instead of a reduction per gradient and a multiply after it; other dtypes (bfloat16) and
    the CPU: the same in array operations."""
    if grads and is_cupy_array(grads[0]):
        kernel = _unscale_kernel()
        for g in grads:
            if g.dtype.char in "fd":
                kernel(inv_scale, g, found)
                continue
            _unscale_portable(cupy(), g, found, inv_scale)
        return
    for g in grads:
        _unscale_portable(np, g, found, inv_scale)


def _unscale_portable(xp, g, found, inv_scale):
    bad = xp.logical_not(xp.isfinite(g).all())
    found[...] = xp.maximum(found, bad.astype(found.dtype))
    if g.dtype.itemsize < 4:  # torch's opmath: the product in float32, rounded once
        g[...] = (g.astype(np.float32) * inv_scale).astype(g.dtype)
    else:
        g *= inv_scale.astype(g.dtype)


_UNSCALE_NAME = "dtrain_amp_non_finite_check_and_unscale"
_unscale = None


def _unscale_kernel():
    global _unscale
    if _unscale is None:
        from . import _emulate
        # the emulated devices run this array-level twin of the kernel (it is also what it must compute)
        _emulate.reference(_UNSCALE_NAME)(lambda inv_scale, g, found: _unscale_portable(cupy(), g, found, inv_scale))
        _unscale = cupy().ElementwiseKernel(
            "raw float32 inv_scale", "T g, raw float32 found",
            "if (!isfinite(g)) found[0] = 1.0f;  g = g * (T)inv_scale[0];", _UNSCALE_NAME)
    return _unscale


def cuda_xp():
    """cupy(), with dtrain's memory statistics set up on first use (every CUDA device's array module is this)."""
    cp = cupy()
    if _memory is None:
        _track_memory(cp)
    return cp


class _MemoryStats:
    """Per-device peaks of the default pool's used bytes (live arrays) and total bytes (used + cached).

    CuPy keeps no peak; the pool's counts grow only inside malloc, so an allocator that reads them after each
    malloc sees every peak. It wraps the default pool's malloc through cupy.cuda.set_allocator (a Python call
    per allocation; an allocator set later by the user replaces it, and the peaks then stop moving)."""

    def __init__(self, cp):
        self.pool = cp.get_default_memory_pool()
        self.peak_used, self.peak_total = {}, {}
        self._malloc = self.pool.malloc
        cp.cuda.set_allocator(self.malloc)

    def malloc(self, size):
        mem = self._malloc(size)
        d, pool = mem.device_id, self.pool
        used, total = pool.used_bytes(), pool.total_bytes()  # the current device's: where malloc allocated
        if used > self.peak_used.get(d, 0):
            self.peak_used[d] = used
        if total > self.peak_total.get(d, 0):
            self.peak_total[d] = total
        return mem

    def current(self, index):
        """(used, total) bytes of device `index` now."""
        with cupy().cuda.Device(index):
            return self.pool.used_bytes(), self.pool.total_bytes()

    def peaks(self, index):
        used, total = self.current(index)  # a free since the last malloc never raises a peak, a malloc did
        return max(used, self.peak_used.get(index, 0)), max(total, self.peak_total.get(index, 0))

    def reset_peaks(self, index):
        self.peak_used[index], self.peak_total[index] = self.current(index)


_memory = None


def _track_memory(cp):
    global _memory
    _memory = _MemoryStats(cp)


def memory_stats():
    """The per-device memory statistics (see _MemoryStats); sets CUDA up if it was not yet."""
    cuda_xp()
    return _memory


def nccl():
    """cupy.cuda.nccl of the CuPy in use (a submodule real CuPy does not import by itself)."""
    cuda = cupy().cuda
    mod = getattr(cuda, "nccl", None)
    if mod is None:
        import importlib
        mod = importlib.import_module(cuda.__name__ + ".nccl")
    return mod


class _Storage:
    """What owns a storage made over memory that something else owns (torch.from_numpy, a mapped file):
    torch gives such memory a storage object of its own, and storage offsets, overlap checks and saving all
    count from that storage, not from the memory's owner. `owner` stops here."""
    __slots__ = ("__array_interface__", "_memory")

    def __init__(self, a):
        self._memory = a  # keeps the memory alive
        self.__array_interface__ = {"shape": a.shape, "typestr": a.dtype.str, "strides": a.strides,
                                    "data": (a.__array_interface__["data"][0], not a.flags.writeable), "version": 3}


def new_storage(a):
    """A NumPy array over a's memory that is the owner of a storage of its own (see _Storage)."""
    s = np.asarray(_Storage(a))
    return s if s.dtype == a.dtype else s.view(a.dtype)  # bfloat16's typestr ("<V2") loses the dtype


def owner(array):
    """The array that owns `array`'s memory. NumPy keeps a view's `base` at the owner, except through
    `as_strided`, which leaves a stand-in object between (its own `base` is the array it was made from)."""
    cls = type(array)
    while True:
        b = array.base
        if b is None:
            return array
        if not isinstance(b, cls):
            b = getattr(b, "base", None)  # numpy.lib.stride_tricks' DummyArray
            if not isinstance(b, cls):
                return array
        array = b


def data_ptr(array):
    """The address of an array's first element: host memory for NumPy, device memory for CuPy."""
    if isinstance(array, np.ndarray):
        return array.__array_interface__["data"][0]
    return array.data.ptr


# ---------------------------------------------------------------------------------------------------------
# The current device. CuPy runs a kernel on the calling thread's current device and refuses arrays of another
# ("Array device must be same as the current device"), so every op and backward node on a CUDA tensor runs
# with that tensor's device current: Function.apply and the autograd engine go through these three, and so
# do collectives that touch device arrays on threads of their own. A dtrain device's `_gpu` is its CUDA
# index (None on the CPU, where there is nothing to select).

def on_device(dev):
    """A context in which `dev` is this thread's current CUDA device (a no-op for the CPU)."""
    if dev._gpu is None:
        return contextlib.nullcontext()
    return dev.xp.cuda.Device(dev._gpu)  # a fresh Device per use: CuPy keeps its restore stack on the object


def make_current(dev, entered):
    """Select CUDA device `dev` on this thread for good; the first call records in `entered` the device that
    was current before, for restore_current."""
    cuda = dev.xp.cuda
    if not entered:
        entered.append((cuda, cuda.runtime.getDevice()))
    cuda.Device(dev._gpu).use()


def restore_current(entered):
    cuda, index = entered[0]
    cuda.Device(index).use()


# ---------------------------------------------------------------------------------------------------------
# The per-device kernel table: the few operations whose kernel differs between NumPy and CuPy. Ops are written
# once against the array module; where NumPy and CuPy disagree (a function only SciPy or cupyx has, a ufunc
# method CuPy lacks, a tuning that pays only on the CPU), the op asks `kernels[xp]` instead of testing which
# module it has. `kernels[xp]` is a dict lookup, cheap enough for the hottest op.

class _HostKernels:
    """NumPy and SciPy, arrays in host memory."""

    # CPU-only tunings apply (OpenBLAS layouts, work split over cores, recycled page-faulted buffers, a check
    # that reads the array): on a GPU each would cost a kernel launch or a synchronisation instead
    host = True
    # float16 is computed in float32 and rounded: NumPy's float16 ufuncs convert per element, slowly
    native_float16 = False

    @staticmethod
    def special(name):
        """scipy.special's `name`."""
        import scipy.special
        return getattr(scipy.special, name)

    @staticmethod
    def scatter_add(out, key, values):
        """out[key] += values, repeated indices summed."""
        np.add.at(out, key, values)

    @staticmethod
    def ufunc_at(name):
        """`op.at(out, key, values)` for the ufunc `name` (repeated keys fold in turn), or None where the device
        has no such kernel."""
        return getattr(np, name).at

    @staticmethod
    def accumulate(op, a, axis):
        """Inclusive scan of the ufunc `op` along `axis`, or None where the device has no such kernel."""
        return op.accumulate(a, axis=axis)

    @staticmethod
    def lu_factor(a):
        """Batched packed LU factors and 0-based pivots (scipy.linalg.lu_factor)."""
        import scipy.linalg
        return scipy.linalg.lu_factor(a, check_finite=False)

    @staticmethod
    def solve_triangular(a, b, trans, lower, unit):
        """Batched triangular solve; NaN where LAPACK's trtrs refuses a zero pivot (torch's trsm divides by it)."""
        import scipy.linalg
        try:
            return scipy.linalg.solve_triangular(a, b, trans=trans, lower=lower, unit_diagonal=unit,
                                                 check_finite=False)
        except np.linalg.LinAlgError:
            return np.full(b.shape, np.nan, b.dtype)

    @staticmethod
    def linalg_raising():
        """Context in which a failed factorization raises (NumPy always raises: nothing to do)."""
        import contextlib
        return contextlib.nullcontext()

    @staticmethod
    def to_host(a):
        return a

    # ---- sparse COO tensors (dtrain.sparse)
    # sparse + sparse as torch's kernel for the device: its CPU one merges the two entry lists (equal indices
    # added), its CUDA one concatenates them
    sparse_add_merges = True

    @staticmethod
    def spmm(values, rows, cols, shape, dense):
        """The (shape[0] × m) product of the sparse matrix with `values` at (rows, cols) (repeated entries add
        up) and the dense (shape[1] × m) `dense`, in dense's dtype."""
        import scipy.sparse
        s = scipy.sparse.csr_array((values, (rows, cols)), shape=shape)
        return np.asarray(s @ dense, dtype=dense.dtype)


class _CudaKernels:
    """CuPy and cupyx for the array module `xp` (the real CuPy or the emulated stand-in)."""
    host = False
    native_float16 = True  # CUDA has float16 arithmetic

    def __init__(self, xp):
        self.xp = xp

    @staticmethod
    def _cupyx(sub=""):
        """cupyx or one of its submodules (imported by name: a submodule is no attribute until imported)."""
        import importlib
        return importlib.import_module("cupyx" + sub)

    def special(self, name):
        """cupyx.scipy.special's `name`."""
        return getattr(self._cupyx(".scipy.special"), name)

    def scatter_add(self, out, key, values):
        self._cupyx().scatter_add(out, key, values)

    def ufunc_at(self, name):
        # cupyx has scatter kernels for add, max and min only; other ufuncs fold in the caller
        return {"add": self._cupyx().scatter_add, "maximum": self._cupyx().scatter_max,
                "minimum": self._cupyx().scatter_min}.get(name)

    accumulate = None  # CuPy accumulates only add and multiply: callers scan by doubling

    def lu_factor(self, a):
        linalg = self._cupyx(".scipy.linalg")
        return _per_matrix(self.xp, lambda x: linalg.lu_factor(x, check_finite=False), a, out_ndims=(2, 1))

    def solve_triangular(self, a, b, trans, lower, unit):
        linalg = self._cupyx(".scipy.linalg")
        return _per_matrix(self.xp, lambda x, y: linalg.solve_triangular(
            x, y, trans=trans, lower=lower, unit_diagonal=unit, check_finite=False), a, b, out_ndims=(2,))[0]

    def linalg_raising(self):
        # CuPy reports a failed factorization only when asked to (by default it returns garbage)
        return self._cupyx().errstate(linalg="raise")

    @staticmethod
    def to_host(a):
        return a.get()

    # ---- sparse COO tensors (dtrain.sparse)
    sparse_add_merges = False

    def spmm(self, values, rows, cols, shape, dense):
        # cuSPARSE multiplies the four float types only (torch's CUDA kernel names itself in the same error)
        if values.dtype.char not in "fdFD":
            from . import _dtype
            raise RuntimeError(f'"addmm_sparse_cuda" not implemented for '
                               f"'{_dtype.scalar_name(_dtype.from_numpy_dtype(values.dtype))}'")
        s = self._cupyx(".scipy.sparse").csr_matrix((values, (rows, cols)), shape=shape)
        # cuSPARSE writes the product in Fortran order; torch's result is contiguous
        return self.xp.ascontiguousarray(s @ dense)


def _per_matrix(xp, fn, *arrays, out_ndims):
    """fn applied to each matrix of same-batch arrays, for CuPy routines that take one matrix at a time.
    out_ndims: the number of non-batch dims of each of fn's outputs."""
    batch = arrays[0].shape[:-2]
    flat = [a.reshape((-1,) + a.shape[-2:]) for a in arrays]
    results = [fn(*ms) for ms in zip(*flat)]
    results = [r if isinstance(r, tuple) else (r,) for r in results]
    return tuple(xp.stack([r[i] for r in results]).reshape(batch + results[0][i].shape[-d:])
                 for i, d in enumerate(out_ndims))


class _KernelTable(dict):
    """array module → its kernels; a CuPy module (real or emulated) gets its entry on first lookup."""

    def __missing__(self, xp):
        k = self[xp] = _CudaKernels(xp)
        return k


kernels = _KernelTable({np: _HostKernels()})
