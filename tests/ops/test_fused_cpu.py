"""The fused CPU kernels (dtrain._cpu_kernels, compiled by numba) against torch, values and gradients, and the
same cases on the NumPy paths that run where numba is not installed or DTRAIN_NUMBA=0."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import dtrain
from dtrain import _cpu_kernels

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
DTYPES = [np.float32, np.float64]


def _needs_numba():
    """numba itself: skips where it is not installed or DTRAIN_NUMBA=0 switches the kernels off."""
    numba = pytest.importorskip("numba")
    if not _cpu_kernels.ENABLED:
        pytest.skip("DTRAIN_NUMBA=0")
    assert _cpu_kernels.available()
    return numba


@pytest.fixture(params=["numba", "numpy"])
def path(request, monkeypatch):
    """Each test runs once with the compiled kernels and once on the NumPy paths (kernels switched off)."""
    if request.param == "numba":
        _needs_numba()
        # the elementwise backward kernels serve large arrays only (see pointwise._KERNEL_MIN): here, any size
        monkeypatch.setattr(dtrain._ops.pointwise, "_KERNEL_MIN", 0)
    else:
        monkeypatch.setattr(_cpu_kernels, "ENABLED", False)
    return request.param


@pytest.fixture
def calls(monkeypatch):
    """Counts the calls into the compiled kernels: a test that must take them asserts it did."""
    if not _cpu_kernels.ENABLED or not _cpu_kernels.available():
        return None
    from dtrain._cpu_kernels import _numba
    seen = {}
    for name in ("gelu", "gelu_backward", "gelu_tanh", "gelu_tanh_backward", "softmax", "softmax_backward",
                 "log_softmax", "log_softmax_backward", "cross_entropy", "cross_entropy_backward", "layer_norm",
                 "layer_norm_backward", "rms_norm", "rms_norm_backward", "embedding_backward", "adam", "im2col2d",
                 "col2im2d", "tanh_backward", "sigmoid_backward", "relu_backward"):
        fn = getattr(_numba, name)

        def spy(*args, _fn=fn, _name=name, **kwargs):
            seen[_name] = seen.get(_name, 0) + 1
            return _fn(*args, **kwargs)
        monkeypatch.setattr(_numba, name, spy)
    return seen


def _compare(fn_d, fn_t, arrays, dtype, grad=(True,), seed=0, tol=None):
    """fn over dtrain and torch tensors made from `arrays` (float ones require grad where `grad` says so); the
    outputs and the gradients of sum(out * w), w random, must agree within the dtype's tolerance."""
    tol = tol or TOL[dtype]
    grad = tuple(grad) + (False,) * (len(arrays) - len(grad))
    td = [dtrain.tensor(a) for a in arrays]
    tt = [torch.from_numpy(np.array(a)) for a in arrays]
    for d, t, g, a in zip(td, tt, grad, arrays):
        if g and a.dtype.kind == "f":
            d.requires_grad_()
            t.requires_grad_()
    yd, yt = fn_d(*td), fn_t(*tt)
    np.testing.assert_allclose(yd.detach().numpy(), yt.detach().numpy(), **tol, err_msg="output")
    if not any(t.requires_grad for t in tt):
        return
    w = np.random.default_rng(seed + 1).standard_normal(tuple(yt.shape)).astype(dtype)
    (yd * dtrain.tensor(w)).sum().backward()
    (yt * torch.from_numpy(w)).sum().backward()
    for i, (d, t) in enumerate(zip(td, tt)):
        if t.requires_grad:
            np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), **tol, err_msg=f"gradient of input {i}")


