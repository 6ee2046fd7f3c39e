"""A parameter's storage is never replaced behind the user's back: views, `.numpy()` arrays, `data_ptr()`,
`.data` and tensors sharing its storage stay aliases across optimizers, zero_grad, load_state_dict and
to() (as in torch, where every one of these checks holds)."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain import nn

OPTIMIZERS = [("SGD", dict(lr=0.1)), ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
              ("Adam", dict(lr=0.01)), ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01)),
              ("Adamax", dict(lr=0.01)), ("NAdam", dict(lr=0.01)), ("RAdam", dict(lr=0.01)),
              ("Adagrad", dict(lr=0.1)), ("Adadelta", dict(lr=1.0)), ("RMSprop", dict(lr=0.01, momentum=0.5)),
              ("Rprop", dict(lr=0.01)), ("ASGD", dict(lr=0.01)), ("LBFGS", dict(lr=0.5, max_iter=3))]


def _model(m):
    m.manual_seed(0)
    return m.nn.Sequential(m.nn.Linear(5, 7), m.nn.Tanh(), m.nn.Linear(7, 3))


class _Aliases:
    """Everything that must stay an alias of each parameter (and its gradient, once there is one)."""

    def __init__(self, params):
        self.params = list(params)
        self.views = [p.view(-1) for p in self.params]
        self.rows = [p[0] for p in self.params]
        self.arrays = [p.detach().numpy() for p in self.params]
        self.ptrs = [p.data_ptr() for p in self.params]
        self.datas = [p.data for p in self.params]
        self.detached = [p.detach() for p in self.params]

    def check(self):
        for i, p in enumerate(self.params):
            now = p.detach().numpy()
            assert p.data_ptr() == self.ptrs[i] and self.datas[i].data_ptr() == self.ptrs[i], i
            assert np.shares_memory(self.arrays[i], now), i
            np.testing.assert_array_equal(self.arrays[i], now)
            np.testing.assert_array_equal(self.views[i].detach().numpy(), now.reshape(-1))
            np.testing.assert_array_equal(self.rows[i].detach().numpy(), now[0])
            np.testing.assert_array_equal(self.datas[i].numpy(), now)
            np.testing.assert_array_equal(self.detached[i].numpy(), now)


def test_issue_reproducer_prints_true_as_torch():
    res = []
    for m in (dtrain, torch):
        m.manual_seed(0)
        lin = m.nn.Linear(3, 2)
        v = lin.weight.view(-1)
        opt = m.optim.SGD(lin.parameters(), lr=0.1)
        lin(m.ones(4, 3)).sum().backward()
        opt.step()
        res.append(bool((v == lin.weight.view(-1)).all()))
    assert res == [True, True]


@pytest.mark.parametrize("name,kw", OPTIMIZERS,
                         ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.items())))
def test_optimizer_construction_steps_and_zero_grad_keep_aliases(name, kw):
    rng = np.random.default_rng(0)
    x, y = dtrain.tensor(rng.standard_normal((8, 5))), dtrain.tensor(rng.standard_normal((8, 3)))
    model = _model(dtrain).double()
    params = list(model.parameters())
    before = [p.detach().numpy().copy() for p in params]
    aliases = _Aliases(params)
    opt = getattr(dtrain.optim, name)(model.parameters(), **kw)
    aliases.check()

    def closure():
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        return loss
    for set_to_none in (True, True, False, False):
        opt.zero_grad(set_to_none=set_to_none)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        grads = [p.grad for p in params]
        garrays = [g.numpy() for g in grads]
        gptrs = [g.data_ptr() for g in grads]
        opt.step(closure) if name == "LBFGS" else opt.step()
        aliases.check()
        if name != "LBFGS":  # (LBFGS's closure makes new gradients, as torch's does)
            assert [p.grad.data_ptr() for p in params] == gptrs and all(p.grad is g for p, g in zip(params, grads))
            assert all(np.shares_memory(a, p.grad.numpy()) for a, p in zip(garrays, params))
    assert any(not np.array_equal(b, p.detach().numpy()) for b, p in zip(before, params))  # it did train
    grads = [p.grad for p in params]
    garrays = [g.numpy() for g in grads]
    opt.zero_grad(set_to_none=False)  # torch: grad.zero_() in place
    assert all(p.grad is g and not a.any() and np.shares_memory(a, p.grad.numpy())
               for p, g, a in zip(params, grads, garrays))
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    aliases.check()


def test_optimizer_matches_torch_while_aliases_hold():
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal((8, 5)), rng.standard_normal((8, 3))
    final = []
    for m in (dtrain, torch):
        model = _model(m).double()
        with m.no_grad():
            for i, p in enumerate(model.parameters()):
                p.copy_(m.tensor(np.random.default_rng(10 + i).standard_normal(tuple(p.shape))))
        views = [p.view(-1) for p in model.parameters()]
        opt = m.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(5):
            opt.zero_grad()
            ((model(m.tensor(xs)) - m.tensor(ys)) ** 2).mean().backward()
            opt.step()
        final.append([v.detach().numpy().copy() for v in views])
    for a, e in zip(*final):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14)


def test_load_state_dict_copies_in_place():
    model, other = _model(dtrain), _model(dtrain)
    with dtrain.no_grad():
        for p in other.parameters():
            p.mul_(3).add_(1)
    aliases = _Aliases(model.parameters())
    opt = dtrain.optim.Adam(model.parameters(), lr=0.01)
    model(dtrain.ones(2, 5)).sum().backward()
    opt.step()
    model.load_state_dict(other.state_dict())
    aliases.check()
    for a, p in zip(aliases.arrays, other.parameters()):
        np.testing.assert_array_equal(a, p.detach().numpy())  # the old .numpy() arrays see the loaded values
    opt2 = dtrain.optim.Adam(model.parameters(), lr=0.01)
    opt2.load_state_dict(opt.state_dict())
    model(dtrain.ones(2, 5)).sum().backward()
    opt2.step()
    aliases.check()


@pytest.mark.parametrize("how", ["to-device", "to-dtype", "to-both", "float", "cpu", "tensor-to"])
def test_to_with_the_same_device_and_dtype_keeps_storage(how):
    model = _model(dtrain)
    aliases = _Aliases(model.parameters())
    if how == "to-device":
        model.to("cpu")
    elif how == "to-dtype":
        model.to(dtrain.float32)
    elif how == "to-both":
        model.to("cpu", dtrain.float32)
    elif how == "float":
        model.float()
    elif how == "cpu":
        model.cpu()
    else:
        assert all(p.to("cpu") is p and p.to(dtrain.float32) is p for p in model.parameters())
    aliases.check()
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
