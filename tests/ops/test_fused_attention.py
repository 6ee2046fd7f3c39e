"""scaled_dot_product_attention against torch, values and gradients, with the compiled masked softmax (numba, serial
and parallel builds) and on the NumPy path that runs where numba is not installed or DTRAIN_NUMBA=0."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain import _cpu_kernels

TOL = {np.float32: dict(rtol=3e-5, atol=3e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=["numba-serial", "numba-parallel", "numpy"])
def path(request, monkeypatch):
    """Each test runs with the compiled kernels in their serial build, in their parallel build (on every size;
    the parallel build takes effect only with more than one thread), and on the NumPy path."""
    if request.param == "numpy":
        monkeypatch.setattr(_cpu_kernels, "ENABLED", False)
        return request.param
    pytest.importorskip("numba")
    if not _cpu_kernels.ENABLED:
        pytest.skip("DTRAIN_NUMBA=0")
    assert _cpu_kernels.available()
    from dtrain._cpu_kernels import _jit
    monkeypatch.setattr(_jit, "_PARALLEL_MIN", 0 if request.param == "numba-parallel" else 1 << 62)
    return request.param


@pytest.fixture
def calls(path, monkeypatch):
    """Counts the calls into the compiled kernels (None on the NumPy path)."""
    if path == "numpy":
        return None
    from dtrain._cpu_kernels import _numba
    seen = {}
    for name in ("masked_softmax", "masked_softmax_backward"):
        def spy(*args, _fn=getattr(_numba, name), _name=name):
            seen[_name] = seen.get(_name, 0) + 1
            return _fn(*args)
        monkeypatch.setattr(_numba, name, spy)
    return seen


def _sdpa(fw, q, k, v, mask, **kw):
    args = (q, k, v) + ((mask,) if mask is not None else ())
    return fw.nn.functional.scaled_dot_product_attention(*args, **kw)


def _compare(arrays, dtype, mask=None, mask_grad=False, seed=0, **kw):
    """sdpa over dtrain and torch tensors made from q, k, v (which require grad) and an optional mask; outputs and
    the gradients of sum(out * w), w random, must agree within the dtype's tolerance."""
    td = [dtrain.tensor(a, requires_grad=True) for a in arrays]
    tt = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    md = mt = None
    if mask is not None:
        md, mt = dtrain.tensor(mask, requires_grad=mask_grad), torch.from_numpy(mask.copy()).requires_grad_(mask_grad)
        td.append(md) if mask_grad else None
        tt.append(mt) if mask_grad else None
    yd, yt = _sdpa(dtrain, *td[:3], md, **kw), _sdpa(torch, *tt[:3], mt, **kw)
    np.testing.assert_allclose(yd.detach().numpy(), yt.detach().numpy(), **TOL[dtype], err_msg="output")
    w = np.random.default_rng(seed + 1).standard_normal(tuple(yt.shape)).astype(dtype)
    (yd * dtrain.tensor(w)).sum().backward()
    (yt * torch.from_numpy(w)).sum().backward()
    for i, (d, t) in enumerate(zip(td, tt)):
        np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), **TOL[dtype], err_msg=f"gradient of input {i}")
    return yd


def _qkv(batch, L, S, E, Ev, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in (batch + (L, E), batch + (S, E), batch + (S, Ev))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L,S", [(7, 9), (13, 13), (9, 5), (1, 1)])
@pytest.mark.parametrize("kw", [{}, {"is_causal": True}, {"scale": 0.3}])
def test_sdpa(calls, dtype, L, S, kw):
    _compare(_qkv((2, 3), L, S, 5, 6, dtype), dtype, **kw)
    if calls is not None:
        assert calls == {"masked_softmax": 1, "masked_softmax_backward": 1}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", [(7, 9), (3, 7, 9), (2, 1, 7, 9), (2, 3, 7, 9), (1, 9), (7, 1)])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_masks(calls, dtype, mask_shape, kind):
    rng = np.random.default_rng(3)
    if kind == "bool":
        mask = rng.random(mask_shape) > 0.4
        mask.reshape(-1, mask_shape[-1])[0] = False  # a fully masked row gives zeros (and zero gradients)
    else:
        mask = rng.standard_normal(mask_shape).astype(dtype)
        mask.reshape(-1, mask_shape[-1])[0] = -np.inf
        mask.reshape(-1, mask_shape[-1])[-1, ::2] = -np.inf
    _compare(_qkv((2, 3), 7, 9, 4, 5, dtype, seed=1), dtype, mask=mask)
    if calls is not None:
        assert calls == {"masked_softmax": 1, "masked_softmax_backward": 1}


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_mask_requiring_grad(path, dtype):
    mask = np.random.default_rng(4).standard_normal((3, 7, 9)).astype(dtype)
    _compare(_qkv((2, 3), 7, 9, 4, 5, dtype, seed=2), dtype, mask=mask, mask_grad=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_gpt_shapes_and_views(calls, dtype):
    # the shapes of a GPT block (16 sequences of 64, 4 heads of 32) as views of one (B, T, 3C) projection
    B, T, H, D = 16, 64, 4, 32
    x = np.random.default_rng(5).standard_normal((B, T, 3 * H * D)).astype(dtype)
    outs = []
    for fw in (dtrain, torch):
        xt = fw.tensor(x, requires_grad=True)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in xt.split(H * D, dim=2))
        y = fw.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        (y * y).sum().backward()
        outs.append((y.detach().numpy(), xt.grad.numpy()))
    # the first query sees one key: its q gradient is 0 exactly, which torch's float32 rounding leaves at ~5e-6
    # (gradients here are O(10))
    tol = dict(rtol=3e-5, atol=2e-5) if dtype == np.float32 else TOL[dtype]
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, **tol)
    if calls is not None:
        assert calls == {"masked_softmax": 1, "masked_softmax_backward": 1}


