"""compile and the legacy tensor types: torch code runs and gives the same results (autocast and GradScaler,\nno longer shims, are tested in tests/amp/)."""
import numpy as np
import pytest
import torch

import dtrain

nn = dtrain.nn


def _model():
    dtrain.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))


def _train(model, steps=3, shim=None):
    """Parameters after a few SGD steps, with each step's forward/backward/step optionally through a shim."""
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = dtrain.tensor(np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        losses.append(shim(model, x, opt) if shim else _plain_step(model, x, opt))
    return losses, [p.detach().numpy().copy() for p in model.parameters()]


def _plain_step(model, x, opt):
    loss = model(x).pow(2).mean()
    loss.backward()
    opt.step()
    return loss.item()


def _assert_same(a, b):
    assert a[0] == b[0]
    for p, q in zip(a[1], b[1]):
        np.testing.assert_array_equal(p, q)


def test_compile_gives_identical_results():
    plain = _train(_model())
    compiled = _model()
    assert dtrain.compile(compiled)._orig_mod is compiled
    with pytest.warns(UserWarning, match="no effect"):
        _assert_same(_train(dtrain.compile(compiled, mode="max-autotune", dynamic=True)), plain)

    def f(a, b=1.0):
        """doc"""
        return a * 2 + b

    x = dtrain.randn(3)
    for g in (dtrain.compile(f), dtrain.compile()(f), dtrain.compile(fullgraph=True, backend="eager")(f)):
        np.testing.assert_array_equal(g(x, b=3.0).numpy(), f(x, b=3.0).numpy())
        assert g.__name__ == "f" and g.__doc__ == "doc"

    @dtrain.compile
    def h(a):
        return a + 1

    @dtrain.compile(disable=True)
    def k(a):
        return a - 1

    assert h(1) == 2 and k(1) == 0
    with pytest.raises(RuntimeError, match="Either mode or options"):
        dtrain.compile(f, mode="default", options={})
    with pytest.raises(RuntimeError, match="Either mode or options"):
        torch.compile(f, mode="default", options={})


@pytest.mark.parametrize("name", ["FloatTensor", "DoubleTensor", "LongTensor", "IntTensor", "BoolTensor",
                                  "HalfTensor", "ByteTensor"])
def test_legacy_tensor_types(name):
    d, t = getattr(dtrain, name), getattr(torch, name)
    for args in ([[1.7, 0.0, 2.0]], [[[1, 2], [3, 4]]], [], [2, 3], [torch.Size([4])]):
        got = d(*[dtrain.Size(a) if isinstance(a, torch.Size) else a for a in args])
        want = t(*args)
        assert got.dtype.name == str(want.dtype)[6:] and tuple(got.shape) == tuple(want.shape)
        if args and not isinstance(args[0], (int, torch.Size)):
            np.testing.assert_array_equal(got.numpy(), want.numpy())
        assert isinstance(got, d) and isinstance(want, t)
    for dt in ("float32", "float64", "int64", "int32", "bool", "float16", "uint8"):
        x = dtrain.zeros(2, dtype=getattr(dtrain, dt))
        assert isinstance(x, d) == isinstance(torch.zeros(2, dtype=getattr(torch, dt)), t)
    assert not isinstance(np.zeros(2), d)
