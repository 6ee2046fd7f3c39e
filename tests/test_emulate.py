"""The emulated CUDA backend (DTRAIN_EMULATE_CUDA=N): CuPy 14's rules on host memory.

Marked `cuda`: they run in the emulated CUDA suite (`DTRAIN_EMULATE_CUDA=2 pytest -m cuda tests`, part of
.ci/test). The strictness tests state CuPy's documented behaviour, so most also hold on a real GPU; those
about emulation itself are skipped there."""
import json
import os
import threading

import numpy as np
import pytest
import torch

import dtrain
from dtrain import _backend

pytestmark = pytest.mark.cuda
emulated = pytest.mark.skipif(not (dtrain.cuda.is_available() and _backend.is_emulated()),
                              reason="checks the emulated CUDA backend itself")
two_devices = pytest.mark.skipif(dtrain.cuda.device_count() < 2 if dtrain.cuda.is_available() else True,
                                 reason="needs two CUDA devices")


@pytest.fixture
def cp():
    cp = _backend.cupy()
    prev = cp.cuda.runtime.getDevice()
    cp.cuda.runtime.setDevice(0)
    yield cp
    cp.cuda.runtime.setDevice(prev)


# ---------------------------------------------------------------- no implicit host conversion
def test_numpy_asarray_of_a_device_array_raises_cupys_type_error(cp):
    a = cp.arange(3.0)
    msg = "Implicit conversion to a NumPy array is not allowed"
    for f in (np.asarray, np.array, lambda x: np.array([x, x])):
        with pytest.raises(TypeError, match=msg):
            f(a)
    with pytest.raises(TypeError):  # a NumPy array operand, on either side
        np.add(np.ones(3), a)
    with pytest.raises(TypeError):
        a + np.ones(3)
    # the ways out, and what CuPy accepts: scalars of Python and NumPy
    np.testing.assert_array_equal(a.get(), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(cp.asnumpy(a * np.float32(2) + 1), [1.0, 3.0, 5.0])


def test_numpy_functions_on_device_arrays_stay_on_the_device(cp):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    a = cp.asarray(x)
    for name, want in [("sum", x.sum(0)), ("exp", np.exp(x)), ("matmul", x @ x.T), ("sort", np.sort(x, 1))]:
        got = getattr(np, name)(a, 0) if name == "sum" else getattr(np, name)(a, a.T) if name == "matmul" else \
            getattr(np, name)(a, 1) if name == "sort" else getattr(np, name)(a)
        assert isinstance(got, cp.ndarray), name
        np.testing.assert_allclose(got.get(), want, rtol=1e-6, atol=1e-6)
    s = a.sum()
    assert isinstance(s, cp.ndarray) and s.shape == ()  # CuPy's reductions give 0-d device arrays
    assert float(s) == pytest.approx(float(x.sum(dtype=np.float32)), rel=1e-6)
    with pytest.raises(TypeError):
        float(a)  # only size-1 arrays convert
    assert bool(a[0, 0] == a[0, 0]) and int(cp.arange(5)[3]) == 3 and a[1, 2].item() == x[1, 2]


def test_indexing_with_device_and_host_indices(cp):
    x = np.arange(12.0).reshape(3, 4)
    a = cp.asarray(x)
    idx = np.array([2, 0])
    np.testing.assert_array_equal(a[cp.asarray(idx)].get(), x[idx])
    np.testing.assert_array_equal(a[idx].get(), x[idx])  # CuPy takes NumPy index arrays too
    a[cp.asarray([0])] = cp.zeros(4)
    a[1] = np.full(4, 7.0)  # and a NumPy value, copied from the host
    x[0], x[1] = 0, 7
    np.testing.assert_array_equal(a.get(), x)
    assert [v.get().tolist() for v in a] == x.tolist() and len(a) == 3


def test_data_ptr_is_consistent_for_views(cp):
    a = cp.zeros((4, 4), np.float32)
    assert a[1].data.ptr == a.data.ptr + 16 and a.T.data.ptr == a.data.ptr
    assert a.copy().data.ptr != a.data.ptr
    cai = a.__cuda_array_interface__
    assert cai["shape"] == (4, 4) and cai["typestr"] == "<f4" and cai["data"][0] == a.data.ptr


# ---------------------------------------------------------------- devices
@two_devices
def test_mixing_devices_raises_cupys_value_error(cp):
    a = cp.ones(3)
    with cp.cuda.Device(1):
        b = cp.ones(3)
        assert b.device.id == 1 and cp.cuda.runtime.getDevice() == 1
    assert cp.cuda.runtime.getDevice() == 0
    with pytest.raises(ValueError, match=r"The device where the array resides \(1\) is different from the "
                                         r"current device \(0\)"):
        a + b
    with pytest.raises(ValueError):
        b.sum()
    c = b.copy()  # CuPy's copy() is the way across: onto the current device
    assert c.device.id == 0 and (a + c).get().tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="invalid device ordinal"):
        cp.cuda.Device(dtrain.cuda.device_count()).use()


