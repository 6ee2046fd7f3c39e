"""dtrain-run end to end: real mpiexec, real rank processes, no mocks."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
_CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "dtrain-run")
DTRAIN_RUN = [_CONSOLE_SCRIPT] if os.access(_CONSOLE_SCRIPT, os.X_OK) else [sys.executable, "-m", "dtrain_launcher"]

pytestmark = pytest.mark.skipif(
    shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")) is None,
    reason="needs an MPI launcher (mpiexec)")


def _script(name):
    return os.path.join(SCRIPTS, name)


def _env(marker, **extra):
    # a clean environment: the ranks' values must come from dtrain-run, not from this process
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "DTRAIN_", "TORCHELASTIC_", "PMI_", "MPI_LOCAL"))
           and k not in ("OMP_NUM_THREADS", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
                         "MASTER_ADDR", "MASTER_PORT")}
    env["DTRAIN_TEST_MARKER"] = marker
    env.update(extra)
    return env


def _marked_pids(marker):
    """Live processes that inherited our marker: ranks, their children, mpiexec and its proxies."""
    needle = f"DTRAIN_TEST_MARKER={marker}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X"):  # zombies are dead
            pids.append(int(entry))
    return pids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


@pytest.fixture
def marker():
    marker = uuid.uuid4().hex
    yield marker
    leftovers = _marked_pids(marker)
    for pid in leftovers:  # never leave processes behind for the next test, even on failure
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"orphan processes left behind: {leftovers}"


def run(args, marker, cwd=None, timeout=60, **env):
    return subprocess.run(DTRAIN_RUN + [str(a) for a in args], env=_env(marker, **env), cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def _read_ranks(out_dir, n):
    return [json.load(open(os.path.join(out_dir, f"rank{r}.json"))) for r in range(n)]


def _wait_for_files(paths, timeout=30):
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(p) for p in paths):
        assert time.monotonic() < deadline, f"ranks did not start: missing {[p for p in paths if not os.path.exists(p)]}"
        time.sleep(0.05)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_rank_environment(n, tmp_path, marker):
    res = run(["-n", n, _script("dump_env.py"), tmp_path, "--lr", "0.1"], marker)
    assert res.returncode == 0, res.stderr
    omp = str(max(1, os.cpu_count() // n))
    ports = set()
    for r, info in enumerate(_read_ranks(tmp_path, n)):
        env = info["env"]
        assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"]) == (str(r), str(r), str(n), str(n))
        assert env["OMP_NUM_THREADS"] == omp
        assert env["MASTER_ADDR"] == "127.0.0.1" and int(env["MASTER_PORT"]) > 0
        assert env["DTRAIN_RESTART_COUNT"] == env["TORCHELASTIC_RESTART_COUNT"] == "0"
        assert info["name"] == "__main__" and info["preloaded"] == []
        assert info["argv"] == [_script("dump_env.py"), str(tmp_path), "--lr", "0.1"]
        ports.add(env["MASTER_PORT"])
    assert len(ports) == 1
    # one line per rank, prefixed by its rank only when there is more than one
    out_lines = sorted(res.stdout.splitlines())
    if n == 1:
        assert out_lines == ["stdout of rank 0 of 1"]
        assert "stderr of rank 0" in res.stderr.splitlines()
    else:
        assert out_lines == sorted(f"[{r}] stdout of rank {r} of {n}" for r in range(n))
        assert all(f"[{r}] stderr of rank {r}" in res.stderr.splitlines() for r in range(n))


def test_user_omp_num_threads_is_kept(tmp_path, marker):
    res = run(["-n", 2, _script("dump_env.py"), tmp_path], marker, OMP_NUM_THREADS="3")
    assert res.returncode == 0, res.stderr
    assert [info["env"]["OMP_NUM_THREADS"] for info in _read_ranks(tmp_path, 2)] == ["3", "3"]


def test_module_entrypoint(tmp_path, marker):
    res = run(["-n", 2, "-m", "dump_env", tmp_path, "x"], marker, cwd=SCRIPTS)
    assert res.returncode == 0, res.stderr
    for r, info in enumerate(_read_ranks(tmp_path, 2)):
        assert info["name"] == "__main__"
        assert info["argv"] == [_script("dump_env.py"), str(tmp_path), "x"]  # like python -m
        assert info["env"]["RANK"] == str(r)


def test_ranks_form_one_mpi_world(tmp_path, marker):
    res = run(["-n", 3, _script("mpi_world.py"), tmp_path], marker)
    assert res.returncode == 0, res.stderr
    assert _read_ranks(tmp_path, 3) == [{"size": 3, "rank": r, "sum": 0 + 1 + 2} for r in range(3)]


def test_log_dir_tee_and_ranks_filter(tmp_path, marker):
    out, logs = tmp_path / "out", tmp_path / "logs"
    out.mkdir()
    res = run(["-n", 2, "--log-dir", logs, "--tee", "--ranks-filter", "1", _script("dump_env.py"), out], marker)
    assert res.returncode == 0, res.stderr
    for r in range(2):  # every rank logs, unprefixed, stdout and stderr
        lines = (logs / f"rank{r}.log").read_text().splitlines()
        assert sorted(lines) == sorted([f"stdout of rank {r} of 2", f"stderr of rank {r}"])
    # only rank 1 reaches the console
    assert res.stdout.splitlines() == ["[1] stdout of rank 1 of 2"]
    assert "[1] stderr of rank 1" in res.stderr.splitlines()
    assert "[0]" not in res.stdout + res.stderr


def test_ranks_filter_without_log_dir(tmp_path, marker):
    res = run(["-n", 3, "--ranks-filter", "0,2", _script("dump_env.py"), tmp_path], marker)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == ["[0] stdout of rank 0 of 3", "[2] stdout of rank 2 of 3"]
    assert len(_read_ranks(tmp_path, 3)) == 3  # filtered ranks still ran


@pytest.mark.parametrize("mode, expected", [
    ("raise", ["exitcode  : 1", "RuntimeError: rank 1 failed on purpose"]),
    ("exit", ["exitcode  : 3", "error     : SystemExit: 3", "sys.exit(3)"]),  # where the script gave up
    ("sigkill", ["exitcode  : -9 (signal 9: SIGKILL)", "killed by signal 9 (SIGKILL)"]),
    ("stubborn", ["RuntimeError: rank 1 failed on purpose"]),  # others ignore SIGTERM: SIGKILL follows
])
def test_failure_stops_every_rank_and_names_the_root_cause(mode, expected, tmp_path, marker):
    n = 3
    res = run(["-n", n, _script("misbehave.py"), mode, tmp_path], marker)
    ended = time.time()
    assert res.returncode != 0
    failed_at = float((tmp_path / "failed_at").read_text())
    # the sleeping ranks were stopped well before their 1000 s sleep ended
    assert ended - failed_at < 5.0, f"other ranks lived {ended - failed_at:.1f} s after the failure"
    pids = [int((tmp_path / f"pid{r}").read_text()) for r in range(n)]
    assert not [pid for pid in pids if _alive(pid)]
    assert not _marked_pids(marker)
    report = res.stderr[res.stderr.index("Root Cause"):]
    assert "rank      : 1 (local_rank: 1)" in report
    for text in expected:
        assert text in report
    assert "dtrain_launcher" not in res.stderr  # no trace of the launcher's own machinery
    if mode == "raise":  # the tail of the traceback, starting in the user's script
        assert 'misbehave.py", line' in report and "runpy" not in report


def test_restart_after_failure(tmp_path, marker):
    res = run(["-n", 2, "--max-restarts", 2, _script("flaky.py"), tmp_path], marker)
    assert res.returncode == 0, res.stderr
    assert "ValueError: flaky failure in attempt 0" in res.stderr
    assert "restarting the job (1 of 2 restarts)" in res.stderr
    for r in range(2):
        seen = json.load(open(tmp_path / f"attempt1_rank{r}.json"))
        assert seen == {"DTRAIN_RESTART_COUNT": "1", "TORCHELASTIC_RESTART_COUNT": "1"}
    assert not list(tmp_path.glob("attempt2_*"))


def test_restarts_run_out(tmp_path, marker):
    res = run(["-n", 2, "--max-restarts", 1, _script("flaky.py"), tmp_path, "always"], marker)
    assert res.returncode == 1
    assert res.stderr.count("flaky.py FAILED") == 2
    assert "ValueError: flaky failure in attempt 1" in res.stderr
    assert (tmp_path / "attempt1_rank1.json").exists() and not list(tmp_path.glob("attempt2_*"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_signal_to_launcher_stops_every_rank(sig, tmp_path, marker):
    # SIGKILL cannot be handled: the kernel's parent-death signal has mpiexec stop the ranks
    n = 2
    proc = subprocess.Popen(DTRAIN_RUN + ["-n", str(n), _script("misbehave.py"), "sleep", str(tmp_path)],
                            env=_env(marker), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_files([tmp_path / f"pid{r}" for r in range(n)])
        pids = [int((tmp_path / f"pid{r}").read_text()) for r in range(n)]
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    if sig == signal.SIGKILL:
        assert proc.returncode == -sig
        deadline = time.monotonic() + 5.0
        while _marked_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        assert proc.returncode == 128 + sig
        assert f"got {sig.name}" in err
    assert time.monotonic() - sent < 5.0
    assert not [pid for pid in pids if _alive(pid)]
    assert not _marked_pids(marker)


def test_timeout(tmp_path, marker):
    started = time.monotonic()
    res = run(["-n", 2, "--timeout", 2, _script("misbehave.py"), "sleep", tmp_path], marker)
    elapsed = time.monotonic() - started
    assert res.returncode == 124
    assert "timed out after 2 s" in res.stderr
    assert 2.0 <= elapsed < 10.0
    pids = [int((tmp_path / f"pid{r}").read_text()) for r in range(2)]
    assert not [pid for pid in pids if _alive(pid)]
    assert not _marked_pids(marker)


def test_bad_arguments(marker):
    res = run(["-n", 2, "--ranks-filter", "5", _script("dump_env.py")], marker)
    assert res.returncode == 2 and "--ranks-filter" in res.stderr
    res = run(["--tee", _script("dump_env.py")], marker)
    assert res.returncode == 2 and "--tee needs --log-dir" in res.stderr


@pytest.mark.parametrize("option", ["--hosts", "--hostfile"])
def test_hosts_options(option, tmp_path, marker):
    # one machine only here: this checks that the options reach mpiexec and MASTER_ADDR
    out = tmp_path / "out"
    out.mkdir()
    value = "localhost:3"
    if option == "--hostfile":
        (tmp_path / "hosts").write_text("# the only machine\nlocalhost:3\n")
        value = tmp_path / "hosts"
    res = run(["-n", 3, option, value, _script("dump_env.py"), out], marker)
    assert res.returncode == 0, res.stderr
    for r, info in enumerate(_read_ranks(out, 3)):
        assert (info["env"]["RANK"], info["env"]["LOCAL_WORLD_SIZE"]) == (str(r), "3")
        assert info["env"]["MASTER_ADDR"] == "localhost"


def test_job_hosts_each_machine_once(tmp_path):
    from dtrain_launcher.api import LaunchConfig, job_hosts
    assert job_hosts(LaunchConfig(nproc=8, hosts="h1:4,h2:2,h1:2, h3")) == ["h1", "h2", "h3"]
    (tmp_path / "hosts").write_text("# machines\nh2:4\n\nh1 slots=4  # Open MPI's spelling\nh2\n")
    assert job_hosts(LaunchConfig(nproc=8, hostfile=str(tmp_path / "hosts"))) == ["h2", "h1"]
    assert job_hosts(LaunchConfig(nproc=2)) == []


@pytest.mark.parametrize("n", [1, 3])
def test_output_lines_stay_whole(n, marker):
    lines, width = 300, 600
    res = run(["-n", n, _script("chatter.py"), lines, width], marker)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    prefix = (lambda r: f"[{r}] ") if n > 1 else (lambda r: "")
    for r in range(n):
        # a script's own "=====" lines are not mistaken for hydra's error banner
        assert prefix(r) + "=" * 83 in out and prefix(r) + "=   a line of the script's own" in out
        mine = [line for line in out if line.startswith(prefix(r) + f"{r}:")]
        assert mine == [prefix(r) + f"{r}:{i}:" + "x" * width for i in range(lines)]
    assert len(out) == n * (lines + 2)


def test_launcher_imports_only_the_standard_library():
    code = ("import sys, dtrain_launcher.cli, dtrain_launcher.api, dtrain_launcher.errors, dtrain_launcher._proc; "
            "print(sorted(m for m in ('numpy', 'cupy', 'dtrain', 'torch', 'mpi4py') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_run_directories_kept_after_failure_up_to_a_bound(tmp_path, marker):
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    out.mkdir()
    running = tmp / "dtrain-run-0123456789abcdef-running"  # a job still running: never pruned
    running.mkdir()
    named = []
    for _ in range(3):
        res = run(["-n", 2, _script("flaky.py"), out, "always"], marker, TMPDIR=str(tmp), DTRAIN_KEEP_FAILED_RUNS="2")
        assert res.returncode == 1
        (kept,) = [line for line in res.stderr.splitlines() if "the error files of every attempt are in" in line]
        named.append(kept.split(" are in ")[1].split(" (")[0])
        assert os.path.exists(os.path.join(named[-1], "attempt_0", "error_rank1.json"))
        time.sleep(0.05)  # distinct times of failure
    # the two most recent failed runs are kept, the oldest went
    assert sorted(str(p) for p in tmp.glob("dtrain-run-*")) == sorted(named[1:] + [str(running)])
    res = run(["-n", 2, _script("dump_env.py"), out], marker, TMPDIR=str(tmp))
    assert res.returncode == 0, res.stderr
    assert sorted(str(p) for p in tmp.glob("dtrain-run-*")) == sorted(named[1:] + [str(running)])


def _screen(data):
    """What a terminal shows for `data`: "\\r" returns to the line's start, later text overwrites."""
    lines, cur, col = [], [], 0
    for ch in data:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(cur).rstrip())
            cur, col = [], 0
        else:
            cur[col:col + 1] = [ch]
            col += 1
    return lines + (["".join(cur).rstrip()] if "".join(cur).strip() else [])


