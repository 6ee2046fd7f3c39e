"""no_grad / enable_grad / set_grad_enabled / inference_mode: thread-local, like torch's."""
import functools
import threading

class _State(threading.local):
    enabled = True  # the class attribute is every new thread's default, as in torch
    saved_hooks = ()  # (pack_hook, unpack_hook) pairs, innermost last (autograd/_saved_hooks.py)
    saved_hooks_disabled = None  # the error message while disable_saved_tensors_hooks is active


_state = _State()


def is_grad_enabled():
    return _state.enabled


def _set(mode):
    _state.enabled = mode


class _GradMode:
    """Context manager and decorator that sets grad mode to `self._mode` and restores it on exit."""
    _mode = True

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set(self._mode)

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper

    def clone(self):
        return self.__class__()


class no_grad(_GradMode):
    _mode = False


class enable_grad(_GradMode):
    _mode = True


class inference_mode(_GradMode):
    def __init__(self, mode=True):
        self._mode = not mode

    def __call__(self, fn):
        if not callable(fn) or isinstance(fn, bool):
            return inference_mode(fn)
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(not mode):
                return fn(*args, **kwargs)
        return wrapper


class set_grad_enabled(_GradMode):
    def __init__(self, mode):
        self._mode = bool(mode)
        self._prev = is_grad_enabled()
        _set(self._mode)  # torch applies it immediately so it also works as a plain call

    def __enter__(self):
        pass

    def __exit__(self, *exc):
        _set(self._prev)
        return False

    def __call__(self, fn):
        _set(self._prev)
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper
