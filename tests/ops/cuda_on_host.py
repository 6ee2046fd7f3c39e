"""The fused CUDA kernels' own sources compiled for the host CPU and run there, so that their values (indexing,
reductions, barriers, shuffles) are tested without a GPU.

A small prelude gives the CUDA C the few device names it uses: each block runs as blockDim real threads (one
std::thread each; the blocks one after another on the same threads), `__syncthreads` is a std::barrier of the
block, `__shfl_xor_sync` exchanges through a per-block buffer between two barriers (every kernel calls it
uniformly across the block, so block-wide barriers serve as warp-wide ones), `__shared__` is a static (one block
at a time), and the math functions are the C library's (rsqrt as 1/sqrt). `launch(name, grid, block, args)` takes what
`dtrain._cuda_kernels._kernels._launch` takes and runs on host copies of the CuPy arrays, writing them back.

What it cannot show: races that only true concurrency between warps or blocks exposes, device-specific math
(rsqrtf, erff, tanhf round differently on a GPU) and speed. Needs g++ with C++20's std::barrier; `library` answers
None without one."""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

from dtrain import _backend
from dtrain._cuda_kernels import _source

_PRELUDE = r"""
#include <barrier>
#include <cmath>
#include <cstring>
#include <math.h>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static thread_local dim3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
static std::barrier<>* block_barrier;
static double shfl_buf[1024];
static inline void __syncthreads() { block_barrier->arrive_and_wait(); }
template <typename V> static inline V __shfl_xor_sync(unsigned, V v, int o) {
    const unsigned tid = threadIdx.y * blockDim.x + threadIdx.x;
    __syncthreads();
    shfl_buf[tid] = (double)v;
    __syncthreads();
    return (V)shfl_buf[tid ^ (unsigned)o];
}
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, sizeof f); return f; }
static inline float rsqrtf(float v) { return 1.0f / sqrtf(v); }
static inline double rsqrt(double v) { return 1.0 / sqrt(v); }
"""

_LAUNCHER = r"""
template <typename... A, std::size_t... I>
static void call_with(void (*k)(A...), void** argv, std::index_sequence<I...>) {
    k(*reinterpret_cast<std::remove_reference_t<A>*>(argv[I])...);
}
template <typename... A>
static void run(void (*k)(A...), unsigned gx, unsigned gy, unsigned bx, unsigned by, void** argv) {
    gridDim = {gx, gy, 1};
    blockDim = {bx, by, 1};
    const unsigned n = bx * by;
    std::barrier<> bar(n);
    block_barrier = &bar;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < n; ++t)
        threads.emplace_back([=, &bar] {
            threadIdx = {t % bx, t / bx, 1};
            for (unsigned b = 0; b < gx * gy; ++b) {  // the blocks one after another, on the same threads
                blockIdx = {b % gx, b / gx, 1};
                call_with(k, argv, std::index_sequence_for<A...>{});
                bar.arrive_and_wait();  // the whole block done before the next one reuses the statics
            }
        });
    for (auto& th : threads) th.join();
}
"""

_libraries = {}


def library(dtype):
    """The host build of every kernel for `dtype` (cached on disk by the source's hash), or None without g++."""
    dtype = np.dtype(dtype)
    if dtype in _libraries:
        return _libraries[dtype]
    cxx = shutil.which("g++")
    if cxx is None or not _has_barrier(cxx):
        return None
    src = _PRELUDE + _source.module_source(dtype) + _LAUNCHER + "".join(
        f'extern "C" void launch_{n}(unsigned gx, unsigned gy, unsigned bx, unsigned by, void** argv) '
        f'{{ run({n}, gx, gy, bx, by, argv); }}\n' for n in _source.NAMES)
    key = hashlib.sha256(src.encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), f"dtrain-cuda-on-host-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    so = os.path.join(folder, f"{key}.so")
    if not os.path.exists(so):
        cpp = os.path.join(folder, f"{key}.cpp")
        with open(cpp, "w") as f:
            f.write(src)
        tmp = f"{so}.{os.getpid()}"
        out = subprocess.run([cxx, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-w", cpp, "-o", tmp],
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"g++ could not build the kernels for the host:\n{out.stderr[-4000:]}")
        os.replace(tmp, so)  # atomic: a parallel run sees the whole library or none
    _libraries[dtype] = ctypes.CDLL(so)
    return _libraries[dtype]


def _has_barrier(cxx):
    """Whether `cxx` has C++20's std::barrier (g++ 11 and later): without it there is no host build."""
    probe = subprocess.run([cxx, "-std=c++20", "-fsyntax-only", "-x", "c++", "-"], input="#include <barrier>\n",
                           capture_output=True, text=True)
    return probe.returncode == 0


_SCALARS = {np.dtype(np.int64): ctypes.c_longlong, np.dtype(np.int32): ctypes.c_int,
            np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


def launch(name, grid, block, args):
    """Kernel `name` on host copies of `args` (CuPy arrays and NumPy scalars, as _kernels._launch gets them); the
    arrays are written back, an array passed twice being one host array."""
    xp = _backend.cupy()
    lib = library(args[0].dtype)
    host, before, values = {}, {}, []
    for a in args:
        if _backend.is_cupy_array(a):
            if id(a) not in host:
                host[id(a)] = np.ascontiguousarray(a.get())
                before[id(a)] = host[id(a)].copy()
            values.append(ctypes.c_void_p(host[id(a)].ctypes.data))
        else:
            values.append(_SCALARS[np.asarray(a).dtype](a.item()))
    argv = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
    gx, gy = (tuple(grid) + (1,))[:2]
    bx, by = (tuple(block) + (1,))[:2]
    getattr(lib, f"launch_{name}")(ctypes.c_uint(gx), ctypes.c_uint(gy), ctypes.c_uint(bx), ctypes.c_uint(by), argv)
    for a in args:  # the arrays the kernel wrote (inputs may be read-only views)
        if _backend.is_cupy_array(a) and not np.array_equal(host[id(a)], before[id(a)], equal_nan=True):
            a[...] = xp.asarray(host[id(a)])
