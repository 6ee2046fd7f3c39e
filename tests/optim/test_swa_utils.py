"""swa_utils against torch: AveragedModel (SWA, EMA, avg_fn, multi_avg_fn, use_buffers), SWALR, update_bn."""
import warnings

import numpy as np
import pytest
import torch

import dtrain


def _np(t):
    return np.array(dtrain._backend.to_numpy(t._data)) if isinstance(t, dtrain.Tensor) else t.detach().numpy()


def _net(m, weights):
    net = m.nn.Sequential(m.nn.Linear(5, 8, dtype=m.float64), m.nn.BatchNorm1d(8, dtype=m.float64), m.nn.Tanh(),
                          m.nn.Linear(8, 3, dtype=m.float64))
    with m.no_grad():
        for p, w in zip(net.parameters(), weights):
            p.copy_(m.tensor(w))
    return net


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) * 0.4 for s in [(8, 5), (8,), (8,), (8,), (3, 8), (3,)]]


def _train_and_average(m, make_avg, n=8):
    rng = np.random.default_rng(1)
    net = _net(m, _weights())
    avg = make_avg(m, net)
    opt = m.optim.SGD(net.parameters(), lr=0.1, momentum=0.5)
    for _ in range(n):
        x, y = m.tensor(rng.standard_normal((16, 5))), m.tensor(rng.standard_normal((16, 3)))
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
        avg.update_parameters(net)
    return net, avg


def _ema_list(m, decay):
    return m.optim.swa_utils.get_ema_multi_avg_fn(decay)


AVERAGERS = {
    "swa": lambda m, net: m.optim.swa_utils.AveragedModel(net),
    "swa-buffers": lambda m, net: m.optim.swa_utils.AveragedModel(net, use_buffers=True),
    "ema-multi": lambda m, net: m.optim.swa_utils.AveragedModel(net, multi_avg_fn=_ema_list(m, 0.8)),
    "ema-multi-buffers": lambda m, net: m.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=m.optim.swa_utils.get_ema_multi_avg_fn(0.6), use_buffers=True),
    "ema-single": lambda m, net: m.optim.swa_utils.AveragedModel(net, avg_fn=m.optim.swa_utils.get_ema_avg_fn(0.7)),
    "swa-single": lambda m, net: m.optim.swa_utils.AveragedModel(net, avg_fn=m.optim.swa_utils.get_swa_avg_fn()),
    "swa-multi": lambda m, net: m.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=m.optim.swa_utils.get_swa_multi_avg_fn()),
    "custom": lambda m, net: m.optim.swa_utils.AveragedModel(
        net, avg_fn=lambda avg, cur, n: avg * 0.5 + cur * 0.5 + 0.01 * n),
}


@pytest.mark.parametrize("name", list(AVERAGERS))
def test_averaged_model_matches_torch(name):
    tnet, tavg = _train_and_average(torch, AVERAGERS[name])
    dnet, davg = _train_and_average(dtrain, AVERAGERS[name])
    tsd, dsd = tavg.state_dict(), davg.state_dict()
    assert list(dsd) == list(tsd)
    for k in tsd:
        assert _np(dsd[k]).dtype == tsd[k].numpy().dtype, k
        np.testing.assert_allclose(_np(dsd[k]), tsd[k].numpy(), rtol=1e-12, atol=1e-13, err_msg=k)
    assert int(davg.n_averaged) == 8
    # the average is not the model (unless there was one step)
    assert not np.allclose(_np(davg.module[0].weight), _np(dnet[0].weight))
    x = np.random.default_rng(2).standard_normal((4, 5))
    tavg.eval()
    davg.eval()
    np.testing.assert_allclose(_np(davg(dtrain.tensor(x))), _np(tavg(torch.tensor(x))), rtol=1e-12, atol=1e-13)


def test_swa_average_is_the_mean_of_the_snapshots():
    net = _net(dtrain, _weights())
    avg = dtrain.optim.swa_utils.AveragedModel(net)
    snaps = []
    rng = np.random.default_rng(3)
    for _ in range(5):
        with dtrain.no_grad():
            for p in net.parameters():
                p.copy_(dtrain.tensor(rng.standard_normal(tuple(p.shape))))
        snaps.append([_np(p).copy() for p in net.parameters()])
        avg.update_parameters(net)
    for p, *vals in zip(avg.module.parameters(), *snaps):
        np.testing.assert_allclose(_np(p), np.mean(vals, axis=0), rtol=1e-12)


def test_ema_avg_fn_errors_like_torch():
    for fn in ("get_ema_avg_fn", "get_ema_multi_avg_fn"):
        with pytest.raises(ValueError) as te:
            getattr(torch.optim.swa_utils, fn)(1.5)
        with pytest.raises(ValueError) as de:
            getattr(dtrain.optim.swa_utils, fn)(1.5)
        assert str(de.value) == str(te.value)
    net = dtrain.nn.Linear(2, 2)
    tnet = torch.nn.Linear(2, 2)
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn should be provided"):
        torch.optim.swa_utils.AveragedModel(tnet, avg_fn=lambda *a: a[0], multi_avg_fn=lambda *a: None)
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn should be provided"):
        dtrain.optim.swa_utils.AveragedModel(net, avg_fn=lambda *a: a[0], multi_avg_fn=lambda *a: None)


