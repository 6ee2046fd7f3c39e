"""Shrinkage and randomized activations, pdist, local response norm, Lp pooling, max unpooling, channel shuffle,
Fold/Unfold modules, feature alpha dropout, EmbeddingBag and LazyLinear against torch."""
import numpy as np
import pytest
import torch
from helpers import assert_close, check, check_raises, to_numpy
from test_conv import module_check

import dtrain

_rng = np.random.default_rng(11)


def _repr_same(name, *args, **kw):
    assert repr(getattr(dtrain.nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args, **kw))


# ---- activations -------------------------------------------------------------------------------------------
def _with_edges(shape, lambd):
    x = _rng.standard_normal(shape)
    x.flat[:4] = [lambd, -lambd, 0.0, 2 * lambd]
    return x


@pytest.mark.parametrize("lambd", [0.5, 0.2, 0.0])
def test_shrink(device, lambd):
    x = _with_edges((3, 5), lambd)
    check(lambda m, x: m.nn.functional.hardshrink(x, lambd), x, device=device)
    check(lambda m, x: m.nn.functional.softshrink(x, lambd), x, device=device)
    check(lambda m, x: x.hardshrink(lambd), x, device=device)
    check(lambda m, x: m.nn.Hardshrink(lambd)(x), x, device=device)
    check(lambda m, x: m.nn.Softshrink(lambd)(x), x, device=device)


def test_softsign_tanhshrink(device):
    x = _with_edges((4, 6), 1.0)
    for name in ("softsign", "tanhshrink"):
        check(lambda m, x: getattr(m.nn.functional, name)(x), x, device=device)
    check(lambda m, x: m.nn.Softsign()(x), x, device=device)
    check(lambda m, x: m.nn.Tanhshrink()(x), x, device=device)
    check(lambda m, x: m.nn.Softsign()(x), (5,), device=device, dtype=np.float32)


@pytest.mark.parametrize("lower,upper", [(1 / 8, 1 / 3), (0.1, 0.6)])
def test_rrelu_eval(device, lower, upper):
    check(lambda m, x: m.nn.functional.rrelu(x, lower, upper), (4, 5), device=device)
    check(lambda m, x: m.nn.RReLU(lower, upper).eval()(x), (4, 5), device=device)
    check(lambda m, x: m.nn.functional.rrelu(x * 1, lower, upper, inplace=True), (4, 5), device=device)


def test_rrelu_train(device):
    x = dtrain.tensor(_rng.standard_normal((50, 40)), device=device).requires_grad_()
    y = dtrain.nn.RReLU(0.1, 0.3)(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    xs, ys = to_numpy(x), to_numpy(y)
    pos = xs > 0
    np.testing.assert_array_equal(ys[pos], xs[pos])
    slope = ys[~pos] / xs[~pos]
    assert slope.min() >= 0.1 and slope.max() <= 0.3
    assert slope.std() > 0.03  # one slope per element, not one for all
    y.sum().backward()
    g = to_numpy(x.grad)
    np.testing.assert_array_equal(g[pos], 1.0)
    np.testing.assert_allclose(g[~pos], slope)
    z = dtrain.tensor(xs.copy(), device=device)
    out = dtrain.nn.functional.rrelu_(z, 0.1, 0.3, training=True)
    assert out is z and (to_numpy(z)[~pos] / xs[~pos]).max() <= 0.3


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5)])
def test_softmax2d(device, shape):
    check(lambda m, x: m.nn.Softmax2d()(x), shape, device=device)


def test_activation_reprs():
    for name, args, kw in [("Hardshrink", (), {}), ("Softshrink", (0.3,), {}), ("Softsign", (), {}),
                           ("Tanhshrink", (), {}), ("RReLU", (), {}), ("RReLU", (0.1, 0.3), {"inplace": True}),
                           ("Softmax2d", (), {})]:
        _repr_same(name, *args, **kw)