def test_progress_bars_pass_through_as_a_terminal_shows_them(tmp_path, marker):
    """tqdm on rank 0: its "\\r" redraws kept, the rank prefix once per line (not before a bare "\\r"), each
    update shown when written (not when the next one comes), another rank's line never written over a bar."""
    pytest.importorskip("tqdm")
    proc = subprocess.run(DTRAIN_RUN + ["-n", "2", _script("bars.py"), str(tmp_path / "flag")],
                          env=_env(marker), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, out.decode(errors="replace")
    assert b"[0] \r" not in out and b"[0] [0]" not in out
    # the bar at 2/3 was on the console before rank 1 spoke, though its next update came a second later
    assert out.index(b"[0] work:  67%") < out.index(b"[1] rank 1 speaks")
    for segment in out.replace(b"\r", b"\n").split(b"\n"):  # every piece of text is a rank's
        assert not segment.strip() or segment.startswith((b"[0] ", b"[1] ")), segment
    screen = _screen(out.decode())
    assert "[1] rank 1 speaks" in screen  # whole, on its own line
    assert any(line.startswith("[0] work: 100%|##########| 3/3") for line in screen)
    for epoch in (1, 2):  # the final state of each bar stays visible
        assert any(line.startswith(f"[0] epoch {epoch}/2: 100%|##########| 5/5") for line in screen), screen
    assert all(line.startswith(("[0] ", "[1] ")) for line in screen if line.strip()), screen
