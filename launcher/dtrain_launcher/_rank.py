"""Per-rank entry point: ``python -m dtrain_launcher._rank (script.py | -m module) [args]``.

Sets the torch-style rank variables from the ones the MPI launcher (or srun) sets, then forks.
The child runs the user's code with runpy, so ``__name__ == "__main__"`` and ``sys.argv`` are
what ``python script.py args`` would give. The parent stays behind as a small watcher: it
prefixes and tees the child's output and records how the child ended. Because the watcher is a
separate process, a rank killed by a signal (or crashing in native code) is still reported with
its signal, and its last lines of output are not lost with it.

Stdlib only, and cheap to import: this runs once per rank.
"""
import json
import os
import signal
import socket
import sys
import time

# Signals sent to a rank (by dtrain-run's teardown, hydra, or a user) are passed on to the child.
# The first four mean "stop": a child that dies from them is not a root cause worth reporting.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_FORWARDED_SIGNALS = _STOP_SIGNALS + (signal.SIGUSR1, signal.SIGUSR2)
_MAX_PENDING = 1 << 16  # emit a partial line once this many bytes wait for a newline


def _env_int(*names):
    for name in names:
        value = os.environ.get(name)
        if value:
            return int(value)
    return None


def _slurm_local_world_size():
    # SLURM_STEP_TASKS_PER_NODE looks like "4(x2),3": tasks on each node of the step, in node order
    spec = os.environ.get("SLURM_STEP_TASKS_PER_NODE") or os.environ.get("SLURM_TASKS_PER_NODE")
    if not spec:
        return None
    counts = []
    for part in spec.split(","):
        count, _, repeat = part.partition("(x")
        counts += [int(count)] * (int(repeat.rstrip(")")) if repeat else 1)
    node = int(os.environ.get("SLURM_NODEID", "0"))
    return counts[node] if node < len(counts) else None


