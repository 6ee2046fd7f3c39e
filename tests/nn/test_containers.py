"""Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict against torch."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import dtrain


def _seq(m):
    return m.nn.Sequential(m.nn.Linear(2, 3), m.nn.ReLU(), m.nn.Linear(3, 1), m.nn.Tanh())


def _names(mod):
    return [type(c).__name__ for c in mod]


def test_sequential_indexing_and_slicing():
    for m in (dtrain, torch):
        s = _seq(m)
        assert len(s) == 4
        assert type(s[-1]).__name__ == "Tanh" and s[0] is s[-4]
        sl = s[1:3]
        assert type(sl) is m.nn.Sequential and _names(sl) == ["ReLU", "Linear"]
        assert list(sl._modules) == ["1", "2"]
        with pytest.raises(IndexError):
            s[4]
        with pytest.raises(IndexError):
            s[-5]


def test_sequential_mutation_matches_torch():
    ops = [lambda m, s: s.append(m.nn.Sigmoid()), lambda m, s: s.insert(1, m.nn.GELU()),
           lambda m, s: s.insert(-1, m.nn.SiLU()), lambda m, s: s.extend([m.nn.Identity(), m.nn.ReLU6()]),
           lambda m, s: s.__delitem__(0), lambda m, s: s.__delitem__(slice(0, 2)),
           lambda m, s: s.__setitem__(-1, m.nn.Mish()), lambda m, s: s.pop(1)]
    for op in ops:
        sd, st = _seq(dtrain), _seq(torch)
        op(dtrain, sd), op(torch, st)
        assert _names(sd) == _names(st)
        assert list(sd._modules) == list(st._modules)
        assert repr(sd) == repr(st)
    assert _names(_seq(dtrain) + _seq(dtrain)) == _names(_seq(torch) + _seq(torch))


def test_sequential_ordered_dict_and_forward():
    od = lambda m: OrderedDict([("fc", m.nn.Linear(2, 2)), ("act", m.nn.Tanh())])  # noqa: E731
    sd, st = dtrain.nn.Sequential(od(dtrain)), torch.nn.Sequential(od(torch))
    assert repr(sd) == repr(st)
    sd.load_state_dict({k: dtrain.tensor(v.numpy()) for k, v in st.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    np.testing.assert_allclose(sd(dtrain.tensor(x)).detach().numpy(), st(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-6)
    assert sd.fc is sd[0]


def test_module_list():
    for m in (dtrain, torch):
        ml = m.nn.ModuleList([m.nn.Linear(1, 1), m.nn.ReLU()])
        ml.append(m.nn.Tanh())
        ml.extend([m.nn.Sigmoid()])
        ml.insert(0, m.nn.Identity())
        assert _names(ml) == ["Identity", "Linear", "ReLU", "Tanh", "Sigmoid"]
        assert type(ml[1:3]) is m.nn.ModuleList and _names(ml[-2:]) == ["Tanh", "Sigmoid"]
        del ml[0]
        assert list(ml._modules) == ["0", "1", "2", "3"]
        ml += [m.nn.ELU()]
        assert len(ml) == 5 and len(list(ml.parameters())) == 2
        with pytest.raises(IndexError, match="index 9 is out of range"):
            ml[9]
    assert repr(dtrain.nn.ModuleList()) == repr(torch.nn.ModuleList())


def test_module_dict():
    for m in (dtrain, torch):
        md = m.nn.ModuleDict({"b": m.nn.ReLU(), "a": m.nn.Linear(1, 1)})
        md["c"] = m.nn.Tanh()
        md.update([("d", m.nn.Sigmoid())])
        assert list(md.keys()) == ["b", "a", "c", "d"] and "a" in md and len(md) == 4
        assert type(md.pop("b")).__name__ == "ReLU"
        assert [k for k, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    assert repr(dtrain.nn.ModuleDict({"x": dtrain.nn.ReLU()})) == repr(torch.nn.ModuleDict({"x": torch.nn.ReLU()}))


def test_parameter_list_and_dict():
    for m in (dtrain, torch):
        pl = m.nn.ParameterList([m.nn.Parameter(m.ones(2)), m.zeros(3)])
        assert all(isinstance(p, m.nn.Parameter) for p in pl) and len(pl) == 2
        pl.append(m.ones(1, 2, dtype=m.float64))
        assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
        pd = m.nn.ParameterDict({"w": m.ones(2)})
        pd["v"] = m.zeros(1)
        assert isinstance(pd["v"], m.nn.Parameter) and list(pd.keys()) == ["w", "v"]
        assert [n for n, _ in pd.named_parameters()] == ["w", "v"]
    mk = lambda m: m.nn.ParameterList([m.ones(2), m.zeros(3, 4, dtype=m.float64)])  # noqa: E731
    assert repr(mk(dtrain)) == repr(mk(torch))
    mk = lambda m: m.nn.ParameterDict({"a": m.ones(2), "b": m.zeros(1)})  # noqa: E731
    assert repr(mk(dtrain)) == repr(mk(torch))
    with pytest.raises(RuntimeError, match="ParameterList should not be called"):
        mk2 = dtrain.nn.ParameterList()
        mk2()
