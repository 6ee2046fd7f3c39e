"""torch.compile's wrapper: an OptimizedModule whose `_orig_mod` is the model (state_dict keys, attributes,
pickles as torch's); torch's argument checks; arguments with nothing to steer warn once."""
import io
import pickle
import warnings

import numpy as np
import pytest
import torch

import dtrain
from helpers import assert_close


def _net(m):
    m.manual_seed(0)
    return m.nn.Sequential(m.nn.Linear(4, 8), m.nn.BatchNorm1d(8), m.nn.ReLU(), m.nn.Linear(8, 2))


def test_compiled_module_is_torchs_wrapper():
    from dtrain._dynamo.eval_frame import OptimizedModule
    for m in (dtrain, torch):
        net = _net(m)
        c = m.compile(net)
        assert type(c).__name__ == "OptimizedModule" and type(c).__module__.endswith("_dynamo.eval_frame")
        assert c._orig_mod is net and getattr(c, "0") is net[0] and len(c) == len(net) == 4  # attributes forward
        c.note = "x"
        assert net.note == "x"  # and so do writes
        c.eval()
        assert not net.training and not c.training
    assert isinstance(dtrain.compile(_net(dtrain)), OptimizedModule)
    assert repr(dtrain.compile(_net(dtrain))) == repr(torch.compile(_net(torch)))


def test_state_dict_keys_and_values_match_torch_both_ways():
    dnet, tnet = _net(dtrain), _net(torch)
    tnet.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in dnet.state_dict().items()})
    dc, tc = dtrain.compile(dnet), torch.compile(tnet)
    assert list(dc.state_dict()) == list(tc.state_dict())
    assert list(dc.state_dict())[0] == "_orig_mod.0.weight"
    assert [n for n, _ in dc.named_parameters()] == [n for n, _ in tc.named_parameters()]
    # a compiled torch model's checkpoint loads into a compiled dtrain model and back
    buf = io.BytesIO()
    torch.save(tc.state_dict(), buf)
    buf.seek(0)
    fresh = dtrain.compile(_net(dtrain))
    assert fresh.load_state_dict(dtrain.load(buf)).missing_keys == []
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    fresh.eval()
    tnet.eval()  # torch's uncompiled model: running the compiled one would start inductor's minute-long build
    assert_close(fresh(dtrain.tensor(x)), tnet(torch.tensor(x)).detach())


def test_compiled_module_trains_like_the_model_and_pickles():
    net = _net(dtrain)
    c = dtrain.compile(net)
    opt = dtrain.optim.SGD(c.parameters(), lr=0.1)
    x = dtrain.randn(6, 4)
    c(x).square().mean().backward()
    opt.step()
    assert net[0].weight.grad is not None
    again = pickle.loads(pickle.dumps(c))
    assert type(again) is type(c) and list(again.state_dict()) == list(c.state_dict())
    assert_close(again(x), c(x))


def test_compiled_function_is_a_function():
    def f(a, b=1.0):
        """doc"""
        return a * 2 + b
    for m in (dtrain, torch):
        g = m.compile(f)
        assert callable(g) and g.__name__ == "f" and g._torchdynamo_orig_callable is f
        assert m.compile(f, disable=True) is f
        net = _net(m)
        assert m.compile(net, disable=True) is net


@pytest.mark.parametrize("kwargs", [dict(mode="fast"), dict(mode="default", options={}), dict(backend="nope")])
def test_rejected_as_torch_rejects(kwargs):
    with pytest.raises(RuntimeError) as te:
        torch.compile(_net(torch), **kwargs)
    with pytest.raises(RuntimeError) as de:
        dtrain.compile(_net(dtrain), **kwargs)
    assert str(de.value) == str(te.value)
    assert type(de.value).__name__ == type(te.value).__name__
    with pytest.raises(AssertionError, match="A callable function is expected"):
        dtrain.compile(3)


def test_arguments_without_effect_warn_once_and_defaults_are_silent(monkeypatch):
    from dtrain import _compile
    monkeypatch.setattr(_compile, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dtrain.compile(_net(dtrain))
        dtrain.compile(_net(dtrain), backend="eager", fullgraph=True)
        dtrain.compiler.disable(lambda: 1)
    with pytest.warns(UserWarning, match="mode='max-autotune' has no effect"):
        dtrain.compile(_net(dtrain), mode="max-autotune")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dtrain.compile(_net(dtrain), mode="max-autotune")  # once
    with pytest.warns(UserWarning, match="custom backend"):
        dtrain.compile(_net(dtrain), backend=lambda gm, inputs: gm)
    with pytest.warns(UserWarning, match="dynamic=True"):
        _net(dtrain).compile(dynamic=True)


def test_compiler_namespace_as_torch():
    for name in ("reset", "is_compiling", "is_dynamo_compiling", "disable", "list_backends"):
        assert hasattr(torch.compiler, name) and hasattr(dtrain.compiler, name)
    assert dtrain.compiler.is_compiling() is torch.compiler.is_compiling() is False
    assert dtrain.compiler.reset() is None
    assert dtrain.compiler.list_backends() == torch.compiler.list_backends()

    @dtrain.compiler.disable
    def f(x):
        return x + 1
    assert f(1) == 2 and dtrain.compiler.disable(f, recursive=False) is f
