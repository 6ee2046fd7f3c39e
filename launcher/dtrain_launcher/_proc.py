"""Finding and stopping a job's processes through /proc (no psutil).

MPI launchers put every rank in a session of its own, so killing dtrain-run's process group
would miss them. Instead every process of a job carries a marker in its environment
(``DTRAIN_JOB_ID``), inherited by whatever it starts; a scan of /proc finds them all.
"""
import os
import signal
import time


def _stat(pid):
    """(ppid, state) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may itself contain spaces or parentheses
    fields = stat[stat.rfind(b")") + 2:].split()
    return int(fields[1]), fields[0].decode()


def find_processes(marker: str) -> dict:
    """{pid: ppid} of the live (not zombie) processes whose environment holds `marker` ("NAME=value")."""
    needle = marker.encode()
    found = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
        except OSError:  # gone, or another user's process
            continue
        stat = _stat(entry)
        if stat is not None and stat[1] not in ("Z", "X"):
            found[int(entry)] = stat[0]
    return found


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_all(marker: str, timeout: float = 2.0) -> list:
    """SIGKILL every process carrying `marker` until none is left; returns the pids it found."""
    killed = []
    deadline = time.monotonic() + timeout
    while (pids := find_processes(marker)) and time.monotonic() < deadline:
        killed += [p for p in pids if p not in killed]
        signal_all(pids, signal.SIGKILL)
        time.sleep(0.02)
    return killed
