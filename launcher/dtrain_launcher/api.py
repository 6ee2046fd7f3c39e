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

from . import _proc, _shm
from ._output import BannerFilter, ConsoleServer, relay
from .errors import format_report, launcher_account, read_failures

TERM_GRACE = 2.5  # seconds between SIGTERM and SIGKILL at teardown: every rank is gone within 5 s
_SETTLE = 0.3  # after a failure, time for its last lines of output to reach the console
_POLL = 0.05
_TIMEOUT_EXITCODE = 124  # as coreutils' timeout
KEEP_FAILED_RUNS = 10  # run directories of failed jobs kept in the temp dir (DTRAIN_KEEP_FAILED_RUNS)
_FAILED_MARK = "FAILED"  # in a run directory kept after a failure; only those are ever pruned

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


def clean_allocation_nodes():
    """Remove the shared-memory files killed ranks left on the allocation's nodes, before a job step starts.

    A requeued job reuses its job and step ids, and MPICH names its segments after them (see `_shm`).
    One node: done here. Several: one task per node, in a step of its own (each step has its own id).
    """
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES") or 1)
    if nodes <= 1:
        _shm.remove_stale_segments()
        return
    subprocess.run(["srun", "--mpi=none", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1",
                    sys.executable, "-m", "dtrain_launcher._shm"], check=False, timeout=120)


def job_hosts(config: LaunchConfig) -> list:
    """The machines of a ``--hosts``/``--hostfile`` job, each once, in order (``h1:4,h2:4``; a hostfile's
    ``h1:4`` or ``h1 slots=4`` lines)."""
    if config.hosts:
        names = [item.split(":")[0].strip() for item in config.hosts.split(",")]
    elif config.hostfile:
        with open(config.hostfile) as f:
            names = [line.split("#")[0].strip().split(":")[0].split()[0] for line in f if line.split("#")[0].strip()]
    else:
        return []
    return list(dict.fromkeys(name for name in names if name))


_CLEAN_TIMEOUT_S = 60


def clean_job_hosts(hosts: list, age_s: float, mpiexec: str | None = None, env: dict | None = None) -> list:
    """Remove, on each of `hosts`, the MPI segments in /dev/shm that an attempt started `age_s` seconds ago left
    there (see `_shm`): one task per host, through the MPI launcher that started the ranks (`mpiexec`, with the
    ranks' environment `env`, which holds its settings). Returns ``"<host> <name>"`` for each segment removed;
    nothing is removed on a host that cannot be reached."""
    mpiexec = mpiexec or find_mpiexec()
    cmd = [mpiexec, "-n", str(len(hosts))]
    if _is_open_mpi(mpiexec):
        cmd += ["--host", ",".join(hosts), "--map-by", "ppr:1:node"]
    else:
        cmd += ["-hosts", ",".join(hosts), "-ppn", "1"]
    # a second's margin for the start of this step; what anyone still maps is left alone whatever its age
    cmd += [sys.executable, "-m", "dtrain_launcher._shm", "--newer-than", f"{age_s + 1.0:.3f}"]
    try:
        done = subprocess.run(cmd, env=os.environ if env is None else env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_CLEAN_TIMEOUT_S, start_new_session=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in done.stdout.splitlines() if line.count(" ") == 1]


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


