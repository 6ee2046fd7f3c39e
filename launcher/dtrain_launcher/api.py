"""Start the ranks of a job through the MPI launcher (or srun), watch them, tear them down.

One attempt: mpiexec starts every rank through the ``dtrain_launcher._rank`` shim, in a session
of its own. The watch loop ends the attempt at the first failure it sees: an error file in the
attempt's directory (a rank raised, exited non-zero or was killed by a signal) or a non-zero
exit of mpiexec. Teardown then stops every process that carries the job's marker. A failed
attempt is retried up to ``max_restarts`` times.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass

from . import _proc
from ._output import ConsoleServer, relay
from .errors import format_report, read_failures

TERM_GRACE = 2.5  # seconds between SIGTERM and SIGKILL at teardown: every rank is gone within 5 s
_SETTLE = 0.3  # after a failure, time for its last lines of output to reach the console
_POLL = 0.05
_TIMEOUT_EXITCODE = 124  # as coreutils' timeout

@dataclass
class LaunchConfig:
    """What dtrain-run was asked for; `nproc` is the total number of ranks."""

    nproc: int = 1
    hosts: str | None = None
    hostfile: str | None = None
    log_dir: str | None = None
    tee: bool = False
    ranks_filter: list | None = None
    max_restarts: int = 0
    timeout: float | None = None
    master_addr: str | None = None
    master_port: int | None = None
    srun_mpi: str = "pmi2"  # srun's --mpi plugin: pmi2 works with MPICH (the PyPI wheel fails under pmix)


def in_slurm_allocation() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID"))


def find_mpiexec() -> str:
    """The mpiexec of the running Python's environment, else the first on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("mpiexec")
    if found is None:
        raise RuntimeError(f"no mpiexec next to {sys.executable} or on PATH; "
                           "install an MPI, e.g. pip install 'dtrain[mpi]'")
    return found


def _is_open_mpi(mpiexec):
    try:
        out = subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Open MPI" in out or "OpenRTE" in out


def _rank_command(entrypoint):
    return [sys.executable, "-m", "dtrain_launcher._rank", *entrypoint]


def mpiexec_command(config: LaunchConfig, entrypoint: list, mpiexec: str | None = None) -> list:
    mpiexec = mpiexec or find_mpiexec()
    cmd = [mpiexec, "-n", str(config.nproc)]
    if _is_open_mpi(mpiexec):
        cmd += ["--host", config.hosts] if config.hosts else []
        cmd += ["--hostfile", config.hostfile] if config.hostfile else []
        if not (config.hosts or config.hostfile):
            cmd.append("--oversubscribe")  # Open MPI refuses more ranks than cores by default
    else:  # MPICH's hydra
        cmd += ["-hosts", config.hosts] if config.hosts else []
        cmd += ["-f", config.hostfile] if config.hostfile else []
    return cmd + _rank_command(entrypoint)


def srun_command(config: LaunchConfig, entrypoint: list) -> list:
    """The job step inside a SLURM allocation; SLURM options belong here."""
    if config.hosts or config.hostfile:
        raise ValueError("--hosts/--hostfile do not apply inside a SLURM allocation: "
                         "the allocation's nodes are used")
    return ["srun", f"--mpi={config.srun_mpi}", "--kill-on-bad-exit=1", f"--ntasks={config.nproc}",
            *_rank_command(entrypoint)]


def _first_host(config):
    if config.hosts:
        return config.hosts.split(",")[0].split(":")[0]
    if config.hostfile:
        with open(config.hostfile) as f:
            for line in f:
                line = line.split("#")[0].strip()
                if line:
                    return line.split(":")[0].split()[0]
    return socket.gethostname() if in_slurm_allocation() else "127.0.0.1"