@pytest.mark.parametrize("fn", [
    lambda m, x: m.nn.functional.softshrink(x, -0.5),
    lambda m, x: m.nn.Softmax2d()(x[0]),
    lambda m, x: m.nn.Softshrink(-1.0)(x),
])
def test_activation_errors(fn):
    check_raises(fn, (2, 3, 4))


# ---- pdist, local response norm, channel shuffle ---------------------------------------------------------------
@pytest.mark.parametrize("p", [2, 1, 3, 0.5, float("inf")])
def test_pdist(device, p):
    check(lambda m, x: m.nn.functional.pdist(x, p), (6, 4), device=device)


def test_pdist_small(device):
    check(lambda m, x: m.nn.functional.pdist(x), (2, 3), device=device)
    check(lambda m, x: m.nn.functional.pdist(x), (1, 3), device=device)


@pytest.mark.parametrize("size", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 5, 7), (2, 6, 3, 4), (1, 4, 2, 3, 2)])
def test_local_response_norm(device, size, shape):
    check(lambda m, x: m.nn.functional.local_response_norm(x, size, alpha=0.5, beta=0.6, k=2.0), shape,
          device=device)
    check(lambda m, x: m.nn.LocalResponseNorm(size)(x * 30), shape, device=device)


@pytest.mark.parametrize("groups,shape", [(2, (2, 6, 3)), (3, (2, 6, 2, 3)), (1, (1, 4, 2)), (4, (3, 8, 1, 2, 2))])
def test_channel_shuffle(device, groups, shape):
    check(lambda m, x: m.nn.functional.channel_shuffle(x, groups), shape, device=device)
    check(lambda m, x: m.nn.functional.native_channel_shuffle(x, groups), shape, device=device, grad=False)
    check(lambda m, x: m.nn.ChannelShuffle(groups)(x), shape, device=device)


@pytest.mark.parametrize("fn", [
    lambda m, x: m.nn.functional.pdist(x),
    lambda m, x: m.nn.functional.pdist(x[0], -1.0),
    lambda m, x: m.nn.functional.local_response_norm(x[0], 2),
    lambda m, x: m.nn.functional.channel_shuffle(x, 0),
    lambda m, x: m.nn.functional.channel_shuffle(x, 4),
    lambda m, x: m.nn.functional.channel_shuffle(x[0], 2),
])
def test_misc_errors(fn):
    check_raises(fn, (2, 6, 3))


# ---- Lp pooling and max unpooling ------------------------------------------------------------------------
@pytest.mark.parametrize("p", [2, 3, 1.5])
@pytest.mark.parametrize("kw", [{}, {"stride": 1}, {"stride": 2, "ceil_mode": True}])
def test_lp_pool(device, p, kw):
    x1, x2 = np.abs(_rng.standard_normal((2, 3, 9))) + 0.1, np.abs(_rng.standard_normal((2, 3, 7, 8))) + 0.1
    check(lambda m, x: m.nn.functional.lp_pool1d(x, p, 3, **kw), x1, device=device)
    check(lambda m, x: m.nn.functional.lp_pool2d(x, p, (3, 2), **kw), x2, device=device)
    check(lambda m, x: m.nn.LPPool1d(p, 2, **kw)(x), x1[0], device=device)
    check(lambda m, x: m.nn.LPPool2d(p, 2, **kw)(x), x2, device=device)


def test_lp_pool_signed(device):
    check(lambda m, x: m.nn.functional.lp_pool2d(x, 2, 2), (2, 3, 6, 6), device=device)
    check(lambda m, x: m.nn.functional.lp_pool1d(x, 1, 2), np.abs(_rng.standard_normal((2, 3, 6))), device=device)


@pytest.mark.parametrize("k,kw,shape", [(2, {}, (2, 3, 8, 6)), (3, {"stride": 2, "padding": 1}, (2, 3, 9, 7)),
                                        ((2, 3), {"stride": (2, 1)}, (3, 8, 7))])
