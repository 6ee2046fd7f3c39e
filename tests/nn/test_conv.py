"""Convolutions (functional and modules) against torch: outputs, input and parameter gradients, errors."""
import numpy as np
import pytest
import torch
from helpers import assert_close, check, check_raises, make, to_numpy

import dtrain


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _flat(o)]
    return [] if out is None else [out]


def module_check(tmod, dmod, *inputs, device="cpu", atol=1e-10, rtol=1e-10, kwargs=None, train=True):
    """Copy torch's state into dmod, run both on the same inputs, compare outputs, the gradients of every float
    input and every parameter (by name), and the buffers after the call."""
    kwargs = kwargs or {}
    dmod.load_state_dict({k: dtrain.tensor(to_numpy(v).copy()) for k, v in tmod.state_dict().items()})
    dmod.to(device)
    tmod.train(train)
    dmod.train(train)
    assert [n for n, _ in dmod.named_parameters()] == [n for n, _ in tmod.named_parameters()]
    arrays = [make(x) for x in inputs]
    ti = [torch.from_numpy(a.copy()).requires_grad_(a.dtype.kind == "f") for a in arrays]
    di = [dtrain.tensor(a.copy(), device=device).requires_grad_(a.dtype.kind == "f") for a in arrays]
    tk = {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    dk = {k: dtrain.tensor(v.copy(), device=device) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out_t, out_d = _flat(tmod(*ti, **tk)), _flat(dmod(*di, **dk))
    assert len(out_t) == len(out_d)
    loss_t = loss_d = 0
    for i, (a, e) in enumerate(zip(out_d, out_t)):
        assert str(a.dtype) == str(e.dtype), f"output {i}: {a.dtype} != {e.dtype}"
        assert_close(a, e, atol, rtol, f"output {i}")
        if e.requires_grad:
            w = np.random.default_rng(i).standard_normal(tuple(e.shape)).astype(to_numpy(e).dtype)
            loss_t = loss_t + (e * torch.from_numpy(w)).sum()
            loss_d = loss_d + (a * dtrain.tensor(w, device=device)).sum()
    if not isinstance(loss_t, int):
        loss_t.backward()
        loss_d.backward()
        for i, (a, e) in enumerate(zip(di, ti)):
            if e.grad is not None:
                assert_close(a.grad, e.grad, atol, rtol, f"grad of input {i}")
        dparams = dict(dmod.named_parameters())
        for name, p in tmod.named_parameters():
            if p.grad is not None:
                assert dparams[name].grad is not None, f"{name}: no gradient"
                assert_close(dparams[name].grad, p.grad, atol, rtol, f"grad of {name}")
    dbufs = dict(dmod.named_buffers())
    for name, b in tmod.named_buffers():
        assert_close(dbufs[name], b, atol, rtol, f"buffer {name}")
    return out_d, out_t


CONV2D = [  # (in_channels, out_channels, kernel, kwargs)
    (3, 4, 3, {}), (3, 4, (3, 2), {"stride": 2}), (3, 4, 3, {"padding": 1}), (3, 4, (2, 3), {"padding": (2, 1)}),
    (3, 4, 3, {"dilation": 2, "padding": 2}), (4, 6, 3, {"groups": 2, "stride": (2, 1)}),
    (4, 4, 3, {"groups": 4, "padding": 1}), (2, 3, 3, {"padding": "same"}), (2, 3, (4, 3), {"padding": "same",
                                                                                           "dilation": (1, 2)}),
    (2, 3, 3, {"padding": "valid"}), (3, 5, 1, {}), (3, 2, 5, {"stride": 3, "padding": 2, "dilation": (1, 2)}),
]


@pytest.mark.parametrize("cin,cout,k,kw", CONV2D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(device, cin, cout, k, kw, bias):
    kk = (k, k) if isinstance(k, int) else k
    shapes = [(2, cin, 9, 8), (cout, cin // kw.get("groups", 1)) + kk] + ([(cout,)] if bias else [])
    check(lambda m, x, w, *b: m.nn.functional.conv2d(x, w, *b, **kw), *shapes, device=device, atol=1e-10,
          rtol=1e-10)


@pytest.mark.parametrize("batch", [1, 5])
def test_conv2d_float32_and_batch(device, batch):
    check(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, stride=2, padding=1), (batch, 3, 10, 7), (6, 3, 3, 3),
          (6,), device=device, dtype=np.float32, atol=1e-5, rtol=1e-5)


def test_conv2d_unbatched(device):
    check(lambda m, x, w: m.nn.functional.conv2d(x, w, padding=1), (3, 6, 5), (4, 3, 3, 3), device=device,
          atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1}, {"dilation": 3, "padding": "same"},
                                {"groups": 3, "stride": 2}, {"padding": 3, "dilation": 2}])
def test_conv1d(device, kw):
    g = kw.get("groups", 1)
    check(lambda m, x, w, b: m.nn.functional.conv1d(x, w, b, **kw), (3, 6, 11), (9, 6 // g, 3), (9,),
          device=device, atol=1e-10, rtol=1e-10)
    check(lambda m, x, w: m.nn.functional.conv1d(x, w, **kw), (6, 11), (9, 6 // g, 3), device=device, atol=1e-10,
          rtol=1e-10)


CONVT = [  # (cin, cout_per_group, kernel, kwargs)
    (3, 4, 3, {}), (3, 4, 3, {"stride": 2}), (3, 4, (3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    (4, 3, 3, {"groups": 2, "stride": (2, 3), "output_padding": (1, 2)}), (2, 3, 3, {"dilation": 2, "padding": 2}),
    (2, 3, 2, {"stride": 3, "dilation": (2, 1), "output_padding": 1}),
]


@pytest.mark.parametrize("cin,coutg,k,kw", CONVT)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose2d(device, cin, coutg, k, kw, bias):
    kk = (k, k) if isinstance(k, int) else k
    shapes = [(2, cin, 5, 6), (cin, coutg) + kk] + ([(coutg * kw.get("groups", 1),)] if bias else [])
    check(lambda m, x, w, *b: m.nn.functional.conv_transpose2d(x, w, *b, **kw), *shapes, device=device,
          atol=1e-10, rtol=1e-10)


def test_conv_transpose1d(device):
    check(lambda m, x, w, b: m.nn.functional.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1),
          (2, 4, 7), (4, 3, 3), (3,), device=device, atol=1e-10, rtol=1e-10)


def test_unfold_fold(device):
    check(lambda m, x: m.nn.functional.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
          (2, 3, 7, 8), device=device, atol=1e-12)
    check(lambda m, x: m.nn.functional.fold(x, (6, 7), 3, padding=1, stride=2), (2, 18, 12), device=device,
          atol=1e-12)


@pytest.mark.parametrize("cls,args,shape", [
    ("Conv2d", (3, 8, 3), (4, 3, 8, 8)), ("Conv2d", (4, 6, (3, 2)), (2, 4, 7, 9)),
    ("Conv1d", (3, 5, 4), (2, 3, 12)), ("ConvTranspose2d", (3, 4, 3), (2, 3, 5, 5)),
    ("ConvTranspose1d", (3, 4, 3), (2, 3, 6)),
])
@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1, "bias": False}, {"groups": 1, "dilation": 2}])
def test_modules(device, cls, args, shape, kw):
    check_conv_module(device, cls, args, kw, shape)


def check_conv_module(device, cls, args, kw, shape):
    """torch's and dtrain's `cls(*args, **kw)`: same repr, parameter names and shapes, outputs and gradients."""
    torch.manual_seed(0)
    t = getattr(torch.nn, cls)(*args, **kw).double()
    d = getattr(dtrain.nn, cls)(*args, **kw).double()
    assert repr(d) == repr(t)
    for (n, p), (tn, tp) in zip(d.named_parameters(), t.named_parameters()):
        assert n == tn and tuple(p.shape) == tuple(tp.shape)
    module_check(t, d, shape, device=device)


def test_module_groups_same_padding(device):
    t = torch.nn.Conv2d(4, 8, 3, padding="same", groups=2).double()
    module_check(t, dtrain.nn.Conv2d(4, 8, 3, padding="same", groups=2).double(), (2, 4, 6, 6), device=device)


def test_default_init_bounds():
    # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, as in torch
    dtrain.manual_seed(0)
    m = dtrain.nn.Conv2d(4, 16, 3, groups=2)
    bound = 1 / np.sqrt(2 * 3 * 3)
    for p in (m.weight, m.bias):
        a = to_numpy(p)
        assert a.dtype == np.float32 and np.abs(a).max() <= bound and np.abs(a).max() > 0.8 * bound


def test_conv_transpose_output_size(device):
    t = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    d = dtrain.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).double()
    module_check(t, d, (1, 2, 4, 4), device=device, kwargs={"output_size": [8, 8]})


def test_errors():
    check_raises(lambda m, x, w: m.nn.functional.conv2d(x, w), (2, 3), (4, 3, 3, 3),
                 match="Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: [2, 3]")
    check_raises(lambda m, x, w: m.nn.functional.conv2d(x, w), (1, 2, 5, 5), (4, 3, 3, 3),
                 match="Given groups=1, weight of size [4, 3, 3, 3], expected input[1, 2, 5, 5] to have 3 channels, "
                       "but got 2 channels instead")
    check_raises(lambda m, x, w: m.nn.functional.conv1d(x, w), (1, 2, 3, 5), (4, 2, 3),
                 match="Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: [1, 2, 3, 5]")
    check_raises(lambda m, x, w: m.nn.functional.conv_transpose2d(x, w), (1, 2, 5, 5), (3, 4, 3, 3),
                 match="Given transposed=1, weight of size [3, 4, 3, 3], expected input[1, 2, 5, 5] to have 3 "
                       "channels, but got 2 channels instead")
    check_raises(lambda m, x, w: m.nn.functional.conv2d(x, w, stride=2, padding="same"), (1, 3, 5, 5),
                 (4, 3, 3, 3))
    check_raises(lambda m, x, w: m.nn.functional.conv2d(x, w), (1, 3, 2, 2), (4, 3, 3, 3),
                 match="Kernel size can't be greater than actual input size")
    check_raises(lambda m, x, w: m.nn.functional.conv2d(x, w.float()), (1, 3, 5, 5), (4, 3, 3, 3),
                 match="expected scalar type Double but found Float")
    check_raises(lambda m, x, w, b: m.nn.functional.conv2d(x.float(), w.float(), b), (1, 3, 5, 5), (4, 3, 3, 3),
                 (4,), match="Input type (float) and bias type (double) should be the same")
    check_raises(lambda m, x, w, b: m.nn.functional.conv2d(x, w, b), (1, 3, 5, 5), (4, 3, 3, 3), (5,),
                 match="Given weight of size [4, 3, 3, 3], expected bias to be 1-dimensional with 4 elements, but "
                       "got bias of size [5] instead")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        dtrain.nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        dtrain.nn.Conv2d(3, 4, 3, stride=2, padding="same")


def test_graphs_alive_together(device):
    # column buffers are recycled between calls: two live graphs and a retained graph must not share them
    x, w = np.random.randn(2, 3, 6, 6), np.random.randn(4, 3, 3, 3)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    dx, dw = dtrain.tensor(x, device=device, requires_grad=True), dtrain.tensor(w, device=device, requires_grad=True)
    for m, a, b in ((torch, tx, tw), (dtrain, dx, dw)):
        y1 = m.nn.functional.conv2d(a, b, padding=1)
        y2 = m.nn.functional.conv2d(a * 2, b, padding=1)
        (y1 * y1).sum().backward(retain_graph=True)
        (y1 * y1).sum().backward()
        (y2 ** 3).sum().backward()
    assert_close(dx.grad, tx.grad, 1e-10, 1e-10)
    assert_close(dw.grad, tw.grad, 1e-10, 1e-10)
