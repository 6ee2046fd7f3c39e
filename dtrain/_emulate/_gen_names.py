"""Writes cupy14_names.json, the names the emulated CUDA stand-in may expose, from the real CuPy package.

    pip install --target /tmp/cupy14 cupy-cuda12x==14.0.0      # installs and imports without a GPU
    PYTHONPATH=/tmp/cupy14 python -m dtrain._emulate._gen_names

CuPy is never a dependency of dtrain: this script is run by hand when the targeted CuPy version changes,
and its output is checked in. The CUDA libraries (cuBLAS, cuSOLVER, ...) are absent on a machine without a
GPU toolkit; CuPy loads them when its linear-algebra modules are imported, so they are replaced here by
empty modules (READTHEDOCS=True is CuPy's own switch for building its docs without them). cupy.cuda.nccl
loads libnccl.so.2 itself: where it is missing, a library of empty functions with NCCL's symbol names is
compiled (gcc) and loaded first, so that the wrapper module, and its constants, can be inspected.
"""
import inspect
import json
import os
import sys
import types

# the modules whose public names the stand-in mirrors: what dtrain and ordinary user scripts reach
MODULES = ["cupy", "cupy.cuda", "cupy.cuda.runtime", "cupy.cuda.nccl", "cupy.cuda.memory", "cupy.random",
           "cupy.fft", "cupy.linalg", "cupy.lib", "cupy.lib.stride_tricks", "cupyx", "cupyx.scipy",
           "cupyx.scipy.special", "cupyx.scipy.linalg", "cupyx.scipy.sparse", "cupy._core._routines_linalg"]
# NOTE: cupy._core._routines_linalg's entries in the checked-in file were added by hand from CuPy 14's
# _routines_linalg.pyx/.pxd (the compute-type switches and the products); a run of this script lists all
# of its public names. cupyx.scipy.sparse and its two classes were added later from a run of this script on
# cupy-cuda12x 14.0.0 (with cuda-pathfinder, which CuPy 14's library loader imports), merging only those
# entries: the rest of that run's output matched the checked-in file but for _routines_linalg
# classes whose public members are listed too (the stand-in's methods must be among them)
CLASSES = ["cupy.ndarray", "cupy.cuda.Device", "cupy.cuda.Stream", "cupy.cuda.Event", "cupy.cuda.MemoryPool",
           "cupy.cuda.PinnedMemoryPool", "cupy.cuda.nccl.NcclCommunicator", "cupy.random.RandomState",
           "cupy.RawKernel", "cupy.ElementwiseKernel", "cupy.ReductionKernel", "cupy.cuda.MemoryPointer",
           "cupyx.scipy.sparse.coo_matrix", "cupyx.scipy.sparse.csr_matrix"]


def _stub_cuda_libraries():
    os.environ["READTHEDOCS"] = "True"
    import cupy_backends.cuda.libs as libs
    for name in ("cublas", "cusolver", "cusparse", "curand", "cutensor", "cusparselt"):
        stub = types.ModuleType(f"cupy_backends.cuda.libs.{name}")
        stub.__getattr__ = lambda attr: 0
        sys.modules[stub.__name__] = stub
        setattr(libs, name, stub)


def _stub_nccl():
    import ctypes
    import ctypes.util
    import glob
    import subprocess
    import tempfile
    if ctypes.util.find_library("nccl"):
        return
    import cupy_backends
    so = glob.glob(os.path.join(os.path.dirname(cupy_backends.__file__), "cuda", "libs", "nccl*.so"))[0]
    symbols = [line.split()[-1] for line in subprocess.run(["nm", "-D", so], capture_output=True, text=True,
                                                           check=True).stdout.splitlines()
               if line.split()[0] == "U" and line.split()[-1].startswith("nccl")]
    tmp = tempfile.mkdtemp()
    src = os.path.join(tmp, "nccl.c")
    with open(src, "w") as f:
        for s in symbols:
            f.write('const char *ncclGetErrorString(int r) { return ""; }\n' if s == "ncclGetErrorString"
                    else f"int {s}(void) {{ return 0; }}\n")
    lib = os.path.join(tmp, "libnccl.so.2")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libnccl.so.2", "-o", lib, src], check=True)
    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)  # the wrapper's dependency on libnccl.so.2 resolves to it


def _signature(obj):
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return None


def _kind(obj):
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "constant"


def _entry(obj):
    kind = _kind(obj)
    entry = {"kind": kind}
    if kind in ("function", "class"):
        entry["signature"] = _signature(obj)
    elif kind == "constant" and isinstance(obj, (int, float, str, bool)):
        entry["value"] = obj
    return entry


def _public(names):
    return sorted(n for n in names if not n.startswith("_") or n in ("__version__",))


def main(path=None):
    import importlib
    _stub_cuda_libraries()
    _stub_nccl()
    out = {"cupy_version": None, "modules": {}, "classes": {}}
    for mod in MODULES:
        m = importlib.import_module(mod)
        names = getattr(m, "__all__", None) or dir(m)
        out["modules"][mod] = {n: _entry(getattr(m, n)) for n in _public(set(names) | set(dir(m)))
                               if hasattr(m, n)}
    for cls in CLASSES:
        mod, _, name = cls.rpartition(".")
        c = getattr(importlib.import_module(mod), name)
        members = {}
        for n in _public(dir(c)) + [n for n in dir(c) if n.startswith("__") and n.endswith("__")]:
            attr = inspect.getattr_static(c, n, None)
            members[n] = {"kind": "property" if isinstance(attr, (property, types.GetSetDescriptorType,
                                                                  types.MemberDescriptorType))
                          or type(attr).__name__ == "getset_descriptor" else _kind(getattr(c, n, None))}
        out["classes"][cls] = members
    import cupy
    out["cupy_version"] = cupy.__version__
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy14_names.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"wrote {path}: CuPy {out['cupy_version']}, "
          f"{sum(len(v) for v in out['modules'].values())} module names, {len(out['classes'])} classes")


if __name__ == "__main__":
    main(*sys.argv[1:])
