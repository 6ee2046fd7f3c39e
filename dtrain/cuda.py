"""dtrain.cuda: device queries and selection, streams and events, memory statistics, random state, backed by
CuPy (imported lazily through the backend). Without a usable device the queries answer as torch's do on a
machine without CUDA (0, False, empty) and the rest raise."""
import sys
import types
import warnings

from . import _backend


def is_available():
    return _backend.cuda_available()


def is_emulated():
    """Whether the CUDA devices are dtrain's emulated ones (DTRAIN_EMULATE_CUDA=N: host memory, CuPy's rules)
    rather than real GPUs. Not in torch."""
    return is_available() and _backend.is_emulated()


def device_count():
    if not _backend.cuda_available():
        return 0
    return _backend.cupy().cuda.runtime.getDeviceCount()


def _cp():
    return _backend.cupy()  # raises torch's AssertionError where there is no CUDA


def current_device():
    return _cp().cuda.runtime.getDevice()


def set_device(device):
    from ._device import device as _dev
    idx = device if isinstance(device, int) else _dev(device).index or 0
    if idx < 0:
        return
    _cp().cuda.Device(idx).use()


def synchronize(device=None):
    cp = _cp()
    if device is None:
        cp.cuda.Device().synchronize()
    else:
        from ._device import device as _dev
        idx = device if isinstance(device, int) else _dev(device).index or 0
        cp.cuda.Device(idx).synchronize()


def get_device_name(device=None):
    cp = _cp()
    idx = current_device() if device is None else (device if isinstance(device, int) else device.index or 0)
    return cp.cuda.runtime.getDeviceProperties(idx)["name"].decode()


def get_device_properties(device=None):
    cp = _cp()
    idx = current_device() if device is None else (device if isinstance(device, int) else device.index or 0)
    return cp.cuda.runtime.getDeviceProperties(idx)


def manual_seed(seed):
    from .random import default_generator_for
    from ._device import device as _dev
    if is_available():
        default_generator_for(_dev("cuda", current_device())).manual_seed(seed)


def manual_seed_all(seed):
    from .random import default_generator_for
    from ._device import device as _dev
    for i in range(device_count()):
        default_generator_for(_dev("cuda", i)).manual_seed(seed)


def empty_cache():
    if is_available():
        _cp().get_default_memory_pool().free_all_blocks()


class device:
    """Context manager that makes `idx` the current CUDA device."""

    def __init__(self, device):
        self.idx = device if isinstance(device, int) else (device.index if device is not None else -1)

    def __enter__(self):
        if self.idx is None or self.idx < 0 or not is_available():
            self.prev = None
            return
        self.prev = current_device()
        set_device(self.idx)

    def __exit__(self, *exc):
        if self.prev is not None:
            set_device(self.prev)
        return False


def _index(device):
    if device is None:
        return current_device()
    if isinstance(device, int):
        return device
    from ._device import device as _dev
    d = _dev(device)
    if d.type != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {d}")
    return d.index if d.index is not None else current_device()


def get_device_capability(device=None):
    props = get_device_properties(_index(device))
    return props["major"], props["minor"]


def get_arch_list():
    if not is_available():
        return []
    return sorted({"sm_%d%d" % get_device_capability(i) for i in range(device_count())})


def is_bf16_supported(including_emulation=True):
    """Whether bfloat16 tensors can live on the GPU: a device of compute capability 8 or more, and
    ml_dtypes (through which CuPy and dtrain know bfloat16)."""
    if not is_available():
        return False
    from . import _dtype
    return get_device_capability()[0] >= 8 and _dtype.bfloat16.np is not None


def is_initialized():
    return is_available() and "cupy" in sys.modules


def init():
    _cp()


def ipc_collect():
    _cp()


# ---------------------------------------------------------------- memory (CuPy's memory pool)
# As torch defines them, per device (None: the current one): allocated = bytes of live tensors' blocks (the
# pool's used bytes), reserved = what the pool holds (used + cached); the peaks are dtrain's own, kept since
# CUDA was first used or since reset_peak_memory_stats (see _backend._MemoryStats). Without CUDA they are 0.
def memory_allocated(device=None) -> int:
    return _backend.memory_stats().current(_index(device))[0] if is_available() else 0


def max_memory_allocated(device=None) -> int:
    return _backend.memory_stats().peaks(_index(device))[0] if is_available() else 0


def memory_reserved(device=None) -> int:
    return _backend.memory_stats().current(_index(device))[1] if is_available() else 0


def max_memory_reserved(device=None) -> int:
    return _backend.memory_stats().peaks(_index(device))[1] if is_available() else 0


def memory_cached(device=None) -> int:
    warnings.warn("torch.cuda.memory_cached has been renamed to torch.cuda.memory_reserved", FutureWarning,
                  stacklevel=2)
    return memory_reserved(device)