def _free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class _StopSignals:
    """While a job runs, SIGINT/SIGTERM/SIGHUP set a flag that the watch loop acts on."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self):
        self.signum = None
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        self.signum = self.signum or signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _teardown(proc, marker, grace=TERM_GRACE):
    """Stop every process of the attempt: ranks first with SIGTERM, then anything left with SIGKILL."""
    # mpiexec (and its local proxy) are spared the SIGTERM: they pass the ranks' last lines of
    # output on and exit by themselves once the ranks are gone
    found = _proc.find_processes(marker)
    spared = {proc.pid} | {pid for pid, ppid in found.items() if ppid == proc.pid}
    _proc.signal_all([pid for pid in found if pid not in spared], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _proc.find_processes(marker):
            break
        time.sleep(_POLL)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # mpiexec leads its own session
        except ProcessLookupError:
            pass
    _proc.kill_all(marker)
    proc.wait()


def _parent_death_signal():
    """A preexec_fn that has the kernel SIGTERM mpiexec if dtrain-run itself is SIGKILLed.

    mpiexec and srun stop their ranks on SIGTERM, so even then no rank outlives the job.
    """
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only calls it
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _run_attempt(cmd, env, error_dir, marker, deadline, stop, console):
    """Run the job once; returns ("ok" | "failed" | "timeout" | "stopped", mpiexec's exit code)."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_parent_death_signal(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    relays = [threading.Thread(target=relay, args=(proc.stdout, sys.stdout.buffer), daemon=True),
              threading.Thread(target=relay, args=(proc.stderr, sys.stderr.buffer), daemon=True)]
    for t in relays:
        t.start()
    try:
        while True:
            if stop.signum is not None:
                outcome = "stopped"
                break
            if deadline is not None and time.monotonic() >= deadline:
                outcome = "timeout"
                break
            if os.listdir(error_dir):
                time.sleep(_SETTLE)
                outcome = "failed"
                break
            if proc.poll() is not None:
                if proc.returncode == 0:
                    outcome = "ok"
                else:
                    time.sleep(_SETTLE)  # a dying rank's watcher may still be writing its error file
                    outcome = "failed"
                break
            time.sleep(_POLL)
    finally:
        _teardown(proc, marker)
        for t in relays:
            t.join(timeout=5)
        console.wait_idle(timeout=2.0)
    return outcome, proc.returncode


def launch(config: LaunchConfig, entrypoint: list) -> int:
    """Run `entrypoint` (``[script, *args]`` or ``["-m", module, *args]``) on `config.nproc` ranks.

    Returns dtrain-run's exit code: 0 when every rank exited 0.
    """
    use_srun = in_slurm_allocation()
    cmd = srun_command(config, entrypoint) if use_srun else mpiexec_command(config, entrypoint)
    name = " ".join(entrypoint[:2] if entrypoint[0] == "-m" else entrypoint[:1])
    job_id = uuid.uuid4().hex[:16]
    marker = f"DTRAIN_JOB_ID={job_id}"
    workdir = tempfile.mkdtemp(prefix=f"dtrain-run-{job_id}-")
    env = dict(os.environ)
    for key in ("DTRAIN_LOG_DIR", "DTRAIN_RANKS_FILTER", "DTRAIN_CONSOLE_ADDR"):  # not from an enclosing job
        env.pop(key, None)
    env.update(
        DTRAIN_JOB_ID=job_id,
        TORCHELASTIC_MAX_RESTARTS=str(config.max_restarts),
        MASTER_ADDR=config.master_addr or env.get("MASTER_ADDR") or _first_host(config),
        MASTER_PORT=str(config.master_port or env.get("MASTER_PORT") or _free_port()),
    )
    if config.log_dir:
        env["DTRAIN_LOG_DIR"] = os.path.abspath(config.log_dir)
    if config.ranks_filter is not None:
        env["DTRAIN_RANKS_FILTER"] = ",".join(str(r) for r in config.ranks_filter)

    deadline = time.monotonic() + config.timeout if config.timeout else None
    keep_workdir = False  # a job that ends failed keeps its error files: the report names them
    console = ConsoleServer(workdir, remote=bool(use_srun or config.hosts or config.hostfile))
    env["DTRAIN_CONSOLE_ADDR"] = console.address
    try:
        with _StopSignals() as stop:
            for restart in range(config.max_restarts + 1):
                error_dir = os.path.join(workdir, f"attempt_{restart}")
                os.makedirs(error_dir)
                env.update(DTRAIN_ERROR_DIR=error_dir, DTRAIN_RESTART_COUNT=str(restart),
                           TORCHELASTIC_RESTART_COUNT=str(restart))
                outcome, returncode = _run_attempt(cmd, env, error_dir, marker, deadline, stop, console)
                if outcome == "ok":
                    return 0
                if outcome == "stopped":
                    print(f"dtrain-run: got {signal.Signals(stop.signum).name}, stopped every rank", file=sys.stderr)
                    return 128 + stop.signum
                if outcome == "timeout":
                    print(f"dtrain-run: {name} timed out after {config.timeout:g} s, stopped every rank",
                          file=sys.stderr)
                    return _TIMEOUT_EXITCODE
                print(format_report(name, read_failures(error_dir), returncode), file=sys.stderr, flush=True)
                if restart < config.max_restarts:
                    print(f"dtrain-run: restarting the job ({restart + 1} of {config.max_restarts} restarts)",
                          file=sys.stderr, flush=True)
            keep_workdir = True
            return 1
    finally:
        console.close()
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
