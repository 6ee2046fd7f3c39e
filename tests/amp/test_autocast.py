"""torch.autocast on the CPU against torch 2.13's: the dtype and values of every op in torch's CPU lists (the
cases of torch's own AutocastCPUTestLists, plus the rest of the lists that dtrain has), promotion, nesting,
thread-local state, the weight cache, gradients through the casts, custom_fwd/custom_bwd; and the CUDA lists
and dtype decisions, which need no kernels."""
import threading
import zlib

import numpy as np
import pytest
import torch

import dtrain
from dtrain.amp import _dispatch

N = 8


def _inputs(specs, seed):
    """The same random inputs for torch and dtrain: ("f", shape) float32, ("b", shape) bfloat16, ("h", shape)
    float16, ("p", shape) positive float32, ("u"/"v", shape) in (0, 1) as float32/bfloat16, ("l", shape, high)
    int64 in [0, high), anything else as is."""
    rng = np.random.default_rng(seed)
    t_args, d_args = [], []
    for s in specs:
        if isinstance(s, tuple) and s and s[0] in ("f", "b", "h", "p", "u", "v"):
            a = rng.standard_normal(s[1]).astype(np.float32)
            if s[0] == "p":
                a = np.abs(a) + 0.5
            if s[0] in "uv":  # in (0, 1); v: then rounded to bfloat16
                a = 1 / (1 + np.exp(-a))
            t = torch.from_numpy(a)
            t = t.bfloat16() if s[0] in "bv" else t.half() if s[0] == "h" else t
            t_args.append(t)
            d = dtrain.tensor(t.float().numpy())
            d_args.append(d.to(dtrain.bfloat16) if s[0] in "bv" else d.half() if s[0] == "h" else d)
        elif isinstance(s, tuple) and s and s[0] == "l":
            a = rng.integers(0, s[2], s[1])
            t_args.append(torch.from_numpy(a))
            d_args.append(dtrain.tensor(a))
        else:
            t_args.append(s)
            d_args.append(s)
    return t_args, d_args


def _to_np(x):
    return x.detach().float().numpy() if x.dtype != torch.complex64 and str(x.dtype) != "torch.complex64" else \
        x.detach().numpy()


def _compare(d, t, lower):
    assert str(d.dtype) == str(t.dtype), f"dtype {d.dtype}, torch's {t.dtype}"
    tol = dict(rtol=2 ** -7, atol=2e-2) if lower else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_to_np(d), _to_np(t), **tol)


F, Fb, B, H, P = ("f", (N, N)), ("b", (N, N)), ("b", (N,)), ("h", (N, N)), ("p", (N, N))
B3 = ("f", (N, N, N))
CONV = {1: (("f", (N, N, N)), ("f", (N, N, N))), 2: (("f", (N,) * 4), ("f", (N,) * 4)),
        3: (("f", (N,) * 5), ("f", (N,) * 5))}

