"""Durable file operations: fsync, atomic replace, the `latest` pointer and keep-last-K rotation."""
import errno
import os
import re
import shutil
import uuid

from ...serialization import _HOST, _writer_gone  # noqa: F401  (one notion of a writer that is gone)

LATEST = "latest"
_TMP = ".tmp-"
_OLD = ".old-"


def fsync_dir(path):
    # a rename is durable only once the directory holding it is synced
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, data: bytes):
    """Write `data` to `path` through a synced temporary file and os.replace: readers see old or new."""
    remove_stale(path)
    tmp = f"{path}{temp_suffix()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


# ---------------------------------------------------------------- temporaries
# A temporary is `<target>.tmp-<host>-<pid>-<random>`: the writer's host and pid tell a later save whether it
# is an interrupted save's leftover (its writer is gone) or a live writer's work in progress.
_TEMP_TAIL = re.compile(r"^(?:tmp|old)-(.+)-(\d+)-([0-9a-f]+)$")


def new_token():
    """A temporary's tail: this host, this process, and a random part."""
    return f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temp_suffix():
    return f"{_TMP}{new_token()}"


def tmp_dir_for(target, token):
    return f"{os.path.abspath(target)}{_TMP}{token}"


def is_temporary(name):
    return _TMP in name or _OLD in name


def _siblings(target, prefix):
    """(path, rest of the name) of the entries beside `target` named `target` + `prefix` + something."""
    folder, base = os.path.split(os.path.abspath(os.fspath(target)))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [(os.path.join(folder, n), n[len(base) + len(prefix):]) for n in names if n.startswith(base + prefix)]


def stale_temporaries(target):
    """This program's temporaries for `target` whose writer is gone (interrupted saves' leftovers)."""
    out = []
    for path, tail in _siblings(target, "."):
        m = _TEMP_TAIL.match(tail)
        if m and _writer_gone(m.group(1), int(m.group(2))):
            out.append(path)
    return out


def remove_stale(target):
    """Remove the leftovers of interrupted saves to `target` (never a live writer's, never another target's);
    a leftover `.old-` copy is put back first where `target` itself is missing (see commit_dir)."""
    recover(target)
    for p in stale_temporaries(target):
        _remove(p)


def _remove(p):
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            os.unlink(p)
        except OSError:
            pass


# ---------------------------------------------------------------- the commit
# test hook: called as _fault(step) between the steps of a commit ("exchanged", "moved_old", "renamed")
_fault = None
_RENAME_EXCHANGE = 2


def _exchange(a, b):
    """Swap the directories at `a` and `b` in one step (Linux renameat2 RENAME_EXCHANGE); OSError if the system
    or filesystem cannot."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), a)


def commit_dir(tmp, target, token):
    """Put the finished directory `tmp` in place as `target`, replacing an older checkpoint of that name so
    that a reader of `target` finds the old checkpoint or the new one at every instant, crash or not.

    Where `target` exists the two directories are swapped in one atomic step, and the old one, now under the
    temporary name, is deleted afterwards. Where the filesystem cannot swap, the old directory is renamed
    aside first: a crash in the gap between the two renames leaves `target` missing and `target.old-*`
    complete, which readers (`resolve`) and the next save (`recover`) take as the checkpoint."""
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.exists(target):
        os.rename(tmp, target)
        fsync_dir(parent)
        return
    try:
        _exchange(tmp, target)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            raise
        old = f"{os.path.abspath(target)}{_OLD}{token}"
        os.rename(target, old)
        fsync_dir(parent)
        if _fault is not None:
            _fault("moved_old")
        os.rename(tmp, target)
        fsync_dir(parent)
        if _fault is not None:
            _fault("renamed")
        shutil.rmtree(old, ignore_errors=True)
        return
    fsync_dir(parent)
    if _fault is not None:
        _fault("exchanged")
    shutil.rmtree(tmp, ignore_errors=True)  # the old checkpoint, swapped out


def _complete(path):
    from .metadata import METADATA
    return os.path.isfile(os.path.join(path, METADATA))


def _aside(target):
    """Complete `target.old-*` copies left by a commit interrupted between its two renames, newest first."""
    found = [path for path, _ in _siblings(target, _OLD) if _complete(path)]
    return sorted(found, key=lambda p: os.stat(p).st_mtime, reverse=True)


def resolve(target):
    """The directory holding the checkpoint named `target`: `target` itself, or, in the gap of an interrupted
    two-rename commit, the complete copy renamed aside."""
    if os.path.exists(target):
        return target
    aside = _aside(target)
    return aside[0] if aside else target


def recover(target):
    """Put a copy that an interrupted commit renamed aside back under its name (the next save calls this)."""
    if os.path.exists(target):
        return
    aside = _aside(target)
    if aside:
        try:
            os.rename(aside[0], target)
            fsync_dir(os.path.dirname(os.path.abspath(target)))
        except OSError:
            pass


def update_latest(root, name):
    """Point `root/latest` at the checkpoint directory `name` (a name inside `root`), atomically."""
    write_atomic(os.path.join(root, LATEST), (os.path.basename(os.fspath(name)) + "\n").encode())


def read_latest(root):
    """The path of the checkpoint `root/latest` names, or None when there is none."""
    try:
        with open(os.path.join(root, LATEST)) as f:
            name = f.read().strip()
    except FileNotFoundError:
        return None
    return os.path.join(root, name) if name else None


_STEP = re.compile(r"^step_(\d+)$")


def checkpoints(root):
    """(step, path) of the finished `step_<N>` checkpoints in `root`, oldest first."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), os.path.join(root, n)) for n in names if (m := _STEP.match(n))]
    return sorted(found)


def rotate(root, keep_last: int):
    """Delete all but the newest `keep_last` complete step checkpoints in `root` (never the one `latest`
    names, never the last complete one), and the leftovers of interrupted saves whose writers are gone."""
    clean_temporaries(root)  # first: it puts back a checkpoint an interrupted commit left renamed aside
    latest = read_latest(root)
    found = [p for _, p in checkpoints(root) if _complete(p)]  # an incomplete directory keeps nothing safe
    doomed = found[:max(len(found) - max(keep_last, 1), 0)] if keep_last else []
    for p in doomed:
        if latest is None or os.path.abspath(p) != os.path.abspath(latest):
            shutil.rmtree(p, ignore_errors=True)


def clean_temporaries(root, keep=()):
    """Remove the temporaries in `root` whose writer is gone (see stale_temporaries); the `.old-` copy of a
    checkpoint whose own directory is missing is put back instead."""
    try:
        names = os.listdir(root)
    except OSError:
        return
    for n in names:
        if not is_temporary(n):
            continue
        base = n.split(_TMP)[0] if _TMP in n else n.split(_OLD)[0]
        remove_stale(os.path.join(root, base))
