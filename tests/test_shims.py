"""compile, autocast, GradScaler and the legacy tensor types: torch code runs and gives the same results."""
import warnings

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


def test_autocast_gives_identical_results():
    plain = _train(_model())

    def with_autocast(model, x, opt):
        with dtrain.autocast(device_type="cpu", dtype=dtrain.bfloat16):
            loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    _assert_same(_train(_model(), shim=with_autocast), plain)

    @dtrain.amp.autocast("cpu", enabled=False)
    def fwd(model, x):
        return model(x).pow(2).mean()

    _assert_same(_train(_model(), shim=lambda m, x, o: (fwd(m, x).backward(), o.step(), fwd(m, x).item())[2]),
                 _train(_model(), shim=lambda m, x, o: (_plain_step(m, x, o), m(x).pow(2).mean().item())[1]))
    for m in (dtrain, torch):
        assert str(m.autocast("cpu").fast_dtype) == "torch.bfloat16"
        assert str(m.autocast("cuda", enabled=False).fast_dtype) == "torch.float16"
        with pytest.raises(ValueError, match="Expected `device_type` of type `str`"):
            m.autocast(0)
        with pytest.raises(RuntimeError, match="device type at start of device string: foo"):
            m.autocast("foo")
    with dtrain.autocast("cpu", dtype=dtrain.float16):
        assert dtrain.amp.get_autocast_dtype("cpu") is dtrain.float16
    assert dtrain.amp.get_autocast_dtype("cpu") is dtrain.bfloat16


def test_grad_scaler_disabled_is_identity():
    plain = _train(_model())
    for kwargs in ({"device": "cpu"}, {"enabled": False}, {}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scaler = dtrain.amp.GradScaler(**kwargs)
        if dtrain.cuda.is_available() and not kwargs:
            continue

        def scaled(model, x, opt):
            loss = model(x).pow(2).mean()
            assert scaler.scale(loss) is loss
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            scaler.step(opt)
            scaler.update()
            return loss.item()

        _assert_same(_train(_model(), shim=scaled), plain)
        assert not scaler.is_enabled() and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
        scaler.load_state_dict({})
    if not dtrain.cuda.is_available():
        with pytest.warns(UserWarning, match="CUDA is not available.  Disabling."):
            dtrain.amp.GradScaler("cuda")


def test_grad_scaler_algorithm_matches_torch():
    # the scaling logic is device-independent: check it on the CPU against torch's CPU scaler
    scaler = dtrain.amp.GradScaler("cpu", init_scale=2.0 ** 4, growth_interval=2)
    scaler._enabled = True
    tscaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 4, growth_interval=2)
    w = dtrain.nn.Parameter(dtrain.tensor([1.0, 2.0]))
    tw = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt, topt = dtrain.optim.SGD([w], lr=0.5), torch.optim.SGD([tw], lr=0.5)
    for step, bad in enumerate([False, False, True, False, False, False]):
        for m, p, o, s in ((dtrain, w, opt, scaler), (torch, tw, topt, tscaler)):
            o.zero_grad()
            with np.errstate(invalid="ignore"):  # the inf step makes NaN gradients on purpose
                loss = (p * p).sum() * (float("inf") if bad else 1.0)
                s.scale(loss).backward()
            if step == 1:
                s.unscale_(o)
                with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
                    s.unscale_(o)
            s.step(o)
            s.update()
        np.testing.assert_array_equal(w.detach().numpy(), tw.detach().numpy())
        assert scaler.get_scale() == tscaler.get_scale()
        assert scaler.state_dict() == tscaler.state_dict()
    fresh = dtrain.amp.GradScaler("cpu")
    fresh._enabled = True
    fresh.load_state_dict(tscaler.state_dict())
    assert fresh.state_dict() == tscaler.state_dict()
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        fresh.load_state_dict({})


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
