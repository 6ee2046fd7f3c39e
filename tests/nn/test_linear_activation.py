"""Layers against torch: weights copied from the torch module, then outputs and every gradient compared."""
import numpy as np
import pytest
import torch
from helpers import check

import dtrain

_rng = np.random.default_rng(7)


def parity(make, *inputs, device="cpu", train=False, atol=1e-5, rtol=1e-5):
    """make(m) builds the layer in dtrain (m=dtrain) or torch; torch's weights are loaded into dtrain's, then
    outputs and the gradients of float inputs and of every parameter are compared."""
    tm, dm = make(torch), make(dtrain)
    if hasattr(dm, "to"):
        dm.to(device)
    dm.load_state_dict({k: dtrain.tensor(v.detach().numpy().copy(), device=device)
                        for k, v in tm.state_dict().items()})
    tm.train(train), dm.train(train)
    ti, di = [], []
    for a in inputs:
        if isinstance(a, np.ndarray):
            f = a.dtype.kind == "f"
            ti.append(torch.from_numpy(a.copy()).requires_grad_(f))
            di.append(dtrain.tensor(a.copy(), device=device).requires_grad_(f))
        else:
            ti.append(a), di.append(a)
    yt, yd = tm(*ti), dm(*di)
    assert tuple(yd.shape) == tuple(yt.shape) and str(yd.dtype) == str(yt.dtype)
    np.testing.assert_allclose(yd.detach().cpu().numpy(), yt.detach().numpy(), atol=atol, rtol=rtol)
    w = _rng.standard_normal(tuple(yt.shape)).astype(yt.detach().numpy().dtype)
    (yt * torch.from_numpy(w)).sum().backward()
    (yd * dtrain.tensor(w, device=device)).sum().backward()
    for i, (a, b) in enumerate(zip(di, ti)):
        if isinstance(b, torch.Tensor) and b.requires_grad:
            np.testing.assert_allclose(a.grad.cpu().numpy(), b.grad.numpy(), atol=atol, rtol=rtol,
                                       err_msg=f"grad of input {i}")
    tp = dict(tm.named_parameters())
    for n, p in dm.named_parameters():
        if tp[n].grad is None:
            assert p.grad is None or not p.grad.cpu().numpy().any(), n
        else:
            np.testing.assert_allclose(p.grad.cpu().numpy(), tp[n].grad.numpy(), atol=atol, rtol=rtol, err_msg=n)
    return dm, yd


def x(*shape, dtype=np.float32):
    return _rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear(device, shape, bias):
    parity(lambda m: m.nn.Linear(4, 3, bias=bias), x(*shape), device=device)


def test_linear_float64_and_errors(device):
    parity(lambda m: m.nn.Linear(4, 3, dtype=m.float64), x(2, 4, dtype=np.float64), device=device)
    lin = dtrain.nn.Linear(4, 3).to(device)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x5 and 4x3\)"):
        lin(dtrain.randn(2, 5, device=device))


def test_bilinear_and_identity(device):
    parity(lambda m: m.nn.Bilinear(3, 4, 2), x(5, 3), x(5, 4), device=device)
    parity(lambda m: m.nn.Bilinear(3, 4, 2, bias=False), x(2, 5, 3), x(2, 5, 4), device=device)
    parity(lambda m: m.nn.Identity(54, unused="x"), x(3, 2), device=device)


ACTS = {
    "ReLU": lambda m: m.nn.ReLU(), "ReLU6": lambda m: m.nn.ReLU6(), "LeakyReLU": lambda m: m.nn.LeakyReLU(0.2),
    "ELU": lambda m: m.nn.ELU(alpha=0.7), "GELU": lambda m: m.nn.GELU(), "GELUtanh": lambda m: m.nn.GELU("tanh"),
    "SiLU": lambda m: m.nn.SiLU(), "Mish": lambda m: m.nn.Mish(), "Sigmoid": lambda m: m.nn.Sigmoid(),
    "Tanh": lambda m: m.nn.Tanh(), "Softmax": lambda m: m.nn.Softmax(dim=1), "LogSoftmax": lambda m: m.nn.LogSoftmax(-1),
    "Softplus": lambda m: m.nn.Softplus(beta=2, threshold=3), "Hardtanh": lambda m: m.nn.Hardtanh(-0.5, 0.7),
    "LogSigmoid": lambda m: m.nn.LogSigmoid(), "Softmin": lambda m: m.nn.Softmin(0),
}


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_modules(device, name):
    a = x(4, 6) * 3
    parity(ACTS[name], a, device=device)
    assert repr(ACTS[name](dtrain)) == repr(ACTS[name](torch))


@pytest.mark.parametrize("fn", [
    lambda m, a: m.nn.functional.relu(a), lambda m, a: m.nn.functional.relu6(a * 4),
    lambda m, a: m.nn.functional.leaky_relu(a, 0.1), lambda m, a: m.nn.functional.elu(a, 2.0),
    lambda m, a: m.nn.functional.gelu(a, approximate="tanh"), lambda m, a: m.nn.functional.silu(a),
    lambda m, a: m.nn.functional.mish(a), lambda m, a: m.nn.functional.hardtanh(a, -0.3, 0.3),
    lambda m, a: m.nn.functional.softplus(a * 30), lambda m, a: m.nn.functional.logsigmoid(a * 50),
    lambda m, a: m.nn.functional.softmax(a, -1), lambda m, a: m.nn.functional.log_softmax(a, 0)])