def _randn(shape, dtype, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


# ---- GELU ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (40001,), (0, 4), ()])
def test_gelu(path, calls, dtype, approximate, shape):
    x = _randn(shape, dtype, scale=3.0)
    # torch's float32 tanh saturates to ±1 from |u| ≈ 8.3, where its tanh-GELU gradient is 0 and the exact one
    # ~3e-6: an absolute tolerance of 1e-5 there (gradients here are O(1))
    tol = dict(rtol=2e-5, atol=1e-5) if approximate == "tanh" and dtype == np.float32 else None
    _compare(lambda a: dtrain.nn.functional.gelu(a, approximate=approximate),
             lambda a: torch.nn.functional.gelu(a, approximate=approximate), [x], dtype, tol=tol)
    if calls is not None and np.prod(shape) > 0:
        assert calls.get("gelu" if approximate == "none" else "gelu_tanh") == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_extremes_and_noncontiguous(path, dtype):
    x = _randn((64, 33), dtype, scale=6.0)
    x[0, :8] = [0.0, -0.0, 1e-30, -1e-30, 9.0, -9.0, 60.0, -60.0]
    for approximate in ("none", "tanh"):
        tol = dict(rtol=2e-5, atol=1e-5) if approximate == "tanh" and dtype == np.float32 else None
        _compare(lambda a: dtrain.nn.functional.gelu(a[:, ::2].t(), approximate=approximate),
                 lambda a: torch.nn.functional.gelu(a[:, ::2].t(), approximate=approximate), [x], dtype, tol=tol)
    # against torch's float64 answer: its float32 exact GELU gives NaN at +inf (its vectorized erf), where the
    # value, and torch's float64 and tanh forms, are inf
    special = np.array([np.inf, -np.inf, np.nan], dtype)
    for approximate in ("none", "tanh"):
        y = dtrain.nn.functional.gelu(dtrain.tensor(special), approximate=approximate).numpy()
        np.testing.assert_array_equal(y, torch.nn.functional.gelu(torch.from_numpy(special).double(),
                                                                  approximate=approximate).numpy().astype(dtype))


# ---- tanh, sigmoid, relu backward --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("shape", [(3, 5, 7), (40001,), (0, 3)])
def test_pointwise_backward(path, calls, dtype, fn, shape):
    x = _randn(shape, dtype, scale=3.0)
    _compare(lambda a: getattr(dtrain, fn)(a), lambda a: getattr(torch, fn)(a), [x], dtype)
    if calls is not None and x.size:
        assert calls.get(fn + "_backward") == 1
    _compare(lambda a: getattr(dtrain, fn)(a.t()), lambda a: getattr(torch, fn)(a.t()), [x.reshape(-1, 1)], dtype)


def test_small_elementwise_backward_stays_on_numpy(calls, monkeypatch):
    if calls is None:
        pytest.skip("needs numba")
    x = dtrain.randn(128, 256, requires_grad=True)  # an MLP's activations: the call would cost more than it saves
    dtrain.relu(x).backward(dtrain.ones(128, 256))
    assert "relu_backward" not in calls
    monkeypatch.setattr(dtrain._ops.pointwise, "_KERNEL_MIN", 0)
    dtrain.relu(x).backward(dtrain.ones(128, 256))
    assert calls.get("relu_backward") == 1


def test_relu_backward_zero_where_the_output_is_not_positive_even_for_nan(path):
    if path == "numpy":
        pytest.skip("the NumPy path multiplies by the mask (NaN * 0 is NaN): a where() costs it 6x")
    x = np.array([-1.0, 0.0, 2.0, -3.0], np.float32)
    g = np.array([np.nan, np.nan, np.nan, 5.0], np.float32)
    grads = []
    for mod in (dtrain, torch):
        a = mod.tensor(x, requires_grad=True)
        mod.relu(a).backward(mod.tensor(g))
        grads.append(a.grad.numpy())
    np.testing.assert_array_equal(grads[0], grads[1])


# ---- softmax, log_softmax ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(4, 3, 17), (5, 1), (7, 1030), (0, 5)])
def test_softmax(path, calls, dtype, fn, shape):
    x = _randn(shape, dtype, scale=4.0)
    _compare(lambda a: getattr(dtrain.nn.functional, fn)(a, -1), lambda a: getattr(torch.nn.functional, fn)(a, -1),
             [x], dtype)
    if calls is not None and np.prod(shape) > 0:
        assert calls.get(fn) == 1 and calls.get(fn + "_backward") == 1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_masked_rows_and_other_dims(path, dtype, fn):
    x = _randn((6, 9), dtype, scale=3.0)
    x[0, 2:] = -np.inf  # a causal mask's row
    x[1, :] = -np.inf   # a row with nothing left: NaN in torch
    x[2, 4] = np.nan
    x[3, 5] = np.inf
    yd = getattr(dtrain.nn.functional, fn)(dtrain.tensor(x), -1).numpy()
    yt = getattr(torch.nn.functional, fn)(torch.from_numpy(x), -1).numpy()
    np.testing.assert_allclose(yd, yt, **TOL[dtype], equal_nan=True)
    xs = _randn((5, 8, 11), dtype, seed=3)
    for dim in (0, 1):  # not the last dim: the NumPy path, whatever is installed
        _compare(lambda a: getattr(dtrain.nn.functional, fn)(a, dim),
                 lambda a: getattr(torch.nn.functional, fn)(a, dim),
                 [xs], dtype)
    _compare(lambda a: getattr(dtrain.nn.functional, fn)(a.transpose(0, 2), -1),
             lambda a: getattr(torch.nn.functional, fn)(a.transpose(0, 2), -1), [xs], dtype)


# ---- cross-entropy -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_cross_entropy(path, calls, dtype, reduction, weighted, label_smoothing):
    n, c = 37, 11
    x = _randn((n, c), dtype, scale=3.0)
    t = np.random.default_rng(1).integers(0, c, n)
    t[[2, 9, 30]] = 5
    t[[3, 4]] = 7  # ignore_index below
    w = np.random.default_rng(2).random(c).astype(dtype) + 0.1 if weighted else None
    wd, wt = (dtrain.tensor(w), torch.from_numpy(w)) if weighted else (None, None)
    _compare(lambda a, b: dtrain.nn.functional.cross_entropy(a, b, wd, ignore_index=7, reduction=reduction,
                                                             label_smoothing=label_smoothing),
             lambda a, b: torch.nn.functional.cross_entropy(a, b, wt, ignore_index=7, reduction=reduction,
                                                            label_smoothing=label_smoothing), [x, t], dtype)
    if calls is not None:
        assert calls.get("cross_entropy") == 1 and calls.get("cross_entropy_backward") == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_spatial_all_ignored_and_empty(path, dtype):
    x = _randn((3, 5, 4, 2), dtype)
    t = np.random.default_rng(4).integers(0, 5, (3, 4, 2))
    _compare(lambda a, b: dtrain.nn.functional.cross_entropy(a, b),
             lambda a, b: torch.nn.functional.cross_entropy(a, b),
             [x, t], dtype)
    every = np.full(6, -100)
    x2 = _randn((6, 4), dtype)
    for reduction in ("mean", "sum"):
        ld = dtrain.nn.functional.cross_entropy(dtrain.tensor(x2), dtrain.tensor(every), reduction=reduction)
        lt = torch.nn.functional.cross_entropy(torch.from_numpy(x2), torch.from_numpy(every), reduction=reduction)
        np.testing.assert_allclose(ld.numpy(), lt.numpy(), equal_nan=True)
    empty = np.zeros((0, 4), dtype)
    _compare(lambda a, b: dtrain.nn.functional.cross_entropy(a, b, reduction="sum"),
             lambda a, b: torch.nn.functional.cross_entropy(a, b, reduction="sum"), [empty, np.zeros(0, np.int64)],
             dtype)


# ---- layer norm, RMS norm ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("shape,ns", [((4, 7, 33), (33,)), ((3, 5, 6), (5, 6)), ((9, 257), (257,)), ((0, 8), (8,))])
def test_layer_norm(path, calls, dtype, affine, shape, ns):
    x = _randn(shape, dtype, scale=2.0) + 3.0  # an offset mean: the variance must not come from E[x²] - E[x]²
    w = _randn(ns, dtype, seed=1) if affine != "none" else None
    b = _randn(ns, dtype, seed=2) if affine == "both" else None
    arrays = [x] + [a for a in (w, b) if a is not None]

    def run(F):
        return lambda a, *wb: F.layer_norm(a, ns, wb[0] if wb else None, wb[1] if len(wb) > 1 else None)
    _compare(run(dtrain.nn.functional), run(torch.nn.functional), arrays, dtype, grad=(True, True, True))
    if calls is not None and x.size:
        assert calls.get("layer_norm") == 1 and calls.get("layer_norm_backward") == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_noncontiguous_and_grad_fn(path, dtype):
    x = _randn((12, 40), dtype)
    w, b = _randn(6, dtype, seed=1), _randn(6, dtype, seed=2)
    _compare(lambda a, w, b: dtrain.nn.functional.layer_norm(a[::2, ::7][:, :6], (6,), w, b),
             lambda a, w, b: torch.nn.functional.layer_norm(a[::2, ::7][:, :6], (6,), w, b), [x, w, b], dtype,
             grad=(True, True, True))
    y = dtrain.nn.functional.layer_norm(dtrain.tensor(x, requires_grad=True), (40,))
    assert y.grad_fn.name() == "NativeLayerNormBackward0"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm(path, calls, dtype, weighted, eps):
    x = _randn((5, 3, 29), dtype, scale=2.0)
    w = _randn((29,), dtype, seed=1)
    arrays = [x, w] if weighted else [x]
    _compare(lambda a, *w: dtrain.nn.functional.rms_norm(a, (29,), w[0] if w else None, eps),
             lambda a, *w: torch.nn.functional.rms_norm(a, (29,), w[0] if w else None, eps), arrays, dtype,
             grad=(True, True))
    if calls is not None:
        assert calls.get("rms_norm") == 1 and calls.get("rms_norm_backward") == 1
    y = dtrain.nn.functional.rms_norm(dtrain.tensor(x, requires_grad=True), (3, 29), eps=eps)
    yt = torch.nn.functional.rms_norm(torch.from_numpy(x), (3, 29), eps=eps)
    np.testing.assert_allclose(y.detach().numpy(), yt.numpy(), **TOL[dtype])
    assert y.grad_fn.name() == "MulBackward0"


# ---- embedding ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 3, -2])
def test_embedding_backward(path, calls, dtype, padding_idx):
    idx = np.random.default_rng(5).integers(0, 10, (7, 13))
    idx[0, :4] = [3, 3, 8, 8]
    w = _randn((10, 5), dtype)
    _compare(lambda i, w: dtrain.nn.functional.embedding(i, w, padding_idx),
             lambda i, w: torch.nn.functional.embedding(i, w, padding_idx), [idx, w], dtype, grad=(False, True))
    if calls is not None:
        assert calls.get("embedding_backward") == 1


def test_embedding_backward_same_bits_for_any_thread_count(path):
    idx = np.random.default_rng(6).integers(0, 50, 4000)
    g = _randn((4000, 37), np.float32, seed=7)
    results = []
    for n in (1, 2):
        with _threads(n):
            w = dtrain.zeros(50, 37, requires_grad=True)
            (dtrain.nn.functional.embedding(dtrain.tensor(idx), w) * dtrain.tensor(g)).sum().backward()
            results.append(w.grad.numpy().copy())
    np.testing.assert_array_equal(results[0], results[1])
    ref = np.zeros((50, 37), np.float32)
    np.add.at(ref, idx, g)  # the order np.add.at sums in: the same bits
    np.testing.assert_array_equal(results[0], ref)


# ---- 2-D convolution: im2col / col2im -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c,o,size,k,stride,padding,dilation", [
    (1, 4, (8, 8), (3, 3), 1, 1, 1),          # one channel, 9 taps: the direct kernel
    (4, 4, (7, 8), (3, 3), 2, 1, 1),          # 36 taps: NumPy's gather, compiled col2im
    (9, 5, (7, 9), (3, 3), 1, 1, 1),          # odd sizes, the compiled gather
    (8, 3, (9, 8), (2, 3), (2, 1), (0, 2), (1, 2)),
    (12, 2, (5, 6), (1, 1), 1, 0, 1),
    (8, 4, (4, 4), (3, 3), 2, 2, 2)])         # more padding than input: windows of padding only
