"""Mixed precision on CUDA (a real GPU, or the emulated ones of DTRAIN_EMULATE_CUDA=N): autocast("cuda") gives
the output dtypes of torch 2.13's CUDA lists (float16 by default), with values against torch's CPU float64;
float16 products accumulate in float32; GradScaler on a CUDA model with injected infs follows torch's
scaler step for step; the TF32 switch reaches CuPy's compute type also after the first product.

torch here has no CUDA, so the reference dtypes are torch's documented lists (autocast_mode.cpp) and the
reference values are torch's CPU results on the same (float16-rounded) inputs."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain import _backend

pytestmark = pytest.mark.cuda
N = 8


def _inputs(specs, seed):
    """dtrain CUDA tensors and torch CPU float64 twins: ("f"|"h", shape) float32|float16 normal,
    ("u"|"v", shape) in (0, 1) float32|float16, ("l", shape, high) int64, anything else as is."""
    rng = np.random.default_rng(seed)
    d_args, t_args = [], []
    for s in specs:
        if isinstance(s, tuple) and s and s[0] in "fhuv" and len(s[0]) == 1:
            a = rng.standard_normal(s[1]).astype(np.float32)
            if s[0] in "uv":
                a = (1 / (1 + np.exp(-a))).astype(np.float32)
            if s[0] in "hv":
                a = a.astype(np.float16)
            d_args.append(dtrain.tensor(a, device="cuda"))
            t_args.append(torch.from_numpy(a.astype(np.float64)))
        elif isinstance(s, tuple) and s and s[0] == "l":
            a = rng.integers(0, s[2], s[1])
            d_args.append(dtrain.tensor(a, device="cuda"))
            t_args.append(torch.from_numpy(a))
        else:
            d_args.append(s)
            t_args.append(s)
    return d_args, t_args


F, H, U, V = ("f", (N, N)), ("h", (N, N)), ("u", (N, N)), ("v", (N, N))
F3, V1, F1 = ("f", (N, N, N)), ("v", (N,)), ("f", (N,))
CONV = {1: (("f", (2, N, N)), ("f", (3, N, 3))), 2: (("f", (2, N, N, N)), ("f", (3, N, 3, 3))),
        3: (("f", (2, N, 4, 4, 4)), ("f", (3, N, 2, 2, 2)))}
CONVT = {1: (("f", (2, N, N)), ("f", (N, 3, 3))), 2: (("f", (2, N, N, N)), ("f", (N, 3, 3, 3))),
         3: (("f", (2, N, 4, 4, 4)), ("f", (N, 3, 2, 2, 2)))}
fn_ = "nn.functional."

# (op, function of (module, *args), input specs): torch's CUDA lower-precision list, float32 in, float16 out
LOWER = [
    ("conv1d", lambda m, x, w: m.nn.functional.conv1d(x, w), CONV[1]),
    ("conv2d", lambda m, x, w: m.nn.functional.conv2d(x, w), CONV[2]),
    ("conv3d", lambda m, x, w: m.nn.functional.conv3d(x, w), CONV[3]),
    ("conv_transpose1d", lambda m, x, w: m.nn.functional.conv_transpose1d(x, w), CONVT[1]),
    ("conv_transpose2d", lambda m, x, w: m.nn.functional.conv_transpose2d(x, w), CONVT[2]),
    ("conv_transpose3d", lambda m, x, w: m.nn.functional.conv_transpose3d(x, w), CONVT[3]),
    ("prelu", lambda m, x, w: m.nn.functional.prelu(x, w), (F, ("f", (1,)))),
    ("addmm", lambda m, a, b, c: m.addmm(a, b, c), (F, F, F)),
    ("addmv", lambda m, a, b, c: m.addmv(a, b, c), (F1, F, F1)),
    ("addr", lambda m, a, b, c: m.addr(a, b, c), (F, F1, F1)),
    ("matmul", lambda m, a, b: m.matmul(a, b), (F, F)),
    ("__matmul__", lambda m, a, b: a @ b, (F3, F3)),
    ("einsum", lambda m, a, b: m.einsum("ij,jk->ik", a, b), (F, F)),
    ("mm", lambda m, a, b: m.mm(a, b), (F, F)),
    ("mv", lambda m, a, b: m.mv(a, b), (F, F1)),
    ("chain_matmul", lambda m, a, b, c: m.linalg.multi_dot([a, b, c]), (F, F, F)),
    ("addbmm", lambda m, a, b, c: m.addbmm(a, b, c), (F, F3, F3)),
    ("baddbmm", lambda m, a, b, c: m.baddbmm(a, b, c), (F3, F3, F3)),
    ("bmm", lambda m, a, b: m.bmm(a, b), (F3, F3)),
    ("linear", lambda m, x, w, b: m.nn.functional.linear(x, w, b), (F, F, F1)),
    ("linalg_vecdot", lambda m, a, b: m.linalg.vecdot(a, b), (F, F)),
    ("scaled_dot_product_attention", lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v),
     (("f", (1, 2, N, N)),) * 3),
]
# torch's CUDA float32 list: float16 in, float32 out
FP32 = [
    ("acos", lambda m, x: x.acos(), (V,)), ("asin", lambda m, x: x.asin(), (V,)),
    ("cosh", lambda m, x: x.cosh(), (V,)), ("erfinv", lambda m, x: x.erfinv(), (V,)),
    ("exp", lambda m, x: x.exp(), (V,)), ("expm1", lambda m, x: x.expm1(), (V,)),
    ("log", lambda m, x: x.log(), (V,)), ("log10", lambda m, x: x.log10(), (V,)),
    ("log2", lambda m, x: x.log2(), (V,)), ("log1p", lambda m, x: x.log1p(), (V,)),
    ("reciprocal", lambda m, x: x.reciprocal(), (V,)), ("rsqrt", lambda m, x: x.rsqrt(), (V,)),
    ("sinh", lambda m, x: x.sinh(), (V,)), ("tan", lambda m, x: x.tan(), (V,)),
    ("pow", lambda m, x: x.pow(3.0), (V,)), ("softplus", lambda m, x: m.nn.functional.softplus(x), (V,)),
    ("layer_norm", lambda m, x: m.nn.functional.layer_norm(x, (N,)), (H,)),
    ("group_norm", lambda m, x: m.nn.functional.group_norm(x, 2), (("h", (2, 4, N)),)),
    ("rms_norm", lambda m, x: m.nn.functional.rms_norm(x, (N,)), (H,)),
    ("norm", lambda m, x: x.norm(p="fro", dim=(0, 1)), (H,)),
    ("cosine_similarity", lambda m, a, b: m.nn.functional.cosine_similarity(a, b), (H, H)),
    ("poisson_nll_loss", lambda m, a, b: m.nn.functional.poisson_nll_loss(a, b), (H, V)),
    ("cosine_embedding_loss", lambda m, a, b, y: m.nn.functional.cosine_embedding_loss(a, b, y * 2 - 1),
     (H, H, ("l", (N,), 2))),
    ("nll_loss", lambda m, x, y: m.nn.functional.nll_loss(x, y), (H, ("l", (N,), N))),
    ("hinge_embedding_loss", lambda m, a, y: m.nn.functional.hinge_embedding_loss(a, y * 2 - 1),
     (H, ("l", (N, N), 2))),
    ("kl_div", lambda m, a, b: m.nn.functional.kl_div(a, b, reduction="batchmean"), (H, V)),
    ("l1_loss", lambda m, a, b: m.nn.functional.l1_loss(a, b), (H, H)),
    ("smooth_l1_loss", lambda m, a, b: m.nn.functional.smooth_l1_loss(a, b), (H, H)),
    ("huber_loss", lambda m, a, b: m.nn.functional.huber_loss(a, b), (H, H)),
    ("mse_loss", lambda m, a, b: m.nn.functional.mse_loss(a, b), (H, H)),
    ("margin_ranking_loss", lambda m, a, b, y: m.nn.functional.margin_ranking_loss(a, b, y),
     (("h", (N,)), ("h", (N,)), ("h", (N,)))),
    ("multilabel_margin_loss", lambda m, x, y: m.nn.functional.multilabel_margin_loss(x, y), (H, ("l", (N, N), 1))),
    ("soft_margin_loss", lambda m, x, y: m.nn.functional.soft_margin_loss(x, y), (H, H)),
    ("triplet_margin_loss", lambda m, a, b, c: m.nn.functional.triplet_margin_loss(a, b, c), (H, H, H)),
    ("multi_margin_loss", lambda m, x, y: m.nn.functional.multi_margin_loss(x, y), (H, ("l", (N,), N))),
    ("binary_cross_entropy_with_logits", lambda m, a, b: m.nn.functional.binary_cross_entropy_with_logits(a, b),
     (H, V)),
    ("dist", lambda m, a, b: m.dist(a, b), (H, H)),
    ("pdist", lambda m, x: m.nn.functional.pdist(x), (H,)),
    ("cdist", lambda m, a, b: m.cdist(a, b), (H, H)),
    ("renorm", lambda m, x: x.renorm(2, 0, 1.0), (H,)),
    ("logsumexp", lambda m, x: x.logsumexp(1), (H,)),
    ("interpolate", lambda m, x: m.nn.functional.interpolate(x, scale_factor=2, mode="bilinear"),
     (("h", (1, 2, 4, 4)),)),
    ("grid_sample", lambda m, x, g: m.nn.functional.grid_sample(x, g, align_corners=False),
     (("h", (2, 3, N, N)), ("v", (2, 4, 4, 2)))),
]
# torch's CUDA fp32_set_opt_dtype list: float16 in, float32 out (accumulated in float32)
FP32_DTYPE = [
    ("softmax", lambda m, x: m.softmax(x, -1), (H,)), ("log_softmax", lambda m, x: m.log_softmax(x, -1), (H,)),
    ("cumprod", lambda m, x: x.cumprod(0), (V,)), ("cumsum", lambda m, x: x.cumsum(0), (H,)),
    ("prod", lambda m, x: x.prod(1), (V,)), ("sum", lambda m, x: x.sum(), (H,)),
    ("linalg_vector_norm", lambda m, x: m.linalg.vector_norm(x), (H,)),
]
# torch's CUDA promote list: float16 with float32 runs in float32
PROMOTE = [
    ("addcdiv", lambda m, a, b, c: m.addcdiv(a, b, c), (H, F, V)),
    ("addcmul", lambda m, a, b, c: m.addcmul(a, b, c), (H, F, H)),
    ("atan2", lambda m, a, b: m.atan2(a, b), (H, F)),
    ("bilinear", lambda m, a, b, w: m.nn.functional.bilinear(a, b, w), (H, F, ("h", (3, N, N)))),
    ("cross", lambda m, a, b: m.linalg.cross(a, b), (("h", (N, 3)), ("f", (N, 3)))),
    ("dot", lambda m, a, b: m.dot(a, b), (("h", (N,)), F1)),
    ("vdot", lambda m, a, b: m.vdot(a, b), (("h", (N,)), F1)),
    ("index_put", lambda m, x, v: x.index_put((m.tensor([0, 2], device=x.device),), v), (H, ("f", (2, N)))),
    ("tensordot", lambda m, a, b: m.tensordot(a, b), (H, F)),
    ("scatter_add", lambda m, x, i, s: x.scatter_add(0, i, s), (H, ("l", (N, N), N), F)),
    ("cat", lambda m, a, b: m.cat([a, b]), (H, F)),
    ("stack", lambda m, a, b: m.stack([a, b]), (H, F)),
]


def _check(name, fn, specs, expect, tol):
    d_args, t_args = _inputs(specs, seed=sum(map(ord, name)))
    with dtrain.autocast("cuda"):
        assert dtrain.is_autocast_enabled("cuda") and dtrain.get_autocast_dtype("cuda") is dtrain.float16
        out = fn(dtrain, *d_args)
    assert out.device.type == "cuda"
    assert out.dtype is expect, f"{name}: {out.dtype}, torch's list gives {expect}"
    ref = fn(torch, *t_args)  # float64 on the same (rounded) values
    np.testing.assert_allclose(out.cpu().double().numpy(), ref.numpy(), **tol, err_msg=name)


@pytest.mark.parametrize("case", LOWER, ids=[c[0] for c in LOWER])
def test_lower_precision_list(case):
    # inputs rounded to float16, products accumulated in float32, the result rounded to float16 once
    _check(*case, dtrain.float16, dict(rtol=2e-2, atol=3e-2))


@pytest.mark.parametrize("case", FP32 + FP32_DTYPE, ids=[c[0] for c in FP32 + FP32_DTYPE])
def test_float32_lists(case):
    _check(*case, dtrain.float32, dict(rtol=2e-5, atol=2e-5))


@pytest.mark.parametrize("case", PROMOTE, ids=[c[0] for c in PROMOTE])
def test_promote_list(case):
    _check(*case, dtrain.float32, dict(rtol=2e-5, atol=2e-5))
    name, fn, specs = case
    same = tuple(("h",) + s[1:] if isinstance(s, tuple) and s[0] == "f" else s for s in specs)
    d_args, _ = _inputs(same, seed=1)
    with dtrain.autocast("cuda"):
        assert fn(dtrain, *d_args).dtype is dtrain.float16  # all float16: stays float16


def test_cpu_tensors_in_a_cuda_region_are_untouched():
    x = dtrain.randn(N, N)
    with dtrain.autocast("cuda"):
        assert (x @ x).dtype is dtrain.float32 and not dtrain.is_autocast_enabled("cpu")


def test_binary_cross_entropy_is_banned():
    a = dtrain.rand(N, device="cuda")
    with dtrain.autocast("cuda"):
        with pytest.raises(RuntimeError, match="unsafe to autocast"):
            dtrain.nn.functional.binary_cross_entropy(a, a)


def test_float16_products_accumulate_in_float32():
    # 4096 products of 0.01: summed in float16 the total stalls near 32 (its spacing there is 1/32);
    # accumulated in float32 and rounded once it is 40.97, torch's CPU float16 result too
    a = np.full((3, 4096), 0.01, dtype=np.float16)
    b = np.ones((4096, 2), dtype=np.float16)
    want = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    for x, y in ((a, b), (a[None], b[None])):  # a 2-D product and a batched one
        got = (dtrain.tensor(x, device="cuda") @ dtrain.tensor(y, device="cuda"))
        assert got.dtype is dtrain.float16
        np.testing.assert_array_equal(got.cpu().numpy().reshape(want.shape), want)


# ---------------------------------------------------------------------------------------------- GradScaler
SCHEDULE = [None, None, "inf", None, None, None, None, "nan", None, None, "inf", "inf", None, None, None, None]


def _model(m, device, seed=0):
    rng = np.random.default_rng(seed)
    lin1, lin2 = m.nn.Linear(4, 6), m.nn.Linear(6, 1, bias=False)
    with m.no_grad():
        lin1.weight.copy_(m.tensor(rng.standard_normal((6, 4)), dtype=m.float32))
        lin1.bias.copy_(m.tensor(rng.standard_normal(6), dtype=m.float32))
        lin2.weight.copy_(m.tensor(rng.standard_normal((1, 6)), dtype=m.float32))
    return m.nn.Sequential(lin1, m.nn.Tanh(), lin2).to(device)


def test_grad_scaler_on_cuda_follows_torchs_steps():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((16, 4)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    runs = {}
    for m, device in ((torch, "cpu"), (dtrain, "cuda")):
        model = _model(m, device)
        opt = m.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        scaler = m.amp.GradScaler(device, init_scale=2.0 ** 10, growth_interval=3)
        assert scaler.is_enabled()
        x, y = m.tensor(X).to(device), m.tensor(Y).to(device)
        seq = []
        for bad in SCHEDULE:
            opt.zero_grad()
            loss = m.nn.functional.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            if bad:
                model[0].weight.grad[1, 2] = float(bad)
            scaler.unscale_(opt)
            m.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            seq.append((scaler.get_scale(), scaler._get_growth_tracker()))
        runs[m.__name__] = seq, [p.detach().cpu().numpy() for p in model.parameters()], scaler.state_dict()
    (ts, tw, tsd), (ds, dw, dsd) = runs["torch"], runs["dtrain"]
    assert ds == ts and dsd == tsd
    for a, b in zip(dw, tw):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert all(np.isfinite(a).all() for a in dw)  # the bad steps were skipped


def test_grad_scaler_flag_stays_on_the_device():
    model = _model(dtrain, "cuda")
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
    scaler = dtrain.amp.GradScaler("cuda")
    scaler.scale(model(dtrain.ones(2, 4, device="cuda")).sum()).backward()
    model[2].weight.grad[0, 0] = float("inf")
    scaler.unscale_(opt)
    flags = scaler._per_optimizer_states[id(opt)]["found_inf_per_device"]
    # one flag for the device, a device tensor that nothing has read yet
    assert list(flags) == [dtrain.device("cuda", 0)]
    flag = flags[dtrain.device("cuda", 0)]
    assert flag.device.type == "cuda" and flag.dtype is dtrain.float32 and flag.item() == 1.0
    before = [p.detach().cpu().numpy().copy() for p in model.parameters()]
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0 ** 15
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().cpu().numpy(), b)


# ---------------------------------------------------------------------------------------------- TF32
@pytest.fixture
def fresh_tf32(monkeypatch):
    """CuPy's float32 compute type undecided and TF32 unset, as in a new process; restored afterwards."""
    linalg = pytest.importorskip("cupy._core._routines_linalg")
    monkeypatch.delenv("CUPY_TF32", raising=False)
    monkeypatch.setattr(_backend, "_tf32", None)
    monkeypatch.setattr(dtrain, "_matmul_precision", None)
    saved = linalg.get_compute_type(np.float32)
    if _backend.is_emulated():
        from dtrain._emulate import _linalg_core
        monkeypatch.setattr(_linalg_core, "compute_types", [linalg.COMPUTE_TYPE_TBD] * 3)
    yield linalg
    linalg.set_compute_type(np.float32, saved)


