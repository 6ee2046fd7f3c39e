"""The compiled convolution and pooling kernels (dtrain/_cpu_kernels/_pool.py, _conv.py) against torch: values,
gradients and indices, float32 and float64, odd sizes, stride/padding/dilation, non-contiguous inputs, ties,
NaN and -inf; each case once with the kernels and once on the NumPy paths, and the kernels in their serial and
parallel builds."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain import _cpu_kernels

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(params=["numba-serial", "numba-parallel", "numpy"])
def path(request, monkeypatch):
    if request.param == "numpy":
        monkeypatch.setattr(_cpu_kernels, "ENABLED", False)
        return None
    pytest.importorskip("numba")
    if not _cpu_kernels.ENABLED or not _cpu_kernels.available():
        pytest.skip("DTRAIN_NUMBA=0")
    from dtrain._cpu_kernels import _jit, _numba
    # the parallel build serves large arrays on more than one thread: here every size, on two threads
    monkeypatch.setattr(_jit, "_PARALLEL_MIN", 0 if request.param == "numba-parallel" else 1 << 62)
    monkeypatch.setattr(dtrain._parallel, "_threads", 2)
    seen = {}
    for name in ("max_pool2d", "max_pool2d_backward", "conv2d_direct", "conv2d_direct_backward", "rows_to_planes",
                 "planes_to_rows"):
        fn = getattr(_numba, name, None)
        if fn is None:
            continue

        def spy(*args, _fn=fn, _name=name, **kwargs):
            seen[_name] = seen.get(_name, 0) + 1
            return _fn(*args, **kwargs)
        monkeypatch.setattr(_numba, name, spy)
    return seen


def _both(fn, arrays, dtype, grad, seed=0, transpose=False):
    """fn(module, *tensors) in dtrain and torch; returns the outputs (a tuple) and input gradients of both."""
    res = []
    for mod in (dtrain, torch):
        ts = [mod.tensor(a, requires_grad=g) for a, g in zip(arrays, grad)]
        xs = [t.transpose(-1, -2) if transpose and i == 0 else t for i, t in enumerate(ts)]
        out = fn(mod, *xs)
        out = out if isinstance(out, tuple) else (out,)
        w = np.random.default_rng(seed + 1).standard_normal(tuple(out[0].shape)).astype(dtype)
        (out[0] * mod.tensor(w)).sum().backward()
        res.append(([o.detach().numpy() for o in out], [t.grad.numpy() if g else None for t, g in zip(ts, grad)]))
    return res


POOLS = [  # (input shape, kernel, stride, padding, dilation, ceil_mode)
    ((3, 4, 8, 8), 2, None, 0, 1, False),
    ((2, 5, 9, 7), 3, 2, 1, 1, False),
    ((2, 3, 9, 7), 3, 2, 1, 1, True),
    ((2, 3, 10, 11), (2, 3), (1, 2), (1, 0), (2, 3), False),
    ((1, 2, 7, 6), 2, 3, 1, 2, True),        # dilated windows that hang over the border
    ((2, 3, 5, 5), 5, 1, 2, 1, False),       # one window over everything
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,s,p,d,ceil", POOLS)
@pytest.mark.parametrize("transpose", [False, True])
def test_max_pool2d(path, dtype, shape, k, s, p, d, ceil, transpose):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    if transpose:
        x = np.ascontiguousarray(x.swapaxes(-1, -2))
    fn = lambda m, x: m.nn.functional.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    (yd, gd), (yt, gt) = _both(fn, [x], dtype, [True], transpose=transpose)
    np.testing.assert_array_equal(yd[0], yt[0])
    np.testing.assert_array_equal(yd[1], yt[1])
    np.testing.assert_allclose(gd[0], gt[0], **TOL[dtype])
    if path is not None:
        assert path.get("max_pool2d") == 1 and path.get("max_pool2d_backward") == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,s,p,d,ceil", POOLS[:4])
def test_max_pool2d_ties_nan_inf(path, dtype, shape, k, s, p, d, ceil):
    """Rounded values (many ties), NaN and -inf: the same maxima, indices and gradient places as torch's."""
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal(shape)).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, flat.size // 10, replace=False)] = np.nan
    flat[rng.choice(flat.size, flat.size // 10, replace=False)] = -np.inf
    x[0, 0] = -np.inf  # a plane of -inf only: the index stays at each window's first position
    fn = lambda m, x: m.nn.functional.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
    (yd, gd), (yt, gt) = _both(fn, [x], dtype, [True])
    np.testing.assert_array_equal(yd[0], yt[0])
    np.testing.assert_array_equal(yd[1], yt[1])
    np.testing.assert_allclose(gd[0], gt[0], **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool1d(path, dtype):
    x = np.random.default_rng(2).standard_normal((3, 4, 11)).astype(dtype)
    fn = lambda m, x: m.nn.functional.max_pool1d(x, 3, 2, 1, return_indices=True)
    (yd, gd), (yt, gt) = _both(fn, [x], dtype, [True])
    np.testing.assert_array_equal(yd[0], yt[0])
    np.testing.assert_array_equal(yd[1], yt[1])
    np.testing.assert_allclose(gd[0], gt[0], **TOL[dtype])


DIRECT = [  # (input shape, weight shape, stride, padding, dilation): C*kh*kw <= 27, the direct kernel's cases
    ((3, 1, 8, 8), (5, 1, 3, 3), 1, 1, 1),
    ((2, 1, 9, 7), (4, 1, 2, 3), 2, (1, 0), (2, 1)),
    ((2, 2, 6, 5), (3, 2, 2, 2), (1, 2), 2, 1),            # more padding than needed: rows of padding only
    ((2, 1, 5, 6), (17, 1, 1, 1), 1, 0, 1),
    ((1, 3, 4, 4), (2, 3, 1, 3), 1, (0, 1), 1),
    ((2, 3, 7, 6), (4, 3, 3, 3), 2, 1, 1),                   # RGB 3x3: 27 taps
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,ws,s,p,d", DIRECT)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("transpose", [False, True])
def test_conv2d_direct(path, dtype, xs, ws, s, p, d, bias, transpose):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(xs).astype(dtype)
    if transpose:
        x = np.ascontiguousarray(x.swapaxes(-1, -2))
    arrays = [x, (rng.standard_normal(ws) * 0.5).astype(dtype)] + ([rng.standard_normal(ws[0]).astype(dtype)]
                                                                   if bias else [])
    fn = lambda m, *t: m.nn.functional.conv2d(*t, stride=s, padding=p, dilation=d)
    (yd, gd), (yt, gt) = _both(fn, arrays, dtype, [True] * len(arrays), transpose=transpose)
    np.testing.assert_allclose(yd[0], yt[0], **TOL[dtype])
    for i, (a, b) in enumerate(zip(gd, gt)):
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"gradient of input {i}")
    if path is not None:
        assert path.get("conv2d_direct") == 1 and path.get("conv2d_direct_backward") == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("needs", ["weight", "input"])
def test_conv_direct_partial_grads(path, dtype, needs):
    """Only the gradients asked for: a first layer's input needs none; conv1d runs as 2-D over a height of 1."""
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((4, 1, 13)).astype(dtype), rng.standard_normal((6, 1, 3)).astype(dtype),
              rng.standard_normal(6).astype(dtype)]
    grad = [needs == "input", needs == "weight", needs == "weight"]
    fn = lambda m, *t: m.nn.functional.conv1d(*t, stride=2, padding=1)
    (yd, gd), (yt, gt) = _both(fn, arrays, dtype, grad)
    np.testing.assert_allclose(yd[0], yt[0], **TOL[dtype])
    for a, b in zip(gd, gt):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,ws,s,p", [((3, 9, 7, 6), (5, 9, 3, 3), 1, 1), ((2, 16, 9, 8), (33, 16, 2, 3), 2, (0, 1))])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_gemm_layouts(path, dtype, xs, ws, s, p, bias):
    """The GEMM path's (N*P, O) rows turned into (N, O, H, W) with the bias added, and the output gradient
    turned back with the bias gradient summed on the way."""
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(xs).astype(dtype), (rng.standard_normal(ws) * 0.2).astype(dtype)] + (
        [rng.standard_normal(ws[0]).astype(dtype)] if bias else [])
    fn = lambda m, *t: m.nn.functional.conv2d(*t, stride=s, padding=p)
    (yd, gd), (yt, gt) = _both(fn, arrays, dtype, [True] * len(arrays))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(yd[0], yt[0], **tol)
    for i, (a, b) in enumerate(zip(gd, gt)):
        np.testing.assert_allclose(a, b, **tol, err_msg=f"gradient of input {i}")
    if path is not None:
        assert path.get("rows_to_planes") == 1 and path.get("planes_to_rows") == 1


@pytest.mark.parametrize("xs,ws", [((2, 1, 6, 6), (4, 1, 3, 3)), ((2, 9, 5, 6), (3, 9, 3, 3))])
def test_conv2d_bfloat16(path, xs, ws):
    """bfloat16 runs on float32 copies (the kernels' dtypes) and rounds once, as torch's CPU convolution."""
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws) * 0.3, rng.standard_normal(ws[0])]
    res = []
    for mod in (dtrain, torch):
        ts = [mod.tensor(a, dtype=mod.bfloat16, requires_grad=True) for a in arrays]
        y = mod.nn.functional.conv2d(*ts, padding=1)
        y.float().pow(2).sum().backward()
        res.append([y.float().detach().numpy()] + [t.grad.float().numpy() for t in ts])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2)
