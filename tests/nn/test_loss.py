"""Losses (functional and modules) against torch: values, input gradients, and errors."""
import warnings

import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

_rng = np.random.default_rng(3)
REDUCTIONS = ["mean", "sum", "none"]


def _t(m, a):
    return m.tensor(a) if m is dtrain else torch.from_numpy(a)


def labels(*shape, c=5, ignore=None):
    t = _rng.integers(0, c, size=shape)
    if ignore is not None:
        t.flat[::3] = ignore
    return t


def probs(*shape):
    p = _rng.random(shape)
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_indices(device, reduction):
    check(lambda m, a, t: m.nn.functional.cross_entropy(a, t, reduction=reduction), (6, 5), labels(6), device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_cross_entropy_weight_ignore_smoothing(device, reduction, ls):
    w = _rng.random(5) + 0.5
    check(lambda m, a, t, w: m.nn.functional.cross_entropy(a, t, weight=w.detach(), ignore_index=2,
                                                           reduction=reduction, label_smoothing=ls),
          (7, 5), labels(7, ignore=2), w, device=device)
    check(lambda m, a, t: m.nn.functional.cross_entropy(a, t, ignore_index=-100, reduction=reduction,
                                                        label_smoothing=ls),
          (7, 5), labels(7, ignore=-100), device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_extra_dims_and_1d(device, reduction):
    check(lambda m, a, t: m.nn.functional.cross_entropy(a, t, reduction=reduction, ignore_index=1),
          (2, 5, 3, 4), labels(2, 3, 4), device=device)
    check(lambda m, a, t: m.nn.functional.cross_entropy(a, t, reduction=reduction), (5,), np.array(3),
          device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probabilities(device, reduction):
    w = _rng.random(5) + 0.5
    check(lambda m, a, t: m.nn.functional.cross_entropy(a, t.detach(), reduction=reduction, label_smoothing=0.1),
          (4, 5), probs(4, 5), device=device)
    check(lambda m, a, t, w: m.nn.functional.cross_entropy(a, t.detach(), weight=w.detach(), reduction=reduction),
          (2, 5, 3), probs(2, 5, 3), w, device=device)


def test_cross_entropy_float32_module(device):
    a = _rng.standard_normal((8, 10)).astype(np.float32)
    t = labels(8, c=10)
    out = check(lambda m, a, t: m.nn.CrossEntropyLoss(label_smoothing=0.05)(a, t), a, t, device=device)
    assert out[0].dtype == dtrain.float32


def test_cross_entropy_errors():
    F = "nn.functional.cross_entropy"
    cases = [((3, 5), np.array([0, 1, 2, 3])), ((3, 5), np.array([0, 1, 7])), ((3, 5, 2), np.array([0, 1, 2])),
             ((3, 5), _rng.standard_normal((3, 4)))]
    for shape, tgt in cases:
        de, te = check_raises(lambda m, a, t: eval(f"m.{F}")(a, t), shape, tgt)
        assert str(de) == str(te)
    de, te = check_raises(lambda m, a, t, w: m.nn.functional.cross_entropy(a, t, weight=w), (3, 5),
                          np.array([0, 1, 2]), (4,))
    assert str(de) == str(te)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(device, reduction):
    w = _rng.random(5) + 0.5
    check(lambda m, a, t, w: m.nn.functional.nll_loss(a.log_softmax(1), t, weight=w.detach(), ignore_index=0,
                                                      reduction=reduction),
          (6, 5), labels(6), w, device=device)
    check(lambda m, a, t: m.nn.NLLLoss(reduction=reduction)(a, t), (2, 5, 3), labels(2, 3), device=device)
    de, te = check_raises(lambda m, a, t: m.nn.functional.nll_loss(a, t), (3, 5), np.array([0.0, 1.0, 2.0]))
    assert str(de) == str(te)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kw", [("mse_loss", {}), ("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
                                     ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {"delta": 0.7})])
def test_regression_losses(device, reduction, name, kw):
    check(lambda m, a, b: getattr(m.nn.functional, name)(a, b, reduction=reduction, **kw), (4, 6), (4, 6),
          device=device)


@pytest.mark.parametrize("mod", [lambda m: m.nn.MSELoss(), lambda m: m.nn.L1Loss(reduction="sum"),
                                 lambda m: m.nn.SmoothL1Loss(beta=2.0), lambda m: m.nn.HuberLoss(delta=0.3)])
def test_regression_modules(device, mod):
    check(lambda m, a, b: mod(m)(a, b), (3, 5), (3, 5), device=device)
    assert repr(mod(dtrain)) == repr(mod(torch))


