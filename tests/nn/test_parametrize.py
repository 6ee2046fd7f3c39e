"""nn.utils.parametrize against torch: values, gradients, state_dict keys, reprs, removal and errors."""
import numpy as np
import pytest
import torch

import dtrain
from tests.helpers import assert_close


def _make_parametrizations(lib):
    class Symmetric(lib.nn.Module):
        def forward(self, X):
            return X.triu() + X.triu(1).transpose(-1, -2)

    class Scale(lib.nn.Module):
        def forward(self, X):
            return 2.0 * X

        def right_inverse(self, X):
            return X / 2.0

    class Split(lib.nn.Module):  # two originals: weight = a + b
        def forward(self, a, b):
            return a + b

        def right_inverse(self, X):
            return (0.25 * X, 0.75 * X)

    class Shrink(lib.nn.Module):  # changes the shape: only with unsafe=True
        def forward(self, X):
            return X[:1]

    return Symmetric, Scale, Split, Shrink


def _linears(n=3, seed=0):
    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal((n, n)), rng.standard_normal(n)
    md, mt = dtrain.nn.Linear(n, n).double(), torch.nn.Linear(n, n).double()
    with torch.no_grad():
        mt.weight.copy_(torch.from_numpy(w)), mt.bias.copy_(torch.from_numpy(b))
    md.weight.data = dtrain.tensor(w)
    md.bias.data = dtrain.tensor(b)
    return md, mt


def _register(lib, m, names):
    classes = dict(zip(["Symmetric", "Scale", "Split", "Shrink"], _make_parametrizations(lib)))
    for n in names:
        lib.nn.utils.parametrize.register_parametrization(m, "weight", classes[n]())
    return m


@pytest.mark.parametrize("names", [["Symmetric"], ["Scale"], ["Symmetric", "Scale"], ["Scale", "Symmetric"],
                                   ["Split"], ["Split", "Scale"]])
def test_values_gradients_state_dict_and_repr_match_torch(names):
    md, mt = _linears()
    _register(dtrain, md, names), _register(torch, mt, names)
    assert type(md).__name__ == type(mt).__name__ == "ParametrizedLinear"
    assert repr(md) == repr(mt)
    assert list(md.state_dict()) == list(mt.state_dict())
    assert [n for n, _ in md.named_parameters()] == [n for n, _ in mt.named_parameters()]
    for k, v in mt.state_dict().items():
        assert_close(md.state_dict()[k], v, what=k)
    assert_close(md.weight, mt.weight, what="weight")
    x = np.random.default_rng(1).standard_normal((4, 3))
    yd, yt = md(dtrain.tensor(x)), mt(torch.from_numpy(x))
    assert_close(yd, yt)
    (yd ** 2).sum().backward(), (yt ** 2).sum().backward()
    for (n, pd), (_, pt) in zip(md.named_parameters(), mt.named_parameters()):
        assert_close(pd.grad, pt.grad, what=f"grad of {n}")


@pytest.mark.parametrize("names", [["Scale"], ["Split"], ["Split", "Scale"]])
def test_assignment_goes_through_right_inverse(names):
    md, mt = _linears()
    _register(dtrain, md, names), _register(torch, mt, names)
    v = np.arange(9.0).reshape(3, 3)
    md.weight = dtrain.tensor(v)
    mt.weight = torch.from_numpy(v)
    assert_close(md.weight, mt.weight)
    for k, t in mt.state_dict().items():
        assert_close(md.state_dict()[k], t, what=k)


def test_assignment_without_right_inverse_raises_like_torch():
    md, mt = _linears()
    _register(dtrain, md, ["Symmetric"]), _register(torch, mt, ["Symmetric"])
    with pytest.raises(RuntimeError, match="does not implement right_inverse"):
        mt.weight = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="does not implement right_inverse"):
        md.weight = dtrain.zeros(3, 3, dtype=dtrain.float64)


def test_original_keeps_identity_and_load_state_dict_round_trips():
    md, mt = _linears()
    w = md.weight
    _register(dtrain, md, ["Scale"]), _register(torch, mt, ["Scale"])
    assert md.parametrizations.weight.original is w  # optimizers keep pointing at the same Parameter
    src, _ = _linears(seed=5)
    _register(dtrain, src, ["Scale"])
    md.load_state_dict(src.state_dict())
    assert_close(md.weight, src.weight)


@pytest.mark.parametrize("leave", [True, False])
@pytest.mark.parametrize("names", [["Symmetric", "Scale"], ["Scale"]])
def test_remove_parametrizations_matches_torch(leave, names):
    md, mt = _linears()
    _register(dtrain, md, names), _register(torch, mt, names)
    dtrain.nn.utils.parametrize.remove_parametrizations(md, "weight", leave_parametrized=leave)
    torch.nn.utils.parametrize.remove_parametrizations(mt, "weight", leave_parametrized=leave)
    assert type(md) is dtrain.nn.Linear and type(mt) is torch.nn.Linear
    assert repr(md) == repr(mt)
    assert list(md.state_dict()) == list(mt.state_dict())
    assert isinstance(md.weight, dtrain.nn.Parameter)
    assert_close(md.weight, mt.weight)
    assert not dtrain.nn.utils.parametrize.is_parametrized(md)


