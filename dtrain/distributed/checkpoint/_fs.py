"""Durable file operations: fsync, atomic replace, the `latest` pointer and keep-last-K rotation."""
import os
import re
import shutil
import uuid

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
    tmp = f"{path}{_TMP}{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def tmp_dir_for(target, token):
    return f"{os.path.abspath(target)}{_TMP}{token}"


def is_temporary(name):
    return _TMP in name or _OLD in name


def commit_dir(tmp, target, token):
    """Move the finished `tmp` directory to `target`, replacing an older checkpoint of that name."""
    parent = os.path.dirname(os.path.abspath(target))
    old = None
    if os.path.exists(target):
        old = f"{os.path.abspath(target)}{_OLD}{token}"
        os.rename(target, old)
    os.rename(tmp, target)
    fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    """Delete all but the newest `keep_last` step checkpoints in `root` (never the one `latest` names),
    and the temporary directories that interrupted saves left behind."""
    latest = read_latest(root)
    found = checkpoints(root)
    doomed = [p for _, p in found[:max(len(found) - keep_last, 0)]] if keep_last else []
    for p in doomed:
        if latest is None or os.path.abspath(p) != os.path.abspath(latest):
            shutil.rmtree(p, ignore_errors=True)
    clean_temporaries(root)


def clean_temporaries(root, keep=()):
    for n in os.listdir(root) if os.path.isdir(root) else ():
        p = os.path.join(root, n)
        if is_temporary(n) and p not in keep:
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    os.unlink(p)
                except OSError:
                    pass