def max_memory_cached(device=None) -> int:
    warnings.warn("torch.cuda.max_memory_cached has been renamed to torch.cuda.max_memory_reserved", FutureWarning,
                  stacklevel=2)
    return max_memory_reserved(device)


def reset_peak_memory_stats(device=None) -> None:
    """The peaks of `device` restart from what is allocated and reserved now."""
    _cp()
    _backend.memory_stats().reset_peaks(_index(device))


def reset_max_memory_allocated(device=None) -> None:
    warnings.warn("torch.cuda.reset_max_memory_allocated now calls torch.cuda.reset_peak_memory_stats, which resets "
                  "/all/ peak memory stats.", FutureWarning, stacklevel=2)
    return reset_peak_memory_stats(device)


def reset_max_memory_cached(device=None) -> None:
    warnings.warn("torch.cuda.reset_max_memory_cached now calls torch.cuda.reset_peak_memory_stats, which resets "
                  "/all/ peak memory stats.", FutureWarning, stacklevel=2)
    return reset_peak_memory_stats(device)


def memory_stats(device=None) -> dict:
    """A subset of torch's keys: allocated and reserved bytes, current and peak, and the pool's cached bytes."""
    if not is_available():
        return {}
    idx = _index(device)
    stats = _backend.memory_stats()
    (used, total), (peak_used, peak_total) = stats.current(idx), stats.peaks(idx)
    return {"allocated_bytes.all.current": used, "allocated_bytes.all.peak": peak_used,
            "reserved_bytes.all.current": total, "reserved_bytes.all.peak": peak_total,
            "inactive_split_bytes.all.current": total - used}


def mem_get_info(device=None):
    """(free, total) bytes of the device."""
    with _DeviceContext(_index(device)):
        return tuple(_cp().cuda.runtime.memGetInfo())


def set_per_process_memory_fraction(fraction, device=None):
    if not 0 <= fraction <= 1:
        raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
    with _DeviceContext(_index(device)):
        _cp().get_default_memory_pool().set_limit(fraction=fraction)


def memory_summary(device=None, abbreviated=False):
    stats = memory_stats(device)
    return "\n".join(f"{k}: {v}" for k, v in stats.items())


# ---------------------------------------------------------------- random state of the CUDA generators
def _generators():
    from .random import default_generator_for
    from ._device import device as _dev
    return [default_generator_for(_dev("cuda", i)) for i in range(device_count())]


def _generator(device=None):
    from .random import default_generator_for
    from ._device import device as _dev
    return default_generator_for(_dev("cuda", _index(device)))


def seed():
    if is_available():
        _generator().seed()


def seed_all():
    for g in _generators():
        g.seed()


def initial_seed():
    _cp()
    return _generator().initial_seed()


def get_rng_state(device="cuda"):
    _cp()
    return _generator(device).get_state()


def set_rng_state(new_state, device="cuda"):
    _cp()
    _generator(device).set_state(new_state)


def get_rng_state_all():
    return [g.get_state() for g in _generators()]


def set_rng_state_all(new_states):
    for g, state in zip(_generators(), new_states):
        g.set_state(state)


# ---------------------------------------------------------------- errors
class _NoDeviceOutOfMemoryError(RuntimeError):
    """torch.cuda.OutOfMemoryError where there is no CUDA device (nothing raises it)."""


_NoDeviceOutOfMemoryError.__name__ = _NoDeviceOutOfMemoryError.__qualname__ = "OutOfMemoryError"


def _out_of_memory_error():
    """The class `except dtrain.cuda.OutOfMemoryError` must name to catch a failed device allocation: CuPy's
    own (a MemoryError: CuPy, not dtrain, raises it), or a RuntimeError subclass without a device."""
    if is_available():
        return _cp().cuda.memory.OutOfMemoryError
    return _NoDeviceOutOfMemoryError


# ---------------------------------------------------------------- devices, streams, events
class _DeviceContext(device):
    """`device` under a name the functions below can use where their own `device` argument hides the class."""


def device_of(obj):
    """The device context of a tensor's device (a no-op for CPU tensors)."""
    dev = getattr(obj, "device", None)
    return device(dev.index if dev is not None and dev.type == "cuda" else -1)


class Stream:
    """A CUDA stream (a CuPy stream underneath)."""

    def __init__(self, device=None, priority=0):
        if not is_available():
            raise RuntimeError("torch.cuda.Stream requires CUDA support")
        with _DeviceContext(_index(device) if device is not None else -1):
            self._s = _cp().cuda.Stream(non_blocking=True)

    def synchronize(self):
        self._s.synchronize()

    def query(self):
        return self._s.done

    def wait_stream(self, other):
        self._s.wait_event(other._s.record())

    def wait_event(self, event):
        self._s.wait_event(event._e)

    def record_event(self, event=None):
        event = event if event is not None else Event()
        event.record(self)
        return event

    @property
    def cuda_stream(self):
        return self._s.ptr

    def __eq__(self, other):
        return isinstance(other, Stream) and self._s.ptr == other._s.ptr

    def __hash__(self):
        return hash(self._s.ptr)

    def __repr__(self):
        return f"<dtrain.cuda.Stream device=cuda:{current_device()} cuda_stream={self._s.ptr:#x}>"