def test_tf32_switch_takes_effect_after_the_first_product(fresh_tf32):
    linalg = fresh_tf32
    a = dtrain.randn(4, 4, device="cuda")
    a @ a  # CuPy decides float32's compute type here: TF32 off
    assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
    tf32 = int(dtrain.cuda.get_device_capability()[0]) >= 8
    dtrain.backends.cuda.matmul.allow_tf32 = True
    assert dtrain.get_float32_matmul_precision() == "high"
    assert linalg.get_compute_type(np.float32) == (linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT)
    dtrain.set_float32_matmul_precision("highest")
    assert not dtrain.backends.cuda.matmul.allow_tf32
    assert linalg.get_compute_type(np.float32) == linalg.COMPUTE_TYPE_DEFAULT
    dtrain.set_float32_matmul_precision("medium")
    assert dtrain.backends.cuda.matmul.allow_tf32
    assert linalg.get_compute_type(np.float32) == (linalg.COMPUTE_TYPE_TF32 if tf32 else linalg.COMPUTE_TYPE_DEFAULT)
    a @ a
    dtrain.set_float32_matmul_precision("highest")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_float16_gelu_stays_float16(approximate):
    # the erf of CuPy (and of its stand-in) answers float16 in a wider dtype; the result must not follow it
    a = np.random.default_rng(5).standard_normal(256).astype(np.float16)
    x = dtrain.tensor(a, device="cuda").requires_grad_()
    y = dtrain.nn.functional.gelu(x, approximate=approximate)
    y.sum().backward()
    tx = torch.from_numpy(a).requires_grad_()
    ty = torch.nn.functional.gelu(tx, approximate=approximate)
    ty.sum().backward()
    assert y.dtype is dtrain.float16 and x.grad.dtype is dtrain.float16
    np.testing.assert_allclose(y.detach().cpu().float().numpy(), ty.detach().float().numpy(), rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(x.grad.cpu().float().numpy(), tx.grad.float().numpy(), rtol=2e-3, atol=2e-3)


@pytest.mark.skipif(not (dtrain.cuda.is_available() and _backend.is_emulated()),
                    reason="the smoke run of the benchmark is for emulated devices")
def test_amp_benchmark_runs_on_cuda_and_trains():
    import os
    import re
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-W", "ignore", os.path.join(root, "bench", "amp_compare.py"), "--device",
                          "cuda", "--size", "tiny", "--steps", "8", "--rounds", "1"],
                         capture_output=True, text=True, timeout=300, check=True,
                         env=dict(os.environ, PYTHONPATH=root)).stdout
    row = next(line for line in out.splitlines() if line.startswith("| gpt (tiny)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) > 0 and float(cells[3]) > 0  # dtrain fp32 and AMP tokens/s
    losses = [float(v) for v in re.findall(r"[\d.]+", cells[-1])]
    assert losses[1] < losses[0] and losses[3] < losses[2]  # fp32 and float16 + GradScaler both learn


@pytest.mark.parametrize("cls,kw", [("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {}),
                                    ("RNNCell", {"nonlinearity": "relu"})])
def test_rnn_cells_run_in_float16(cls, kw):
    # torch's CUDA list has lstm_cell, gru_cell, rnn_tanh_cell and rnn_relu_cell: the whole state is float16
    rng = np.random.default_rng(6)
    x, h = rng.standard_normal((3, 5)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    t_cell = getattr(torch.nn, cls)(5, 4, **kw).double()
    d_cell = getattr(dtrain.nn, cls)(5, 4, **kw)
    d_cell.load_state_dict({k: dtrain.tensor(v.float().numpy()) for k, v in t_cell.state_dict().items()})
    d_cell.cuda()
    hx = (h, h) if cls == "LSTMCell" else h
    with dtrain.autocast("cuda"):
        d_hx = tuple(dtrain.tensor(a, device="cuda") for a in hx) if cls == "LSTMCell" else \
            dtrain.tensor(hx, device="cuda")
        out = d_cell(dtrain.tensor(x, device="cuda"), d_hx)
    t_hx = tuple(torch.from_numpy(a).double() for a in hx) if cls == "LSTMCell" else torch.from_numpy(hx).double()
    ref = t_cell(torch.from_numpy(x).double(), t_hx)
    for o, r in zip(out if cls == "LSTMCell" else (out,), ref if cls == "LSTMCell" else (ref,)):
        assert o.dtype is dtrain.float16
        np.testing.assert_allclose(o.detach().cpu().double().numpy(), r.detach().numpy(), rtol=1e-2, atol=1e-2)
