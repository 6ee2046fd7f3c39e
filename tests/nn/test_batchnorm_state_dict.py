"""BatchNorm's num_batches_tracked (added in its state-dict version 2): a state dict without it loads as in torch."""
import pytest
import torch

import dtrain


def _model(m):
    return m.nn.Sequential(m.nn.Linear(2, 3), m.nn.BatchNorm1d(3), m.nn.Conv2d(1, 1, 1), m.nn.BatchNorm2d(1))


def _load(m, drop_metadata, strict):
    src = _model(m)
    sd = src.state_dict()
    for k in [k for k in sd if k.endswith("num_batches_tracked")]:
        del sd[k]
    if drop_metadata:  # a plain dict (as many hand-built checkpoints are): no version, so torch fills the count in
        sd = dict(sd)
    dst = _model(m)
    dst[1].num_batches_tracked.fill_(5)
    try:
        result = dst.load_state_dict(sd, strict=strict)
    except RuntimeError as e:
        return "RuntimeError", str(e)
    return (sorted(result.missing_keys), sorted(result.unexpected_keys), int(dst[1].num_batches_tracked),
            int(dst[3].num_batches_tracked))


@pytest.mark.parametrize("drop_metadata", [True, False])
@pytest.mark.parametrize("strict", [True, False])
def test_missing_num_batches_tracked_as_torch(drop_metadata, strict):
    got, want = _load(dtrain, drop_metadata, strict), _load(torch, drop_metadata, strict)
    assert got == want
    if drop_metadata:  # the case of the issue: loads under strict=True, nothing reported missing
        assert got[0] == [] and got[2] == 5


def test_without_running_stats_nothing_is_filled_in():
    for m in (dtrain, torch):
        bn = m.nn.BatchNorm1d(3, track_running_stats=False)
        sd = {"weight": m.ones(3), "bias": m.zeros(3)}
        assert bn.load_state_dict(sd).missing_keys == []
        assert "num_batches_tracked" not in bn.state_dict()