@two_devices
def test_current_device_is_per_thread(cp):
    seen = {}
    with cp.cuda.Device(1):
        t = threading.Thread(target=lambda: seen.update(dev=cp.cuda.runtime.getDevice(), arr=cp.ones(1).device.id))
        t.start()
        t.join()
        assert cp.cuda.runtime.getDevice() == 1
    assert seen == {"dev": 0, "arr": 0}  # a new thread starts on device 0, as with CUDA


# ---------------------------------------------------------------- CuPy's names only
@emulated
def test_only_cupys_names(cp):
    import cupyx
    with open(os.path.join(os.path.dirname(dtrain.__file__), "_emulate", "cupy14_names.json")) as f:
        listed = json.load(f)["modules"]
    assert set(dir(cp)) == set(listed["cupy"]) and "zeros" in listed["cupy"]
    with pytest.raises(AttributeError, match="module 'cupy' has no attribute 'not_a_cupy_name'"):
        cp.not_a_cupy_name
    assert not hasattr(cp, "asmatrix") and not hasattr(cp.cuda, "Graph_") and hasattr(cp, "fuse")
    with pytest.raises(NotImplementedError, match="cupy.fuse is not available on emulated CUDA devices"):
        cp.fuse(lambda x: x)
    with pytest.raises(AttributeError):
        cupyx.not_a_cupyx_name
    from cupy.cuda import nccl
    assert nccl.NCCL_FLOAT32 == listed["cupy.cuda.nccl"]["NCCL_FLOAT32"]["value"]


@emulated
def test_device_is_named_as_emulated(cp):
    assert dtrain.cuda.get_device_name(0) == "dtrain emulated CUDA device" and dtrain.cuda.is_emulated()
    assert "emulated" in repr(cp.ones(2)) and dtrain.cuda.get_device_capability(0) >= (8, 0)


# ---------------------------------------------------------------- memory statistics per device
@emulated
@two_devices
def test_memory_pool_statistics_move_per_device(cp):
    from dtrain import _emulate
    pool = cp.get_default_memory_pool()
    before0 = pool.used_bytes()
    with cp.cuda.Device(1):
        before1 = pool.used_bytes()
    a = cp.empty(1000, np.float32)
    v = a[10:20]  # a view: no new memory
    assert pool.used_bytes() == before0 + 4000
    with cp.cuda.Device(1):
        assert pool.used_bytes() == before1
        b = cp.empty(250, np.float64)
        assert pool.used_bytes() == before1 + 2000
    peak = _emulate.memory_stats(0)["peak"]
    assert peak >= before0 + 4000
    del a
    assert pool.used_bytes() == before0 + 4000  # the view keeps the buffer
    del v
    assert pool.used_bytes() == before0 and pool.total_bytes() >= before0 + 4000  # freed into the pool
    pool.free_all_blocks()
    assert pool.total_bytes() == before0 and _emulate.memory_stats(0)["peak"] == peak
    _emulate.reset_peak_memory_stats(0)
    assert _emulate.memory_stats(0)["peak"] == before0
    del b
    with cp.cuda.Device(1):
        assert pool.used_bytes() == before1


@emulated
def test_memory_limit_raises_cupys_out_of_memory(cp):
    pool = cp.get_default_memory_pool()
    pool.set_limit(size=pool.used_bytes() + 1024)
    try:
        with pytest.raises(cp.cuda.memory.OutOfMemoryError, match="Out of memory allocating 8,000 bytes"):
            cp.empty(1000, np.float64)
        with pytest.raises(MemoryError):  # what torch.cuda.OutOfMemoryError catches with CuPy
            cp.empty(1000, np.float64)
    finally:
        pool.set_limit(size=0)


