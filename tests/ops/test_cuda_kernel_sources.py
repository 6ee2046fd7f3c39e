"""Every fused CUDA kernel's source (dtrain._cuda_kernels._source) compiles with NVRTC, NVIDIA's runtime compiler
(the one CuPy uses), for each dtype it is instantiated with: no GPU and no driver needed, only libnvrtc (the
`nvidia-cuda-nvrtc` wheel of the test extra). This checks syntax and types, with warnings as errors; it says
nothing about values, which the emulated devices check through the kernels' references and a real GPU checks
against them (test_fused_cuda.py)."""
import ctypes
import glob
import os
import sys

import numpy as np
import pytest

from dtrain._cuda_kernels import _source

ARCHS = ("compute_80", "compute_90")  # A100, H100/H200; the sources use nothing newer than warp shuffles


def _nvrtc():
    """libnvrtc from the nvidia-cuda-nvrtc wheel (or the system's), or a skip saying why there is none."""
    names = []
    for base in sys.path:
        names += sorted(glob.glob(os.path.join(base, "nvidia", "cu*", "lib", "libnvrtc.so.*")))
        names += sorted(glob.glob(os.path.join(base, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.*")))
    names = [n for n in names if "builtins" not in n] + ["libnvrtc.so"]
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    pytest.skip("libnvrtc is not installed (pip install nvidia-cuda-nvrtc, Linux x86_64): the CUDA sources "
                "cannot be compiled here")


def _compile(lib, src, name, options=("--std=c++17",), arch=ARCHS[-1]):
    """(ok, log) of compiling `src` for `arch` with the kernel's own options and every warning an error."""
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), f"{name}.cu".encode(), 0, None, None)
    assert rc == 0, f"nvrtcCreateProgram failed ({rc})"
    # as CuPy compiles a RawKernel (no -default-device: every function says where it runs)
    opts = [f"--gpu-architecture={arch}".encode(), b"-Werror=all-warnings"]
    opts += [o.encode() for o in options]
    try:
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        return rc == 0, log.value.decode(errors="replace")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", _source.DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name", _source.NAMES)
def test_kernel_source_compiles(name, dtype, arch):
    lib = _nvrtc()
    ok, log = _compile(lib, _source.source(name, dtype), name, _source.options(name), arch)
    assert ok and not log.strip(), f"NVRTC on {name} ({dtype}, {arch}):\n{log}"


def test_a_broken_source_fails():
    # the check can fail: a type error and an unused variable are both reported
    lib = _nvrtc()
    src = _source.source("dtrain_adam", np.float32)
    ok, log = _compile(lib, src.replace("acc_t pi = p[i]", "acc_t pi = p"), "broken")
    assert not ok and "error" in log
    ok, log = _compile(lib, src.replace("const acc_t mi", "int unused = 1; const acc_t mi"), "warned")
    assert not ok and "never referenced" in log, log