# (name, function of (module, *args), input specs, lower precision?)
CPU_CASES = [
    # torch_16 / nn_16: float32 in, bfloat16 out
    ("conv1d", lambda m, x, w: m.nn.functional.conv1d(x, w), CONV[1], True),
    ("conv2d", lambda m, x, w: m.nn.functional.conv2d(x, w), CONV[2], True),
    ("conv3d", lambda m, x, w: m.nn.functional.conv3d(x, w), CONV[3], True),
    ("conv_transpose1d", lambda m, x, w: m.nn.functional.conv_transpose1d(x, w), CONV[1], True),
    ("conv_transpose2d", lambda m, x, w: m.nn.functional.conv_transpose2d(x, w), CONV[2], True),
    ("conv_transpose3d", lambda m, x, w: m.nn.functional.conv_transpose3d(x, w), CONV[3], True),
    ("bmm", lambda m, a, b: m.bmm(a, b), (B3, B3), True),
    ("mm", lambda m, a, b: m.mm(a, b), (F, F), True),
    ("matmul", lambda m, a, b: m.matmul(a, b), (F, F), True),
    ("__matmul__", lambda m, a, b: a @ b, (F, F), True),
    ("baddbmm", lambda m, a, b, c: m.baddbmm(a, b, c), (B3, B3, B3), True),
    ("addmm", lambda m, a, b, c: m.addmm(a, b, c), (F, F, F), True),
    ("addbmm", lambda m, a, b, c: m.addbmm(a, b, c), (F, B3, B3), True),
    ("prelu", lambda m, x, w: m.nn.functional.prelu(x, w), (("f", (N,)), ("f", (1,))), True),
    ("linear", lambda m, x, w: m.nn.functional.linear(x, w), (F, F), True),
    ("linear_bias", lambda m, x, w, b: m.nn.functional.linear(x, w, b), (F, F, ("f", (N,))), True),
    ("einsum", lambda m, a, b: m.einsum("ij,jk->ik", a, b), (F, F), True),
    ("linalg_vecdot", lambda m, a, b: m.linalg.vecdot(a, b), (F, F), True),
    ("scaled_dot_product_attention", lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v),
     (("f", (1, 2, N, N)),) * 3, True),
    # torch_fp32 / nn_fp32: bfloat16 in, float32 out
    ("poisson_nll_loss", lambda m, a, b: m.nn.functional.poisson_nll_loss(a, b), (Fb, Fb), False),
    ("cosine_embedding_loss", lambda m, a, b, y: m.nn.functional.cosine_embedding_loss(a, b, y),
     (Fb, Fb, ("l", (N,), 1)), False),
    ("hinge_embedding_loss", lambda m, a, y: m.nn.functional.hinge_embedding_loss(a, y), (Fb, ("l", (N, N), 1)), False),
    ("margin_ranking_loss", lambda m, a, b, y: m.nn.functional.margin_ranking_loss(a, b, y), (B, B, B), False),
    ("triplet_margin_loss", lambda m, a, b, c: m.nn.functional.triplet_margin_loss(a, b, c), (Fb, Fb, Fb), False),
    ("binary_cross_entropy_with_logits", lambda m, a, b: m.nn.functional.binary_cross_entropy_with_logits(a, b),
     (Fb, ("b", (N, N))), False),
    ("avg_pool3d", lambda m, x: m.nn.functional.avg_pool3d(x, 3, 1), (("b", (N,) * 4),), False),
    ("max_pool3d", lambda m, x: m.nn.functional.max_pool3d(x, 2), (("b", (N,) * 4),), False),
    ("adaptive_avg_pool3d", lambda m, x: m.nn.functional.adaptive_avg_pool3d(x, 2), (("b", (N,) * 4),), False),
    ("binary_cross_entropy", lambda m, a, b: m.nn.functional.binary_cross_entropy(a, b),
     (("v", (N, N)), ("v", (N, N))), False),
    ("reflection_pad1d", lambda m, x: m.nn.functional.pad(x, (3, 3), mode="reflect"), (("b", (N, N, N)),), False),
    ("replication_pad2d", lambda m, x: m.nn.functional.pad(x, (1, 2, 1, 2), mode="replicate"),
     (("b", (N, N, N)),), False),
    ("nll_loss", lambda m, x, y: m.nn.functional.nll_loss(x, y), (Fb, ("l", (N,), N)), False),
    ("nll_loss2d", lambda m, x, y: m.nn.functional.nll_loss(x, y), (("b", (N,) * 4), ("l", (N, N, N), N)), False),
    ("cross_entropy", lambda m, x, y: m.nn.functional.cross_entropy(x, y), (Fb, ("l", (N,), N)), False),
    ("l1_loss", lambda m, a, b: m.nn.functional.l1_loss(a, b), (Fb, Fb), False),
    ("smooth_l1_loss", lambda m, a, b: m.nn.functional.smooth_l1_loss(a, b), (Fb, Fb), False),
    ("mse_loss", lambda m, a, b: m.nn.functional.mse_loss(a, b), (Fb, Fb), False),
    ("huber_loss", lambda m, a, b: m.nn.functional.huber_loss(a, b), (Fb, Fb), False),
    ("kl_div", lambda m, a, b: m.nn.functional.kl_div(a, b, reduction="batchmean"), (Fb, ("u", (N, N))), False),
    ("multilabel_margin_loss", lambda m, x, y: m.nn.functional.multilabel_margin_loss(x, y),
     (Fb, ("l", (N, N), 1)), False),
    ("soft_margin_loss", lambda m, x, y: m.nn.functional.soft_margin_loss(x, y), (Fb, ("b", (N, N))), False),
    ("multi_margin_loss", lambda m, x, y: m.nn.functional.multi_margin_loss(x, y), (Fb, ("l", (N,), N)), False),
    ("prod", lambda m, x: x.prod(), (("b", (N,)),), False),
    ("cdist", lambda m, a, b: m.cdist(a, b), (Fb, Fb), False),
    ("trace", lambda m, x: m.trace(x), (Fb,), False),
    ("inverse", lambda m, x: m.inverse(x + 8 * m.eye(N, dtype=x.dtype)), (Fb,), False),
    ("linalg_solve", lambda m, a, b: m.linalg.solve(a + 8 * m.eye(N, dtype=a.dtype), b), (Fb, Fb), False),
    ("linalg_svdvals", lambda m, x: m.linalg.svdvals(x), (Fb,), False),
    ("linalg_eigvalsh", lambda m, x: m.linalg.eigvalsh(x + x.mT), (Fb,), False),
    ("quantile", lambda m, x: m.quantile(x, 0.3), (("b", (N,)),), False),
    ("fft_rfft", lambda m, x: m.fft.rfft(x), (("b", (N,)),), False),
    ("fft_fft2", lambda m, x: m.fft.fft2(x), (Fb,), False),
    ("grid_sampler", lambda m, x, g: m.nn.functional.grid_sample(x, g, align_corners=False),
     (("b", (2, 3, N, N)), ("v", (2, 4, 4, 2))), False),
    ("fractional_max_pool2d", lambda m, x, s: m.nn.functional.fractional_max_pool2d(x, 2, 3, _random_samples=s),
     (("b", (2, 3, N, N)), ("v", (2, 3, 2))), False),
    ("fractional_max_pool3d", lambda m, x, s: m.nn.functional.fractional_max_pool3d(x, 2, 3, _random_samples=s),
     (("b", (2, 3, N, N, N)), ("v", (2, 3, 3))), False),
    ("max_unpool3d", lambda m, x: m.nn.functional.max_unpool3d(*m.nn.functional.max_pool3d(x, 2, return_indices=True),
                                                               2), (("b", (2, N, N, N)),), False),
    ("stft", lambda m, x: m.stft(x, 4, window=m.hann_window(4), return_complex=True), (("b", (N,)),), False),
]