def test_activation_functional(device, fn):
    check(fn, (3, 5), device=device)


@pytest.mark.parametrize("fn", [
    lambda m, a: m.nn.functional.relu(a * 1, inplace=True), lambda m, a: m.nn.functional.leaky_relu(a * 1, 0.1, True),
    lambda m, a: m.nn.functional.elu(a * 1, inplace=True), lambda m, a: m.nn.functional.hardtanh(a * 1, inplace=True),
    lambda m, a: m.nn.functional.silu(a * 1, inplace=True)])
def test_activation_inplace(device, fn):
    out = check(fn, (3, 5), device=device)
    assert out[0].grad_fn is not None


def test_inplace_module_writes_input():
    a = dtrain.randn(3, 4)
    y = dtrain.nn.ReLU(inplace=True)(a)
    assert y is a or y._data is a._data
    assert (a.numpy() >= 0).all()


def test_dropout_statistics_and_grad(device):
    a = dtrain.ones(200, 100, device=device, requires_grad=True)
    drop = dtrain.nn.Dropout(0.3)
    y = drop(a)
    ya = y.detach().cpu().numpy()
    zeros = (ya == 0).mean()
    assert abs(zeros - 0.3) < 0.02  # 20000 Bernoulli draws: std ~ 0.003
    np.testing.assert_allclose(ya[ya != 0], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.cpu().numpy(), ya)  # gradient is the mask itself
    drop.eval()
    assert drop(a) is a
    assert dtrain.nn.functional.dropout(a, 0.5, training=False) is a
    np.testing.assert_array_equal(dtrain.nn.functional.dropout(a, 1.0).detach().cpu().numpy(), 0)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        dtrain.nn.Dropout(1.5)
    with pytest.raises(ValueError):
        torch.nn.Dropout(1.5)
    b = dtrain.ones(50, 50, device=device)
    dtrain.nn.functional.dropout(b, 0.5, inplace=True)
    assert ((b.cpu().numpy() == 0) | (b.cpu().numpy() == 2)).all() and (b.cpu().numpy() == 0).any()


def test_dropout2d_zeroes_whole_channels(device):
    a = dtrain.ones(8, 64, 3, 3, device=device)
    y = dtrain.nn.Dropout2d(0.5)(a).cpu().numpy()
    per_channel = y.reshape(8, 64, 9)
    assert ((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all()
    assert abs((per_channel[..., 0] == 0).mean() - 0.5) < 0.1
    assert repr(dtrain.nn.Dropout2d(0.2)) == repr(torch.nn.Dropout2d(0.2))


def test_embedding(device):
    idx = np.array([[1, 2, 4], [4, 3, 0]])
    parity(lambda m: m.nn.Embedding(5, 3), idx, device=device)
    dm, _ = parity(lambda m: m.nn.Embedding(5, 3, padding_idx=4), idx, device=device)
    e = dtrain.nn.Embedding(6, 3, padding_idx=-1)
    assert e.padding_idx == 5 and not e.weight[5].detach().numpy().any()
    with pytest.raises(IndexError, match="index out of range in self"):
        e(dtrain.tensor([6]))
    w = dtrain.randn(4, 2)
    pre = dtrain.nn.Embedding.from_pretrained(w)
    assert not pre.weight.requires_grad
    np.testing.assert_array_equal(pre(dtrain.tensor([3])).numpy(), w.numpy()[[3]])


def test_embedding_default_init_is_standard_normal():
    w = dtrain.nn.Embedding(400, 50).weight.detach().numpy()
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02


def test_flatten_unflatten(device):
    parity(lambda m: m.nn.Flatten(), x(2, 3, 4), device=device)
    parity(lambda m: m.nn.Flatten(0, 1), x(2, 3, 4), device=device)
    parity(lambda m: m.nn.Unflatten(1, (2, 6)), x(3, 12), device=device)
    parity(lambda m: m.nn.Unflatten(-1, (2, -1)), x(3, 12), device=device)


def test_default_init_bounds_match_torch():
    # Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
    lin = dtrain.nn.Linear(400, 300)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.002 and np.abs(b).max() <= bound
    bl = dtrain.nn.Bilinear(50, 20, 10).weight.detach().numpy()
    assert np.abs(bl).max() <= 1 / np.sqrt(50) and np.abs(bl).max() > 0.99 / np.sqrt(50)


def test_mlp_training_step_matches_torch():
    make = lambda m: m.nn.Sequential(m.nn.Linear(6, 16), m.nn.Tanh(), m.nn.Linear(16, 16), m.nn.GELU(),  # noqa
                                     m.nn.Linear(16, 3))
    parity(make, x(8, 6))