def test_sdpa_broadcast_batch(path):
    # k and v shared by every head (broadcast batch dims): the gradients sum over the heads, as torch's
    q = np.random.default_rng(6).standard_normal((2, 3, 7, 4))
    k, v = np.random.default_rng(7).standard_normal((2, 2, 1, 9, 4))
    _compare([q, k, v], np.float64, is_causal=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_dropout(path, dtype):
    # train-mode dropout: a fresh mask from dtrain's generator on each call (so the same seed gives the same
    # result, on the kernel path and the NumPy path alike); dropout_p=0 is exactly the call without dropout
    q, k, v = (dtrain.tensor(a) for a in _qkv((2, 3), 7, 9, 4, 5, dtype, seed=8))
    F = dtrain.nn.functional
    plain = F.scaled_dot_product_attention(q, k, v).numpy()
    np.testing.assert_array_equal(F.scaled_dot_product_attention(q, k, v, dropout_p=0.0).numpy(), plain)
    outs = []
    for _ in range(2):
        dtrain.manual_seed(11)
        qs = [t.detach().requires_grad_() for t in (q, k, v)]
        y = F.scaled_dot_product_attention(*qs, dropout_p=0.4)
        y.sum().backward()
        outs.append([y.detach().numpy()] + [t.grad.numpy() for t in qs])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(outs[0][0], plain)
    # the dropped weights against the same mask applied by hand: out = (softmax(q k^T s) * keep / (1-p)) @ v
    dtrain.manual_seed(11)
    u = dtrain.rand(2, 3, 7, 9, dtype=q.dtype).numpy()
    keep = (u >= 0.4) / np.asarray(0.6, dtype)
    s = q.numpy() @ k.numpy().swapaxes(-1, -2) / np.sqrt(4)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(outs[0][0], (p * keep) @ v.numpy(), **TOL[dtype])


def test_sdpa_kernels_and_numpy_path_agree(monkeypatch):
    # float32, the GPT block's shapes: the compiled pass and the NumPy path give the same values to rounding
    pytest.importorskip("numba")
    if not _cpu_kernels.ENABLED:
        pytest.skip("DTRAIN_NUMBA=0")
    q, k, v = (dtrain.tensor(a) for a in _qkv((16, 4), 64, 64, 32, 32, np.float32, seed=9))
    y = dtrain.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).numpy()
    monkeypatch.setattr(_cpu_kernels, "ENABLED", False)
    y0 = dtrain.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).numpy()
    np.testing.assert_allclose(y, y0, rtol=1e-5, atol=1e-6)


def test_sdpa_bfloat16(path):
    # widened to float32 inside, rounded once at the end, as torch's CPU kernel
    q, k, v = _qkv((2, 2), 8, 8, 4, 4, np.float32, seed=10)
    yd = dtrain.nn.functional.scaled_dot_product_attention(*(dtrain.tensor(a).bfloat16() for a in (q, k, v)),
                                                           is_causal=True)
    yt = torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a).bfloat16() for a in (q, k, v)),
                                                          is_causal=True)
    np.testing.assert_allclose(yd.float().numpy(), yt.float().numpy(), rtol=2e-2, atol=2e-2)
