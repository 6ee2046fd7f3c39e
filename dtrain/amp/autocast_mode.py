"""autocast: a context manager and decorator with torch's arguments and checks."""
import functools

from .. import _dtype

_DEVICE_TYPES = ("cpu", "cuda")
_DEFAULT_DTYPES = {"cpu": _dtype.bfloat16, "cuda": _dtype.float16}
_state = {}  # device type -> (enabled, dtype) of the innermost active autocast


def is_autocast_available(device_type):
    return device_type in _DEVICE_TYPES


def get_autocast_dtype(device_type):
    return _state.get(device_type, (False, _DEFAULT_DTYPES.get(device_type, _dtype.float16)))[1]


class autocast:
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None).

    Records the region (`fast_dtype`, `enabled`) but runs every op in its inputs' dtype: dtrain has no
    lower-precision kernels to cast to yet, so results are those without autocast."""

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {device_type}")
        self.device = device_type
        self.fast_dtype = dtype if dtype is not None else _DEFAULT_DTYPES[device_type]
        self._enabled = bool(enabled)
        self._cache_enabled = True if cache_enabled is None else cache_enabled
        self._prev = None

    def __enter__(self):
        self._prev = _state.get(self.device)
        _state[self.device] = (self._enabled, self.fast_dtype)
        return self

    def __exit__(self, *exc):
        if self._prev is None:
            _state.pop(self.device, None)
        else:
            _state[self.device] = self._prev
        return False

    def __call__(self, func):
        @functools.wraps(func)
        def decorate_autocast(*args, **kwargs):
            with self:
                return func(*args, **kwargs)
        return decorate_autocast


def custom_fwd(fwd=None, *, device_type="cuda", cast_inputs=None):
    """torch.amp.custom_fwd: a custom Function's forward runs as written (no casts without autocast kernels)."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    return fwd


def custom_bwd(bwd=None, *, device_type="cuda"):
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    return bwd
