"""GradScaler against torch's CPU scaler: the scales, growth trackers, state_dicts and weights over runs with
injected infs and NaNs, unscale_ with clipping, the errors; and the skip decision across two MPI ranks."""
import pickle

import numpy as np
import pytest
import torch

import dtrain


def test_cpu_scaler_is_enabled_as_torchs():
    for m in (torch, dtrain):
        s = m.amp.GradScaler("cpu")
        assert s.is_enabled() and s.get_scale() == 65536.0
        assert s.state_dict() == {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                  "growth_interval": 2000, "_growth_tracker": 0}
        assert m.cpu.amp.GradScaler().is_enabled()
        d = m.amp.GradScaler("cpu", enabled=False)
        assert not d.is_enabled() and d.get_scale() == 1.0 and d.state_dict() == {}
        loss = m.tensor(2.0)
        assert d.scale(loss) is loss


def _pair_model(seed=0):
    rng = np.random.default_rng(seed)
    w1, b1, w2 = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.standard_normal((1, 6))
    models = []
    for m in (torch, dtrain):
        lin1, lin2 = m.nn.Linear(4, 6), m.nn.Linear(6, 1, bias=False)
        with m.no_grad():
            lin1.weight.copy_(m.tensor(w1, dtype=m.float32))
            lin1.bias.copy_(m.tensor(b1, dtype=m.float32))
            lin2.weight.copy_(m.tensor(w2, dtype=m.float32))
        models.append(m.nn.Sequential(lin1, m.nn.Tanh(), lin2))
    return models


# per step: None (clean), "inf" or "nan" put into one gradient after backward
SCHEDULE = [None, None, "inf", None, None, None, None, "nan", None, None, None, "inf", "inf", None, None, None]


@pytest.mark.parametrize("clip", [False, True])
def test_scale_sequence_with_injected_infs_matches_torch(clip):
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((16, 4)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    tm, dm = _pair_model()
    runs = {}
    for m, model in ((torch, tm), (dtrain, dm)):
        opt = m.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        scaler = m.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=3)
        x, y = m.tensor(X), m.tensor(Y)
        seq = []
        for bad in SCHEDULE:
            opt.zero_grad()
            loss = m.nn.functional.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            if bad:
                model[0].weight.grad[1, 2] = float(bad)
            if clip:
                scaler.unscale_(opt)
                with np.errstate(invalid="ignore"):
                    m.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            ret = scaler.step(opt)
            scaler.update()
            seq.append((scaler.get_scale(), scaler.state_dict(), ret,
                        [p.detach().numpy().copy() for p in model.parameters()]))
        runs[m.__name__] = seq
    scales = [s[0] for s in runs["torch"]]
    assert scales[2] == scales[1] / 2 and any(b == 2 * a for a, b in zip(scales, scales[1:]))  # backs off, grows
    for i, (d, t) in enumerate(zip(runs["dtrain"], runs["torch"])):
        assert d[0] == t[0], f"step {i}: scale {d[0]}, torch's {t[0]}"
        assert d[1] == t[1], f"step {i}: state_dict"
        assert d[2] == t[2]  # SGD.step returns None either way; a skipped step returns None too
        for a, b in zip(d[3], t[3]):
            assert np.isfinite(a).all()
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {i}")


def test_two_optimizers_and_bf16_loss():
    # the found-inf flags of all optimizers decide the update; a 0-d bfloat16 loss scales into float32
    for m in (torch, dtrain):
        w1 = m.nn.Parameter(m.ones(3))
        w2 = m.nn.Parameter(m.ones(3))
        o1, o2 = m.optim.SGD([w1], lr=0.1), m.optim.SGD([w2], lr=0.1)
        s = m.amp.GradScaler("cpu", init_scale=4.0)
        loss = (w1 * w2).sum().bfloat16()
        scaled = s.scale(loss)
        assert scaled.dtype is m.float32 and scaled.item() == 4 * loss.item()
        assert s.scale(m.ones(2, dtype=m.bfloat16)).dtype is m.bfloat16
        scaled.backward()
        w2.grad[0] = float("inf")
        s.step(o1)
        s.step(o2)
        s.update()
        assert s.get_scale() == 2.0
        assert w1.detach().tolist() != [1.0, 1.0, 1.0] and w2.detach().tolist() == [1.0, 1.0, 1.0]
        # the scaled list form
        a, (b, c) = s.scale([m.ones(1), (m.ones(1), m.ones(1))])
        assert a.item() == b.item() == c.item() == 2.0