def test_conv2d(path, calls, dtype, c, o, size, k, stride, padding, dilation):
    x = _randn((3, c) + size, dtype)
    w = _randn((o, c) + k, dtype, seed=1, scale=0.3)
    b = _randn((o,), dtype, seed=2)
    _compare(lambda x, w, b: dtrain.nn.functional.conv2d(x, w, b, stride, padding, dilation),
             lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride, padding, dilation), [x, w, b], dtype,
             grad=(True, True, True), tol=dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else None)
    if calls is not None and c * np.prod(k) <= 27:
        assert not calls.get("col2im2d") and not calls.get("im2col2d")
    elif calls is not None:
        assert calls.get("col2im2d") == 1 and calls.get("im2col2d", 0) == (1 if c >= 8 else 0)
    _compare(lambda x, w: dtrain.nn.functional.conv2d(x.transpose(2, 3), w, None, stride, padding, dilation),
             lambda x, w: torch.nn.functional.conv2d(x.transpose(2, 3), w, None, stride, padding, dilation),
             [x, w], dtype, grad=(True, True), tol=dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else None)


# ---- Adam / AdamW -------------------------------------------------------------------------------------------------
ADAM_CASES = [("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01)), ("Adam", dict(lr=0.01, weight_decay=0.1)),
              ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True)), ("Adam", dict(lr=0.01, maximize=True)),
              ("AdamW", dict(lr=0.01, betas=(0.3, 0.9), maximize=True, weight_decay=0.05)),
              ("Adam", dict(lr=0.01, betas=(0.5, 0.99), amsgrad=True, weight_decay=0.01))]


