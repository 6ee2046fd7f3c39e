"""functional_call (dtrain.func / nn.utils.stateless) against torch's: outputs and gradients with respect to the
given tensors, buffers, tied weights, the module left as it was, strict mode and errors."""
import numpy as np
import pytest
import torch

import dtrain


def _pair(build):
    t, d = build(torch), build(dtrain)
    d.load_state_dict({k: dtrain.tensor(v.detach().numpy().copy()) for k, v in t.state_dict().items()})
    return t, d


def _mlp(m):
    torch.manual_seed(0)
    return m.nn.Sequential(m.nn.Linear(4, 5), m.nn.BatchNorm1d(5), m.nn.Tanh(), m.nn.Linear(5, 3)).double()


@pytest.mark.parametrize("namespace", ["func", "stateless"])
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_outputs_and_gradients_flow_to_the_given_tensors(namespace):
    t, d = _pair(_mlp)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4))
    given = {"0.weight": rng.standard_normal((5, 4)), "3.bias": rng.standard_normal(3),
             "1.running_mean": rng.standard_normal(5)}
    outs, grads = [], []
    for m, mod in ((torch, t), (dtrain, d)):
        fc = m.func.functional_call if namespace == "func" else m.nn.utils.stateless.functional_call
        ts = {k: m.tensor(v, requires_grad=k != "1.running_mean") for k, v in given.items()}
        before = {k: v.detach().clone() for k, v in mod.state_dict().items()}
        mod.eval()
        y = fc(mod, ts, (m.tensor(x),))
        (y * m.tensor(np.arange(18.0).reshape(6, 3))).sum().backward()
        outs.append(y.detach().numpy())
        grads.append([ts[k].grad.numpy() for k in ("0.weight", "3.bias")])
        for k, v in mod.state_dict().items():  # the module keeps its own tensors
            np.testing.assert_array_equal(v.numpy(), before[k].numpy())
        assert mod[0].weight.grad is None or not mod[0].weight.grad.numpy().any()
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(grads[1], grads[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_several_dicts_kwargs_tied_weights_and_plain_args():
    def tied(m):
        torch.manual_seed(1)
        s = m.nn.Sequential(m.nn.Linear(3, 3), m.nn.Linear(3, 3)).double()
        s[1].weight = s[0].weight
        return s
    t, d = _pair(tied)
    d[1].weight = d[0].weight
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)
    outs = []
    for m, mod in ((torch, t), (dtrain, d)):
        y1 = m.func.functional_call(mod, [{"0.weight": m.tensor(w)}, {"1.bias": m.tensor(b)}], m.tensor(x))
        y2 = m.func.functional_call(mod, {"0.weight": m.tensor(w)}, args=(), kwargs={"input": m.tensor(x)})
        y3 = m.func.functional_call(mod, {"0.weight": m.tensor(w)}, (m.tensor(x),), tie_weights=False)
        outs.append([y.detach().numpy() for y in (y1, y2, y3)])
    for a, b in zip(outs[1], outs[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert not np.allclose(outs[1][1], outs[1][2])  # untied: the second layer kept its own (tied) weight


def test_errors_as_torch():
    cases = [
        (lambda m, mod, x, w: m.func.functional_call(mod, {"weight": w}, (x,), strict=True), RuntimeError,
         "Error(s) in reparametrizing for Linear:\n\tMissing key(s): 'bias'."),
        (lambda m, mod, x, w: m.func.functional_call(mod, [{"weight": w}, {"weight": w}], (x,)), ValueError,
         "['weight'] appeared in multiple dictionaries; behavior of functional call is ambiguous"),
        (lambda m, mod, x, w: m.func.functional_call(mod, 3, (x,)), ValueError,
         "Expected parameter_and_buffer_dicts to be a dict, or a list/tuple of dicts, but got <class 'int'>"),
        (lambda m, mod, x, w: m.func.functional_call(mod, {"weight": w, "foo.bar": w}, (x,)), AttributeError,
         "Linear has no attribute `foo`"),
        (lambda m, mod, x, w: m.func.functional_call(mod, {"weight": w, "bias": w[0], "extra": w}, (x,),
                                                     strict=True), RuntimeError, "Unexpected key(s): 'extra'."),
    ]
    for fn, exc, msg in cases:
        for m in (torch, dtrain):
            mod, x, w = m.nn.Linear(3, 2), m.ones(4, 3), m.zeros(2, 3)
            with pytest.raises(exc) as info:
                fn(m, mod, x, w)
            assert msg in str(info.value), (m.__name__, str(info.value))
            assert isinstance(mod.weight, m.nn.Parameter) and not hasattr(mod, "foo") and not hasattr(mod, "extra")
    mod = dtrain.nn.Linear(3, 2)
    y = dtrain.func.functional_call(mod, {"weight": dtrain.zeros(2, 3), "extra": dtrain.ones(1)}, (dtrain.ones(4, 3),))
    np.testing.assert_array_equal(y.detach().numpy(), np.broadcast_to(mod.bias.detach().numpy(), (4, 2)))
    assert not hasattr(mod, "extra")


def test_stateless_spelling_warns_as_torch():
    mod = dtrain.nn.Linear(3, 2)
    with pytest.warns(FutureWarning, match="stateless.functional_call` is deprecated"):
        y = dtrain.nn.utils.stateless.functional_call(mod, {"bias": dtrain.zeros(2)}, (dtrain.zeros(1, 3),))
    np.testing.assert_array_equal(y.detach().numpy(), np.zeros((1, 2)))
