"""Waiting on backend requests: blocking waits against a deadline, and the progress thread behind async_op.

Why a progress thread: MPI's non-blocking collectives only move data while some thread is inside MPI
(MPICH has no asynchronous progress by default), so an Iallreduce issued before a burst of Python/NumPy
compute would otherwise sit idle until `wait()`. The operation is still *issued* on the calling thread,
which keeps every rank's collectives in program order; the progress thread only tests outstanding
requests, finishes them (write-back of staged buffers) and enforces the deadline. It naps between polls
so it costs little CPU while the main thread computes.
"""
import os
import threading
import time
import weakref


class DistError(RuntimeError):
    """torch.distributed.DistError."""
    __module__ = "dtrain.distributed"


class DistBackendError(DistError):
    """torch.distributed.DistBackendError: a collective failed or timed out."""
    __module__ = "dtrain.distributed"


# the MPI backends of live groups: a waiting rank answers their peers' "who arrived?" questions
ANSWERING = weakref.WeakSet()
# True when this node runs more ranks than it has cores (set at init): a waiting rank then naps between
# polls, because spinning would steal the core of the very peer it waits for
oversubscribed = False
# a rank that has waited this long answers peers asking who arrived (then again at this interval)
_ANSWER_EVERY_S = 5e-3
# a rank still waiting after this long sleeps _NAP_S between polls instead of spinning. The peer it waits
# for is computing, and a spinning poll loop takes issue slots from it wherever two ranks share a physical
# core (the two vCPUs of a cloud VM are often hyperthreads of one core: a Python spin on one slows a
# matrix product on the other by a third). Fast operations finish within the spin and never sleep.
_NAP_AFTER_S, _NAP_S = 2e-4, 2e-5


def answer_all():
    """Answer the peers asking who arrived, on every live communicator (called from waits)."""
    for backend in list(ANSWERING):
        backend.answer()


def wait(req, deadline_s, on_timeout):
    """Poll `req` until it completes; past `deadline_s` seconds raise `on_timeout()`."""
    if not req.test():
        wait_test(req.test, deadline_s, on_timeout)


def wait_test(test, deadline_s, on_timeout):
    """Call `test()` until it returns True; past `deadline_s` seconds raise `on_timeout()`."""
    start = time.monotonic()
    deadline, answer_at = start + deadline_s, start + _ANSWER_EVERY_S
    spins, napping = 0, False
    while not test():
        spins += 1
        if oversubscribed:
            # ranks outnumber cores: give the core away after every poll, so the peer that holds the data
            # runs now rather than after this rank's time slice
            os.sched_yield()
        if napping:
            time.sleep(_NAP_S)
        elif spins & 63:
            continue
        now = time.monotonic()
        if now > deadline:
            raise on_timeout()
        if now > answer_at:
            answer_all()
            answer_at = now + _ANSWER_EVERY_S
        # these tests are what moves the operation's data, so keep polling while the peers are there to
        # move it; a peer that is late gets the hardware to itself: see _NAP_AFTER_S
        if now - start > 1.0:
            time.sleep(1e-3)
        elif now - start > _NAP_AFTER_S:
            napping = True


