"""Elementwise work over large NumPy arrays, split into contiguous slices run on every core the process may
use (OMP_NUM_THREADS, which dtrain-run sets per rank). NumPy and SciPy ufuncs release the GIL on large
arrays, so slices run truly in parallel; results are the same bits as one call, the work being elementwise.
Torch's CPU kernels use all cores for elementwise ops; without this NumPy would use one."""
import os
from concurrent.futures import ThreadPoolExecutor

MIN_SLICE = 1 << 18  # elements per slice below which a thread costs more than it saves
_pool = None
_threads = None  # dtrain.set_num_threads's count; None: OMP_NUM_THREADS or every core


_cores = None  # os.cpu_count(), read once: it costs ~13 us a call in a container


def threads():
    """The threads dtrain's own elementwise work and fused kernels may use (not BLAS's: see set_num_threads)."""
    global _cores
    if _threads:
        return _threads
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp:
        return int(omp)
    if _cores is None:
        _cores = os.cpu_count() or 1
    return _cores


def slices(n):
    """[(start, stop), ...] covering range(n): one slice per thread worth using."""
    k = max(1, min(threads(), n // MIN_SLICE))
    step = -(-n // k) if n else 1
    return [(a, min(a + step, n)) for a in range(0, n, step)] or [(0, 0)]


def run(fn, parts):
    """fn(start, stop) for every part, the first on this thread; results in order."""
    global _pool
    if len(parts) == 1:
        return [fn(*parts[0])]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="dtrain-par")
    futures = [_pool.submit(fn, a, b) for a, b in parts[1:]]
    first = fn(*parts[0])
    return [first] + [f.result() for f in futures]


def map_flat(fn, x, out_dtype=None):
    """fn applied to a contiguous NumPy array in parallel slices: out[a:b] = fn(x[a:b])."""
    flat = x.reshape(-1)
    parts = slices(flat.size)
    if len(parts) == 1:
        return fn(x)
    out = __import__("numpy").empty(flat.size, out_dtype or x.dtype)

    def work(a, b):
        out[a:b] = fn(flat[a:b])
    run(work, parts)
    return out.reshape(x.shape)


def blockwise(fn, n, block=1 << 16):
    """fn(start, stop) over consecutive blocks of `block` elements covering range(n), the blocks shared out
    among the threads `slices` gives: a chain of NumPy ops over one block keeps its temporaries in cache."""
    def work(a, b):
        for i in range(a, b, block):
            fn(i, min(i + block, b))
    run(work, slices(n))