def test_max_unpool2d(device, k, kw, shape):
    def fn(m, x):
        y, idx = m.nn.functional.max_pool2d(x, k, return_indices=True, **kw)
        return m.nn.functional.max_unpool2d(y, idx, k, **kw), m.nn.MaxUnpool2d(k, **kw)(y * 2, idx)
    check(fn, shape, device=device)


def test_max_unpool_output_size(device):
    def fn(m, x):
        y, idx = m.nn.functional.max_pool2d(x, 2, return_indices=True)
        return m.nn.functional.max_unpool2d(y, idx, 2, output_size=x.shape), m.nn.MaxUnpool2d(2)(y, idx, (7, 9))
    check(fn, (2, 3, 7, 9), device=device)

    def fn1(m, x):
        y, idx = m.nn.functional.max_pool1d(x, 3, stride=2, return_indices=True)
        return (m.nn.functional.max_unpool1d(y, idx, 3, 2), m.nn.MaxUnpool1d(3, 2)(y, idx, output_size=[10]),
                m.nn.MaxUnpool1d(3, 2)(y[0], idx[0]))
    check(fn1, (2, 3, 10), device=device)


def test_pool_reprs():
    for name, args, kw in [("LPPool1d", (2, 3), {}), ("LPPool2d", (1.5, (2, 3), 2), {"ceil_mode": True}),
                           ("MaxUnpool1d", (2,), {}), ("MaxUnpool2d", (2, 1, 1), {}), ("MaxUnpool2d", ((2, 3),), {}),
                           ("LocalResponseNorm", (3,), {"k": 2.0}), ("ChannelShuffle", (2,), {}),
                           ("Fold", (4, 2), {}), ("Fold", ((5, 6), (2, 3)), {"padding": 1, "stride": 2}),
                           ("Unfold", (2,), {"dilation": 2}), ("FeatureAlphaDropout", (0.2,), {})]:
        _repr_same(name, *args, **kw)


@pytest.mark.parametrize("fn", [
    lambda m, x: m.nn.functional.max_unpool2d(x, m.zeros(x.shape, dtype=m.int64) + 99, 2),
    lambda m, x: m.nn.functional.max_unpool2d(x, m.zeros(x.shape, dtype=m.int64), 2, output_size=(9, 9)),
    lambda m, x: m.nn.functional.max_unpool2d(x, m.zeros(x.shape, dtype=m.int64), 2, output_size=(1, 2, 3)),
    lambda m, x: m.nn.functional.max_unpool1d(x[0], m.zeros(x.shape, dtype=m.int64)[0], 2, output_size=(9,)),
])
def test_unpool_errors(fn):
    check_raises(fn, (2, 3, 3, 3))


# ---- Fold / Unfold modules, feature alpha dropout ------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"dilation": 2, "padding": 1}, {"stride": 2}])
def test_fold_unfold_modules(device, kw):
    def fn(m, x):
        cols = m.nn.Unfold((2, 3), **kw)(x)
        return cols, m.nn.Fold((7, 8), (2, 3), **kw)(cols * 1.5)
    check(fn, (2, 3, 7, 8), device=device)


def test_feature_alpha_dropout(device):
    check(lambda m, x: m.nn.functional.feature_alpha_dropout(x, 0.3), (4, 5, 3), device=device)
    check(lambda m, x: m.nn.FeatureAlphaDropout(0.3).eval()(x), (4, 5, 3), device=device)
    check(lambda m, x: m.nn.functional.feature_alpha_dropout(x, 1.0, True), (4, 5, 3), device=device)
    x = dtrain.tensor(_rng.standard_normal((64, 32, 3)), device=device).requires_grad_()
    p, alpha = 0.4, 1.7580993408473766
    a = 1 / np.sqrt((alpha * alpha * p + 1) * (1 - p))
    y = dtrain.nn.FeatureAlphaDropout(p)(x)
    xs, ys = to_numpy(x), to_numpy(y)
    kept = np.isclose(ys, xs * a + alpha * a * p).all(-1)  # per channel: all of it kept, or all of it dropped
    dropped = np.isclose(ys, -alpha * a + alpha * a * p).all(-1)
    assert (kept ^ dropped).all() and 0.3 < dropped.mean() < 0.5
    y.sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), np.broadcast_to((kept * a)[..., None], xs.shape))
    check_raises(lambda m, x: m.nn.functional.feature_alpha_dropout(x, 1.5, True), (2, 3))
    check_raises(lambda m, x: m.nn.functional.feature_alpha_dropout(x, 0.5, True), (3,))