class _Attempt:
    """One run of every rank: the MPI launcher started, its output relayed until `close()`."""

    def __init__(self, cmd, env, error_dir, marker, console, hosts=()):
        self.error_dir, self.marker, self.console, self.hosts = error_dir, marker, console, hosts
        self.started, self.shm_before, self.cmd, self.env = time.time(), _shm.snapshot(), cmd, env
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_parent_death_signal(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.banners = [BannerFilter(), BannerFilter()]
        self.relays = [threading.Thread(target=relay, args=(self.proc.stdout, sys.stdout.buffer, self.banners[0]),
                                        daemon=True),
                       threading.Thread(target=relay, args=(self.proc.stderr, sys.stderr.buffer, self.banners[1]),
                                        daemon=True)]
        for t in self.relays:
            t.start()

    def outcome(self):
        """None while every rank runs; "ok" once all exited 0, "failed" at the first failure."""
        if any(name.startswith("error_rank") and name.endswith(".json") for name in os.listdir(self.error_dir)):
            time.sleep(_SETTLE)
            return "failed"
        if self.proc.poll() is not None:
            if self.proc.returncode == 0:
                return "ok"
            time.sleep(_SETTLE)  # a dying rank's watcher may still be writing its error file
            return "failed"
        return None

    def failures(self) -> list:
        """The ranks' failures, first observed first (`errors.ProcessFailure`)."""
        return read_failures(self.error_dir)

    def hydra_account(self) -> str | None:
        """hydra's own account of the failure, for when no rank recorded one."""
        for banner in self.banners:
            note = launcher_account(banner.banner, self.error_dir)
            if note:
                return note
        return None

    def close(self):
        """Stop whatever still runs; every process of the attempt is gone when this returns."""
        _teardown(self.proc, self.marker)
        # MPICH removes its /dev/shm segment only in MPI_Finalize; every process of the attempt
        # is gone now, so what it left behind can go
        self.shm_removed = _shm.remove_leftovers(self.shm_before, self.started)
        if self.hosts:  # and on every machine of a --hosts job, through the MPI launcher again
            self.shm_removed += clean_job_hosts(self.hosts, time.time() - self.started, self.cmd[0], self.env)
        for t in self.relays:
            t.join(timeout=5)
        self.console.wait_idle(timeout=2.0)


def _run_attempt(cmd, env, error_dir, marker, deadline, stop, console, hosts):
    """Run the job once; returns ("ok" | "failed" | "timeout" | "stopped", the closed attempt)."""
    attempt = _Attempt(cmd, env, error_dir, marker, console, hosts)
    try:
        while True:
            if stop.signum is not None:
                outcome = "stopped"
                break
            if deadline is not None and time.monotonic() >= deadline:
                outcome = "timeout"
                break
            outcome = attempt.outcome()
            if outcome is not None:
                break
            time.sleep(_POLL)
    finally:
        attempt.close()
    return outcome, attempt


def _job_env(config, job_id, console):
    """The environment every rank of the job starts with."""
    env = dict(os.environ)
    for key in ("DTRAIN_LOG_DIR", "DTRAIN_RANKS_FILTER", "DTRAIN_CONSOLE_ADDR"):  # not from an enclosing job
        env.pop(key, None)
    env.update(
        DTRAIN_JOB_ID=job_id,
        TORCHELASTIC_MAX_RESTARTS=str(config.max_restarts),
        MASTER_ADDR=config.master_addr or env.get("MASTER_ADDR") or _first_host(config),
        MASTER_PORT=str(config.master_port or env.get("MASTER_PORT") or _free_port()),
        DTRAIN_CONSOLE_ADDR=console.address,
    )
    if config.log_dir:
        env["DTRAIN_LOG_DIR"] = os.path.abspath(config.log_dir)
    if config.ranks_filter is not None:
        env["DTRAIN_RANKS_FILTER"] = ",".join(str(r) for r in config.ranks_filter)
    return env


_OUTER_JOB = ("PMI_", "PMIX_", "MPI_LOCAL", "OMPI_", "HYDRA_")  # the DTRAIN_ ones are set anew


class Job:
    """A job started from Python rather than from the command line (`dtrain.multiprocessing.spawn`).

    One attempt, no restarts, no report and no signal handlers of its own: the caller polls `outcome()`,
    reads `failures()` and calls `close()`, which stops every rank still running. `extra_env` is added to
    each rank's environment (``DTRAIN_PREFIX_OUTPUT=0`` leaves the ranks' lines unprefixed); `files`
    ({name: bytes}) are written to the job's directory before any rank starts, and the ranks find that
    directory in DTRAIN_JOB_DIR.
    """

    def __init__(self, config: LaunchConfig, entrypoint: list, extra_env: dict | None = None,
                 files: dict | None = None):
        use_srun = in_slurm_allocation()
        cmd = srun_command(config, entrypoint) if use_srun else mpiexec_command(config, entrypoint)
        job_id = uuid.uuid4().hex[:16]
        self.workdir = tempfile.mkdtemp(prefix=f"dtrain-job-{job_id}-")
        self.error_dir = os.path.join(self.workdir, "attempt_0")
        os.makedirs(self.error_dir)
        for name, data in (files or {}).items():
            with open(os.path.join(self.workdir, name), "wb") as f:
                f.write(data)
        self._console = ConsoleServer(self.workdir, remote=bool(use_srun or config.hosts or config.hostfile))
        # started from inside a rank of another job: that job's MPI and launcher variables stay out
        env = {k: v for k, v in _job_env(config, job_id, self._console).items() if not k.startswith(_OUTER_JOB)}
        env.update(extra_env or {}, DTRAIN_JOB_DIR=self.workdir, DTRAIN_ERROR_DIR=self.error_dir,
                   DTRAIN_RESTART_COUNT="0", TORCHELASTIC_RESTART_COUNT="0")
        self._closed = False
        try:
            self._attempt = _Attempt(cmd, env, self.error_dir, f"DTRAIN_JOB_ID={job_id}", self._console,
                                     [] if use_srun else job_hosts(config))
        except BaseException:
            self._console.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    def outcome(self):
        """None while it runs, else "ok" or "failed" (see `failures()`)."""
        return self._attempt.outcome()

    def failures(self) -> list:
        """The ranks' failures, first observed first (`errors.ProcessFailure`)."""
        return self._attempt.failures()

    @property
    def returncode(self):
        return self._attempt.proc.returncode

    def close(self):
        """Stop every rank still running and remove the job's files."""
        if self._closed:
            return
        self._closed = True
        try:
            self._attempt.close()
        finally:
            self._console.close()
            shutil.rmtree(self.workdir, ignore_errors=True)


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
    deadline = time.monotonic() + config.timeout if config.timeout else None
    keep_workdir = False  # a job that ends failed keeps its error files: the report names the directory
    console = ConsoleServer(workdir, remote=bool(use_srun or config.hosts or config.hostfile))
    env = _job_env(config, job_id, console)
    hosts = [] if use_srun else job_hosts(config)
    try:
        with _StopSignals() as stop:
            for restart in range(config.max_restarts + 1):
                error_dir = os.path.join(workdir, f"attempt_{restart}")
                os.makedirs(error_dir)
                env.update(DTRAIN_ERROR_DIR=error_dir, DTRAIN_RESTART_COUNT=str(restart),
                           TORCHELASTIC_RESTART_COUNT=str(restart))
                if use_srun:
                    clean_allocation_nodes()
                outcome, attempt = _run_attempt(cmd, env, error_dir, marker, deadline, stop, console, hosts)
                if outcome == "ok":
                    return 0
                if outcome == "stopped":
                    print(f"dtrain-run: got {signal.Signals(stop.signum).name}, stopped every rank", file=sys.stderr)
                    return 128 + stop.signum
                if outcome == "timeout":
                    print(f"dtrain-run: {name} timed out after {config.timeout:g} s, stopped every rank",
                          file=sys.stderr)
                    return _TIMEOUT_EXITCODE
                print(format_report(name, attempt.failures(), attempt.proc.returncode, attempt.hydra_account()),
                      file=sys.stderr, flush=True)
                if restart < config.max_restarts:
                    print(f"dtrain-run: restarting the job ({restart + 1} of {config.max_restarts} restarts)",
                          file=sys.stderr, flush=True)
            keep_workdir = True
            keep = _keep_failed_runs()
            print(f"dtrain-run: the error files of every attempt are in {workdir} (kept with the {keep} most "
                  "recent failed runs; DTRAIN_KEEP_FAILED_RUNS sets how many)", file=sys.stderr, flush=True)
            _prune_failed_runs(workdir, keep)
            return 1
    finally:
        console.close()
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _keep_failed_runs():
    try:
        return max(1, int(os.environ.get("DTRAIN_KEEP_FAILED_RUNS", KEEP_FAILED_RUNS)))
    except ValueError:
        return KEEP_FAILED_RUNS


def _prune_failed_runs(workdir, keep):
    """Mark `workdir` as a failed run's and remove the oldest such directories beyond `keep`.

    Only directories marked by a failed run are candidates: those of jobs still running are never touched.
    """
    with open(os.path.join(workdir, _FAILED_MARK), "w") as f:
        f.write(f"{time.time()!r}\n")
    parent = os.path.dirname(workdir)
    failed = []
    for name in os.listdir(parent):
        mark = os.path.join(parent, name, _FAILED_MARK)
        if name.startswith("dtrain-run-"):
            try:
                failed.append((os.stat(mark).st_mtime, os.path.join(parent, name)))
            except OSError:
                continue
    for _, path in sorted(failed, reverse=True)[keep:]:
        if path != workdir:
            shutil.rmtree(path, ignore_errors=True)