def _wrap_stream(s):
    out = Stream.__new__(Stream)
    out._s = s
    return out


def current_stream(device=None):
    return _wrap_stream(_cp().cuda.get_current_stream())


def default_stream(device=None):
    return _wrap_stream(_cp().cuda.Stream.null)


class StreamContext:
    """Makes `stream` current inside the block (None: changes nothing), as torch.cuda.stream(s)."""

    def __init__(self, stream):
        self.stream = stream
        self._prev = None

    def __enter__(self):
        if self.stream is None or not is_available():
            return
        self._prev = _cp().cuda.get_current_stream()
        self.stream._s.use()

    def __exit__(self, *exc):
        if self._prev is not None:
            self._prev.use()
            self._prev = None
        return False


def stream(stream):
    return StreamContext(stream)


class Event:
    """A CUDA event: record on a stream, wait for it, time between two (elapsed_time, in milliseconds)."""

    def __init__(self, enable_timing=False, blocking=False, interprocess=False):
        if not is_available():
            raise RuntimeError("Tried to instantiate dummy base class Event")
        self._e = _cp().cuda.Event(block=blocking, disable_timing=not enable_timing, interprocess=interprocess)

    def record(self, stream=None):
        self._e.record(stream._s if stream is not None else None)

    def wait(self, stream=None):
        (stream._s if stream is not None else _cp().cuda.get_current_stream()).wait_event(self._e)

    def query(self):
        return self._e.done

    def synchronize(self):
        self._e.synchronize()

    def elapsed_time(self, end_event):
        return _cp().cuda.get_elapsed_time(self._e, end_event._e)


# ---------------------------------------------------------------- torch.cuda.amp (its deprecated spelling)
def _cuda_amp_names():
    from . import _dtype, amp as _amp

    class autocast(_amp.autocast):
        """torch.cuda.amp.autocast(enabled, dtype, cache_enabled): torch.amp.autocast("cuda", ...)."""

        def __init__(self, enabled=True, dtype=None, cache_enabled=True):
            warnings.warn("`torch.cuda.amp.autocast(args...)` is deprecated. Please use `torch.amp.autocast('cuda', "
                          "args...)` instead.", FutureWarning, stacklevel=2)
            super().__init__("cuda", dtype=dtype if dtype is not None else _dtype.float16, enabled=enabled,
                             cache_enabled=cache_enabled)

    class GradScaler(_amp.GradScaler):
        """torch.cuda.amp.GradScaler: torch.amp.GradScaler("cuda", ...)."""

        def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                     enabled=True):
            warnings.warn("`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use `torch.amp.GradScaler("
                          "'cuda', args...)` instead.", FutureWarning, stacklevel=2)
            super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)

    def custom_fwd(fwd=None, *, cast_inputs=None):
        """torch.cuda.amp.custom_fwd: torch.amp.custom_fwd(device_type="cuda")."""
        warnings.warn("`torch.cuda.amp.custom_fwd(args...)` is deprecated. Please use `torch.amp.custom_fwd(args..., "
                      "device_type='cuda')` instead.", FutureWarning, stacklevel=2)
        return _amp.custom_fwd(fwd, device_type="cuda", cast_inputs=cast_inputs)

    def custom_bwd(bwd=None):
        """torch.cuda.amp.custom_bwd: torch.amp.custom_bwd(device_type="cuda")."""
        warnings.warn("`torch.cuda.amp.custom_bwd(args...)` is deprecated. Please use `torch.amp.custom_bwd(args..., "
                      "device_type='cuda')` instead.", FutureWarning, stacklevel=2)
        return _amp.custom_bwd(bwd, device_type="cuda")

    return {"autocast": autocast, "GradScaler": GradScaler, "custom_fwd": custom_fwd, "custom_bwd": custom_bwd}


def _amp_getattr(name):
    names = _cuda_amp_names()
    if name not in names:
        raise AttributeError(f"module 'dtrain.cuda.amp' has no attribute {name!r}")
    vars(amp).update(names)  # built once, on first use: dtrain.amp stays unloaded until then
    return names[name]


# a module object, so that `import dtrain.cuda.amp` and `from dtrain.cuda.amp import GradScaler` work
amp = types.ModuleType("dtrain.cuda.amp", "torch.cuda.amp: autocast and GradScaler bound to CUDA.")
amp.__getattr__ = _amp_getattr
sys.modules[amp.__name__] = amp


def __getattr__(name):
    if name == "OutOfMemoryError":
        global OutOfMemoryError
        OutOfMemoryError = _out_of_memory_error()
        return OutOfMemoryError
    raise AttributeError(f"module 'dtrain.cuda' has no attribute {name!r}")