# ---- EmbeddingBag -----------------------------------------------------------------------------------------------
IDX = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0, 2], dtype=np.int64)
OFFSETS = np.array([0, 3, 3, 7, 8], dtype=np.int64)  # the second bag is empty


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 2, -10])
def test_embedding_bag_offsets(device, mode, padding_idx):
    check(lambda m, w, i, o: m.nn.functional.embedding_bag(i, w, o, mode=mode, padding_idx=padding_idx),
          (10, 4), IDX, OFFSETS, device=device)
    last = np.append(OFFSETS, len(IDX))
    check(lambda m, w, i, o: m.nn.functional.embedding_bag(i, w, o, mode=mode, include_last_offset=True,
                                                           padding_idx=padding_idx), (10, 4), IDX, last,
          device=device)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_2d(device, mode):
    idx = _rng.integers(0, 7, (4, 3)).astype(np.int64)
    check(lambda m, w, i: m.nn.functional.embedding_bag(i, w, mode=mode), (7, 5), idx, device=device)
    check(lambda m, w, i: m.nn.functional.embedding_bag(i, w, mode=mode, padding_idx=int(idx[0, 0])), (7, 5),
          idx, device=device)


def test_embedding_bag_per_sample_weights(device):
    check(lambda m, w, i, o, s: m.nn.functional.embedding_bag(i, w, o, mode="sum", per_sample_weights=s),
          (10, 4), IDX, OFFSETS, (len(IDX),), device=device)
    check(lambda m, w, i, o, s: m.nn.functional.embedding_bag(i, w, o, mode="sum", per_sample_weights=s,
                                                              padding_idx=0),
          (10, 4), IDX, OFFSETS, (len(IDX),), device=device)
    idx = _rng.integers(0, 7, (4, 3)).astype(np.int64)
    check(lambda m, w, i, s: m.nn.functional.embedding_bag(i, w, mode="sum", per_sample_weights=s), (7, 5), idx,
          (4, 3), device=device)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_module(device, mode):
    t = torch.nn.EmbeddingBag(10, 4, mode=mode, padding_idx=4).double()
    d = dtrain.nn.EmbeddingBag(10, 4, mode=mode, padding_idx=4, dtype=dtrain.float64)
    module_check(t, d, IDX, kwargs={"offsets": OFFSETS}, device=device)
    d = dtrain.nn.EmbeddingBag.from_pretrained(dtrain.tensor(to_numpy(t.weight)), mode=mode)
    assert not d.weight.requires_grad
    assert_close(d(dtrain.tensor(IDX), dtrain.tensor(OFFSETS)),
                 torch.nn.EmbeddingBag.from_pretrained(t.weight.detach(), mode=mode)(torch.tensor(IDX),
                                                                                     torch.tensor(OFFSETS)))


def test_embedding_bag_init_and_repr():
    d = dtrain.nn.EmbeddingBag(6, 3, padding_idx=1)
    assert to_numpy(d.weight)[1].tolist() == [0, 0, 0] and to_numpy(d.weight).std() > 0.3
    for args, kw in [((5, 3), {}), ((5, 3), {"mode": "max", "padding_idx": 0}),
                     ((5, 3), {"mode": "sum", "norm_type": 1.0, "max_norm": 2.0})]:
        _repr_same("EmbeddingBag", *args, **kw)


