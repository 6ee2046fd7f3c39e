"""nn.init: distributions checked statistically (RNG streams differ from torch), gains and fans against torch."""
import math

import numpy as np
import pytest
import torch

import dtrain
from dtrain.nn import init


def _arr(t):
    return t.detach().cpu().numpy().astype(np.float64)


def test_calculate_gain_and_fans_match_torch():
    for nl, p in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    for shape in [(3, 4), (8, 4, 3, 3), (2, 5, 7)]:
        assert init._calculate_fan_in_and_fan_out(dtrain.empty(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(dtrain.empty(3))


def test_uniform_normal_constant(device):
    t = dtrain.empty(200, 300, device=device)
    assert init.uniform_(t, -2, 3) is t
    a = _arr(t)
    assert a.min() >= -2 and a.max() < 3 and abs(a.mean() - 0.5) < 0.03 and abs(a.std() - 5 / math.sqrt(12)) < 0.02
    a = _arr(init.normal_(t, 1.5, 0.5))
    assert abs(a.mean() - 1.5) < 0.01 and abs(a.std() - 0.5) < 0.01
    np.testing.assert_array_equal(_arr(init.constant_(t, 0.25)), 0.25)
    np.testing.assert_array_equal(_arr(init.ones_(t)), 1)
    np.testing.assert_array_equal(_arr(init.zeros_(t)), 0)


def test_init_on_parameters_runs_without_grad():
    p = dtrain.nn.Parameter(dtrain.empty(3, 4))
    init.normal_(p)
    init.kaiming_uniform_(p)
    assert p.grad_fn is None and p.requires_grad and p.is_leaf


def test_eye_and_dirac_match_torch():
    np.testing.assert_array_equal(_arr(init.eye_(dtrain.empty(3, 5))), torch.nn.init.eye_(torch.empty(3, 5)).numpy())
    for shape, g in [((4, 4, 3), 1), ((6, 3, 3, 3), 2), ((2, 2, 3, 3, 3), 1)]:
        np.testing.assert_array_equal(_arr(init.dirac_(dtrain.empty(shape), g)),
                                      torch.nn.init.dirac_(torch.empty(shape), g).numpy())
    with pytest.raises(ValueError, match="Only tensors with 2 dimensions are supported"):
        init.eye_(dtrain.empty(3))


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier(gain):
    t = dtrain.empty(300, 200)
    std = gain * math.sqrt(2 / 500)
    a = _arr(init.xavier_uniform_(t, gain))
    bound = math.sqrt(3) * std
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.99 * bound and abs(a.std() - std) < 0.02 * std
    a = _arr(init.xavier_normal_(t, gain))
    assert abs(a.std() - std) < 0.02 * std and abs(a.mean()) < 0.01 * std * 10


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.1), ("leaky_relu", math.sqrt(5)),
                                            ("tanh", 0)])
def test_kaiming(mode, nonlinearity, a):
    t = dtrain.empty(64, 32, 3, 3)
    fan = 32 * 9 if mode == "fan_in" else 64 * 9
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    u = _arr(init.kaiming_uniform_(t, a=a, mode=mode, nonlinearity=nonlinearity))
    assert np.abs(u).max() <= math.sqrt(3) * std and abs(u.std() - std) < 0.03 * std
    n = _arr(init.kaiming_normal_(t, a=a, mode=mode, nonlinearity=nonlinearity))
    assert abs(n.std() - std) < 0.03 * std
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(t, mode="fan_avg")


def test_trunc_normal():
    t = dtrain.empty(300, 300)
    a = _arr(init.trunc_normal_(t, mean=0.5, std=1.0, a=-1.0, b=1.5))
    assert a.min() >= -1.0 and a.max() <= 1.5
    ref = torch.empty(300, 300)
    torch.nn.init.trunc_normal_(ref, mean=0.5, std=1.0, a=-1.0, b=1.5)
    r = ref.numpy().astype(np.float64)
    assert abs(a.mean() - r.mean()) < 0.01 and abs(a.std() - r.std()) < 0.01
    a = _arr(init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04))
    assert np.abs(a).max() <= 0.04 and abs(a.std() - 0.02 * 0.8796) < 0.0005  # std of N(0,1) cut at +-2


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (4, 3, 2, 2)])
def test_orthogonal(shape):
    t = init.orthogonal_(dtrain.empty(shape), gain=2.0)
    q = _arr(t).reshape(shape[0], -1)
    if q.shape[0] <= q.shape[1]:
        np.testing.assert_allclose(q @ q.T, 4 * np.eye(q.shape[0]), atol=1e-5)
    else:
        np.testing.assert_allclose(q.T @ q, 4 * np.eye(q.shape[1]), atol=1e-5)


def test_meta_tensors_are_left_alone():
    with dtrain.device("meta"):
        t = dtrain.empty(4, 5)
    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.kaiming_normal_, init.trunc_normal_,
               init.orthogonal_, init.eye_, init.zeros_):
        assert fn(t) is t and t.is_meta
