"""dtrain.futures.Future: the result of asynchronous work (DDP communication hooks return one)."""
import threading


class Future:
    """torch.futures.Future: `wait()` / `value()` / `then(cb)` / `set_result()` / `done()`."""

    def __init__(self, *, devices=None):
        self._done = threading.Event()
        self._value = None
        self._error = None
        self._callbacks = []
        self._lock = threading.Lock()

    def done(self):
        return self._done.is_set()

    def set_result(self, result):
        with self._lock:
            if self._done.is_set():
                raise RuntimeError("Future can only be marked completed once.")
            self._value = result
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def set_exception(self, exc):
        with self._lock:
            self._error = exc
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def wait(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def value(self):
        if not self._done.is_set():
            raise RuntimeError("Future.value() called before the future completed")
        if self._error is not None:
            raise self._error
        return self._value

    def then(self, callback):
        """A new Future holding `callback(self)`, run when this one completes."""
        fut = Future()

        def run(src):
            try:
                fut.set_result(callback(src))
            except Exception as e:  # the error travels to whoever waits on the chained future
                fut.set_exception(e)
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(run)
                return fut
        run(self)
        return fut

    def add_done_callback(self, callback):
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)


def collect_all(futures):
    out = Future()
    futures = list(futures)
    if not futures:
        out.set_result([])
        return out
    remaining = [len(futures)]
    lock = threading.Lock()

    def one(_):
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            out.set_result(futures)
    for f in futures:
        f.add_done_callback(one)
    return out


def wait_all(futures):
    return [f.wait() for f in futures]