class Work:
    """The handle an `async_op=True` call returns (torch.distributed.Work)."""

    def __init__(self, req, timeout_s, on_timeout, finish=None, result=()):
        self._req, self._finish, self._result = req, finish, list(result)
        self._on_timeout = on_timeout
        self._deadline = time.monotonic() + timeout_s
        self._done = threading.Event()
        self._error = None
        self.source = None
        # whoever tests the MPI request holds this: MPI forbids two threads testing one request at once
        self._lock = threading.Lock()
        if req.test():
            self._complete()
        else:
            _progress().add(self)

    def _complete(self):
        try:
            if self._finish is not None:
                self._finish()
            self.source = getattr(self._req, "source", None)
        except BaseException as e:
            self._error = e
        self._done.set()

    def is_completed(self):
        """Whether the operation has finished (with or without an error), as torch's: the request is tested once
        (after any test another thread is running on it), without waiting for the operation."""
        if not self._done.is_set():
            self._lock.acquire()
            try:
                if not self._done.is_set() and self._req.test():
                    self._complete()
            except BaseException as e:
                self._error = e
                self._done.set()
            finally:
                self._lock.release()
        return self._done.is_set()

    def is_success(self):
        return self._done.is_set() and self._error is None

    def exception(self):
        return self._error

    def wait(self, timeout=None):
        """Wait for the operation; raises its error, or a DistBackendError after `timeout`.

        A CUDA operation (NCCL), waited for without a timeout, is waited for as torch's is: the current stream
        of its device waits for the operation's end and the host returns at once. Its timeout is still
        enforced (by the progress thread), and its error breaks the group: the next collective raises it.
        With a timeout, or for a host operation, the calling thread waits."""
        if timeout is not None and hasattr(timeout, "total_seconds"):
            timeout = timeout.total_seconds()
        if timeout == 0:  # torch's default, timedelta(0), means no timeout of the call's own
            timeout = None
        if timeout is None and self._error is None:
            on_device = getattr(self._req, "device_event", None)
            if on_device is not None:
                # even when the host has seen it done, as torch: the stream's order then needs no host knowledge
                _stream_waits(*on_device)
                return True
        if not self._done.is_set():
            # drive the operation from this thread rather than sleeping until the progress thread (which
            # naps between polls so compute keeps the core) gets to it: MPI moves data only inside a test
            start = time.monotonic()
            limit = start + timeout if timeout is not None else self._deadline
            answer_at = start + _ANSWER_EVERY_S
            spins, napping = 0, False
            while not self._done.is_set():
                if self._lock.acquire(blocking=False):
                    try:
                        if not self._done.is_set() and self._req.test():
                            self._complete()
                    except BaseException as e:  # the operation failed: wake everyone with its error
                        self._error = e
                        self._done.set()
                    finally:
                        self._lock.release()
                spins += 1
                if napping:
                    time.sleep(_NAP_S)
                elif spins & 63:
                    continue
                now = time.monotonic()
                if now > limit:
                    if timeout is not None:
                        raise DistBackendError(f"Work.wait timed out after {timeout} s (the operation is still "
                                               f"running)")
                    self._error = self._on_timeout()
                    self._done.set()
                    break
                if now > answer_at:
                    answer_all()
                    answer_at = now + _ANSWER_EVERY_S
                if oversubscribed:
                    os.sched_yield()
                elif now - start > 1.0:
                    time.sleep(1e-3)
                elif now - start > _NAP_AFTER_S:
                    napping = True
        if self._error is not None:
            raise self._error
        return True

    def synchronize(self):
        """torch's Work.synchronize: wait() without a timeout (for NCCL: the current stream waits)."""
        self.wait()

    def result(self):
        self.wait()
        return self._result

    def _source_rank(self):
        return self.source


def _stream_waits(event, device):
    """Make the current stream of `device` (a dtrain device) wait for CUDA `event`, without blocking the host."""
    from .. import _backend
    with _backend.on_device(device):
        device.xp.cuda.get_current_stream().wait_event(event)


class _Progress:
    def __init__(self):
        self._works = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="dtrain-dist-progress", daemon=True)
        self._thread.start()

    def add(self, work):
        with self._cond:
            self._works.append(work)
            self._cond.notify()

    def _loop(self):
        idle, answer_at = 0, 0.0
        while True:
            with self._cond:
                while not self._works:
                    self._cond.wait()
                works = list(self._works)
            now = time.monotonic()
            if now > answer_at:  # outstanding work means this rank has arrived somewhere: say so when asked
                answer_all()
                answer_at = now + _ANSWER_EVERY_S
            finished = []
            for w in works:
                if w._done.is_set():  # a waiter finished it
                    finished.append(w)
                    continue
                if not w._lock.acquire(blocking=False):
                    continue  # a waiter is driving it right now
                try:
                    if w._done.is_set():
                        done = True
                    else:
                        try:
                            done = w._req.test()
                        except BaseException as e:
                            w._error, done = e, None
                        if done:
                            w._complete()
                        elif done is None:
                            w._done.set()
                        elif time.monotonic() > w._deadline:
                            w._error = w._on_timeout()
                            w._done.set()
                        else:
                            continue
                finally:
                    w._lock.release()
                finished.append(w)
            if finished:
                with self._cond:
                    self._works = [w for w in self._works if w not in finished]
                idle = 0
            else:
                idle += 1
                # tight polling drives MPI's progress; napping frees the GIL and the core for compute
                time.sleep(0 if idle < 32 else 5e-5)


_PROGRESS = None
_PROGRESS_LOCK = threading.Lock()


def _progress():
    global _PROGRESS
    if _PROGRESS is None:
        with _PROGRESS_LOCK:
            if _PROGRESS is None:
                _PROGRESS = _Progress()
    return _PROGRESS
