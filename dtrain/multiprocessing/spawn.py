"""`spawn` and `start_processes`: `nprocs` processes that run ``fn(i, *args)`` as the ranks of one MPI job.

torch starts them with Python's multiprocessing; here they are started through the MPI launcher (the
machinery behind ``dtrain-run``), so that they form one MPI world and `init_process_group` in each finds its
peers. What is kept from torch: every start method gives fresh interpreters into which the caller's main
module is imported as ``__mp_main__`` (so the script needs its ``if __name__ == "__main__":`` guard), `fn`
and `args` travel by pickle, the index `i` is the rank, and the first process to fail has the others
stopped and is raised in the caller: `ProcessRaisedException` with its traceback when `fn` raised,
`ProcessExitedException` when it exited non-zero or was killed. Processes never outlive the caller
(`daemon` changes nothing).
"""
import multiprocessing
import multiprocessing.spawn as _mp_spawn
import os
import pickle
import signal
import time
import warnings

__all__ = ["ProcessContext", "ProcessException", "ProcessExitedException", "ProcessRaisedException", "spawn",
           "SpawnContext", "start_processes"]

_POLL_S = 0.02


class ProcessException(Exception):
    __slots__ = ["error_index", "error_pid"]

    def __init__(self, msg: str, error_index: int, error_pid: int):
        super().__init__(msg)
        self.msg = msg
        self.error_index = error_index
        self.error_pid = error_pid

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid)


class ProcessRaisedException(ProcessException):
    """A process failed because `fn` raised; the message carries its traceback."""


class ProcessExitedException(ProcessException):
    """A process exited with a non-zero code or was killed by a signal."""

    __slots__ = ["exit_code"]

    def __init__(self, msg: str, error_index: int, error_pid: int, exit_code: int, signal_name: str | None = None):
        super().__init__(msg, error_index, error_pid)
        self.exit_code = exit_code
        self.signal_name = signal_name

    def __reduce__(self):
        return type(self), (self.msg, self.error_index, self.error_pid, self.exit_code, self.signal_name)


class ProcessContext:
    """The processes `start_processes(..., join=False)` started; `join()` waits for them."""

    def __init__(self, job, nprocs):
        self._job, self.nprocs = job, nprocs
        self._done = False
        self._pids = {}

    def pids(self):
        """The process ids, by index (waits until every process has started, or the job has ended)."""
        while not self._done and len(self._pids) < self.nprocs:
            for i in range(self.nprocs):
                if i not in self._pids:
                    try:
                        with open(os.path.join(self._job.workdir, f"pid{i}")) as f:
                            self._pids[i] = int(f.read())
                    except (OSError, ValueError):
                        pass
            if len(self._pids) < self.nprocs:
                if self._job.outcome() is not None:
                    break
                time.sleep(_POLL_S)
        return [self._pids[i] for i in sorted(self._pids)]

    def join(self, timeout: float | None = None, grace_period: float | None = None):
        """Wait up to `timeout` seconds (None: until they end); True once every process exited 0.

        False when some still run at the timeout. When one fails, the others get `grace_period` seconds to
        end by themselves, are then stopped (SIGTERM, then SIGKILL), and the failure is raised."""
        if self._done:
            return True
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while (outcome := self._job.outcome()) is None:
                if end is not None and time.monotonic() >= end:
                    return False
                time.sleep(_POLL_S)
        except BaseException:
            self._close()
            raise
        if outcome == "ok":
            self._close()
            return True
        if grace_period:
            until = time.monotonic() + grace_period
            while self._job.returncode is None and self._job.outcome() != "ok" and time.monotonic() < until:
                time.sleep(_POLL_S)
        failures = self._job.failures()
        trace = _read_trace(self._job.workdir, failures[0].rank) if failures else None
        self._close()
        raise _exception(failures, trace, self._job.returncode)

    def _close(self):
        self._done = True
        self._job.close()

    def __del__(self):
        if not getattr(self, "_done", True):
            self._job.close()


class SpawnContext(ProcessContext):
    def __init__(self, *args, **kwargs):
        warnings.warn("SpawnContext is renamed to ProcessContext since 1.4 release.", stacklevel=2)
        super().__init__(*args, **kwargs)


def _read_trace(workdir, index):
    try:
        with open(os.path.join(workdir, f"error{index}"), "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


def _exception(failures, trace, launcher_code):
    if not failures:  # the MPI launcher itself failed before any process ran
        return ProcessExitedException(f"the MPI launcher exited with code {launcher_code} before any process "
                                      f"reported", error_index=-1, error_pid=-1, exit_code=launcher_code or 1)
    root = failures[0]
    if trace is not None:
        msg = f"\n\n-- Process {root.rank:d} terminated with the following error:\n" + trace
        return ProcessRaisedException(msg, root.rank, root.pid)
    code = root.exitcode
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"<Unknown signal {-code}>"
        return ProcessExitedException(f"process {root.rank:d} terminated with signal {name}", error_index=root.rank,
                                      error_pid=root.pid, exit_code=code, signal_name=name)
    return ProcessExitedException(f"process {root.rank:d} terminated with exit code {code:d}", error_index=root.rank,
                                  error_pid=root.pid, exit_code=code)


def _payload(fn, args):
    """The bytes each process reads: how to rebuild the caller's main module, then (fn, args)."""
    preparation = _mp_spawn.get_preparation_data("dtrain-spawn")  # raises in an unguarded re-import of main
    preparation["start_method"] = "spawn"
    if "authkey" in preparation:  # as multiprocessing hands it to its children (the job's directory is private)
        preparation["authkey"] = bytes(preparation["authkey"])
    try:
        call = pickle.dumps((fn, tuple(args)))
        by_value = False
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle  # a lambda or a nested function: sent by value
        call = cloudpickle.dumps((fn, tuple(args)))
        by_value = True
    return pickle.dumps(preparation) + pickle.dumps(by_value) + call


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Run ``fn(i, *args)`` for i in range(nprocs), each in a process of its own (the ranks of one MPI job).

    join=True waits and returns None (raising the first failure); join=False returns a `ProcessContext`."""
    multiprocessing.get_context(start_method)  # torch's check: ValueError for a method this platform lacks
    if nprocs < 1:
        raise ValueError(f"nprocs must be at least 1, got {nprocs}")
    from dtrain_launcher.api import Job, LaunchConfig
    payload = _payload(fn, args)
    job = Job(LaunchConfig(nproc=nprocs), ["-m", "dtrain.multiprocessing._child"],
              extra_env={"DTRAIN_PREFIX_OUTPUT": "0"}, files={"payload": payload})
    context = ProcessContext(job, nprocs)
    if not join:
        return context
    while not context.join():
        pass


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """Run ``fn(i, *args)`` in `nprocs` processes; see `start_processes`."""
    if start_method != "spawn":
        msg = (f"This method only supports start_method=spawn (got: {start_method}).\n"
               "To use a different start_method use:\n\t\t torch.multiprocessing.start_processes(...)")
        warnings.warn(msg, FutureWarning, stacklevel=2)
    return start_processes(fn, args, nprocs, join, daemon, start_method="spawn")
