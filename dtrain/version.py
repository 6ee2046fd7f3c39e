"""dtrain.version (torch.version): the package version, the CUDA runtime version in use, the source revision.

`cuda` is the version of the CUDA runtime CuPy runs on ("12.4"), or None without a usable CUDA device (torch's
CPU build says None too); it is worked out on first read, since that imports CuPy."""
from . import __version__  # noqa: F401

debug = False
hip = None
rocm = None
xpu = None
_cache = {}


def _cuda():
    from . import _backend
    if not _backend.cuda_available():
        return None
    try:
        v = int(_backend.cupy().cuda.runtime.runtimeGetVersion())  # 12040 for CUDA 12.4
    except Exception:  # a CuPy stand-in without the runtime query
        return None
    return f"{v // 1000}.{v % 1000 // 10}"


def _git_version():
    """The commit of the checkout dtrain runs from (an editable install), else 'Unknown' as torch writes."""
    import os
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "Unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "Unknown"


def __getattr__(name):
    if name in ("cuda", "git_version"):
        if name not in _cache:
            _cache[name] = _cuda() if name == "cuda" else _git_version()
        return _cache[name]
    raise AttributeError(f"module 'dtrain.version' has no attribute '{name}'")