def _adam_steps(mod, name, kw, dtype, steps=6):
    rng = np.random.default_rng(8)
    shapes = [(33, 17), (17,), (5, 3, 7), (1,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    ps = [mod.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(mod.optim, name)(ps, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = mod.tensor(g.copy())
        opt.step()
    return [p.detach().numpy().copy() for p in ps] + [s.numpy().copy() for p in ps
                                                      for k, s in sorted(opt.state[p].items()) if k != "step"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", ADAM_CASES, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={x}" for k, x in v.items()))
def test_adam_step(path, calls, dtype, name, kw):
    got, want = _adam_steps(dtrain, name, kw, dtype), _adam_steps(torch, name, kw, dtype)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)
    if calls is not None:
        assert calls.get("adam", 0) >= 6


@pytest.mark.parametrize("name,kw", ADAM_CASES[:4])
def test_adam_kernel_gives_the_numpy_paths_bits(name, kw, monkeypatch):
    _needs_numba()
    fused = _adam_steps(dtrain, name, kw, np.float32)
    monkeypatch.setattr(_cpu_kernels, "ENABLED", False)
    plain = _adam_steps(dtrain, name, kw, np.float32)
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)


# ---- threads, import, switch -------------------------------------------------------------------------------------
class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        from dtrain import _parallel
        self.old = _parallel._threads
        _parallel._threads = self.n

    def __exit__(self, *exc):
        from dtrain import _parallel
        _parallel._threads = self.old


def test_set_num_threads_reaches_the_kernels(monkeypatch):
    numba = _needs_numba()
    from dtrain import _parallel
    from dtrain._cpu_kernels import _jit
    monkeypatch.setattr(_parallel, "_threads", None)
    seen = []
    call = _jit._Kernel.__call__
    monkeypatch.setattr(_jit._Kernel, "__call__", lambda self, *a: (seen.append(_jit._threads()), call(self, *a))[1])
    for n in (1, 2):
        if n != dtrain.get_num_threads():
            with pytest.warns(UserWarning, match="BLAS"):
                dtrain.set_num_threads(n)
        seen.clear()
        dtrain.softmax(dtrain.randn(512, 300), -1)
        assert dtrain.get_num_threads() == n and seen == [min(n, numba.config.NUMBA_NUM_THREADS)]
    for bad in (0, -1, 1.5):
        with pytest.raises(RuntimeError) as want:
            torch.set_num_threads(bad)
        with pytest.raises(RuntimeError, match=str(want.value)):
            dtrain.set_num_threads(bad)


def test_concurrent_callers_take_turns(path):
    x = _randn((256, 300), np.float32)
    ref = torch.softmax(torch.from_numpy(x), -1).numpy()
    errors = []

    def work():
        try:
            for _ in range(20):
                np.testing.assert_allclose(dtrain.softmax(dtrain.tensor(x), -1).numpy(), ref, **TOL[np.float32])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _python(code, **env):
    e = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=120)


