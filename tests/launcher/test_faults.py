"""Rank deaths after init_process_group(), end to end through dtrain-run: real MPI worlds, real faults.

Rank 1 misbehaves while the other ranks wait for it inside all_reduce. Every fault must end the
job within seconds (no collective timeout), exit non-zero, name rank 1, its host and its cause,
and leave no process, no MPI segment in /dev/shm and no run directory beyond the kept ones.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_launcher import (DTRAIN_RUN, SCRIPTS, _alive, _env, _marked_pids, _wait_for_files,  # noqa: E402
                           marker, pytestmark)  # noqa: F401  (the fixture, and the skip without mpiexec)

pytest.importorskip("mpi4py")

FAULT = os.path.join(SCRIPTS, "fault.py")
DEATH_TO_EXIT_S = 5.0  # the job is gone this long after rank 1 died, whatever the load
SHM = "/dev/shm"


def _job_segments(pid):
    """The MPI segments in /dev/shm that the rank `pid` maps (MPICH's mpich_shm_<world>_<node>)."""
    with open(f"/proc/{pid}/maps") as f:
        return {line[line.index(f" {SHM}/mpich_") + 1:].strip() for line in f if f" {SHM}/mpich_" in line}


def _left_behind(segments):
    return sorted(path for path in segments if os.path.exists(path))


def _start(n, mode, out_dir, marker, *options):
    tmp = out_dir / "tmp"  # dtrain-run's run directories go here
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen(DTRAIN_RUN + [*options, "-n", str(n), FAULT, mode, str(out_dir)],
                            env=_env(marker, TMPDIR=str(tmp)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _watch(proc, out_dir, n):
    """Wait for every rank to be in its all_reduce loop; returns the job's /dev/shm segments."""
    _wait_for_files([out_dir / f"pid{r}" for r in range(n)], timeout=60)
    try:
        # rank 0 lives until the job is torn down, at least half a second after rank 1's fault
        segments = _job_segments(int((out_dir / "pid0").read_text()))
    except OSError:
        proc.kill()
        raise
    assert segments, "the ranks share no MPICH segment: this test could not see one leak"
    return segments


def _finish(proc, timeout=120):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"dtrain-run did not end within {timeout} s:\n{err}")
    return out, err, time.time()


def _check_failed_job(code, err, ended, died_at, out_dir, marker, segments, n, expected):
    assert code == 1, err
    assert ended - died_at < DEATH_TO_EXIT_S, f"the job ended {ended - died_at:.1f} s after rank 1 died"
    assert "Root Cause" in err, err
    report = err[err.index("Root Cause"):]
    assert "rank      : 1 (local_rank: 1)" in report, report
    assert f"host      : {socket.gethostname()} (pid: {(out_dir / 'pid1').read_text()})" in report, report
    for text in expected:
        assert text in report, report
    assert "no rank recorded an error" not in err
    # no rank, watcher, mpiexec or hydra proxy of the job is left, nor anything MPI put in /dev/shm
    pids = [int((out_dir / f"pid{r}").read_text()) for r in range(n)]
    assert not [pid for pid in pids if _alive(pid)]
    assert not _marked_pids(marker)
    assert not _left_behind(segments)
    # the run directory is kept and named: it holds rank 1's error file
    run_dirs = list((out_dir / "tmp").glob("dtrain-run-*"))
    assert len(run_dirs) == 1 and str(run_dirs[0]) in err
    assert (run_dirs[0] / "attempt_0" / "error_rank1.json").exists()
    return report


@pytest.mark.parametrize("mode, expected", [
    ("raise", ["exitcode  : 1", "error     : RuntimeError: rank 1 failed on purpose", 'fault.py", line']),
    ("os_exit", ["exitcode  : 3", "error     : exited with code 3"]),
    ("sys_exit", ["exitcode  : 3", "error     : SystemExit: 3", "sys.exit(3)"]),
    ("segv", ["exitcode  : -11 (signal 11: SIGSEGV)", "killed by signal 11 (SIGSEGV)", 'fault.py", line']),
    ("abort", ["exitcode  : -6 (signal 6: SIGABRT)", "killed by signal 6 (SIGABRT)", 'fault.py", line']),
    ("atexit", ["exitcode  : 1", "OSError: metrics server unreachable (in an atexit handler)", "in flush_metrics"]),
])
def test_rank_death_is_diagnosed(mode, expected, tmp_path, marker):
    n = 4
    proc = _start(n, mode, tmp_path, marker)
    segments = _watch(proc, tmp_path, n)
    out, err, ended = _finish(proc)
    died_at = float((tmp_path / "failed_at").read_text())
    report = _check_failed_job(proc.returncode, err, ended, died_at, tmp_path, marker, segments, n, expected)
    assert "runpy" not in report and "dtrain_launcher" not in report


def _kill_rank1_at_random(n, tmp_path, marker, rng):
    proc = _start(n, "loop", tmp_path, marker)
    segments = _watch(proc, tmp_path, n)
    try:
        time.sleep(rng.uniform(0.0, 0.5))
        killed_at = time.time()
        os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)
    except BaseException:
        proc.kill()
        raise
    out, err, ended = _finish(proc)
    _check_failed_job(proc.returncode, err, ended, killed_at, tmp_path, marker, segments, n,
                      ["exitcode  : -9 (signal 9: SIGKILL)", "killed by signal 9 (SIGKILL)"])


def test_sigkill_from_outside(tmp_path, marker):
    # what the OOM killer does to a rank
    _kill_rank1_at_random(4, tmp_path, marker, random.Random(0))


@pytest.mark.slow
def test_sigkill_at_random_moments_never_missed(tmp_path_factory, marker):
    # 2 ranks keep 20 repetitions affordable on a small machine; every one must name rank 1
    rng = random.Random(1)
    for i in range(20):
        _kill_rank1_at_random(2, tmp_path_factory.mktemp(f"kill{i}"), marker, rng)


def test_restart_after_a_killed_rank(tmp_path, marker):
    n = 4
    proc = _start(n, "restart", tmp_path, marker, "--max-restarts", "1")
    segments = _watch(proc, tmp_path, n)  # attempt 0's
    out, err, ended = _finish(proc)
    assert proc.returncode == 0, err
    report = err[err.index("Root Cause"):]
    assert "rank      : 1 (local_rank: 1)" in report and "killed by signal 9 (SIGKILL)" in report
    assert "restarting the job (1 of 1 restarts)" in err
    died_at = float((tmp_path / "failed_at").read_text())
    results = [json.loads((tmp_path / f"result{r}").read_text()) for r in range(n)]
    assert [r["sum"] for r in results] == [5.0 * sum(range(n))] * n
    assert {r["attempt"] for r in results} == {1}
    # the restarted ranks were running their script within seconds of the death
    assert min(r["started"] for r in results) - died_at < DEATH_TO_EXIT_S + 5.0
    assert not _marked_pids(marker)
    assert not _left_behind(segments)
    assert not list((tmp_path / "tmp").glob("dtrain-run-*"))  # a job that ends well leaves no run directory


def test_sigkill_to_the_rank_process_group(tmp_path, marker):
    # `kill -9 -PGID` of the rank's python process: its watcher is outside that group and records it
    n = 4
    proc = _start(n, "loop", tmp_path, marker)
    segments = _watch(proc, tmp_path, n)
    try:
        killed_at = time.time()
        os.killpg(os.getpgid(int((tmp_path / "pid1").read_text())), signal.SIGKILL)
    except BaseException:
        proc.kill()
        raise
    out, err, ended = _finish(proc)
    _check_failed_job(proc.returncode, err, ended, killed_at, tmp_path, marker, segments, n,
                      ["exitcode  : -9 (signal 9: SIGKILL)", "killed by signal 9 (SIGKILL)"])


def test_rank_killed_with_its_watcher(tmp_path, marker):
    # rank 1 and its watcher SIGKILLed together: no record of its own, so the report gives hydra's
    # account, with the rank of the pid hydra names
    n = 2
    proc = _start(n, "loop", tmp_path, marker)
    segments = _watch(proc, tmp_path, n)
    try:
        child = int((tmp_path / "pid1").read_text())
        with open(f"/proc/{child}/stat") as f:
            watcher = int(f.read().rsplit(")", 1)[1].split()[1])
        killed_at = time.time()
        os.kill(watcher, signal.SIGKILL)
        os.kill(child, signal.SIGKILL)
    except BaseException:
        proc.kill()
        raise
    out, err, ended = _finish(proc)
    assert proc.returncode == 1, err
    assert ended - killed_at < DEATH_TO_EXIT_S
    assert "no rank recorded an error" in err
    assert re.search(r"mpiexec reports rank [01] \(pid \d+\) on \S+: Killed \(signal 9\)", err), err
    assert not _marked_pids(marker)
    assert not _left_behind(segments)


def test_launcher_killed(tmp_path, marker):
    # dtrain-run SIGKILLed: mpiexec gets SIGTERM from the kernel and stops the ranks, whose watchers
    # remove the segment the job mapped
    n = 2
    proc = _start(n, "loop", tmp_path, marker)
    segments = _watch(proc, tmp_path, n)
    killed_at = time.time()
    proc.kill()
    proc.communicate()
    deadline = killed_at + DEATH_TO_EXIT_S
    while (_marked_pids(marker) or _left_behind(segments)) and time.time() < deadline:
        time.sleep(0.05)
    assert not _marked_pids(marker)
    assert not _left_behind(segments)


def _private_dev_shm_works(tmp_path):
    """Whether this machine lets a process have a /dev/shm of its own (a mount namespace: root, or user namespaces)."""
    try:
        return subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /dev/shm', str(tmp_path)],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_segments_removed_on_every_host_of_a_hosts_job(tmp_path, marker):
    # a --hosts job over this machine and a "remote" one: hydra starts the remote ranks through a stand-in for
    # ssh that gives them a /dev/shm of their own (tmp_path/remote_shm), out of this machine's reach. Rank 1 is
    # SIGKILLed; teardown then kills the others without MPI_Finalize, so each host keeps its segment unless
    # dtrain-run removes it there, through mpiexec
    remote_shm = tmp_path / "remote_shm"
    remote_shm.mkdir()
    if not _private_dev_shm_works(remote_shm):
        pytest.skip("no mount namespaces here: cannot give a stand-in remote host a /dev/shm of its own")
    out_dir, tmp = tmp_path / "out", tmp_path / "tmp"
    out_dir.mkdir()
    tmp.mkdir()
    n = 4
    env = _env(marker, TMPDIR=str(tmp), HYDRA_LAUNCHER="ssh", HYDRA_LAUNCHER_EXEC=os.path.join(SCRIPTS, "fake_ssh.sh"),
               DTRAIN_TEST_REMOTE_SHM=str(remote_shm))
    proc = subprocess.Popen(DTRAIN_RUN + ["-n", str(n), "--hosts", "localhost:2,dtrain-test-remote:2", FAULT, "loop",
                                          str(out_dir)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    local = _watch(proc, out_dir, n)  # ranks 0 and 1 are here
    remote = sorted(p.name for p in remote_shm.iterdir())
    try:
        assert any(name.startswith("mpich_shm_") for name in remote), remote  # the remote ranks' segment
        killed_at = time.time()
        os.kill(int((out_dir / "pid1").read_text()), signal.SIGKILL)
    except BaseException:
        proc.kill()
        raise
    out, err, ended = _finish(proc)
    assert proc.returncode == 1, err
    assert "rank      : 1 (local_rank: 1)" in err and "killed by signal 9 (SIGKILL)" in err, err
    assert ended - killed_at < DEATH_TO_EXIT_S + 5.0  # the clean-up step on every host starts mpiexec again
    assert not _marked_pids(marker)
    assert not _left_behind(local)
    assert not [p.name for p in remote_shm.iterdir()]
