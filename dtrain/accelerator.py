"""dtrain.accelerator (torch.accelerator): the current accelerator, which in dtrain is CUDA (through CuPy) or
none. Answers as torch's do on a machine with CUDA, or without any accelerator: `current_accelerator()` is None
there, and what needs a device raises torch's RuntimeError."""
from . import cuda as _cuda
from ._device import device as _device

__all__ = ["current_accelerator", "current_device_idx", "current_device_index", "device_count", "device_index",
           "is_available", "set_device_idx", "set_device_index", "synchronize", "empty_cache", "memory_allocated",
           "max_memory_allocated", "memory_reserved", "reset_peak_memory_stats", "memory_stats"]


def is_available() -> bool:
    return _cuda.is_available()


def device_count() -> int:
    return _cuda.device_count()


def current_accelerator(check_available: bool = False):
    """device('cuda') where CUDA is usable, else None (check_available is torch's: None also when the
    accelerator is built in but no device is usable, which for dtrain is the same thing)."""
    return _device("cuda") if _cuda.is_available() else None


def _need():
    if not _cuda.is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")


def _index(device):
    """torch's reading of a device argument: an int, or a device / string of the accelerator's type."""
    if device is None:
        return None
    if isinstance(device, int) and not isinstance(device, bool):
        return device
    if isinstance(device, (str, _device)):
        d = _device(device)
        if d.type != "cuda":
            raise ValueError(f"{d.type} doesn't match the current accelerator cuda.")
        return d.index if d.index is not None else _cuda.current_device()
    raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")


def current_device_index() -> int:
    _need()
    return _cuda.current_device()


def set_device_index(device, /) -> None:
    idx = _index(device)
    _need()
    _cuda.set_device(idx)


current_device_idx = current_device_index
set_device_idx = set_device_index


def synchronize(device=None, /) -> None:
    idx = _index(device)
    _need()
    _cuda.synchronize(idx)


class device_index:
    """Context manager: make `device` the current accelerator device inside the block (None: no change)."""

    def __init__(self, device, /):
        self.idx, self.prev = device, None

    def __enter__(self):
        if self.idx is not None:
            self.prev = current_device_index()
            set_device_index(self.idx)

    def __exit__(self, *exc):
        if self.prev is not None:
            set_device_index(self.prev)


def empty_cache() -> None:
    _need()
    _cuda.empty_cache()


def memory_allocated(device_index=None, /) -> int:
    _need()
    return _cuda.memory_allocated(device_index)


def max_memory_allocated(device_index=None, /) -> int:
    _need()
    return _cuda.max_memory_allocated(device_index)


def memory_reserved(device_index=None, /) -> int:
    _need()
    return _cuda.memory_reserved(device_index)


def reset_peak_memory_stats(device_index=None, /) -> None:
    _need()
    _cuda.reset_peak_memory_stats(device_index)


def memory_stats(device_index=None, /):
    _need()
    return _cuda.memory_stats(device_index)