def test_import_dtrain_does_not_import_numba():
    r = _python("import sys, dtrain, dtrain.nn.functional as F; x = dtrain.randn(3, 4); F.layer_norm(x, (4,)); "
                "print('numba' in sys.modules, 'dtrain._cpu_kernels._numba' in sys.modules)", DTRAIN_NUMBA="0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
    r = _python("import sys, dtrain; print('numba' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False"]


def test_a_forked_child_runs_the_kernels_after_its_parent():
    _needs_numba()
    # a data-loader worker forked from a process that already ran parallel kernels (GNU OpenMP would abort it)
    code = ("import os, numpy as np, dtrain\n"
            "x = dtrain.randn(64, 50)\n"
            "dtrain.softmax(x, -1)\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    ok = abs(float(dtrain.softmax(x, -1).sum()) - 64) < 1e-3\n"
            "    os._exit(0 if ok else 3)\n"
            "print(os.waitpid(pid, 0)[1])\n")
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"]


def test_one_thread_per_rank_when_the_launcher_says_so():
    _needs_numba()
    # dtrain-run sets OMP_NUM_THREADS per rank: the kernels then run their serial builds, and numba's thread pool
    # is never started (threading_layer() raises until it is)
    code = ("import numba, dtrain\n"
            "dtrain.softmax(dtrain.randn(512, 300, requires_grad=True), -1).sum().backward()\n"
            "try:\n"
            "    layer = numba.threading_layer()\n"
            "except ValueError:\n"
            "    layer = 'none'\n"
            "print(layer, dtrain.get_num_threads())")
    r = _python(code, OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["none", "1"]
    r = _python(code, OMP_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["workqueue", "2"]