# ---------------------------------------------------------------- streams, events, kernels
@emulated
def test_strict_streams_report_a_missing_wait(cp):
    from dtrain import _emulate
    prev = _emulate.strict_streams(True)
    try:
        s = cp.cuda.Stream(non_blocking=True)
        with s:
            a = cp.ones(3) * 2  # produced on s
        with pytest.raises(RuntimeError, match="did not wait"):
            a + 1  # read on the null stream, which never waited for s
        with s:
            ev = s.record()
        cp.cuda.get_current_stream().wait_event(ev)
        assert (a + 1).get().tolist() == [3.0, 3.0, 3.0]
        with s:
            b = cp.ones(3)
        s.synchronize()  # a host synchronisation orders everything before it too
        assert (b + 0).get().tolist() == [1.0, 1.0, 1.0]
        c = cp.zeros(3)
        s.wait_event(cp.cuda.get_current_stream().record())  # s may read c now
        with s:
            c[1:] += 1  # an in-place write on s, through a view, counts as the buffer's last writer
        with pytest.raises(RuntimeError, match="did not wait"):
            c.sum()
    finally:
        _emulate.strict_streams(prev)


@emulated
def test_events_time_and_complete(cp):
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    cp.arange(1000).sum()
    end.record()
    end.synchronize()
    assert end.done and cp.cuda.get_elapsed_time(start, end) >= 0.0
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError):
        cp.cuda.get_elapsed_time(cp.cuda.Event(disable_timing=True), end)


@emulated
def test_kernels_run_their_registered_reference(cp):
    from dtrain import _emulate
    k = cp.RawKernel(r'extern "C" __global__ void twice_emulate_test(const float* x, float* y) {}',
                     "twice_emulate_test")
    x, y = cp.arange(4, dtype=np.float32), cp.zeros(4, np.float32)
    with pytest.raises(NotImplementedError, match="'twice_emulate_test' cannot run on emulated CUDA devices"):
        k((1,), (4,), (x, y))

    @_emulate.reference("twice_emulate_test")
    def twice(x, y):
        y[...] = x * 2

    k((1,), (4,), (x, y))
    assert y.get().tolist() == [0.0, 2.0, 4.0, 6.0]
    ek = cp.ElementwiseKernel("T x", "T y", "y = x + 1", "plus_one_emulate_test")
    with pytest.raises(NotImplementedError, match="plus_one_emulate_test"):
        ek(x)


@emulated
def test_nccl_world_of_one(cp):
    from cupy.cuda import nccl
    comm = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)
    a = cp.arange(4, dtype=np.float32)
    out = cp.zeros(4, np.float32)
    s = cp.cuda.Stream(non_blocking=True)
    from dtrain import _emulate
    prev = _emulate.strict_streams(True)
    try:
        comm.allReduce(a.data.ptr, out.data.ptr, 4, nccl.NCCL_FLOAT32, nccl.NCCL_AVG, s.ptr)
        with pytest.raises(RuntimeError, match="did not wait"):
            out + 0  # NCCL wrote `out` on s; the null stream never waited for it
        s.synchronize()
        out + 0
    finally:
        _emulate.strict_streams(prev)
    assert out.get().tolist() == [0.0, 1.0, 2.0, 3.0]
    comm.abort()
    with pytest.raises(nccl.NcclError, match="aborted"):
        comm.allReduce(a.data.ptr, a.data.ptr, 4, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 0)


# ---------------------------------------------------------------- dtrain on the devices
@two_devices
def test_tensors_land_on_the_device_they_name():
    # dtrain bugs found by the emulation: draws and device-to-device moves stayed on the current device
    makers = {"randn": lambda: dtrain.randn(3, device="cuda:1"), "rand": lambda: dtrain.rand(3, device="cuda:1"),
              "randint": lambda: dtrain.randint(0, 5, (3,), device="cuda:1"),
              "randperm": lambda: dtrain.randperm(5, device="cuda:1"),
              "to": lambda: dtrain.ones(3, device="cuda:0").to("cuda:1"),
              "cuda(1)": lambda: dtrain.ones(3, device="cuda:0").cuda(1),
              "tensor": lambda: dtrain.tensor(dtrain.ones(2, device="cuda:0"), device="cuda:1")}
    for name, make in makers.items():
        t = make()
        assert t.device == dtrain.device("cuda", 1) and t._data.device.id == 1, name