@pytest.mark.parametrize("case", CPU_CASES, ids=[c[0] for c in CPU_CASES])
def test_cpu_list_op_dtype_and_values(case):
    name, fn, specs, lower = case
    t_args, d_args = _inputs(specs, seed=zlib.crc32(name.encode()))  # not hash(): it changes with every interpreter
    with torch.autocast("cpu"):
        t_out = fn(torch, *t_args)
    assert not dtrain.is_autocast_enabled("cpu")
    with dtrain.autocast("cpu"):
        assert dtrain.is_autocast_enabled("cpu")
        d_out = fn(dtrain, *d_args)
    assert not dtrain.is_autocast_enabled("cpu")
    if name == "addbmm":
        # torch's CPU kernel rounds the running sum to bfloat16 after each batch's product; dtrain sums the
        # batch in float32 and rounds once, so where terms cancel the two differ by more than one rounding
        assert d_out.dtype is dtrain.bfloat16 and t_out.dtype is torch.bfloat16
        np.testing.assert_allclose(_to_np(d_out), _to_np(t_out), rtol=2 ** -7, atol=0.25)
    else:
        _compare(d_out, t_out, lower)
    # torch's own check: the result is bit for bit that of the op run on inputs cast by hand, outside autocast
    if lower:
        with dtrain.autocast("cpu", enabled=False):
            control = fn(dtrain, *[a.to(dtrain.bfloat16) if isinstance(a, dtrain.Tensor) and a.is_floating_point()
                                   else a for a in d_args])
        np.testing.assert_array_equal(_to_np(d_out), _to_np(control))


UNCHANGED = [  # not in the CPU lists: they run in their inputs' dtype, bfloat16 in, bfloat16 out
    ("softmax", lambda m, x: m.softmax(x, -1)), ("log_softmax", lambda m, x: m.log_softmax(x, -1)),
    ("layer_norm", lambda m, x: m.nn.functional.layer_norm(x, (N,))), ("exp", lambda m, x: x.exp()),
    ("log", lambda m, x: (x.abs() + 1).log()), ("pow", lambda m, x: x ** 2), ("sum", lambda m, x: x.sum()),
    ("cumsum", lambda m, x: x.cumsum(0)), ("gelu", lambda m, x: m.nn.functional.gelu(x)),
    ("mv", lambda m, x: m.mv(x, x[0])), ("dot", lambda m, x: m.dot(x[0], x[1])),
    ("tensordot", lambda m, x: m.tensordot(x, x)), ("adaptive_avg_pool2d", lambda m, x: m.nn.functional.adaptive_avg_pool2d(x[None], 3)),
    ("norm", lambda m, x: x.norm()), ("logsumexp", lambda m, x: x.logsumexp(1)),
]


