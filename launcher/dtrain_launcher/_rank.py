"""Per-rank entry point: ``python -m dtrain_launcher._rank (script.py | -m module) [args]``.

Sets the torch-style rank variables from the ones the MPI launcher (or srun) sets, then forks.
The child runs the user's code with runpy (`_child.py`), so ``__name__ == "__main__"`` and
``sys.argv`` are what ``python script.py args`` would give. The parent stays behind as a small
watcher: it prefixes and tees the child's output and records how the child ended. Because the
watcher is a separate process (outside the child's process group, holding the child's PMI
connection until it has written its record), a rank killed by a signal, crashing in native code
or leaving by ``os._exit`` is still reported, and its last lines of output are not lost with it.

Stdlib only, and cheap to import: this runs once per rank.
"""
import os
import signal
import socket
import sys
import time

from ._child import die_with_parent, error_file, fault_file, run_user_code, write_error_file

# Signals sent to a rank (by dtrain-run's teardown, hydra, or a user) are passed on to the child.
# The first four mean "stop": a child that dies from them is not a root cause worth reporting.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
_FORWARDED_SIGNALS = _STOP_SIGNALS + (signal.SIGUSR1, signal.SIGUSR2)
_MAX_PENDING = 1 << 16  # emit a partial line once this many bytes wait for a newline
# a progress bar's update ("\r" then the bar, no end): shown once its writer has been quiet this long, so the
# console shows the bar's latest state, not the one before it (a bar's write rarely arrives in two reads)
_BAR_QUIET_S = 0.05


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
        # per stream: what is pending follows a "\r" (a progress bar redrawing its line), and whether the
        # console's current line already starts with our prefix (a bar drawn, no newline yet)
        self.after_cr = {1: False, 2: False}
        self.line_open = {1: False, 2: False}
        self.stopping = False
        self.segments = None  # the MPI segments in /dev/shm the child mapped, when it was told to stop
        self.sockets = {fd: _connect_console(fd) for fd in (1, 2)} if self.console else {}

    def forward(self, signum, frame):
        if signum in _STOP_SIGNALS:
            self.stopping = True
            if self.segments is None:  # read while the child is alive, removed once it is gone
                self.segments = _shm_segments_of(self.pid)
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def _prefixed(self, fd, line):
        """`line` as the console gets it: our prefix once per visual line. Text gets it, a redrawn bar each
        time (a "\r" puts the cursor back before the prefix); a "\r" alone (a bar about to redraw) or after
        blanks only (a bar erasing itself) gets none, nor does the newline that ends a bar's line."""
        if line.strip(b" \t\r\n"):
            self.line_open[fd] = line.endswith(b"\r")
            return self.prefix + line
        if line.endswith(b"\r"):
            self.line_open[fd] = False
            # blanks over a bar the width of the bar's own text: our prefix's width more clears it all
            return line[:-1] + b" " * len(self.prefix) + b"\r" if len(line) > 1 else line
        if self.line_open[fd]:
            self.line_open[fd] = False
            return line
        return self.prefix + line  # the script's own blank line

    def _emit(self, fd, lines, log=True):
        if self.log is not None and log:
            self.log.write(b"".join(lines))
        if self.console:
            data = b"".join(self._prefixed(fd, line) for line in lines)
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
            self.after_cr[fd] = buf[cut - 1:cut] == b"\r"
        self.pending[fd] = buf[cut:]

    def bar_due(self):
        """Whether a progress bar's update waits (see _BAR_QUIET_S)."""
        return any(self.pending[fd] and self.after_cr[fd] for fd in self.pending)

    def show_bars(self):
        """Emit each waiting bar update, ended by a "\r" of ours: the cursor is back where the bar's own next
        "\r" would put it, and the console server (which writes whole lines only) passes it on."""
        for fd in self.pending:
            if self.pending[fd] and self.after_cr[fd]:
                bar, self.pending[fd] = self.pending[fd], b""
                if self.log is not None:  # the log gets the bytes as written, without our "\r"
                    self.log.write(bar)
                self._emit(fd, [bar + b"\r"], log=False)

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
            events = sel.select(_BAR_QUIET_S if self.bar_due() else None if pidfd is not None else 0.1)
            if not events and self.bar_due():
                self.show_bars()
            for key, _ in events:
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
        """Record a failure (unless it was a requested stop) and exit the way the child did.

        Until this process exits it holds the child's PMI connection open (see `main`), so hydra
        learns of the death only after the record is on disk.
        """
        rank, local_rank = self.env["RANK"], self.env["LOCAL_RANK"]
        if self.log is not None:
            self.log.close()
        # The job is being stopped. MPICH unlinks its segment only in MPI_Finalize, and when
        # dtrain-run itself was killed nobody else is left to remove it (the other ranks still
        # mapping it keep their mapping; a restarted job has segments of other names).
        for segment in self.segments or ():
            try:
                os.unlink(segment)
            except OSError:
                pass
        path = error_file(rank)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if not self.stopping:
                name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
                write_error_file({"rank": rank, "local_rank": local_rank, "pid": self.pid, "exitcode": -sig,
                                  "signal": sig, "type": None, "message": f"killed by signal {sig} ({name})",
                                  "traceback": _fault_stacks(rank)})
            # die the same way, so whoever started this rank sees what happened to the child
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
                pass
            os.kill(os.getpid(), sig)
            time.sleep(1)
            os._exit(128 + sig)
        code = os.waitstatus_to_exitcode(status)
        recorded = path is not None and os.path.exists(path)
        if code and not self.stopping and path and not recorded:
            write_error_file({"rank": rank, "local_rank": local_rank, "pid": self.pid, "exitcode": code,
                              "type": None, "message": f"exited with code {code}", "traceback": None})
        if not code and recorded:
            code = 1  # the child recorded a failure Python exits 0 after (an exception in an atexit handler)
        os._exit(code)


