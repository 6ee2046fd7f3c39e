"""The rank's child process: runs the user's code and records how it ended, before it ends.

What the child records itself (the watcher records deaths by signal and bare ``os._exit``):

- an exception, with its traceback, the moment it leaves the script;
- ``sys.exit(n)`` with n != 0, with the traceback of the call (where the script gave up);
- an exception in an atexit handler, which Python only prints and then exits 0.

A failing rank must also not enter MPI's finalisation: MPI_Finalize waits for the other ranks,
which are still inside their collectives, so ``sys.exit(3)`` used to hang the rank until the
others' collective timeout. When the user's code brought MPI up (mpi4py is in sys.modules), a
failure turns mpi4py's exit-time MPI_Finalize into MPI_Abort, the way ``python -m mpi4py`` does
for an uncaught exception. Python's own finalisation (atexit handlers, flushing open files)
still runs before it.

Stdlib only: this is the launcher's code, inside the rank.
"""
import atexit
import faulthandler
import fcntl
import os
import signal
import socket
import sys
import termios
import time
import traceback

_DRAIN_S = 1.0  # at most this long for the watcher to read the last lines before MPI_Abort


def error_file(rank):
    error_dir = os.environ.get("DTRAIN_ERROR_DIR")
    return os.path.join(error_dir, f"error_rank{rank}.json") if error_dir else None


def fault_file(rank):
    """Where faulthandler writes the Python stacks of a rank that dies from SIGSEGV, SIGABRT, ..."""
    error_dir = os.environ.get("DTRAIN_ERROR_DIR")
    return os.path.join(error_dir, f"fault_rank{rank}.txt") if error_dir else None


def write_error_file(info: dict):
    import json

    path = error_file(info["rank"])
    if path is None:
        return
    info.setdefault("pid", os.getpid())
    info.update(host=socket.gethostname(), time=time.time())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # write then rename: dtrain-run polls the directory and must never read half a file
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)


def die_with_parent(parent_pid):
    # if the watcher is SIGKILLed (hydra's cleanup does that), the child must not live on
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _exit_status(exc: SystemExit) -> int:
    """The status Python's own exit would give for `exc` (printing a non-integer code, as it does)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


class _Ending:
    """How the user's code ended; the child's last atexit handler acts on it."""

    def __init__(self, env):
        self.env = env
        self.code = 0
        self.recorded = False
        self.atexit_error = None  # (type, value, traceback) of the first failing atexit handler

    def record(self, exc, code, tb, extra=""):
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        message = str(exc.code if isinstance(exc, SystemExit) else exc)
        write_error_file({"rank": self.env["RANK"], "local_rank": self.env["LOCAL_RANK"], "exitcode": code,
                          "type": type(exc).__qualname__, "message": message + extra, "traceback": text})
        self.recorded = True

    def unraisable(self, previous):
        def hook(unraisable):
            # Python reports an exception in an atexit handler here and carries on to exit 0
            if self.atexit_error is None and "atexit" in (unraisable.err_msg or ""):
                self.atexit_error = (unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)
            previous(unraisable)
        return hook

    def last_word(self):
        """Registered before the user's code runs, so it runs after every atexit handler the code added."""
        if self.atexit_error is not None and not self.code:
            _, value, tb = self.atexit_error
            self.code = 1
            self.record(value, 1, tb, extra=" (in an atexit handler)")
        if not self.code:
            return
        mpi = sys.modules.get("mpi4py.MPI")
        try:
            up = (mpi is not None and hasattr(mpi, "_set_abort_status")  # mpi4py >= 3.1
                  and mpi.Is_initialized() and not mpi.Is_finalized())
        except Exception:
            up = False
        if up:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            _wait_drained((1, 2), _DRAIN_S)  # MPI_Abort has hydra kill the watcher: let it read first
            mpi._set_abort_status(self.code)


def _wait_drained(fds, timeout):
    """Wait (bounded) until the watcher has read everything written to the pipes `fds`."""
    deadline = time.monotonic() + timeout
    for fd in fds:
        while time.monotonic() < deadline:
            try:
                pending = int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
            except OSError:
                break
            if not pending:
                break
            time.sleep(0.005)


def run_user_code(argv, env) -> int:
    """Run the script or module in `argv` as ``python`` would; returns the exit status."""
    import runpy

    ending = _Ending(env)
    atexit.register(ending.last_word)
    sys.unraisablehook = ending.unraisable(sys.unraisablehook)
    path = fault_file(env["RANK"])
    if path is not None:
        # a rank killed by SIGSEGV, SIGBUS, SIGABRT, SIGFPE or SIGILL leaves its Python stacks here
        faulthandler.enable(file=open(path, "w"), all_threads=True)

    if argv[0] == "-m":
        module = argv[1]
        sys.argv = [module] + argv[2:]  # run_module puts the module's file path in argv[0]
        run = lambda: runpy.run_module(module, run_name="__main__", alter_sys=True)  # noqa: E731
    else:
        script = argv[0]
        sys.argv = list(argv)
        # `python -m dtrain_launcher._rank` put the cwd first on sys.path; `python script.py` puts
        # the script's directory there (run_path does it itself for directories and zip files)
        if os.path.isfile(script):
            sys.path[0] = os.path.dirname(os.path.realpath(script))
        run = lambda: runpy.run_path(script, run_name="__main__")  # noqa: E731
    shim_files = (__file__, runpy.__file__, "<frozen runpy>")
    try:
        run()
    except BaseException as exc:
        ending.code = _exit_status(exc) if isinstance(exc, SystemExit) else 1
        if ending.code:
            tb = exc.__traceback__
            # the report should start in the user's code, not in this shim or in runpy
            while tb is not None and tb.tb_frame.f_code.co_filename in shim_files:
                tb = tb.tb_next
            if not isinstance(exc, SystemExit):
                try:
                    sys.stdout.flush()
                except Exception:
                    pass
                sys.stderr.write("".join(traceback.format_exception(type(exc), exc, tb)))
                sys.stderr.flush()
            ending.record(exc, ending.code, tb)
    return ending.code