def _bn_net(m):
    net = m.nn.Sequential(m.nn.Linear(4, 6, dtype=m.float64), m.nn.BatchNorm1d(6, momentum=0.3, dtype=m.float64),
                          m.nn.ReLU(), m.nn.Linear(6, 5, dtype=m.float64), m.nn.BatchNorm1d(5, dtype=m.float64))
    rng = np.random.default_rng(7)
    with m.no_grad():
        for p in net.parameters():
            p.copy_(m.tensor(rng.standard_normal(tuple(p.shape))))
    return net


@pytest.mark.parametrize("batches", ["tensors", "tuples"])
def test_update_bn_matches_torch(batches):
    rng = np.random.default_rng(8)
    data = [rng.standard_normal((n, 4)) * 2 + 1 for n in (10, 7, 12, 5)]
    stats = []
    for m in (torch, dtrain):
        net = _bn_net(m)
        net.eval()
        loader = [m.tensor(x) for x in data]
        if batches == "tuples":
            loader = [(x, m.zeros(1)) for x in loader]
        m.optim.swa_utils.update_bn(loader, net)
        assert not net.training  # the mode is restored
        assert [bn.momentum for bn in (net[1], net[4])] == [0.3, 0.1]
        stats.append({k: _np(v) for k, v in net.state_dict().items() if "running" in k or "num_batches" in k})
    assert list(stats[1]) == list(stats[0])
    for k in stats[0]:
        np.testing.assert_allclose(stats[1][k], stats[0][k], rtol=1e-12, atol=1e-13, err_msg=k)
    # a cumulative average over the batches: not what momentum 0.3 would give
    mean = np.mean([(x @ _np(_bn_net(dtrain)[0].weight).T + _np(_bn_net(dtrain)[0].bias)).mean(0) for x in data], 0)
    np.testing.assert_allclose(stats[1]["1.running_mean"], mean, rtol=1e-12)


def test_update_bn_without_batch_norm_does_nothing():
    net = dtrain.nn.Linear(3, 2)
    net.eval()
    dtrain.optim.swa_utils.update_bn([dtrain.ones(2, 3)], net)
    assert not net.training


def _swalr_sequence(m, n=25, **kw):
    opt = m.optim.SGD([{"params": [m.zeros(2, requires_grad=True)]},
                       {"params": [m.zeros(2, requires_grad=True)], "lr": 0.3}], lr=0.5)
    sched = m.optim.swa_utils.SWALR(opt, **kw)
    seq = [list(sched.get_last_lr())]
    for _ in range(n):
        opt.step()
        sched.step()
        seq.append(list(sched.get_last_lr()))
    return seq, sched


@pytest.mark.parametrize("kw", [dict(swa_lr=0.05), dict(swa_lr=[0.05, 0.01], anneal_epochs=4, anneal_strategy="linear"),
                                dict(swa_lr=0.02, anneal_epochs=0), dict(swa_lr=0.1, anneal_epochs=1)])
def test_swalr_sequence_equals_torch(kw):
    t, tsched = _swalr_sequence(torch, **kw)
    d, dsched = _swalr_sequence(dtrain, **kw)
    assert d == t
    assert sorted(dsched.state_dict()) == sorted(tsched.state_dict())


def test_swalr_state_dict_roundtrip():
    d, sched = _swalr_sequence(dtrain, 3, swa_lr=0.05, anneal_strategy="linear")
    state = sched.state_dict()
    d2, sched2 = _swalr_sequence(dtrain, 0, swa_lr=0.05)
    sched2.load_state_dict(state)
    assert sched2.anneal_func is sched2._linear_anneal and sched2._step_count == sched._step_count


@pytest.mark.parametrize("kw", [dict(swa_lr=0.1, anneal_strategy="exp"), dict(swa_lr=0.1, anneal_epochs=-1),
                                dict(swa_lr=0.1, anneal_epochs=2.5), dict(swa_lr=[0.1, 0.2, 0.3])])
def test_swalr_errors_like_torch(kw):
    errs = []
    for m in (torch, dtrain):
        opt = m.optim.SGD([{"params": [m.zeros(2, requires_grad=True)]},
                           {"params": [m.zeros(2, requires_grad=True)]}], lr=0.5)
        with pytest.raises(ValueError) as e:
            m.optim.swa_utils.SWALR(opt, **kw)
        errs.append(str(e.value))
    assert errs[1] == errs[0]


def test_get_lr_outside_step_warns_like_torch():
    _, sched = _swalr_sequence(dtrain, 2, swa_lr=0.05)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        sched.get_lr()
    assert any("get_last_lr()" in str(x.message) for x in w)