@pytest.mark.parametrize("dt", ["f", "b"])
@pytest.mark.parametrize("case", UNCHANGED, ids=[c[0] for c in UNCHANGED])
def test_cpu_unlisted_ops_keep_their_dtype(case, dt):
    name, fn = case
    (t,), (d,) = _inputs([(dt, (N, N))], seed=3)
    with torch.autocast("cpu"):
        t_out = fn(torch, t)
    with dtrain.autocast("cpu"):
        d_out = fn(dtrain, d)
    _compare(d_out, t_out, lower=dt == "b")


PROMOTE = [("cat", lambda m, a, b: m.cat([a, b])), ("stack", lambda m, a, b: m.stack([a, b])),
           ("index_copy", lambda m, a, b: a.index_copy(0, m.tensor([1, 0]), b[:2]))]
BUILTIN = [(n, getattr(__import__("operator"), n)) for n in ("eq", "ge", "gt", "le", "lt", "ne", "add", "truediv", "mul")]


@pytest.mark.parametrize("lo", ["b", "h"])
@pytest.mark.parametrize("case", PROMOTE + BUILTIN, ids=[c[0] for c in PROMOTE + BUILTIN])
def test_cpu_promotion(case, lo):
    name, fn = case
    region = {"b": "bfloat16", "h": "float16"}[lo]
    promote = name in [p[0] for p in PROMOTE]
    for specs in (((lo, (N,)), ("f", (N,))), (("f", (N,)), (lo, (N,))), ((lo, (N,)), (lo, (N,)))):
        t_args, d_args = _inputs(specs, seed=4)
        with torch.autocast("cpu", dtype=getattr(torch, region)):
            t_out = fn(torch, *t_args) if promote else fn(*t_args)
        with dtrain.autocast("cpu", dtype=getattr(dtrain, region)):
            d_out = fn(dtrain, *d_args) if promote else fn(*d_args)
        _compare(d_out, t_out, lower=False)
    if promote:  # the other 16-bit dtype in the region has no rule: torch's error
        other = {"b": "h", "h": "b"}[lo]
        for m, args in zip((torch, dtrain), _inputs(((other, (N,)), ("f", (N,))), seed=4)):
            with m.autocast("cpu", dtype=getattr(m, region)):
                with pytest.raises(RuntimeError, match="Unexpected floating ScalarType in at::autocast::prioritize"):
                    fn(m, *args)


def test_float16_region_and_float64_left_alone():
    (a, b), (da, db) = _inputs([F, F], seed=5)
    with torch.autocast("cpu", dtype=torch.float16):
        t = torch.mm(a, b)
    with dtrain.autocast("cpu", dtype=dtrain.float16):
        d = dtrain.mm(da, db)
        assert dtrain.get_autocast_dtype("cpu") is dtrain.float16
        assert dtrain.mm(da.double(), db.double()).dtype is dtrain.float64  # float64 is never cast
    _compare(d, t, lower=True)


def test_nesting_enabled_false_and_restore():
    x = dtrain.randn(4, 4)
    with dtrain.autocast("cpu"):
        assert (x @ x).dtype is dtrain.bfloat16
        with dtrain.autocast("cpu", enabled=False):
            assert not dtrain.is_autocast_enabled("cpu")
            assert (x @ x).dtype is dtrain.float32
            with dtrain.autocast("cpu", dtype=dtrain.float16):
                assert (x @ x).dtype is dtrain.float16
            assert (x @ x).dtype is dtrain.float32
        assert dtrain.is_autocast_enabled("cpu") and dtrain.get_autocast_dtype("cpu") is dtrain.bfloat16
        assert (x @ x).dtype is dtrain.bfloat16
    assert (x @ x).dtype is dtrain.float32
    # the state functions, as torch's
    for m in (torch, dtrain):
        assert m.get_autocast_dtype("cpu") is m.bfloat16 and m.get_autocast_dtype("cuda") is m.float16
        m.set_autocast_enabled("cpu", True)
        m.set_autocast_dtype("cpu", m.float16)
        try:
            assert m.is_autocast_enabled("cpu") and m.is_autocast_cpu_enabled()
            assert m.get_autocast_cpu_dtype() is m.float16
        finally:
            m.set_autocast_enabled("cpu", False)
            m.set_autocast_dtype("cpu", m.bfloat16)
        assert not m.is_autocast_enabled("cpu") and not m.is_autocast_enabled()