@pytest.mark.parametrize("fn", [
    lambda m, w: m.nn.functional.embedding_bag(m.tensor([1, 2]), w, m.tensor([0]), mode="max",
                                               per_sample_weights=m.ones(2)),
    lambda m, w: m.nn.functional.embedding_bag(m.tensor([1, 2]), w, m.tensor([0]), per_sample_weights=m.ones(3)),
    lambda m, w: m.nn.functional.embedding_bag(m.tensor([1, 2]), w),
    lambda m, w: m.nn.functional.embedding_bag(m.tensor([[1, 2]]), w, m.tensor([0])),
    lambda m, w: m.nn.functional.embedding_bag(m.tensor([1, 2]), w, m.tensor([0]), mode="median"),
    lambda m, w: m.nn.functional.embedding_bag(m.tensor([1, 2]), w[0], m.tensor([0])),
    lambda m, w: m.nn.functional.embedding_bag(m.tensor([1, 2]), w, m.tensor([1])),
    lambda m, w: m.nn.EmbeddingBag(3, 2, padding_idx=3),
])
def test_embedding_bag_errors(fn):
    check_raises(fn, (4, 3))


# ---- LazyLinear ---------------------------------------------------------------------------------------------------
def test_lazy_linear(device):
    d = dtrain.nn.LazyLinear(3, dtype=dtrain.float64)
    t = torch.nn.LazyLinear(3, dtype=torch.float64)
    assert repr(d) == repr(t)
    assert isinstance(d.weight, dtrain.nn.UninitializedParameter) and repr(d.weight) == repr(t.weight)
    assert d.has_uninitialized_params()
    x = _rng.standard_normal((4, 5))
    d.to(device)
    y = d(dtrain.tensor(x, device=device))
    t(torch.from_numpy(x))
    assert type(d) is dtrain.nn.Linear and repr(d) == repr(t) == "Linear(in_features=5, out_features=3, bias=True)"
    assert tuple(d.weight.shape) == (3, 5) and type(d.weight) is dtrain.nn.Parameter
    bound = 1 / np.sqrt(5)  # Linear's initialisation, for the inferred in_features
    assert np.abs(to_numpy(d.weight)).max() <= bound and to_numpy(d.weight).std() > 0.05
    assert_close(y, to_numpy(d.weight) @ np.zeros(5) + x @ to_numpy(d.weight).T + to_numpy(d.bias))
    # with the same weights it is torch's Linear, gradients included
    t = torch.nn.Linear(5, 3).double()
    module_check(t, d, (4, 5), device=device)
    sd = d.state_dict()
    assert list(sd) == ["weight", "bias"] and tuple(sd["weight"].shape) == (3, 5)
    opt = dtrain.optim.SGD(d.parameters(), lr=0.1)
    assert [tuple(p.shape) for g in opt.param_groups for p in g["params"]] == [(3, 5), (3,)]
    before = to_numpy(d.weight).copy()
    d.zero_grad()
    d(dtrain.tensor(x, device=device)).sum().backward()
    opt.step()
    np.testing.assert_allclose(to_numpy(d.weight), before - 0.1 * np.tile(x.sum(0), (3, 1)))


def test_lazy_linear_parameters_materialize_in_place():
    d = dtrain.nn.LazyLinear(2)
    w = d.weight
    d(dtrain.randn(3, 4))
    assert d.weight is w and tuple(w.shape) == (2, 4)  # a reference taken before the forward sees the data


def test_lazy_linear_state_dict():
    src = dtrain.nn.Linear(4, 2)
    d = dtrain.nn.LazyLinear(2)
    assert repr(d.state_dict()["weight"]) == "<UninitializedParameter>"
    d.load_state_dict(src.state_dict())
    assert not d.has_uninitialized_params() and tuple(d.weight.shape) == (2, 4)
    x = dtrain.randn(3, 4)
    assert_close(d(x), src(x))
    t = torch.nn.LazyLinear(2)
    t.load_state_dict({k: torch.from_numpy(to_numpy(v)) for k, v in src.state_dict().items()})
    t(torch.from_numpy(to_numpy(x)))
    assert repr(d) == repr(t)
