"""Margin, embedding and likelihood losses (functional and modules) against torch: values, gradients, printed forms
and errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

REDUCTIONS = ["none", "mean", "sum"]
_rng = np.random.default_rng(7)


def _signs(*shape):
    return np.where(_rng.random(shape) < 0.5, -1.0, 1.0)


def _labels(n, c):
    return _rng.integers(0, c, n).astype(np.int64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_loss(device, reduction):
    check(lambda m, a, b, y: m.nn.functional.margin_ranking_loss(a, b, y, margin=0.3, reduction=reduction),
          (7,), (7,), _signs(7), device=device)
    check(lambda m, a, b, y: m.nn.MarginRankingLoss(0.5, reduction=reduction)(a, b, y), (7,), (7,), _signs(7),
          device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_embedding_loss(device, reduction):
    check(lambda m, x, y: m.nn.functional.hinge_embedding_loss(x, y, margin=0.7, reduction=reduction), (4, 5),
          _signs(4, 5), device=device)
    check(lambda m, x, y: m.nn.HingeEmbeddingLoss(reduction=reduction)(x, y), (4, 5), _signs(4, 5), device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_loss(device, reduction):
    check(lambda m, x, y: m.nn.functional.soft_margin_loss(x, y.detach(), reduction=reduction), (4, 5), _signs(4, 5),
          device=device)
    check(lambda m, x, y: m.nn.SoftMarginLoss(reduction=reduction)(x, y.detach()), (6,), _signs(6), device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_loss(device, reduction):
    check(lambda m, a, b, y: m.nn.functional.cosine_embedding_loss(a, b, y, margin=0.2, reduction=reduction),
          (6, 4), (6, 4), _signs(6), device=device)
    check(lambda m, a, b, y: m.nn.CosineEmbeddingLoss(-0.5, reduction=reduction)(a, b, y), (6, 4), (6, 4),
          _signs(6), device=device)
    check(lambda m, a, b, y: m.nn.functional.cosine_embedding_loss(a, b, y, reduction=reduction), (5,), (5,),
          np.array(-1.0), device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_soft_margin_loss(device, reduction):
    t = (_rng.random((4, 5)) < 0.5).astype(np.float64)
    check(lambda m, x, y: m.nn.functional.multilabel_soft_margin_loss(x, y.detach(), reduction=reduction), (4, 5), t,
          device=device)
    check(lambda m, x, y, w: m.nn.MultiLabelSoftMarginLoss(w, reduction=reduction)(x, y), (4, 5), t, (5,),
          device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_loss(device, reduction):
    t = np.array([[3, 0, -1, 1, 2], [1, 4, 2, 0, 3], [-1, 2, 0, 0, 0], [2, 2, -1, 4, 4]], dtype=np.int64)
    check(lambda m, x, y: m.nn.functional.multilabel_margin_loss(x, y, reduction=reduction), (4, 5), t,
          device=device)
    check(lambda m, x, y: m.nn.MultiLabelMarginLoss(reduction=reduction)(x, y), (5,), t[0], device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss(device, reduction, p):
    check(lambda m, x, y: m.nn.functional.multi_margin_loss(x, y, p=p, margin=0.8, reduction=reduction), (6, 4),
          _labels(6, 4), device=device)
    check(lambda m, x, y, w: m.nn.MultiMarginLoss(p, weight=w.detach(), reduction=reduction)(x, y), (6, 4),
          _labels(6, 4), np.abs(_rng.standard_normal(4)), device=device)
    check(lambda m, x, y: m.nn.functional.multi_margin_loss(x, y, p=p, reduction=reduction), (4,),
          np.array(2, dtype=np.int64), device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw", [{}, {"p": 1, "margin": 2.0}, {"swap": True, "eps": 1e-3}, {"p": 3, "swap": True}])
def test_triplet_margin_loss(device, reduction, kw):
    check(lambda m, a, p, n: m.nn.functional.triplet_margin_loss(a, p, n, reduction=reduction, **kw), (5, 4),
          (5, 4), (5, 4), device=device)
    check(lambda m, a, p, n: m.nn.TripletMarginLoss(reduction=reduction, **kw)(a, p, n), (4,), (4,), (4,),
          device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_with_distance_loss(device, reduction, swap):
    check(lambda m, a, p, n: m.nn.functional.triplet_margin_with_distance_loss(a, p, n, swap=swap,
                                                                              reduction=reduction),
          (5, 4), (5, 4), (5, 4), device=device)
    cos = (lambda m: lambda x, y: 1 - m.nn.functional.cosine_similarity(x, y))
    check(lambda m, a, p, n: m.nn.TripletMarginWithDistanceLoss(distance_function=cos(m), margin=0.5, swap=swap,
                                                                reduction=reduction)(a, p, n),
          (5, 4), (5, 4), (5, 4), device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll_loss(device, reduction, full):
    var = np.abs(_rng.standard_normal((4, 3))) + 0.1
    var[0, 0] = 1e-9  # clamped to eps, gradient still passed through
    check(lambda m, x, t, v: m.nn.functional.gaussian_nll_loss(x, t, v, full=full, reduction=reduction), (4, 3),
          (4, 3), var, device=device)
    check(lambda m, x, t, v: m.nn.GaussianNLLLoss(full=full, reduction=reduction)(x, t, v), (4, 3), (4, 3),
          var[:, 0], device=device)
    check(lambda m, x, t, v: m.nn.functional.gaussian_nll_loss(x, t, v, reduction=reduction), (2, 3, 4),
          (2, 3, 4), np.abs(_rng.standard_normal((2, 1, 4))), device=device)
    check(lambda m, x, t: m.nn.functional.gaussian_nll_loss(x, t, 0.5, reduction=reduction), (4, 3), (4, 3),
          device=device)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", [(True, False), (True, True), (False, False), (False, True)])
def test_poisson_nll_loss(device, reduction, log_input, full):
    t = _rng.poisson(2.0, (4, 5)).astype(np.float64) + 0.5
    x = _rng.standard_normal((4, 5)) if log_input else _rng.random((4, 5)) + 0.1
    check(lambda m, x, t: m.nn.functional.poisson_nll_loss(x, t, log_input, full, reduction=reduction), x, t,
          device=device)
    check(lambda m, x, t: m.nn.PoissonNLLLoss(log_input, full, reduction=reduction)(x, t), x, t, device=device)


def test_legacy_reduction_args(device):
    check(lambda m, x, y: m.nn.functional.soft_margin_loss(x, y.detach(), size_average=False), (3, 4), _signs(3, 4),
          device=device)
    check(lambda m, x, y: m.nn.PoissonNLLLoss(reduce=False)(x, y), (3, 4), np.abs(_rng.standard_normal((3, 4))),
          device=device)


def test_reprs():
    for name, args, kw in [("MarginRankingLoss", (0.5,), {}), ("HingeEmbeddingLoss", (), {}),
                           ("SoftMarginLoss", (), {}), ("CosineEmbeddingLoss", (), {}),
                           ("MultiLabelSoftMarginLoss", (), {}), ("MultiLabelMarginLoss", (), {}),
                           ("MultiMarginLoss", (2,), {}), ("TripletMarginLoss", (), {"swap": True}),
                           ("TripletMarginWithDistanceLoss", (), {}), ("GaussianNLLLoss", (), {"full": True}),
                           ("PoissonNLLLoss", (False,), {})]:
        assert repr(getattr(dtrain.nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args, **kw))
    d, t = dtrain.nn.PoissonNLLLoss(reduce=False), torch.nn.PoissonNLLLoss(reduce=False)
    assert d.reduction == t.reduction


F = "nn.functional."


@pytest.mark.parametrize("fn", [
    lambda m, x: m.nn.functional.margin_ranking_loss(x, x[0], x),
    lambda m, x: m.nn.functional.margin_ranking_loss(x, x, x, reduction="avg"),
    lambda m, x: m.nn.functional.hinge_embedding_loss(x, x, reduction="bad"),
    lambda m, x: m.nn.functional.soft_margin_loss(x, x, reduction="bad"),
    lambda m, x: m.nn.functional.cosine_embedding_loss(x, x, x),
    lambda m, x: m.nn.functional.cosine_embedding_loss(x[0], x[0], x[:, 0]),
    lambda m, x: m.nn.functional.multilabel_soft_margin_loss(x, x, reduction="bad"),
    lambda m, x: m.nn.functional.multilabel_margin_loss(x, x[:, :2].long()),
    lambda m, x: m.nn.functional.multilabel_margin_loss(x, x.long() + 9),
    lambda m, x: m.nn.functional.multi_margin_loss(x, x[:, 0].long(), p=3),
    lambda m, x: m.nn.functional.multi_margin_loss(x, x[:, 0].long(), weight=x),
    lambda m, x: m.nn.functional.multi_margin_loss(x, x[:2, 0].long()),
    lambda m, x: m.nn.functional.triplet_margin_loss(x, x, x, margin=0),
    lambda m, x: m.nn.functional.triplet_margin_loss(x, x[0], x),
    lambda m, x: m.nn.functional.triplet_margin_with_distance_loss(x, x, x, margin=-1.0),
    lambda m, x: m.nn.functional.triplet_margin_with_distance_loss(x, x, x[0]),
    lambda m, x: m.nn.functional.gaussian_nll_loss(x, x, -x.abs()),
    lambda m, x: m.nn.functional.gaussian_nll_loss(x, x, x.abs()[:1, :2]),
    lambda m, x: m.nn.functional.gaussian_nll_loss(x, x, x.abs(), reduction="bad"),
    lambda m, x: m.nn.functional.poisson_nll_loss(x, x, reduction="bad"),
    lambda m, x: m.nn.MultiMarginLoss(p=3),
    lambda m, x: m.nn.MultiMarginLoss(weight=x),
    lambda m, x: m.nn.TripletMarginLoss(margin=0),
    lambda m, x: m.nn.TripletMarginWithDistanceLoss(margin=0),
])
def test_errors(fn):
    check_raises(fn, np.abs(_rng.standard_normal((3, 4))))