def test_out_variants_are_not_cast():
    for m in (torch, dtrain):
        a, b, o = m.randn(3, 3), m.randn(3, 3), m.empty(3, 3)
        with m.autocast("cpu"):
            r = m.mm(a, b, out=o)
        assert r is o and o.dtype is m.float32
        np.testing.assert_allclose(o.numpy(), (a @ b).numpy(), rtol=1e-5)


def test_state_is_per_thread():
    seen = {}
    x = dtrain.randn(3, 3)

    def other():
        seen["enabled"] = dtrain.is_autocast_enabled("cpu")
        seen["dtype"] = (x @ x).dtype

    with dtrain.autocast("cpu"):
        th = threading.Thread(target=other)
        th.start()
        th.join()
        assert (x @ x).dtype is dtrain.bfloat16
    assert seen == {"enabled": False, "dtype": dtrain.float32}


def test_decorator_and_old_spellings():
    x = dtrain.randn(3, 3)

    @dtrain.autocast("cpu")
    def f(a):
        return a @ a

    @dtrain.amp.autocast("cpu", enabled=False)
    def g(a):
        return a @ a

    assert f(x).dtype is dtrain.bfloat16 and g(x).dtype is dtrain.float32
    with dtrain.cpu.amp.autocast():
        assert (x @ x).dtype is dtrain.bfloat16
    with dtrain.cpu.amp.autocast(dtype=dtrain.float16):
        assert (x @ x).dtype is dtrain.float16
    with pytest.raises(TypeError, match="requires a callable"):
        dtrain.autocast("cpu")(3)
    for m in (torch, dtrain):
        with pytest.raises(RuntimeError, match="device type at start of device string: foo"):
            m.autocast("foo")
        with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
            m.autocast(0)
        assert str(m.autocast("cpu").fast_dtype) == "torch.bfloat16"
        assert str(m.autocast("cuda", enabled=False).fast_dtype) == "torch.float16"
    with pytest.raises(RuntimeError, match="unsupported autocast device_type 'xla'"):
        dtrain.autocast("xla")  # torch accepts device types it knows; dtrain has no such devices to cast on
    # an unsupported dtype disables the region with torch's warning
    for m in (torch, dtrain):
        with pytest.warns(UserWarning, match="CPU Autocast only supports dtypes of torch.bfloat16, torch.float16"):
            with m.autocast("cpu", dtype=m.float32) as ctx:
                assert not m.is_autocast_enabled("cpu") and not ctx._enabled


@pytest.mark.skipif(dtrain.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_cuda_region_without_a_gpu_warns_and_does_nothing():
    for m in (torch, dtrain):
        with pytest.warns(UserWarning, match="CUDA is not available"):
            with m.autocast("cuda"):
                assert not m.is_autocast_enabled("cuda")


def test_backward_through_the_casts_gives_float32_grads():
    rng = np.random.default_rng(6)
    xs, ws, bs = rng.standard_normal((5, 8)), rng.standard_normal((3, 8)), rng.standard_normal(3)
    grads = {}
    for m in (torch, dtrain):
        x = m.tensor(xs, dtype=m.float32, requires_grad=True)
        w = m.tensor(ws, dtype=m.float32, requires_grad=True)
        b = m.tensor(bs, dtype=m.float32, requires_grad=True)
        with m.autocast("cpu"):
            y = m.nn.functional.linear(x, w, b)
            assert y.dtype is m.bfloat16
            loss = m.nn.functional.mse_loss(y, m.zeros(5, 3))  # float32: a listed loss
            assert loss.dtype is m.float32
        loss.backward()
        assert x.grad.dtype is w.grad.dtype is b.grad.dtype is m.float32
        grads[m.__name__] = [t.grad.float().numpy() for t in (x, w, b)]
    for d, t in zip(grads["dtrain"], grads["torch"]):
        np.testing.assert_allclose(d, t, rtol=2 ** -6, atol=1e-2)


def test_weight_cache_within_a_region():
    lin = dtrain.nn.Linear(4, 4)
    x = dtrain.randn(2, 4)
    with dtrain.autocast("cpu"):
        y1, y2 = lin(x), lin(x)
        # the parameter was cast once and both products used that one cast (one node in the graph)
        assert len(_dispatch.state.cache) == 2  # weight and bias
        cast_w = _dispatch.state.cache[id(lin.weight)][1]
        assert cast_w.dtype is dtrain.bfloat16 and cast_w.grad_fn is not None
        with dtrain.autocast("cpu"):  # a nested region shares the cache
            lin(x)
            assert len(_dispatch.state.cache) == 2
    assert len(_dispatch.state.cache) == 0  # dropped when the outermost region ends
    (y1.float().sum() + y2.float().sum()).backward()
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(4, 4.0))
    with dtrain.autocast("cpu", cache_enabled=False):
        lin(x)
        assert len(_dispatch.state.cache) == 0
    with dtrain.autocast("cpu"):
        x.requires_grad_(False)
        lin(x)
        assert id(x) not in _dispatch.state.cache  # only leaves that require grad are cached