def test_cuda_tensor_numpy_and_print_as_torch():
    x = dtrain.arange(3.0, device="cuda")
    with pytest.raises(TypeError) as e:
        x.numpy()
    # torch's message for a CUDA tensor (torch here has no CUDA to produce it)
    assert str(e.value) == ("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                            "to host memory first.")
    assert repr(x) == "tensor([0., 1., 2.], device='cuda:0')"
    np.testing.assert_array_equal(x.cpu().numpy(), [0.0, 1.0, 2.0])


# ---------------------------------------------------------------- cuBLAS compute types
@emulated
def test_compute_type_is_decided_by_the_first_product_as_cupys(cp, monkeypatch):
    from cupy._core import _routines_linalg as linalg
    from dtrain._emulate import _linalg_core
    monkeypatch.setattr(_linalg_core, "compute_types", [linalg.COMPUTE_TYPE_TBD] * 3)
    monkeypatch.setenv("CUPY_TF32", "0")
    a = cp.ones((2, 2), dtype=cp.float32)
    a @ a  # decides float32's compute type: CUPY_TF32 is read now, and only now
    monkeypatch.setenv("CUPY_TF32", "1")
    cp.matmul(a, a)
    assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
    assert _linalg_core.compute_types[0] == linalg.COMPUTE_TYPE_TBD  # float16 not decided yet
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_TF32)
    assert linalg.get_compute_type(np.complex64) == linalg.COMPUTE_TYPE_TF32  # one entry for both
    with pytest.raises(ValueError, match="Unknown compute type"):
        linalg.set_compute_type(np.float32, 99)


def test_out_on_another_device_raises_torchs_error():
    x = dtrain.arange(3.0, device="cuda")
    with pytest.raises(RuntimeError, match="Expected out tensor to have device cuda:0, but got cpu instead"):
        dtrain.exp(x, out=dtrain.empty(3))


def test_cuda_rng_state_restores_the_draws():
    # dtrain bug found by the emulation: set_rng_state restarted a CUDA generator from its seed
    dtrain.cuda.manual_seed(3)
    dtrain.randn(7, device="cuda")  # the generator has moved on from its seed
    state = dtrain.cuda.get_rng_state()
    a = dtrain.randn(5, device="cuda").cpu().numpy()
    b = dtrain.randn(5, device="cuda").cpu().numpy()
    dtrain.cuda.set_rng_state(state)
    np.testing.assert_array_equal(dtrain.randn(5, device="cuda").cpu().numpy(), a)
    np.testing.assert_array_equal(dtrain.randn(5, device="cuda").cpu().numpy(), b)
    assert not np.array_equal(a, b)


