"""ctc_loss and nn.CTCLoss against torch: losses and log_probs gradients (torch's formula) for padded and
concatenated targets, every reduction, repeated labels, empty targets, impossible alignments with and
without zero_infinity, unbatched input, float64 and float32, and the errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises

import dtrain

T, N, C = 12, 4, 6
TOL = {np.float64: {"atol": 1e-10, "rtol": 1e-9}, np.float32: {"atol": 2e-5, "rtol": 2e-4}}


def _case(seed):
    rng = np.random.default_rng(seed)
    tgt_len = np.array([3, 0, 5, 2])
    in_len = np.array([12, 9, 11, 6])
    targets = rng.integers(1, C, (N, 5))
    targets[0, :3] = [2, 2, 3]  # a repeated label needs a blank between its copies
    return rng, targets, in_len, tgt_len


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss(device, dt, reduction, zero_infinity):
    rng, targets, in_len, tgt_len = _case(0)
    logits = rng.standard_normal((T, N, C)).astype(dt)
    check(lambda m, x: m.nn.functional.ctc_loss(x.log_softmax(2), m.tensor(targets, device=x.device),
                                                m.tensor(in_len), m.tensor(tgt_len), reduction=reduction,
                                                zero_infinity=zero_infinity),
          logits, device=device, dtype=dt, **TOL[dt])
    # log_probs straight from the user (torch's gradient formula, not the plain derivative), concatenated
    # targets, lengths as tuples, another blank index
    concat = np.concatenate([np.where(targets[i, :tgt_len[i]] == 3, 0, targets[i, :tgt_len[i]]) for i in range(N)])
    check(lambda m, x: m.nn.functional.ctc_loss(x, m.tensor(concat, device=x.device), tuple(in_len), tuple(tgt_len),
                                                blank=3, reduction=reduction, zero_infinity=zero_infinity),
          logits, device=device, dtype=dt, **TOL[dt])


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_impossible_alignment(device, zero_infinity):
    # four copies of one label need seven steps; three are given: the loss is inf (or 0 with zero_infinity)
    logits = np.random.default_rng(1).standard_normal((3, 2, 5))
    targets = np.array([[1, 1, 1, 1], [2, 3, 0, 0]])
    out = check(lambda m, x: m.nn.functional.ctc_loss(x.log_softmax(2), m.tensor(targets, device=x.device), [3, 3],
                                                      [4, 2], reduction="none", zero_infinity=zero_infinity),
                logits, device=device, grad=zero_infinity)
    assert np.isinf(out[0].detach().cpu().numpy()[0]) != zero_infinity


def test_unbatched_and_module(device):
    rng = np.random.default_rng(2)
    check(lambda m, x: m.nn.functional.ctc_loss(x.log_softmax(1), m.tensor([1, 2, 2], device=x.device),
                                                m.tensor(7), m.tensor(3)), rng.standard_normal((7, 4)), device=device)
    check(lambda m, x: m.nn.CTCLoss(blank=4, reduction="sum")(x.log_softmax(2), m.tensor([[0, 1], [2, 2]]),
                                                              [6, 5], [2, 2]), rng.standard_normal((6, 2, 5)),
          device=device)


def test_autocast_runs_it_in_float32():
    rng, targets, in_len, tgt_len = _case(3)
    # the same bfloat16 log_probs in both
    lp = torch.from_numpy(rng.standard_normal((T, N, C)).astype(np.float32)).log_softmax(2).bfloat16()
    with torch.autocast("cpu"):
        t = torch.nn.functional.ctc_loss(lp, torch.from_numpy(targets), torch.from_numpy(in_len),
                                         torch.from_numpy(tgt_len))
    with dtrain.autocast("cpu"):
        d = dtrain.nn.functional.ctc_loss(dtrain.tensor(lp.float().numpy()).bfloat16(), dtrain.tensor(targets),
                                          dtrain.tensor(in_len), dtrain.tensor(tgt_len))
    assert d.dtype is dtrain.float32 and t.dtype is torch.float32
    np.testing.assert_allclose(d.item(), t.item(), rtol=1e-5)


def test_errors():
    lp, tg = (5, 2, 4), np.array([[1, 2], [1, 1]])
    check_raises(lambda m, x: m.nn.functional.ctc_loss(x.bfloat16(), m.tensor(tg), [5, 5], [2, 2]), lp,
                 match="not implemented for 'BFloat16'")
    check_raises(lambda m, x: m.nn.functional.ctc_loss(x, m.tensor(tg), [6, 5], [2, 2]), lp,
                 match="input_lengths to have value at most 5")
    check_raises(lambda m, x: m.nn.functional.ctc_loss(x, m.tensor(tg), [5, 5], [3, 2]), lp,
                 match="size at least 3 at dimension 1")
    check_raises(lambda m, x: m.nn.functional.ctc_loss(x, m.tensor(tg), [5, 5], [2, 2], reduction="avg"), lp)