def test_mse_broadcast_warns_and_mismatch_raises():
    with pytest.warns(UserWarning, match="Using a target size"):
        dtrain.nn.functional.mse_loss(dtrain.zeros(3, 1), dtrain.zeros(3))
    de, te = check_raises(lambda m, a, b: m.nn.functional.mse_loss(a, b), (3,), (4,))
    assert str(de) == str(te)
    de, te = check_raises(lambda m, a, b: m.nn.functional.mse_loss(a, b, reduction="foo"), (3,), (3,))
    assert str(de) == str(te)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce(device, reduction):
    p = _rng.random((4, 3)) * 0.98 + 0.01
    t = _rng.random((4, 3))
    check(lambda m, a, t: m.nn.functional.binary_cross_entropy(a, t.detach(), reduction=reduction), p, t,
          device=device)
    w = _rng.random((3,))
    check(lambda m, a, t, w: m.nn.BCELoss(weight=w.detach(), reduction=reduction)(a, t.detach()), p, t, w,
          device=device)
    # log clamped at -100: saturated inputs give finite losses like torch
    sat = np.array([0.0, 1.0, 0.5])
    check(lambda m, a, t: m.nn.functional.binary_cross_entropy(a.detach(), t, reduction=reduction),
          sat, np.array([1.0, 0.0, 1.0]), device=device, grad=False)
    de, te = check_raises(lambda m, a, t: m.nn.functional.binary_cross_entropy(a, t), (3,), (3, 1))
    assert str(de) == str(te)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(device, reduction):
    a = _rng.standard_normal((4, 3)) * 30  # large logits: the stable form must not overflow
    t = _rng.random((4, 3))
    check(lambda m, a, t: m.nn.functional.binary_cross_entropy_with_logits(a, t, reduction=reduction), a, t,
          device=device)
    pw, w = _rng.random(3) + 0.5, _rng.random(3)
    check(lambda m, a, t, pw, w: m.nn.BCEWithLogitsLoss(weight=w.detach(), pos_weight=pw.detach(),
                                                        reduction=reduction)(a, t.detach()),
          a / 30, t, pw, w, device=device)
    de, te = check_raises(lambda m, a, t: m.nn.functional.binary_cross_entropy_with_logits(a, t), (3,), (3, 1))
    assert str(de) == str(te)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(device, reduction, log_target):
    tgt = probs(4, 5)
    tgt[0, 0] = 0.0  # 0 log 0 = 0
    if log_target:
        tgt = np.log(tgt + 1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(lambda m, a, t: m.nn.KLDivLoss(reduction=reduction, log_target=log_target)(a.log_softmax(1), t.detach()),
              (4, 5), tgt, device=device)


def test_loss_reprs_and_buffers():
    for make in (lambda m: m.nn.CrossEntropyLoss(), lambda m: m.nn.NLLLoss(ignore_index=3),
                 lambda m: m.nn.BCELoss(), lambda m: m.nn.KLDivLoss(reduction="batchmean")):
        assert repr(make(dtrain)) == repr(make(torch))
    mk = lambda m: m.nn.CrossEntropyLoss(weight=m.ones(3))  # noqa: E731
    assert list(mk(dtrain).state_dict()) == list(mk(torch).state_dict()) == ["weight"]


_BAD_TARGETS = [  # (input shape, target, loss): targets that are not the input's shape are class indices
    ((3, 5), lambda T: T.tensor([1.0, 2.0, 0.0]), "cross_entropy"),
    ((3, 5), lambda T: T.tensor([[1.0, 2.0, 0.0]]), "cross_entropy"),
    ((3, 5), lambda T: T.full((3, 4), 0.25), "cross_entropy"),
    ((3, 5, 2), lambda T: T.full((3, 2), 0.5), "cross_entropy"),
    ((5,), lambda T: T.tensor(1.0), "cross_entropy"),
    ((3, 5), lambda T: T.tensor([1, 2, 0]).half(), "cross_entropy"),
    ((3, 5), lambda T: T.tensor([1.0, 2.0]), "cross_entropy"),
    ((3, 5), lambda T: T.full((5,), 0.2), "cross_entropy"),
    ((3, 5), lambda T: T.tensor([1.0, 2.0, 0.0]), "nll_loss"),
    ((3, 5), lambda T: T.full((3, 4), 0.25), "nll_loss"),
    ((3, 5), lambda T: T.tensor([[1, 2, 0]]), "nll_loss"),
]


@pytest.mark.parametrize("shape,target,loss", _BAD_TARGETS)
def test_wrong_class_targets_raise_torchs_error(shape, target, loss):
    def outcome(T):
        with pytest.raises(Exception) as e:
            getattr(T.nn.functional, loss)(T.zeros(shape), target(T))
        return type(e.value), str(e.value)
    assert outcome(dtrain) == outcome(torch)


@pytest.mark.parametrize("ignore", [-100, 5, 7, -1])
@pytest.mark.parametrize("bad", [None, -1, 5, 9])
def test_class_index_range_with_ignore_index(device, ignore, bad):
    # an index outside [0, C) that is not ignore_index is torch's IndexError naming the first such index; an
    # ignore_index outside [0, C) (5, 7, -1 with C = 5) is skipped, however the indices in range look
    t = labels(8, ignore=ignore)
    if bad is not None:
        t[5] = bad
    fn = lambda m, a, t: m.nn.functional.cross_entropy(a, t, ignore_index=ignore)
    fn_nll = lambda m, a, t: m.nn.functional.nll_loss(a, t, ignore_index=ignore)
    for f in (fn, fn_nll):
        if bad is None or bad == ignore:
            check(f, (8, 5), t, device=device)
        else:
            err, _ = check_raises(f, (8, 5), t, device=device, match=f"Target {bad} is out of bounds.")
            assert str(err) == f"Target {bad} is out of bounds."