def rank_env() -> dict:
    """RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE from MPICH/hydra, Open MPI or SLURM variables."""
    world_size = _env_int("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS", "WORLD_SIZE") or 1
    local_world_size = (_env_int("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")
                        or _slurm_local_world_size() or _env_int("LOCAL_WORLD_SIZE") or world_size)
    return {
        "RANK": _env_int("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "RANK") or 0,
        "LOCAL_RANK": _env_int("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "LOCAL_RANK") or 0,
        "WORLD_SIZE": world_size,
        "LOCAL_WORLD_SIZE": local_world_size,
    }


def _error_file(rank):
    error_dir = os.environ.get("DTRAIN_ERROR_DIR")
    return os.path.join(error_dir, f"error_rank{rank}.json") if error_dir else None


def _write_error_file(info: dict):
    path = _error_file(info["rank"])
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


# ---------------------------------------------------------------- the child: the user's code
def _die_with_parent(parent_pid):
    # if the watcher is SIGKILLed (hydra's cleanup does that), the child must not live on
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _run_user_code(argv, env) -> int:
    import runpy
    import traceback

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
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        # the report should start in the user's code, not in this shim or in runpy
        while tb is not None and tb.tb_frame.f_code.co_filename in shim_files:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        try:
            sys.stdout.flush()
        except Exception:
            pass
        sys.stderr.write(text)
        sys.stderr.flush()
        _write_error_file({"rank": env["RANK"], "local_rank": env["LOCAL_RANK"], "exitcode": 1,
                           "type": type(exc).__qualname__, "message": str(exc), "traceback": text})
        return 1
    return 0


# ---------------------------------------------------------------- the parent: the watcher
def _connect_console(fd):
    """A socket to dtrain-run's console server for stdout (1) or stderr (2), or None.

    Whole lines sent there reach the console whole; mpiexec's forwarding (fd 1 and 2, the
    fallback) may tear them under load.
    """
    address = os.environ.get("DTRAIN_CONSOLE_ADDR", "")
    kind, _, where = address.partition(":")
    try:
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(where)
        elif kind == "tcp":
            host, _, port = where.rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.settimeout(None)
        else:
            return None
        sock.sendall(str(fd).encode())
        return sock
    except (OSError, ValueError):
        return None


class _Watcher:
    def __init__(self, pid, env):
        self.pid, self.env = pid, env
        rank = env["RANK"]
        prefixed = env["WORLD_SIZE"] > 1 and os.environ.get("DTRAIN_PREFIX_OUTPUT", "1") != "0"
        self.prefix = f"[{rank}] ".encode() if prefixed else b""
        ranks_filter = os.environ.get("DTRAIN_RANKS_FILTER")
        self.console = not ranks_filter or rank in {int(r) for r in ranks_filter.split(",")}
        self.log = None
        log_dir = os.environ.get("DTRAIN_LOG_DIR")
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            # a restarted or requeued job appends: the log of the failed run is what one wants to read
            restarts = os.environ.get("DTRAIN_RESTART_COUNT", "0"), os.environ.get("SLURM_RESTART_COUNT", "0")
            mode = "ab" if any(count not in ("", "0") for count in restarts) else "wb"
            self.log = open(os.path.join(log_dir, f"rank{rank}.log"), mode, buffering=0)
        self.pending = {1: b"", 2: b""}
        self.stopping = False
        self.sockets = {fd: _connect_console(fd) for fd in (1, 2)} if self.console else {}

    def forward(self, signum, frame):
        if signum in _STOP_SIGNALS:
            self.stopping = True
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def _emit(self, fd, lines):
        if self.log is not None:
            self.log.write(b"".join(lines))
        if self.console:
            data = b"".join(self.prefix + line for line in lines)
            try:
                if self.sockets.get(fd) is not None:
                    self.sockets[fd].sendall(data)
                else:
                    while data:
                        data = data[os.write(fd, data):]
            except OSError:  # the launcher's side is gone: keep logging, stop writing
                self.console = False

    def feed(self, fd, data, final=False):
        buf = self.pending[fd] + data
        # hold a trailing "\r": it may be the first half of "\r\n"
        end = len(buf) - 1 if (buf.endswith(b"\r") and not final) else len(buf)
        cut = max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end)) + 1
        if final or len(buf) - cut > _MAX_PENDING:
            cut = len(buf)
        if cut:
            lines = buf[:cut].splitlines(keepends=True)
            if not lines[-1].endswith((b"\n", b"\r")):
                lines[-1] += b"\n"
            self._emit(fd, lines)
        self.pending[fd] = buf[cut:]

    def run(self, pipes) -> int:
        """Relay output until the child exits; returns its wait status."""
        import selectors

        sel = selectors.DefaultSelector()
        for fd, source in pipes.items():
            sel.register(source, selectors.EVENT_READ, fd)
        try:
            # readable when the child exits: no polling, and no waiting on a daemon it left
            # holding the pipes open
            pidfd = os.pidfd_open(self.pid)
            sel.register(pidfd, selectors.EVENT_READ, None)
        except (AttributeError, OSError):
            pidfd = None
        while True:
            if not pipes and pidfd is None:  # nothing left to select on
                return os.waitpid(self.pid, 0)[1]
            for key, _ in sel.select(None if pidfd is not None else 0.1):
                if key.data is None:
                    continue
                data = os.read(key.fd, 1 << 16)
                if data:
                    self.feed(key.data, data)
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    del pipes[key.data]
                    self.feed(key.data, b"", final=True)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
        for fd, source in pipes.items():  # what the child wrote just before it ended
            os.set_blocking(source, False)
            try:
                while data := os.read(source, 1 << 16):
                    self.feed(fd, data)
            except BlockingIOError:
                pass
            self.feed(fd, b"", final=True)
        return status

    def finish(self, status):
        """Record a failure (unless it was a requested stop) and exit the way the child did."""
        rank, local_rank = self.env["RANK"], self.env["LOCAL_RANK"]
        if self.log is not None:
            self.log.close()
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if not self.stopping:
                name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
                _write_error_file({"rank": rank, "local_rank": local_rank, "pid": self.pid, "exitcode": -sig,
                                   "signal": sig, "type": None, "message": f"killed by signal {sig} ({name})",
                                   "traceback": None})
            # die the same way, so whoever started this rank sees what happened to the child
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
                pass
            os.kill(os.getpid(), sig)
            time.sleep(1)
            os._exit(128 + sig)
        code = os.waitstatus_to_exitcode(status)
        path = _error_file(rank)
        if code and not self.stopping and path and not os.path.exists(path):
            _write_error_file({"rank": rank, "local_rank": local_rank, "pid": self.pid, "exitcode": code,
                               "type": None, "message": f"exited with code {code}", "traceback": None})
        os._exit(code)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0] == "-m" and len(argv) < 2):
        sys.exit("usage: python -m dtrain_launcher._rank (script.py | -m module) [args ...]")
    env = rank_env()
    os.environ.update({k: str(v) for k, v in env.items()})
    # ranks sharing a machine would otherwise each start one OpenMP thread per core
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // env["LOCAL_WORLD_SIZE"])))

    pipes = {1: os.pipe(), 2: os.pipe()}
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _die_with_parent(parent)
        for fd, (r, w) in pipes.items():
            os.close(r)
            os.dup2(w, fd)
            os.close(w)
        # stdout is a pipe now; line buffering keeps a rank's output streaming, as on a terminal
        if sys.stdout is not None:
            sys.stdout.reconfigure(line_buffering=True)
        sys.exit(_run_user_code(argv, env))

    for r, w in pipes.values():
        os.close(w)
    # only the child speaks PMI; its connection must close when the child ends, not later
    pmi_fd = os.environ.get("PMI_FD")
    if pmi_fd and pmi_fd.isdigit():
        try:
            os.close(int(pmi_fd))
        except OSError:
            pass
    watcher = _Watcher(pid, env)
    for sig in _FORWARDED_SIGNALS:
        signal.signal(sig, watcher.forward)
    watcher.finish(watcher.run({fd: r for fd, (r, w) in pipes.items()}))


if __name__ == "__main__":
    main()