def _shm_segments_of(pid):
    """The MPICH segments in /dev/shm that process `pid` maps."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            paths = {line[line.index(" /dev/shm/mpich_") + 1:].rstrip("\n") for line in f if " /dev/shm/mpich_" in line}
    except OSError:
        return set()
    return {path for path in paths if not path.endswith(" (deleted)")}


def _write_start_record(env, child):
    """started_rank<N>.json: which processes are this rank, for a report hydra alone can give (see errors)."""
    import json

    error_dir = os.environ.get("DTRAIN_ERROR_DIR")
    if not error_dir:
        return
    path = os.path.join(error_dir, f"started_rank{env['RANK']}.json")
    try:
        with open(f"{path}.tmp", "w") as f:
            json.dump({"rank": env["RANK"], "local_rank": env["LOCAL_RANK"], "host": socket.gethostname(),
                       "pid": os.getpid(), "child": child}, f)
        os.replace(f"{path}.tmp", path)
    except OSError:
        pass


def _fault_stacks(rank):
    """The Python stacks faulthandler wrote when the child died from a fatal signal, or None."""
    path = fault_file(rank)
    try:
        with open(path, errors="replace") as f:
            lines = f.read().strip().splitlines()
    except (OSError, TypeError):
        return None
    # the frames of this shim and of runpy under the user's code, and the list of extension
    # modules, say nothing about the crash
    shim = os.path.dirname(os.path.abspath(__file__)) + os.sep
    lines = [line for line in lines if shim not in line and "<frozen runpy>" not in line
             and not line.startswith("Extension modules:")]
    return "\n".join(lines).strip() + "\n" if lines else None


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
    # The child leads a process group of its own (both sides set it: no race on who runs first).
    # hydra's cleanup signals the watcher's group; a signal to the rank's group (`kill -9 -PGID`
    # of the python process one sees in ps) then reaches only the child, and this watcher lives
    # to record it. The child still dies with the watcher (parent-death signal).
    try:
        os.setpgid(0 if pid == 0 else pid, 0 if pid == 0 else pid)
    except OSError:
        pass
    if pid == 0:
        die_with_parent(parent)
        for fd, (r, w) in pipes.items():
            os.close(r)
            os.dup2(w, fd)
            os.close(w)
        # stdout is a pipe now; line buffering keeps a rank's output streaming, as on a terminal
        if sys.stdout is not None:
            sys.stdout.reconfigure(line_buffering=True)
        sys.exit(run_user_code(argv, env))

    for r, w in pipes.values():
        os.close(w)
    # Only the child speaks PMI, but this process keeps its own copy of the connection (PMI_FD)
    # open until it exits. hydra SIGKILLs the process group of every rank as soon as a rank's
    # PMI connection closes before PMI finalize: were the child's death the moment the
    # connection closed, this watcher would be killed with the rest before it had recorded how
    # the child died (os._exit, SIGKILL, SIGSEGV were reported as hydra's "exit code 9").
    _write_start_record(env, pid)
    watcher = _Watcher(pid, env)
    for sig in _FORWARDED_SIGNALS:
        signal.signal(sig, watcher.forward)
    watcher.finish(watcher.run({fd: r for fd, (r, w) in pipes.items()}))


if __name__ == "__main__":
    main()