def test_errors_as_torchs():
    for m in (torch, dtrain):
        w = m.nn.Parameter(m.ones(2))
        opt = m.optim.SGD([w], lr=0.1)
        s = m.amp.GradScaler("cpu")
        with pytest.raises(AssertionError, match="Attempted step but _scale is None"):
            s.step(opt)
        s.scale((w * w).sum()).backward()
        s.unscale_(opt)
        with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called on this optimizer"):
            s.unscale_(opt)
        s.step(opt)
        with pytest.raises(RuntimeError, match="unscale_\\(\\) is being called after step\\(\\)"):
            s.unscale_(opt)
        with pytest.raises(RuntimeError, match="step\\(\\) has already been called since the last update"):
            s.step(opt)
        with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
            s.step(opt, closure=lambda: 0)
        s.update()
        with pytest.raises(AssertionError, match="No inf checks were recorded prior to update"):
            s.update()
        s.update(8.0)
        assert s.get_scale() == 8.0
        s.update(m.tensor(4.0))
        assert s.get_scale() == 4.0
        with pytest.raises(RuntimeError, match="source state dict is empty"):
            s.load_state_dict({})
        h = m.nn.Parameter(m.ones(2, dtype=m.float16))
        ho = m.optim.SGD([h], lr=0.1)
        s.scale((h * h).sum()).backward()
        with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients"):
            s.unscale_(ho)


def test_state_dict_round_trip_with_torch_and_pickle():
    t = torch.amp.GradScaler("cpu", init_scale=8.0, growth_factor=3.0, backoff_factor=0.25, growth_interval=5)
    t.scale(torch.ones(()))
    d = dtrain.amp.GradScaler("cpu")
    d.load_state_dict(t.state_dict())
    assert d.state_dict() == t.state_dict()
    d.scale(dtrain.ones(()))
    d.load_state_dict({**t.state_dict(), "scale": 2.0, "_growth_tracker": 3})
    assert d.get_scale() == 2.0 and d.state_dict()["_growth_tracker"] == 3
    e = pickle.loads(pickle.dumps(d))
    assert e.state_dict() == d.state_dict()


def test_bf16_autocast_training_with_scaler_tracks_torch():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((32, 4)).astype(np.float32), rng.standard_normal((32, 1)).astype(np.float32)
    tm, dm = _pair_model(3)
    losses = {}
    for m, model in ((torch, tm), (dtrain, dm)):
        opt = m.optim.AdamW(model.parameters(), lr=0.01)
        scaler = m.amp.GradScaler("cpu")
        x, y = m.tensor(X), m.tensor(Y)
        out = []
        for _ in range(15):
            opt.zero_grad()
            with m.autocast("cpu", dtype=m.bfloat16):
                pred = model(x)
                loss = m.nn.functional.mse_loss(pred, y)
            assert pred.dtype is m.bfloat16 and loss.dtype is m.float32
            scaler.scale(loss).backward()
            assert all(p.grad.dtype is m.float32 for p in model.parameters())
            scaler.step(opt)
            scaler.update()
            out.append(loss.item())
        losses[m.__name__] = out
    np.testing.assert_allclose(losses["dtrain"], losses["torch"], rtol=2e-2)
    assert losses["dtrain"][-1] < losses["dtrain"][0]
