"""The fused CUDA kernels (dtrain._cuda_kernels) against torch on the CPU, values and gradients, and the same cases
on the array-level paths (DTRAIN_CUDA_KERNELS=0). On the emulated devices the kernels' references run, and then
the kernels' CUDA C itself compiled for the host (cuda_on_host.py); on a real GPU the compiled kernels run and
every launch is also checked against its reference (_kernels.CHECK)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import dtrain
import dtrain.nn.functional as F
from dtrain import _cuda_kernels

# the device the CUDA tests run on, as tests/conftest.py picks it (DTRAIN_TEST_CUDA_DEVICE=1: cuda:1, with device
# 0 current)
CUDA = (f"cuda:{os.environ['DTRAIN_TEST_CUDA_DEVICE']}" if os.environ.get("DTRAIN_TEST_CUDA_DEVICE") else "cuda") \
    if dtrain.cuda.is_available() else None
pytestmark = pytest.mark.cuda

DEV = dtrain.device(CUDA if ":" in CUDA else "cuda:0") if CUDA else None
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=["kernels", "host-compiled", "arrays"])
def path(request, monkeypatch):
    """Each test runs with the fused kernels (on emulated devices: their references), with the kernels' CUDA C
    compiled for the host CPU (cuda_on_host: the sources' own values, without a GPU), and on the array-level
    paths (kernels switched off)."""
    monkeypatch.setattr(_cuda_kernels, "ENABLED", request.param != "arrays")
    if request.param == "host-compiled":
        import cuda_on_host
        from dtrain import _backend
        from dtrain._cuda_kernels import _kernels
        if not _backend.is_emulated():
            pytest.skip("a real GPU runs the compiled kernels themselves")
        if CUDA != "cuda":
            pytest.skip("the host-compiled kernels' values do not depend on the device: the cuda:0 pass runs them")
        if cuda_on_host.library(np.float32) is None:
            pytest.skip("no g++ with C++20 (std::barrier) to compile the CUDA sources for the host")
        monkeypatch.setattr(_kernels, "_launch", cuda_on_host.launch)
        # at most 4 warps a row: each thread of a host block is an OS thread, and a block-wide barrier of 1024 of
        # them on two cores costs seconds per test; the rows of 1000 and 4097 still loop, the warps still meet
        row_grid = _kernels._row_grid

        def at_most_4_warps(rows, c):
            grid, (threads,) = row_grid(rows, c)
            return grid, (min(128, threads),)
        monkeypatch.setattr(_kernels, "_row_grid", at_most_4_warps)
        return "kernels"
    return request.param


@pytest.fixture
def launches(monkeypatch):
    """The names of the kernels launched (a test that must take them asserts it did); on a real GPU each launch
    is also compared with its reference."""
    from dtrain._cuda_kernels import _kernels
    seen = []
    launch = _kernels._launch

    def spy(name, grid, block, args):
        seen.append(name)
        return launch(name, grid, block, args)
    monkeypatch.setattr(_kernels, "_launch", spy)
    monkeypatch.setattr(_kernels, "CHECK", True)
    return seen


def _expect(path, launches, *names):
    if path == "kernels":
        assert set(names) <= set(launches), f"the fused path was not taken: launched {launches}, expected {names}"
    else:
        assert not launches, f"kernels launched with DTRAIN_CUDA_KERNELS=0: {launches}"


def _compare(fn_d, fn_t, arrays, dtype, grad=(True,), seed=0, tol=None):
    """fn over dtrain tensors on the CUDA device and torch CPU tensors made from `arrays` (float ones require
    grad where `grad` says so); outputs and gradients of sum(out * w), w random, agree within the dtype's
    tolerance."""
    tol = tol or TOL[dtype]
    grad = tuple(grad) + (False,) * (len(arrays) - len(grad))
    td = [dtrain.tensor(a, device=CUDA) for a in arrays]
    tt = [torch.from_numpy(np.array(a)) for a in arrays]
    for d, t, g, a in zip(td, tt, grad, arrays):
        if g and a.dtype.kind == "f":
            d.requires_grad_()
            t.requires_grad_()
    yd, yt = fn_d(*td), fn_t(*tt)
    assert yd.device == DEV and yd.dtype == getattr(dtrain, str(yt.dtype).split(".")[1])
    np.testing.assert_allclose(yd.detach().cpu().numpy(), yt.detach().numpy(), **tol, err_msg="output")
    if not any(t.requires_grad for t in tt):
        return
    w = np.random.default_rng(seed + 1).standard_normal(tuple(yt.shape)).astype(dtype)
    (yd * dtrain.tensor(w, device=CUDA)).sum().backward()
    (yt * torch.from_numpy(w)).sum().backward()
    for i, (d, t) in enumerate(zip(td, tt)):
        if t.requires_grad:
            assert d.grad.device == DEV
            np.testing.assert_allclose(d.grad.cpu().numpy(), t.grad.numpy(), **tol, err_msg=f"gradient of input {i}")


def _randn(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---- GELU -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(3, 1000), (4097,), (2, 3, 7), (1,)])
def test_gelu(path, launches, dtype, approximate, shape):
    x = _randn(np.random.default_rng(0), shape, dtype, 3)
    _compare(lambda t: F.gelu(t, approximate=approximate),
             lambda t: torch.nn.functional.gelu(t, approximate=approximate), [x], dtype)
    name = "dtrain_gelu_tanh" if approximate == "tanh" else "dtrain_gelu"
    _expect(path, launches, name + "_forward", name + "_backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_non_contiguous(path, launches, dtype):
    x = _randn(np.random.default_rng(1), (7, 33), dtype, 2)
    _compare(lambda t: F.gelu(t.t()[::2]), lambda t: torch.nn.functional.gelu(t.t()[::2]), [x], dtype)
    _expect(path, launches, "dtrain_gelu_forward", "dtrain_gelu_backward")


# ---- softmax and log_softmax ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape", [(5, 1), (33, 7), (3, 1000), (2, 4097), (2, 3, 7)])
def test_softmax(path, launches, dtype, op, shape):
    x = _randn(np.random.default_rng(2), shape, dtype, 4)
    _compare(lambda t: getattr(t, op)(-1), lambda t: getattr(t, op)(-1), [x], dtype)
    _expect(path, launches, f"dtrain_{op}_forward", f"dtrain_{op}_backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_non_contiguous_and_extremes(path, launches, dtype, op):
    x = _randn(np.random.default_rng(3), (9, 5), dtype, 4)
    x[0, 0], x[1] = 1e4, -1e4  # a dominant entry, a row of large negative values: the max subtraction at work
    _compare(lambda t: getattr(t.t(), op)(-1), lambda t: getattr(t.t(), op)(-1), [x], dtype)
    _expect(path, launches, f"dtrain_{op}_forward", f"dtrain_{op}_backward")


# ---- layer norm and RMS norm ------------------------------------------------------------------------------------
def _one_value_tol(c, dtype):
    # over a single value xhat is 0 up to rounding, which torch's float32 kernel leaves in the weight's gradient
    # (~2e-5 here): an absolute tolerance of that size there
    return dict(TOL[dtype], atol=1e-4) if c == 1 and dtype == np.float32 else None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", ["wb", "w", "none"])
@pytest.mark.parametrize("shape", [(5, 1), (130, 7), (3, 1000), (2, 4097), (2, 3, 7)])
def test_layer_norm(path, launches, dtype, affine, shape):
    rng = np.random.default_rng(4)
    c = shape[-1]
    arrays = [_randn(rng, shape, dtype, 2) + 1]
    if affine != "none":
        arrays.append(_randn(rng, (c,), dtype))
    if affine == "wb":
        arrays.append(_randn(rng, (c,), dtype))
    _compare(lambda x, *wb: F.layer_norm(x, (c,), *wb, eps=1e-5),
             lambda x, *wb: torch.nn.functional.layer_norm(x, (c,), *wb, eps=1e-5), arrays, dtype,
             grad=(True,) * len(arrays), tol=_one_value_tol(c, dtype))
    _expect(path, launches, "dtrain_layer_norm_forward", "dtrain_layer_norm_backward",
            "dtrain_norm_affine_backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_non_contiguous_two_dims(path, launches, dtype):
    rng = np.random.default_rng(5)
    x, w, b = _randn(rng, (4, 6, 70), dtype), _randn(rng, (4, 6), dtype), _randn(rng, (4, 6), dtype)
    # normalized over the last two dims of a transposed view: 24 values per row
    _compare(lambda x, w, b: F.layer_norm(x.permute(2, 0, 1), (4, 6), w, b),
             lambda x, w, b: torch.nn.functional.layer_norm(x.permute(2, 0, 1), (4, 6), w, b), [x, w, b], dtype,
             grad=(True, True, True))
    _expect(path, launches, "dtrain_layer_norm_forward", "dtrain_layer_norm_backward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight", [True, False])
@pytest.mark.parametrize("shape", [(5, 1), (130, 7), (3, 1000), (2, 4097)])
def test_rms_norm(path, launches, dtype, weight, shape):
    rng = np.random.default_rng(6)
    c = shape[-1]
    arrays = [_randn(rng, shape, dtype, 2)] + ([_randn(rng, (c,), dtype)] if weight else [])
    _compare(lambda x, *w: F.rms_norm(x, (c,), *w), lambda x, *w: torch.nn.functional.rms_norm(x, (c,), *w),
             arrays, dtype, grad=(True,) * len(arrays))
    _expect(path, launches, "dtrain_rms_norm_forward", "dtrain_rms_norm_backward",
            *(("dtrain_norm_affine_backward",) if weight else ()))


# ---- cross-entropy ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("c", [7, 1000])
def test_cross_entropy(path, launches, dtype, reduction, weight, label_smoothing, c):
    rng = np.random.default_rng(7)
    n = 13
    x = _randn(rng, (n, c), dtype, 3)
    t = rng.integers(0, c, n)
    t[[2, 5, 11]] = -100  # ignored rows
    arrays = [x, t] + ([rng.uniform(0.2, 2, c).astype(dtype)] if weight else [])
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    _compare(lambda x, t, *w: F.cross_entropy(x, t, *w, **kw),
             lambda x, t, *w: torch.nn.functional.cross_entropy(x, t, *w, **kw), arrays, dtype)
    _expect(path, launches, "dtrain_cross_entropy_forward", "dtrain_cross_entropy_backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_ignore_index_and_layout(path, launches, dtype):
    rng = np.random.default_rng(8)
    x = _randn(rng, (7, 11), dtype, 2)
    t = np.array([3, 0, 3, 6, 1, 2, 3, 3, 0, 4, 5])
    # logits as the transposed view of a (C, N) array; the ignored class 3 is also a valid class index
    _compare(lambda x, t: F.cross_entropy(x.t(), t, ignore_index=3, label_smoothing=0.1),
             lambda x, t: torch.nn.functional.cross_entropy(x.t(), t, ignore_index=3, label_smoothing=0.1),
             [x, t], dtype)
    _expect(path, launches, "dtrain_cross_entropy_forward", "dtrain_cross_entropy_backward")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_all_ignored_is_nan(path, launches, dtype):
    x = dtrain.tensor(np.ones((3, 4), dtype), device=CUDA, requires_grad=True)
    loss = F.cross_entropy(x, dtrain.tensor([-100] * 3, device=CUDA))
    expected = torch.nn.functional.cross_entropy(torch.ones(3, 4, dtype=getattr(torch, np.dtype(dtype).name)),
                                                 torch.tensor([-100] * 3))
    assert np.isnan(loss.item()) and np.isnan(expected.item())
    _expect(path, launches, "dtrain_cross_entropy_forward")


# ---- Adam / AdamW -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt", ["Adam", "AdamW"])
@pytest.mark.parametrize("options", [dict(), dict(amsgrad=True), dict(maximize=True, weight_decay=0.1),
                                     dict(amsgrad=True, maximize=True, weight_decay=0.05)],
                         ids=["plain", "amsgrad", "maximize-wd", "all"])
def test_adam(path, launches, dtype, opt, options):
    rng = np.random.default_rng(9)
    shapes = [(33, 7), (4097,), (1,)]
    init = [_randn(rng, s, dtype) for s in shapes]
    grads = [[_randn(rng, s, dtype) for s in shapes] for _ in range(5)]
    pd = [dtrain.nn.Parameter(dtrain.tensor(a, device=CUDA)) for a in init]
    pt = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    kw = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, **options)
    od, ot = getattr(dtrain.optim, opt)(pd, **kw), getattr(torch.optim, opt)(pt, **kw)
    for step in grads:
        for p, q, g in zip(pd, pt, step):
            p.grad = dtrain.tensor(g, device=CUDA)
            q.grad = torch.from_numpy(g.copy())
        od.step()
        ot.step()
    for i, (p, q) in enumerate(zip(pd, pt)):
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), **TOL[dtype], err_msg=f"param {i}")
        for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if options.get("amsgrad") else ()):
            np.testing.assert_allclose(od.state[p][key].cpu().numpy(), ot.state[q][key].numpy(), **TOL[dtype],
                                       err_msg=f"{key} of param {i}")
    _expect(path, launches, "dtrain_adam")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [dict(), dict(amsgrad=True, maximize=True, weight_decay=0.05)],
                         ids=["plain", "amsgrad-maximize-wd"])
def test_adam_kernel_rounds_as_the_array_path(monkeypatch, dtype, options):
    # the kernel's C (compiled for the host, where nothing is contracted to FMAs either) against the array-level
    # step on the emulated device: the same operations in the same order, so the same bits
    import cuda_on_host
    from dtrain import _backend
    from dtrain._cuda_kernels import _kernels
    if not _backend.is_emulated() or cuda_on_host.library(np.float32) is None:
        pytest.skip("needs the emulated devices and g++ with C++20")
    rng = np.random.default_rng(11)
    init, grads = _randn(rng, (1000,), dtype), [_randn(rng, (1000,), dtype) for _ in range(4)]
    result = {}
    for path in ("host-compiled", "arrays"):
        monkeypatch.setattr(_cuda_kernels, "ENABLED", path != "arrays")
        monkeypatch.setattr(_kernels, "_launch", cuda_on_host.launch)
        p = dtrain.nn.Parameter(dtrain.tensor(init, device=CUDA))
        opt = dtrain.optim.AdamW([p], lr=0.01, betas=(0.8, 0.95), eps=1e-6, **options)
        for g in grads:
            p.grad = dtrain.tensor(g, device=CUDA)
            opt.step()
        result[path] = [p.detach().cpu().numpy()] + [v.cpu().numpy() for v in opt.state[p].values()
                                                     if v.ndim]
    for a, b in zip(*result.values()):
        np.testing.assert_array_equal(a, b)


# ---- when the kernels answer ------------------------------------------------------------------------------------
def test_get_answers_float32_float64_cupy_arrays_only():
    from dtrain import _backend
    xp = _backend.cupy()
    with xp.cuda.Device(int(CUDA.partition(":")[2] or 0)):
        f32, f64, f16 = xp.zeros(3, np.float32), xp.zeros(3, np.float64), xp.zeros(3, np.float16)
    assert _cuda_kernels.get(f32) is not None and _cuda_kernels.get(f64, f64) is not None
    assert _cuda_kernels.get(f16) is None  # float16 keeps the array-level path (computed in float32 there)
    assert _cuda_kernels.get(f32, f64) is None  # one dtype
    assert _cuda_kernels.get(np.zeros(3, np.float32)) is None  # host arrays: the CPU kernels' business
    assert _cuda_kernels.get() is None


def test_float16_keeps_its_path(launches):
    x = dtrain.randn(4, 9, device=CUDA, dtype=dtrain.float16)
    y = F.layer_norm(x, (9,))
    ref = torch.nn.functional.layer_norm(torch.from_numpy(x.cpu().numpy()).float(), (9,))
    np.testing.assert_allclose(y.cpu().numpy().astype(np.float32), ref.numpy(), rtol=2e-3, atol=2e-3)
    assert "dtrain_layer_norm_forward" not in launches


@pytest.mark.parametrize("op", ["gelu", "softmax", "cross_entropy"])
def test_bfloat16_runs_the_float32_kernels(launches, op):
    # ops compute bfloat16 in float32 copies (torch's opmath; `_lowp.widened`) and so take the float32 kernels
    rng = np.random.default_rng(10)
    x = torch.from_numpy(rng.standard_normal((6, 50)).astype(np.float32)).to(torch.bfloat16)
    t = rng.integers(0, 50, 6)
    fns = {"gelu": lambda F, x, t: F.gelu(x), "softmax": lambda F, x, t: F.softmax(x, -1),
           "cross_entropy": lambda F, x, t: F.cross_entropy(x, t)}
    xd = dtrain.tensor(x.float().numpy(), device=CUDA).to(dtrain.bfloat16).requires_grad_()
    xt = x.clone().requires_grad_()
    yd = fns[op](F, xd, dtrain.tensor(t, device=CUDA))
    yt = fns[op](torch.nn.functional, xt, torch.from_numpy(t))
    assert yd.dtype == dtrain.bfloat16
    w = torch.from_numpy(rng.standard_normal(tuple(yt.shape)).astype(np.float32)).to(torch.bfloat16)
    (yd * dtrain.tensor(w.float().numpy(), device=CUDA).to(dtrain.bfloat16)).sum().backward()
    (yt * w).sum().backward()
    np.testing.assert_allclose(yd.detach().float().cpu().numpy(), yt.detach().float().numpy(), rtol=1e-2,
                               atol=1e-2)
    np.testing.assert_allclose(xd.grad.float().cpu().numpy(), xt.grad.float().numpy(), rtol=2e-2, atol=1e-2)
    name = {"gelu": "dtrain_gelu", "softmax": "dtrain_softmax", "cross_entropy": "dtrain_cross_entropy"}[op]
    assert {name + "_forward", name + "_backward"} <= set(launches), launches


def test_switch_off_by_environment():
    # DTRAIN_CUDA_KERNELS=0 in a fresh process: `get` answers None
    env = dict(os.environ, DTRAIN_CUDA_KERNELS="0")
    code = ("import dtrain, numpy as np; from dtrain import _cuda_kernels, _backend; "
            "x = _backend.cupy().zeros(3, np.float32); print(_cuda_kernels.get(x))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stderr


def test_not_loaded_by_import_dtrain():
    code = "import sys, dtrain; print('dtrain._cuda_kernels._kernels' in sys.modules, 'cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["False", "False"], (out.stdout, out.stderr)


# ---- the real-GPU check of a kernel against its reference, exercised with stand-in kernels ---------------------
def test_check_compares_a_kernel_with_its_reference():
    from dtrain import _backend
    from dtrain._cuda_kernels import _kernels
    xp = _backend.cupy()
    with xp.cuda.Device(int(CUDA.partition(":")[2] or 0)):
        p, g = xp.asarray(np.linspace(-1, 1, 50, dtype=np.float32)), xp.asarray(np.full(50, 0.5, np.float32))
        m, v = xp.zeros(50, np.float32), xp.zeros(50, np.float32)
        # without amsgrad, exp_avg_sq stands in for the unused max_exp_avg_sq: one array passed twice
        args = (p, g, m, v, v, np.int64(50), np.int32(0), np.int32(0), np.int32(0), np.int32(0), np.float32(0),
                np.float32(0.1), np.float32(0.999), np.float32(0.001), np.float32(0.001 ** 0.5), np.float32(1e-8),
                np.float32(-0.01))

        def right(grid, block, a):  # a kernel that computes what the reference does
            from dtrain import _emulate
            _emulate.get_reference("dtrain_adam")(*a)

        def wrong(grid, block, a):
            right(grid, block, a)
            a[0][7] += 1e-3  # one parameter off by 1e-3
        _kernels._checked("dtrain_adam", right, (1,), (64,), args)
        with pytest.raises(AssertionError, match=r"dtrain_adam: argument 0 \(float32, shape \(50,\)\)"):
            _kernels._checked("dtrain_adam", wrong, (1,), (64,), args)
