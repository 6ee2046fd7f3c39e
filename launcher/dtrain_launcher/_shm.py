"""The MPI shared-memory segments a job leaves in /dev/shm when it does not end cleanly.

MPICH (ch4) creates one segment per node and world, ``mpich_shm_<world id>_<node>``, where the
world id is a hash of hydra's key-value-space name, which holds a random number: dtrain-run
cannot compute it. MPICH unlinks the segment in MPI_Finalize, so every rank that dies, aborts
or is killed leaves its 2-4 MB behind for good (UCX's own ``ucx_shm_posix_*`` segments are
unlinked right after they are mapped). Open MPI's are ``vader_segment.*`` / ``sm_segment.*``.

A job's segments are recognised after it ended, on this machine: named like MPI's, created
while the attempt ran, by this user, and mapped by no live process. Every process of the job is
gone by then, so a segment still mapped belongs to another job that runs now; one mapped by
nobody that appeared meanwhile is ours, or the leftover of another job that died meanwhile.
"""
import os

SHM_DIR = "/dev/shm"
_PREFIXES = ("mpich_shm_", "mpich_vci_", "mpich_shar_tmp", "ucx_shm_posix_", "vader_segment.", "sm_segment.")


def snapshot() -> set:
    """Names of the MPI segments in /dev/shm now."""
    try:
        return {name for name in os.listdir(SHM_DIR) if name.startswith(_PREFIXES)}
    except OSError:
        return set()


def _mapped(names) -> set:
    """Which of `names` some live process has mapped (scans /proc/*/maps)."""
    paths = {os.path.join(SHM_DIR, name): name for name in names}
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps", "rb") as f:
                maps = f.read()
        except OSError:  # gone, or not ours to read
            continue
        for path, name in paths.items():
            if name not in found and path.encode() in maps:
                found.add(name)
        if len(found) == len(paths):
            break
    return found


def remove_leftovers(before: set, since: float) -> list:
    """Unlink the MPI segments that appeared after `before` was taken (at time `since`) and that
    no live process maps; returns their names."""
    uid = os.getuid()
    new = []
    for name in snapshot() - before:
        try:
            st = os.stat(os.path.join(SHM_DIR, name))
        except OSError:
            continue
        if st.st_uid == uid and st.st_ctime >= since - 1.0:
            new.append(name)
    if not new:
        return []
    removed = []
    for name in set(new) - _mapped(new):
        try:
            os.unlink(os.path.join(SHM_DIR, name))
            removed.append(name)
        except OSError:
            pass
    return sorted(removed)