@emulated
def test_a_scripts_own_import_cupy_gets_the_stand_in():
    import subprocess
    import sys
    code = ("import dtrain, cupy, cupyx.scipy.special\n"
            "from cupy.cuda import nccl\n"
            "assert dtrain.cuda.is_emulated() and dtrain.cuda.device_count() == 3\n"
            "print(cupy.__version__, type(cupy.ones(2)).__module__, nccl.NCCL_FLOAT32)\n")
    env = dict(os.environ, DTRAIN_EMULATE_CUDA="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["14.0.0+dtrain.emulated", "dtrain._emulate._array", "7"]
    env["DTRAIN_EMULATE_CUDA"] = "0"
    bad = subprocess.run([sys.executable, "-c", "import dtrain; dtrain.cuda.init()"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "DTRAIN_EMULATE_CUDA must be a number of devices >= 1, got '0'" in bad.stderr


# ---------------------------------------------------------------- cupyx.scipy.sparse
@pytest.fixture
def sp(cp):
    import cupyx.scipy.sparse
    return cupyx.scipy.sparse


def _coo_parts(cp, rng, n=6, m=5, nnz=12, dtype=np.float32):
    row, col = rng.integers(0, n, nnz), rng.integers(0, m, nnz)
    row[-2:], col[-2:] = row[:2], col[:2]  # repeated entries
    data = rng.standard_normal(nnz).astype(dtype)
    return (data, row, col), (cp.asarray(data), cp.asarray(row), cp.asarray(col))


def test_sparse_constructors_agree_with_scipy(cp, sp):
    import scipy.sparse
    rng = np.random.default_rng(0)
    (data, row, col), (d, r, c) = _coo_parts(cp, rng)
    want = scipy.sparse.coo_matrix((data, (row, col)), shape=(6, 5))
    m = sp.coo_matrix((d, (r, c)), shape=(6, 5))
    assert m.shape == (6, 5) and m.nnz == 12 and m.dtype == np.float32 and m.format == "coo"
    assert not m.has_canonical_format and m.row.dtype == m.col.dtype == np.int32  # CuPy's int32 indices
    assert isinstance(m.data, cp.ndarray) and sp.issparse(m) and sp.isspmatrix_coo(m)
    np.testing.assert_array_equal(m.toarray().get(), want.toarray())
    csr = m.tocsr()  # repeated entries add up, as SciPy's and CuPy's conversions do
    assert sp.isspmatrix_csr(csr) and csr.nnz == want.tocsr().nnz and csr.has_canonical_format
    host = csr.get()
    assert isinstance(host, scipy.sparse.csr_matrix)
    np.testing.assert_array_equal(host.toarray(), want.toarray())
    np.testing.assert_array_equal(csr.indptr.get(), want.tocsr().indptr)
    # the other initialisers: CSR arrays, a SciPy matrix (copied to the device), a dense device array, a shape
    w = want.tocsr()
    for other in (sp.csr_matrix((cp.asarray(w.data), cp.asarray(w.indices), cp.asarray(w.indptr)), shape=(6, 5)),
                  sp.csr_matrix(want), sp.coo_matrix(want), sp.csr_matrix(cp.asarray(want.toarray())),
                  sp.coo_matrix(cp.asarray(want.toarray())), sp.csr_matrix((d, (r, c)), shape=(6, 5))):
        np.testing.assert_allclose(other.toarray().get(), want.toarray(), rtol=1e-6)
    assert sp.coo_matrix((3, 4)).nnz == 0 and sp.csr_matrix((3, 4)).toarray().get().shape == (3, 4)
    assert sp.coo_matrix((d, (r, c))).shape == (int(row.max()) + 1, int(col.max()) + 1)
    # in place, row-major, as CuPy's
    m.sum_duplicates()
    assert m.has_canonical_format and m.nnz == want.tocsr().nnz
    key = m.row.get() * 5 + m.col.get()
    assert (np.diff(key) > 0).all()


@pytest.mark.parametrize("dtype,other", [(np.float32, np.float32), (np.float64, np.float64),
                                         (np.complex64, np.complex64), (np.float32, np.float64)])
def test_sparse_products_agree_with_scipy(cp, sp, dtype, other):
    import scipy.sparse
    rng = np.random.default_rng(1)
    (data, row, col), (d, r, c) = _coo_parts(cp, rng, dtype=dtype)
    want = scipy.sparse.csr_matrix((data, (row, col)), shape=(6, 5))
    b = rng.standard_normal((5, 3)).astype(other)
    m = sp.csr_matrix((d, (r, c)), shape=(6, 5))
    got = m @ cp.asarray(b)
    # cuSPARSE's result: Fortran order, the operands' promoted dtype, on the device
    assert isinstance(got, cp.ndarray) and got.flags.f_contiguous and got.dtype == np.promote_types(dtype, other)
    tol = 1e-12 if np.promote_types(dtype, other) == np.float64 else 1e-5
    np.testing.assert_allclose(got.get(), want @ b, rtol=tol, atol=tol)
    np.testing.assert_allclose((m @ cp.asarray(b[:, 0])).get(), want @ b[:, 0], rtol=tol, atol=tol)
    np.testing.assert_allclose(m.dot(cp.asarray(b)).get(), want @ b, rtol=tol, atol=tol)
    # the transposed product through a transposed COO matrix, and a sparse × sparse one
    g = rng.standard_normal((6, 2)).astype(other)
    coo = sp.coo_matrix((d, (r, c)), shape=(6, 5))
    np.testing.assert_allclose((coo.T @ cp.asarray(g)).get(), want.T @ g, rtol=tol, atol=tol)
    ss = m @ coo.T
    assert sp.isspmatrix_csr(ss)
    np.testing.assert_allclose(ss.toarray().get(), (want @ want.T).toarray(), rtol=tol, atol=tol)
    np.testing.assert_allclose((m * 2).toarray().get(), (want * 2).toarray(), rtol=tol)
    with pytest.raises(ValueError, match="dimension mismatch"):
        m @ cp.ones((6, 2), dtype)


def test_sparse_refuses_what_cupy_refuses(cp, sp):
    rng = np.random.default_rng(2)
    (data, row, col), (d, r, c) = _coo_parts(cp, rng)
    for bad in (np.float16, np.int64, np.int32):
        with pytest.raises(ValueError, match="Only bool, float32, float64, complex64 and complex128 are supported"):
            sp.coo_matrix((d.astype(bad), (r, c)))
        with pytest.raises(ValueError, match="Only bool, float32, float64"):
            sp.csr_matrix((d, (r, c)), dtype=bad)
    with pytest.raises(TypeError, match="Unsupported dtype"):  # cuSPARSE multiplies float types only
        sp.csr_matrix((d.astype(bool), (r, c))) @ cp.ones((5, 2), bool)
    with pytest.raises(ValueError, match="row, column, and data arrays must be 1-D"):
        sp.coo_matrix((data, (row, col)))  # host arrays are no device arrays
    with pytest.raises(ValueError, match="row index exceeds matrix dimensions"):
        sp.coo_matrix((d, (r, c)), shape=(2, 5))
    with pytest.raises(ValueError, match="negative column index found"):
        sp.coo_matrix((d[:1], (r[:1], cp.asarray(np.array([-1])))), shape=(6, 5))
    m = sp.csr_matrix((d, (r, c)), shape=(6, 5))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(m)
    with pytest.raises(TypeError, match="Unsupported type"):
        m @ np.ones((5, 2), np.float32)
    with pytest.raises(ValueError, match="Scalar operands are not allowed"):
        m @ 2.0
    with pytest.raises(TypeError, match="sparse matrix length is ambiguous"):
        len(m)


@two_devices
def test_sparse_matrices_belong_to_a_device(cp, sp):
    rng = np.random.default_rng(3)
    (data, row, col), _ = _coo_parts(cp, rng)
    with cp.cuda.Device(1):
        m = sp.csr_matrix((cp.asarray(data), (cp.asarray(row), cp.asarray(col))), shape=(6, 5))
        b = cp.ones((5, 2), np.float32)
        out = m @ b
    assert m.data.device.id == m.indptr.device.id == out.device.id == 1
    with pytest.raises(ValueError, match=r"The device where the array resides \(1\) is different from the current "
                                         r"device \(0\)"):
        m @ cp.ones((5, 2), np.float32)
    with pytest.raises(ValueError, match="is different from the current device"):
        m.toarray()


@emulated
def test_sparse_module_has_cupys_names_only(sp):
    import cupyx.scipy.sparse as mod
    with open(os.path.join(os.path.dirname(dtrain.__file__), "_emulate", "cupy14_names.json")) as f:
        names = json.load(f)
    assert set(dir(mod)) == set(names["modules"]["cupyx.scipy.sparse"]) and "coo_matrix" in dir(mod)
    for cls in (sp.coo_matrix, sp.csr_matrix):
        members = names["classes"][f"cupyx.scipy.sparse.{cls.__name__}"]
        public = {n for c in cls.__mro__[:-1] for n in vars(c) if not n.startswith("_")}
        assert public - {"has_canonical_format"} <= set(members), public - set(members)
    with pytest.raises(NotImplementedError, match="cupyx.scipy.sparse.eye is not available on emulated CUDA"):
        sp.eye(3)
    with pytest.raises(AttributeError):
        sp.not_a_cupyx_name


def test_an_array_over_a_memory_pointer_is_a_view_of_that_buffer(cp):
    # what torch.load does with a CUDA storage: each tensor is cupy.ndarray(memptr=storage.data + offset)
    a = cp.arange(6.0)
    v = cp.ndarray((2,), a.dtype, memptr=a.data + 2 * a.itemsize, strides=(2 * a.itemsize,))
    assert v.get().tolist() == [2.0, 4.0] and v.device.id == a.device.id
    v[...] = -1
    assert a.get().tolist() == [0.0, 1.0, -1.0, 3.0, -1.0, 5.0]
    assert (a.data + 8 - 8).ptr == a.data.ptr
    with pytest.raises(ValueError, match="is not the address of a live emulated device array"):
        cp.ndarray((1,), a.dtype, memptr=cp.cuda.MemoryPointer(8, 0))