def test_checkpoint_recomputes_in_the_forwards_precision():
    # the recompute runs in backward, outside the region: it must cast as the forward did (torch records the
    # autocast state in checkpoint), or the recomputed activations would be float32 and their metadata differ
    from dtrain.utils.checkpoint import checkpoint
    lin1, lin2 = dtrain.nn.Linear(4, 4), dtrain.nn.Linear(4, 1)
    x = dtrain.randn(3, 4, requires_grad=True)
    grads = []
    for use_ckpt in (True, False):
        for p in (x, *lin1.parameters(), *lin2.parameters()):
            p.grad = None
        with dtrain.autocast("cpu"):
            h = checkpoint(lambda a: dtrain.tanh(lin1(a)), x, use_reentrant=False) if use_ckpt else dtrain.tanh(lin1(x))
            assert h.dtype is dtrain.bfloat16
            loss = lin2(h).float().sum()
        loss.backward()
        grads.append([p.grad.numpy().copy() for p in (x, lin1.weight, lin2.weight)])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


_seen = {}


class _Scale(dtrain.autograd.Function):
    @staticmethod
    @dtrain.amp.custom_fwd(device_type="cpu", cast_inputs=dtrain.float32)
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        _seen["fwd"] = dtrain.is_autocast_enabled("cpu")
        return a @ b

    @staticmethod
    @dtrain.amp.custom_bwd(device_type="cpu")
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        _seen["bwd"] = dtrain.is_autocast_enabled("cpu")
        return g @ b.t(), a.t() @ g


def test_custom_fwd_casts_inputs_and_custom_bwd_restores_the_state():
    a = dtrain.randn(3, 3, dtype=dtrain.bfloat16, requires_grad=True)
    b = dtrain.randn(3, 3, requires_grad=True)
    with dtrain.autocast("cpu"):
        y = _Scale.apply(a, b)
    assert y.dtype is dtrain.float32  # inputs cast to float32, autocast off inside
    assert _seen["fwd"] is False
    y.sum().backward()
    assert _seen["bwd"] is False  # cast_inputs ran forward without autocast: backward likewise
    assert a.grad.dtype is dtrain.bfloat16 and b.grad.dtype is dtrain.float32
    with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
        dtrain.amp.custom_fwd(device_type=None)


# ---------------------------------------------------------------------------------------------- CUDA
# torch 2.13's AutocastTestLists (the CUDA cases of its test suite), by name
CUDA_LOWER = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "prelu",
              "addmm", "addmv", "addr", "matmul", "einsum", "mm", "mv", "chain_matmul", "addbmm", "baddbmm", "bmm",
              "linear", "linalg_vecdot", "linalg_multi_dot"]
CUDA_FP32 = ["acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal",
             "rsqrt", "sinh", "tan", "pow", "layer_norm", "rms_norm", "group_norm", "cosine_similarity",
             "poisson_nll_loss", "cosine_embedding_loss", "hinge_embedding_loss", "kl_div", "margin_ranking_loss",
             "triplet_margin_loss", "binary_cross_entropy_with_logits", "dist", "pdist", "cdist", "renorm",
             "logsumexp", "softplus", "nll_loss", "l1_loss", "smooth_l1_loss", "mse_loss", "multilabel_margin_loss",
             "soft_margin_loss", "multi_margin_loss"]
