"""bfloat16 as a dtype of its own: every op below runs in bfloat16 in dtrain and in torch on the same values,
and the results agree to bfloat16 rounding (products and reductions accumulate in float32 in both)."""
import numpy as np
import pytest
import torch

import dtrain

# one bfloat16 ulp at 1 is 2**-7; torch and dtrain may round a float32 result on either side of a tie
# after summing in a different order, so allow one ulp relative (plus a little absolute, near zero)
RTOL, ATOL = 2.0 ** -7, 1e-3


def _pair(shape, seed, positive=False, requires_grad=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if positive:
        a = np.abs(a) + 0.1
    t = torch.from_numpy(a).to(torch.bfloat16)
    d = dtrain.tensor(t.float().numpy()).to(dtrain.bfloat16)
    return d.requires_grad_(requires_grad), t.requires_grad_(requires_grad)


def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().float().numpy()
    return x.detach().float().numpy()


def _close(d, t, what="output"):
    assert str(d.dtype) == str(t.dtype), f"{what}: dtype {d.dtype} != torch's {t.dtype}"
    np.testing.assert_allclose(_np(d), _np(t), rtol=RTOL, atol=ATOL, err_msg=what)


UNARY = {
    "neg": lambda m, x: -x, "abs": lambda m, x: x.abs(), "exp": lambda m, x: x.exp(),
    "log": lambda m, x: m.log(x.abs() + 0.5), "sqrt": lambda m, x: (x.abs()).sqrt(), "tanh": lambda m, x: x.tanh(),
    "sigmoid": lambda m, x: m.sigmoid(x), "relu": lambda m, x: m.relu(x), "sin": lambda m, x: x.sin(),
    "gelu": lambda m, x: m.nn.functional.gelu(x), "gelu_tanh": lambda m, x: m.nn.functional.gelu(x, approximate="tanh"),
    "silu": lambda m, x: m.nn.functional.silu(x), "square": lambda m, x: x * x, "pow": lambda m, x: x.abs() ** 1.5,
    "rsqrt": lambda m, x: (x.abs() + 0.5).rsqrt(), "clamp": lambda m, x: x.clamp(-0.5, 0.5),
    "add_scalar": lambda m, x: x + 1.25, "mul_scalar": lambda m, x: x * 3.1, "div_scalar": lambda m, x: x / 7,
    "sum": lambda m, x: x.sum(), "sum_dim": lambda m, x: x.sum(1), "mean": lambda m, x: x.mean(0),
    "var": lambda m, x: x.var(1), "std": lambda m, x: x.std(),
    "norm": lambda m, x: x.norm(), "logsumexp": lambda m, x: m.logsumexp(x, 1), "cumsum": lambda m, x: x.cumsum(1),
    "amax": lambda m, x: x.amax(1), "max": lambda m, x: x.max(), "softmax": lambda m, x: m.softmax(x, -1),
    "softmax0": lambda m, x: m.softmax(x, 0), "log_softmax": lambda m, x: m.log_softmax(x, -1),
    "prod": lambda m, x: (x.abs() + 0.5).prod(1),  # torch multiplies bfloat16 in bfloat16 here, step by step
    "transpose": lambda m, x: x.t().contiguous(), "cat": lambda m, x: m.cat([x, x * 2], 1),
    "stack": lambda m, x: m.stack([x, x], 0), "getitem": lambda m, x: x[1:, ::2],
    "where": lambda m, x: m.where(x > 0, x, x * 0.1), "layer_norm": lambda m, x: m.nn.functional.layer_norm(x, (x.shape[-1],)),
    "matmul_self": lambda m, x: x @ x.t(), "lgamma": lambda m, x: m.lgamma(x.abs() + 0.5), "dropout_eval": lambda m, x: m.nn.functional.dropout(x, 0.5, training=False),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_and_reductions_match_torch(op):
    d, t = _pair((6, 33), seed=1, requires_grad=True)
    fn = UNARY[op]
    yd, yt = fn(dtrain, d), fn(torch, t)
    _close(yd, yt)
    w = np.random.default_rng(2).standard_normal(tuple(yt.shape)).astype(np.float32)
    wt = torch.from_numpy(w).to(torch.bfloat16)
    wd = dtrain.tensor(wt.float().numpy()).to(dtrain.bfloat16)
    (yd * wd).sum().backward()
    (yt * wt).sum().backward()
    assert d.grad.dtype is dtrain.bfloat16
    # a gradient passes several roundings (the weights, the product, the op's backward): a few ulps
    np.testing.assert_allclose(_np(d.grad), _np(t.grad), rtol=4 * RTOL, atol=8 * ATOL, err_msg="grad")


BINARY = {
    "add": lambda m, x, y: x + y, "sub": lambda m, x, y: x - y, "mul": lambda m, x, y: x * y,
    "div": lambda m, x, y: x / (y.abs() + 0.5), "maximum": lambda m, x, y: m.maximum(x, y),
    "matmul": lambda m, x, y: x @ y.t(), "mm": lambda m, x, y: m.mm(x, y.t()),
    "bmm": lambda m, x, y: m.bmm(x.reshape(2, 3, 33), y.reshape(2, 3, 33).transpose(1, 2)),
    "linear": lambda m, x, y: m.nn.functional.linear(x, y), "addmm": lambda m, x, y: m.addmm(x[:, :6], x, y.t()),
    "mse_loss": lambda m, x, y: m.nn.functional.mse_loss(x, y),
    "cross_entropy_probs": lambda m, x, y: m.nn.functional.cross_entropy(x, m.softmax(y, -1)),
    "einsum": lambda m, x, y: m.einsum("ij,kj->ik", x, y),
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_and_products_match_torch(op):
    (xd, xt), (yd, yt) = _pair((6, 33), 3, requires_grad=True), _pair((6, 33), 4, requires_grad=True)
    od, ot = BINARY[op](dtrain, xd, yd), BINARY[op](torch, xt, yt)
    _close(od, ot)
    od.float().sum().backward()
    ot.float().sum().backward()
    for a, b, name in ((xd, xt, "x.grad"), (yd, yt, "y.grad")):
        assert a.grad.dtype is dtrain.bfloat16
        np.testing.assert_allclose(_np(a.grad), _np(b.grad), rtol=4 * RTOL, atol=8 * ATOL, err_msg=name)


def test_sum_accumulates_in_float32():
    # 4096 copies of 0.01: summed in bfloat16 the total stalls far below 40.96 (each add rounds away)
    d = dtrain.full((4096,), 0.01, dtype=dtrain.bfloat16)
    t = torch.full((4096,), 0.01, dtype=torch.bfloat16)
    assert d.sum().item() == t.sum().item()
    assert d.mean().item() == t.mean().item()
    assert (d @ d).item() == (t @ t).item()


def test_issue_rows():
    x = dtrain.zeros(2, dtype=dtrain.bfloat16) + 1
    assert x.dtype is dtrain.bfloat16 and x.tolist() == [1.0, 1.0]
    lin = dtrain.nn.Linear(4, 3).to(dtrain.bfloat16)
    assert lin(dtrain.ones(2, 4, dtype=dtrain.bfloat16)).dtype is dtrain.bfloat16
    assert dtrain.softmax(dtrain.ones(3, dtype=dtrain.bfloat16), 0).dtype is dtrain.bfloat16


@pytest.mark.parametrize("values", [[1.5, -2.25, 3.0], [[0.1, 1e-3], [123.4, -7.0]], [1e10, 1.0], 3.14159,
                                    [1e-5, 3.0, 1e5], [[float("nan"), float("inf")], [-0.0, 1.5]],
                                    np.random.default_rng(0).standard_normal(2000).tolist()])
def test_repr_as_torch_prints_bfloat16(values):
    assert repr(dtrain.tensor(values, dtype=dtrain.bfloat16)) == repr(torch.tensor(values, dtype=torch.bfloat16))
    d = dtrain.ones(2, dtype=dtrain.bfloat16, requires_grad=True) * 2
    assert repr(d) == repr(torch.ones(2, dtype=torch.bfloat16, requires_grad=True) * 2)


def test_conversions_round_as_torch():
    a = np.random.default_rng(5).standard_normal(1000).astype(np.float32) * 100
    d, t = dtrain.tensor(a).to(dtrain.bfloat16), torch.tensor(a).to(torch.bfloat16)
    np.testing.assert_array_equal(d.float().numpy(), t.float().numpy())  # round to nearest even, both
    np.testing.assert_array_equal(d.half().float().numpy(), t.half().float().numpy())
    np.testing.assert_array_equal(d.to(dtrain.int32).numpy(), t.to(torch.int32).numpy())
    assert (d.double() == dtrain.tensor(t.double().numpy())).all()
    assert dtrain.promote_types(dtrain.bfloat16, dtrain.float16) is dtrain.float32
    assert (d + dtrain.ones(1000, dtype=dtrain.float16)).dtype is dtrain.float32
    assert (d + 1.5).dtype is dtrain.bfloat16 and (d + dtrain.tensor(1.5)).dtype is dtrain.bfloat16


def test_state_dict_round_trip(tmp_path):
    m = dtrain.nn.Linear(5, 3).to(dtrain.bfloat16)
    dtrain.save(m.state_dict(), tmp_path / "m.pt")
    sd = dtrain.load(tmp_path / "m.pt")
    assert sd["weight"].dtype is dtrain.bfloat16
    assert (sd["weight"].float() == m.weight.float()).all()
    ts = torch.load(tmp_path / "m.pt")  # torch reads dtrain's file: same storage type
    assert ts["weight"].dtype is torch.bfloat16
    np.testing.assert_array_equal(ts["weight"].float().numpy(), m.weight.float().detach().numpy())
    tm = torch.nn.Linear(5, 3).to(torch.bfloat16)
    torch.save(tm.state_dict(), tmp_path / "t.pt")
    back = dtrain.load(tmp_path / "t.pt")
    assert back["bias"].dtype is dtrain.bfloat16
    np.testing.assert_array_equal(back["bias"].float().numpy(), tm.bias.detach().float().numpy())


def test_bf16_training_loop_tracks_torch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)).astype(np.float32)
    Y = (X @ rng.standard_normal((8, 1)).astype(np.float32)).astype(np.float32)
    torch.manual_seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(torch.bfloat16)
    dm = dtrain.nn.Sequential(dtrain.nn.Linear(8, 16), dtrain.nn.Tanh(), dtrain.nn.Linear(16, 1)).to(dtrain.bfloat16)
    dm.load_state_dict({k: dtrain.tensor(v.float().numpy()).to(dtrain.bfloat16) for k, v in tm.state_dict().items()})
    topt, dopt = torch.optim.SGD(tm.parameters(), lr=0.05), dtrain.optim.SGD(dm.parameters(), lr=0.05)
    xt, yt = torch.tensor(X).bfloat16(), torch.tensor(Y).bfloat16()
    xd, yd = dtrain.tensor(X).bfloat16(), dtrain.tensor(Y).bfloat16()
    losses = []
    for _ in range(20):
        for m, opt, x, y, mod in ((tm, topt, xt, yt, torch), (dm, dopt, xd, yd, dtrain)):
            opt.zero_grad()
            loss = mod.nn.functional.mse_loss(m(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    lt, ld = losses[0::2], losses[1::2]
    assert ld[-1] < 0.5 * ld[0]
    np.testing.assert_allclose(ld, lt, rtol=0.05)
    assert all(p.dtype is dtrain.bfloat16 for p in dm.parameters())


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_float64_to_half_rounds_through_float32_as_torch(name):
    # torch builds Half and BFloat16 from a float: its double -> half cast rounds twice, NumPy's once
    x = np.random.default_rng(0).standard_normal(200_000) * 3
    got = dtrain.tensor(x).to(getattr(dtrain, name)).double().numpy()
    want = torch.tensor(x).to(getattr(torch, name)).double().numpy()
    np.testing.assert_array_equal(got, want)


def test_views_of_bfloat16_tensors():
    # expand and other strided views locate their base by address: a bfloat16 array has no buffer to ask
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for m in (torch, dtrain):
        t = m.tensor(x).to(m.bfloat16)
        got = (t[:, 1:].expand(2, 2, 2) + t[:1, :2].unsqueeze(0).expand(2, 1, 2)).float().numpy()
        np.testing.assert_array_equal(got, np.broadcast_to(x[:, 1:], (2, 2, 2)) + x[None, :1, :2])
