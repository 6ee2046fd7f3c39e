"""dtrain.cuda: device queries and selection, backed by CuPy (imported lazily through the backend)."""
from . import _backend


def is_available():
    return _backend.cuda_available()


def device_count():
    if not _backend.cuda_available():
        return 0
    return _backend.cupy().cuda.runtime.getDeviceCount()


def _cp():
    if not _backend.cuda_available():
        raise RuntimeError("Torch not compiled with CUDA enabled: dtrain found no usable CUDA device "
                           f"({_backend._cupy_error})")
    return _backend.cupy()


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


def memory_allocated(device=None):
    return _cp().get_default_memory_pool().used_bytes() if is_available() else 0


def max_memory_allocated(device=None):
    return _cp().get_default_memory_pool().total_bytes() if is_available() else 0


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


class Stream:
    def __init__(self, device=None, priority=0):
        self._s = _cp().cuda.Stream(non_blocking=True)

    def synchronize(self):
        self._s.synchronize()

    def wait_stream(self, other):
        self._s.wait_event(other._s.record())


def current_stream(device=None):
    s = Stream.__new__(Stream)
    s._s = _cp().cuda.get_current_stream()
    return s