CUDA_FP32_DTYPE = ["softmax", "log_softmax", "cumprod", "cumsum", "prod", "sum", "norm"]
CUDA_PROMOTE = ["addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "index_put", "tensordot",
                "scatter_add", "cat", "stack"]


def _impl(name):
    """dtrain's function for torch's op `name` (torch.*, torch.linalg.* or nn.functional.*)."""
    if name.startswith("linalg_"):
        return getattr(dtrain.linalg, name[len("linalg_"):])
    for ns in (dtrain.nn.functional, dtrain):
        if hasattr(ns, name):
            return getattr(ns, name)
    raise AttributeError(name)


@pytest.mark.parametrize("policy,names", [("lower", CUDA_LOWER), ("fp32", CUDA_FP32),
                                          ("fp32_dtype", CUDA_FP32_DTYPE), ("promote", CUDA_PROMOTE)])
def test_cuda_lists(policy, names):
    for name in names:
        assert _dispatch.POLICIES["cuda"].get(name) == policy, name
        fn = _impl(name)
        # the function torch code calls is the autocast-aware one, for that op
        assert getattr(fn, "_autocast_name", None) == (
            {"norm": "norm"}.get(name, name)), f"{name} is not dispatched by autocast"
    assert _dispatch.POLICIES["cuda"]["binary_cross_entropy"] == "banned"
    assert getattr(dtrain.Tensor.__matmul__, "_autocast_name", None) == "matmul"
    assert getattr(dtrain.Tensor.exp, "_autocast_name", None) == "exp"


def test_cuda_dtype_decisions():
    td, h, b, f = _dispatch.target_dtype, dtrain.float16, dtrain.bfloat16, dtrain.float32
    assert td("lower", h, [f, f]) is h and td("lower", b, [f]) is b
    assert td("fp32", h, [h, h]) is f
    assert td("fp32_dtype", h, [h]) is f and td("fp32_dtype", h, []) is None
    assert td("promote", h, [h, h]) is h and td("promote", h, [h, f]) is f and td("promote", h, []) is h
    assert td("promote", b, [h]) is f  # bfloat16 with float16: float32, as torch.promote_types
    assert td("native", h, [f]) is None


def test_deprecated_spellings_warn_as_torchs():
    def warned(m):
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            m.cpu.amp.autocast()
            m.cuda.amp.autocast(enabled=False)
            m.cuda.amp.GradScaler(enabled=False)
            m.cpu.amp.GradScaler()
            m.is_autocast_cpu_enabled()
            m.get_autocast_cpu_dtype()
            m.get_autocast_gpu_dtype()
            m.is_autocast_enabled()  # not deprecated
            m.cuda.amp.custom_fwd(lambda: 0)
            m.cuda.amp.custom_bwd(lambda: 0)
        return [(x.category, str(x.message).split(" (Triggered")[0]) for x in w]
    assert warned(dtrain) == warned(torch)


def _registered_names():
    """The op names that dtrain's functions carry for autocast, over the namespaces torch code calls."""
    from dtrain.nn.functional import _pad
    from dtrain.nn.modules import rnn
    fns = []
    for ns in (dtrain, dtrain.nn.functional, dtrain.linalg, dtrain.fft, dtrain.special, dtrain.Tensor):
        fns += [getattr(ns, k, None) for k in dir(ns)]
    fns += list(_pad._index_pad.values()) + list(rnn._CELLS.values())
    return {getattr(f, "_autocast_name", None) for f in fns} - {None}


@pytest.mark.parametrize("dev", ["cpu", "cuda"], ids=["cpu-lists", "cuda-lists"])  # no GPU needed
def test_every_listed_op_is_dispatched_or_named_absent(dev):
    # each op of torch's lists either has a dtrain function under autocast, or ABSENT says why not
    names = _registered_names()
    missing = {n for n in _dispatch.POLICIES[dev] if n not in names}
    assert missing <= set(_dispatch.ABSENT), sorted(missing - set(_dispatch.ABSENT))
    assert not (set(_dispatch.ABSENT) & names), "ABSENT names an op that is dispatched"
