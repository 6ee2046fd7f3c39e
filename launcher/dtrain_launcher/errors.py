"""Failures of ranks, as recorded in their error files, and dtrain-run's root-cause report."""
import json
import os
import re
import signal
import time
from dataclasses import dataclass

_TRACEBACK_LINES = 20  # the report shows the tail of the root cause's traceback


@dataclass
class ProcessFailure:
    """How one rank ended, read from the error file its watcher (or its own code) wrote."""

    rank: int
    local_rank: int
    exitcode: int  # negative: killed by that signal, as in subprocess
    message: str
    error_file: str
    host: str = "?"
    pid: int = -1
    timestamp: float = 0.0
    traceback: str | None = None

    @classmethod
    def from_file(cls, path: str) -> "ProcessFailure":
        with open(path) as f:
            info = json.load(f)
        return cls(rank=info["rank"], local_rank=info.get("local_rank", -1), exitcode=info["exitcode"],
                   message=f"{info['type']}: {info['message']}" if info.get("type") else info["message"], error_file=path,
                   host=info.get("host", "?"), pid=info.get("pid", -1), timestamp=info.get("time", 0.0),
                   traceback=info.get("traceback"))

    def describe_exitcode(self) -> str:
        if self.exitcode >= 0:
            return str(self.exitcode)
        try:
            name = signal.Signals(-self.exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"{self.exitcode} (signal {-self.exitcode}: {name})"


def read_failures(error_dir: str) -> list:
    """The failures recorded in `error_dir`, first observed first."""
    try:
        names = sorted(n for n in os.listdir(error_dir) if n.startswith("error_rank") and n.endswith(".json"))
    except FileNotFoundError:
        return []
    failures = []
    for name in names:
        try:
            failures.append(ProcessFailure.from_file(os.path.join(error_dir, name)))
        except (OSError, ValueError, KeyError):
            continue
    return sorted(failures, key=lambda f: (f.timestamp, f.rank))


def launcher_account(banner: list, error_dir: str) -> str | None:
    """hydra's "BAD TERMINATION" banner as one line naming the rank, or None.

    Every rank's watcher records how its child ended; only a rank killed together with its
    watcher has no record. hydra then names the process it started (the watcher) and how it
    ended; the watchers' start records map that pid to a rank. hydra names the lowest rank that
    ended abnormally, which need not be the first: its other ranks were killed by hydra itself.
    """
    text = "\n".join(banner)
    pid = re.search(r"PID (\d+) RUNNING AT (\S+)", text)
    code = re.search(r"EXIT CODE: (\d+)", text)
    if pid is None or code is None:
        return None
    exit_string = re.search(r"EXIT STRING: (.*)", text)
    how = exit_string.group(1) if exit_string else f"exit code {code.group(1)}"
    watcher, host = int(pid.group(1)), pid.group(2)
    who = f"pid {watcher}"
    for start in _start_records(error_dir):
        if start.get("pid") == watcher and start.get("host", host).split(".")[0] == host.split(".")[0]:
            who = f"rank {start['rank']} (pid {start.get('child', watcher)})"
    return (f"mpiexec reports {who} on {host}: {how} (hydra names the lowest rank that ended abnormally, "
            "not necessarily the first; killed together with its watcher, the rank left no record)")


def _start_records(error_dir):
    records = []
    try:
        names = [n for n in os.listdir(error_dir) if n.startswith("started_rank") and n.endswith(".json")]
    except FileNotFoundError:
        return records
    for name in names:
        try:
            with open(os.path.join(error_dir, name)) as f:
                records.append(json.load(f))
        except (OSError, ValueError):
            continue
    return records


def format_report(name: str, failures: list, launcher_exitcode: int | None = None,
                  launcher_note: str | None = None) -> str:
    """torchrun-style summary: the root cause in full, any later failures in a line each."""
    rule = "=" * 72
    lines = [rule, f"dtrain-run: {name} FAILED", "-" * 72]
    if not failures:
        lines.append(f"no rank recorded an error; the MPI launcher exited with code {launcher_exitcode}")
        if launcher_note:
            lines.append(launcher_note)
        return "\n".join(lines + [rule])
    root = failures[0]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(root.timestamp))
    lines += [
        "Root Cause (first observed failure):",
        f"  rank      : {root.rank} (local_rank: {root.local_rank})",
        f"  host      : {root.host} (pid: {root.pid})",
        f"  time      : {when}",
        f"  exitcode  : {root.describe_exitcode()}",
        f"  error     : {root.message}",
        f"  error_file: {root.error_file}",
    ]
    if root.traceback:
        tail = root.traceback.rstrip("\n").splitlines()[-_TRACEBACK_LINES:]
        lines += ["  traceback :"] + ["    " + line for line in tail]
    if len(failures) > 1:
        lines.append("Other failures:")
        lines += [f"  rank {f.rank}: exitcode {f.describe_exitcode()}, {f.message}" for f in failures[1:]]
    return "\n".join(lines + [rule])
