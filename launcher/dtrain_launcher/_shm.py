"""Shared-memory files that a killed MPI rank leaves in /dev/shm, and their removal.

MPICH keeps its intra-node channel in ``/dev/shm/mpich_shm_<hash of the PMI job id>_<n>`` and unlinks it
when the ranks finalize. A rank that is killed (SIGKILL, a requeue, the OOM killer) leaves it behind.
Under SLURM the PMI job id is "<job id>.<step id>", which a requeued job (and, after slurmctld loses its
state, a new job) has again: the next run's ranks then attach to the dead run's segment and fail in
MPI_Init ("failed to unpack address") or in their first messages ("Message ... truncated"). A file is
stale when no live process maps it or holds it open; only such files of this user are removed.

``python -m dtrain_launcher._shm`` removes them on the node it runs on.
"""
import os
import sys

SHM_DIR = "/dev/shm"
PREFIXES = ("mpich_shm_",)


def _in_use(shm_dir) -> set:
    """Paths under `shm_dir` that some process we can see maps or holds open."""
    used, prefix = set(), shm_dir.rstrip("/") + "/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps", "rb") as f:
                for line in f:
                    at = line.find(prefix.encode())
                    if at >= 0:
                        used.add(line[at:].rstrip(b"\n").removesuffix(b" (deleted)").decode(errors="replace"))
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith(prefix):
                    used.add(target)
        except OSError:  # gone, or another user's process
            continue
    return used


def stale_segments(shm_dir: str = SHM_DIR) -> list:
    """This user's MPI shared-memory files in `shm_dir` that no live process uses."""
    try:
        names = sorted(n for n in os.listdir(shm_dir) if n.startswith(PREFIXES))
    except OSError:
        return []
    if not names:
        return []
    used, me = _in_use(shm_dir), os.geteuid()
    stale = []
    for name in names:
        path = os.path.join(shm_dir, name)
        try:
            if os.stat(path).st_uid == me and path not in used:
                stale.append(path)
        except OSError:
            continue
    return stale


def remove_stale_segments(shm_dir: str = SHM_DIR) -> list:
    """Remove what `stale_segments` finds; returns the paths removed."""
    removed = []
    for path in stale_segments(shm_dir):
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


if __name__ == "__main__":
    removed = remove_stale_segments()
    if removed and "-v" in sys.argv[1:]:
        print(f"dtrain-run: removed {len(removed)} stale shared-memory file(s) on {os.uname().nodename}")