def test_remove_sequence_parametrization():
    md, mt = _linears()
    _register(dtrain, md, ["Split"]), _register(torch, mt, ["Split"])
    dtrain.nn.utils.parametrize.remove_parametrizations(md, "weight")
    torch.nn.utils.parametrize.remove_parametrizations(mt, "weight")
    assert isinstance(md.weight, dtrain.nn.Parameter) and md.weight.grad_fn is None
    assert_close(md.weight, mt.weight)


def test_remove_keeps_other_parametrizations():
    md, _ = _linears()
    P = dtrain.nn.utils.parametrize
    _register(dtrain, md, ["Scale"])
    P.register_parametrization(md, "bias", _make_parametrizations(dtrain)[1]())
    P.remove_parametrizations(md, "weight")
    assert P.is_parametrized(md) and P.is_parametrized(md, "bias") and not P.is_parametrized(md, "weight")
    assert type(md).__name__ == "ParametrizedLinear"
    assert P.type_before_parametrizations(md) is dtrain.nn.Linear


def test_is_parametrized_and_type_before():
    P = dtrain.nn.utils.parametrize
    md, _ = _linears()
    assert not P.is_parametrized(md) and P.type_before_parametrizations(md) is dtrain.nn.Linear
    _register(dtrain, md, ["Scale"])
    assert P.is_parametrized(md) and P.is_parametrized(md, "weight") and not P.is_parametrized(md, "bias")
    assert P.type_before_parametrizations(md) is dtrain.nn.Linear
    other, _ = _linears()
    assert type(other) is dtrain.nn.Linear  # the class swap is per instance


def test_buffer_parametrization():
    md, mt = dtrain.nn.BatchNorm1d(3).double(), torch.nn.BatchNorm1d(3).double()
    for m, lib in ((md, dtrain), (mt, torch)):
        lib.nn.utils.parametrize.register_parametrization(m, "running_var", _make_parametrizations(lib)[1]())
    assert list(md.state_dict()) == list(mt.state_dict())
    assert "parametrizations.running_var.original" in md.state_dict()
    assert_close(md.running_var, mt.running_var)
    assert not isinstance(md.parametrizations.running_var.original, dtrain.nn.Parameter)


def test_cached_computes_once():
    calls = []

    class Counting(dtrain.nn.Module):
        def forward(self, X):
            calls.append(1)
            return X * 1.0

    md, _ = _linears()
    dtrain.nn.utils.parametrize.register_parametrization(md, "weight", Counting())
    calls.clear()
    with dtrain.nn.utils.parametrize.cached():
        a, b = md.weight, md.weight
    assert len(calls) == 1 and a is b
    md.weight, md.weight
    assert len(calls) == 3


def test_unsafe_allows_shape_change():
    md, mt = _linears()
    _register(dtrain, md, []), _register(torch, mt, [])
    for m, lib in ((md, dtrain), (mt, torch)):
        lib.nn.utils.parametrize.register_parametrization(m, "weight", _make_parametrizations(lib)[3](), unsafe=True)
    assert tuple(md.weight.shape) == tuple(mt.weight.shape) == (1, 3)


def _err(lib, case):
    P = lib.nn.utils.parametrize
    Symmetric, Scale, Split, Shrink = _make_parametrizations(lib)
    m = lib.nn.Linear(3, 3)
    if case == "missing":
        P.register_parametrization(m, "nope", Scale())
    elif case == "shape":
        P.register_parametrization(m, "weight", Shrink())
    elif case == "shape_chained":
        P.register_parametrization(m, "weight", Scale())
        P.register_parametrization(m, "weight", Shrink())
    elif case == "remove":
        P.remove_parametrizations(m, "weight")
    elif case == "unparametrize_sequence":
        P.register_parametrization(m, "weight", Split())
        P.remove_parametrizations(m, "weight", leave_parametrized=False)
    elif case == "empty_list":
        P.ParametrizationList([], m.weight)
    elif case == "param_assign":
        P.register_parametrization(m, "weight", Scale())
        m.weight = lib.nn.Parameter(lib.zeros(3, 3))


@pytest.mark.parametrize("case", ["missing", "shape", "shape_chained", "remove", "unparametrize_sequence",
                                  "empty_list", "param_assign"])
def test_errors_match_torch(case):
    with pytest.raises(Exception) as te:
        _err(torch, case)
    with pytest.raises(te.type) as de:
        _err(dtrain, case)
    head = str(te.value).split("\n")[0][:40]
    if "Module" not in head:
        assert head in str(de.value)


def test_failed_registration_leaves_module_untouched():
    md, _ = _linears()
    with pytest.raises(ValueError):
        dtrain.nn.utils.parametrize.register_parametrization(md, "weight", _make_parametrizations(dtrain)[3]())
    assert type(md) is dtrain.nn.Linear and "weight" in md._parameters


def test_parametrized_module_refuses_pickling():
    import pickle
    md, _ = _linears()
    _register(dtrain, md, ["Scale"])
    with pytest.raises(RuntimeError, match="state_dict"):
        pickle.dumps(md)
