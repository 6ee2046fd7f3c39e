"""The MPI shared-memory segments a job leaves in /dev/shm when it does not end cleanly, and their removal.

MPICH (ch4) creates one segment per node and world, ``mpich_shm_<world id>_<node>``, where the
world id is a hash of the PMI key-value-space name. MPICH unlinks the segment in MPI_Finalize, so
every rank that dies, aborts or is killed leaves its 2-4 MB behind for good (UCX's own
``ucx_shm_posix_*`` segments are unlinked right after they are mapped). Open MPI's are
``vader_segment.*`` / ``sm_segment.*``.

Two cases:
- under hydra's mpiexec the name holds a random number, so dtrain-run cannot compute it: a job's
  segments are recognised after it ended (`remove_leftovers`): named like MPI's, created while the
  attempt ran, by this user, and mapped by no live process. Every process of the job is gone by then,
  so a segment still mapped belongs to another job that runs now; one mapped by nobody that appeared
  meanwhile is ours, or the leftover of another job that died meanwhile. On the other machines of a
  ``--hosts``/``--hostfile`` job the same test runs in one task per machine, started through the same
  mpiexec after the attempt (``python -m dtrain_launcher._shm --newer-than SECONDS``: "while the attempt
  ran" is then measured back from that machine's own clock, so clocks that disagree do not matter).
- under SLURM the name comes from "<job id>.<step id>", which a requeued job (and, after slurmctld
  loses its state, a new job) has again: its ranks would attach to the killed run's segment and fail
  in MPI_Init ("failed to unpack address") or in their first messages ("Message ... truncated"). Before
  a job step starts, every such file of this user that no live process maps or holds open is stale
  (`remove_stale_segments`; ``python -m dtrain_launcher._shm`` does it on the node it runs on).
"""
import os
import sys
import time

SHM_DIR = "/dev/shm"
_PREFIXES = ("mpich_shm_", "mpich_vci_", "mpich_shar_tmp", "ucx_shm_posix_", "vader_segment.", "sm_segment.")


def snapshot() -> set:
    """Names of the MPI segments in /dev/shm now."""
    try:
        return {name for name in os.listdir(SHM_DIR) if name.startswith(_PREFIXES)}
    except OSError:
        return set()


def _in_use(paths) -> set:
    """Which of `paths` some live process we can see maps or holds open (scans /proc/*/maps and fds)."""
    wanted = {path.encode(): path for path in paths}
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps", "rb") as f:
                maps = f.read()
            found.update(path for raw, path in wanted.items() if raw in maps)
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target in paths:
                    found.add(target)
        except OSError:  # gone, or not ours to read
            continue
        if len(found) == len(wanted):
            break
    return found


def _unlink(paths) -> list:
    removed = []
    for path in paths:
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def remove_leftovers(before: set, since: float) -> list:
    """Unlink the MPI segments that appeared after `before` was taken (at time `since`) and that
    no live process maps; returns their names."""
    uid = os.getuid()
    new = []
    for name in sorted(snapshot() - before):
        try:
            st = os.stat(os.path.join(SHM_DIR, name))
        except OSError:
            continue
        if st.st_uid == uid and st.st_ctime >= since - 1.0:
            new.append(os.path.join(SHM_DIR, name))
    if not new:
        return []
    return sorted(os.path.basename(p) for p in _unlink(set(new) - _in_use(new)))


def stale_segments(shm_dir: str = SHM_DIR) -> list:
    """This user's MPI shared-memory files in `shm_dir` that no live process uses."""
    try:
        paths = [os.path.join(shm_dir, n) for n in sorted(os.listdir(shm_dir)) if n.startswith(_PREFIXES)]
    except OSError:
        return []
    uid = os.geteuid()
    ours = []
    for path in paths:
        try:
            if os.stat(path).st_uid == uid:
                ours.append(path)
        except OSError:
            continue
    used = _in_use(ours) if ours else set()
    return [path for path in ours if path not in used]


def remove_stale_segments(shm_dir: str = SHM_DIR) -> list:
    """Remove what `stale_segments` finds; returns the paths removed."""
    return _unlink(stale_segments(shm_dir))


def main(argv):
    """``--newer-than SECONDS``: remove what a job that started that long ago left here, printing one line per
    segment removed (``<host> <name>``, which dtrain-run reads); otherwise remove every stale segment (``-v``:
    say how many)."""
    if argv[:1] == ["--newer-than"]:
        for name in remove_leftovers(set(), time.time() - float(argv[1])):
            print(f"{os.uname().nodename} {name}", flush=True)
        return
    removed = remove_stale_segments()
    if removed and "-v" in argv:
        print(f"dtrain-run: removed {len(removed)} stale shared-memory file(s) on {os.uname().nodename}")


if __name__ == "__main__":
    main(sys.argv[1:])
