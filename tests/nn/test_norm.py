"""Normalization layers against torch: outputs, gradients, running statistics, eval mode, printed forms, errors."""
import numpy as np
import pytest
import torch
from helpers import assert_close, check, check_raises, to_numpy
from test_conv import module_check

import dtrain


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_functional(device, shape, affine):
    c = shape[1]
    wb = [(c,), (c,)] if affine else []
    check(lambda m, x, *wb: m.nn.functional.batch_norm(x, None, None, *wb, training=True), shape, *wb,
          device=device, atol=1e-10, rtol=1e-10)
    rm, rv = np.random.randn(c), np.random.rand(c) + 0.5
    check(lambda m, x, *wb: m.nn.functional.batch_norm(x, m.tensor(rm), m.tensor(rv), *wb, training=False), shape,
          *wb, device=device, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (8, 3)), ("BatchNorm1d", (4, 3, 6)),
                                       ("BatchNorm2d", (4, 3, 5, 5))])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_running_stats(device, cls, shape, momentum):
    t = getattr(torch.nn, cls)(3, momentum=momentum).double()
    d = getattr(dtrain.nn, cls)(3, momentum=momentum).double()
    rng = np.random.default_rng(0)
    for step in range(4):  # running_mean/var and num_batches_tracked are compared after every step
        x = rng.standard_normal(shape) * (step + 1) + step
        if step == 0:
            module_check(t, d, x, device=device)
        else:
            out_t, out_d = t(torch.from_numpy(x)), d(dtrain.tensor(x, device=device))
            assert_close(out_d, out_t, 1e-10, 1e-10)
        for name, b in t.named_buffers():
            assert_close(dict(d.named_buffers())[name], b, 1e-12, 1e-12, name)
    assert int(d.num_batches_tracked.item()) == 4 and d.num_batches_tracked.dtype == dtrain.int64
    # eval mode normalizes with the running statistics
    module_check(t, d, rng.standard_normal(shape), device=device, train=False)


@pytest.mark.parametrize("kw", [{"affine": False}, {"track_running_stats": False}, {"bias": False},
                                {"eps": 1e-3, "affine": False, "track_running_stats": False}])
def test_batch_norm_options(device, kw):
    t, d = torch.nn.BatchNorm2d(3, **kw).double(), dtrain.nn.BatchNorm2d(3, **kw).double()
    assert repr(d) == repr(t)
    assert list(d.state_dict()) == list(t.state_dict())
    with torch.no_grad():
        for p in t.parameters():
            p.uniform_(0.5, 1.5)
    module_check(t, d, (4, 3, 3, 3), device=device)
    module_check(t, d, (4, 3, 3, 3), device=device, train=False)


def test_batch_norm_float32(device):
    t, d = torch.nn.BatchNorm2d(4), dtrain.nn.BatchNorm2d(4)
    module_check(t, d, np.random.randn(8, 4, 5, 5).astype(np.float32) * 3 + 1, device=device, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("ns,kw", [(5, {}), ((4, 5), {}), ((4, 5), {"elementwise_affine": False}),
                                   (5, {"bias": False}), (5, {"eps": 1e-2})])
def test_layer_norm(device, ns, kw):
    t, d = torch.nn.LayerNorm(ns, **kw).double(), dtrain.nn.LayerNorm(ns, **kw).double()
    assert repr(d) == repr(t)
    with torch.no_grad():
        for p in t.parameters():
            p.normal_()
    module_check(t, d, (3, 4, 5), device=device)
    module_check(t, d, (2, 2, 3, 4, 5), device=device)


def test_layer_norm_float32(device):
    check(lambda m, x, w, b: m.nn.functional.layer_norm(x, (16,), w, b), (4, 7, 16), (16,), (16,),
          device=device, dtype=np.float32, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("groups,shape,kw", [(2, (3, 4, 5), {}), (3, (2, 6, 3, 3), {}), (1, (2, 4), {}),
                                             (4, (2, 4, 6), {"affine": False}), (2, (3, 4, 5), {"bias": False})])
def test_group_norm(device, groups, shape, kw):
    t, d = torch.nn.GroupNorm(groups, shape[1], **kw).double(), dtrain.nn.GroupNorm(groups, shape[1], **kw).double()
    assert repr(d) == repr(t)
    with torch.no_grad():
        for p in t.parameters():
            p.normal_()
    module_check(t, d, shape, device=device)


@pytest.mark.parametrize("ns,kw", [(5, {}), ((4, 5), {"eps": 1e-3}), (5, {"elementwise_affine": False})])
def test_rms_norm(device, ns, kw):
    t, d = torch.nn.RMSNorm(ns, **kw).double(), dtrain.nn.RMSNorm(ns, **kw).double()
    assert repr(d) == repr(t)
    with torch.no_grad():
        for p in t.parameters():
            p.normal_()
    module_check(t, d, (3, 4, 5), device=device)


def test_rms_norm_default_eps_float32(device):
    # eps=None is float32's machine epsilon: visible on inputs of tiny magnitude
    x = (np.random.randn(3, 8) * 1e-4).astype(np.float32)
    module_check(torch.nn.RMSNorm(8), dtrain.nn.RMSNorm(8), x, device=device, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls,shape,kw", [("InstanceNorm1d", (2, 3, 6), {}), ("InstanceNorm2d", (2, 3, 4, 4),
                                                                             {"affine": True}),
                                          ("InstanceNorm2d", (3, 4, 4), {})])
def test_instance_norm(device, cls, shape, kw):
    t, d = getattr(torch.nn, cls)(3, **kw).double(), getattr(dtrain.nn, cls)(3, **kw).double()
    assert repr(d) == repr(t)
    module_check(t, d, shape, device=device)


def test_errors():
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        dtrain.nn.BatchNorm2d(3)(dtrain.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        dtrain.nn.BatchNorm1d(3)(dtrain.randn(2, 3, 4, 4))
    check_raises(lambda m, x: m.nn.functional.batch_norm(x, None, None, training=True), (1, 3))
    check_raises(lambda m, x: m.nn.functional.layer_norm(x, (4,)), (2, 3),
                 match="Given normalized_shape=[4], expected input with shape [*, 4], but got input of size[2, 3]")
    check_raises(lambda m, x: m.nn.functional.group_norm(x, 4), (2, 6, 3),
                 match="Expected number of channels in input to be divisible by num_groups, but got input of shape "
                       "[2, 6, 3] and num_groups=4")
    check_raises(lambda m, x: m.nn.functional.batch_norm(x, m.zeros(4, dtype=m.float64),
                                                         m.ones(4, dtype=m.float64)), (2, 3),
                 match="running_mean should contain 3 elements not 4")


def test_state_dict_roundtrip():
    t = torch.nn.BatchNorm1d(3)
    t(torch.randn(5, 3))
    d = dtrain.nn.BatchNorm1d(3)
    d.load_state_dict({k: dtrain.tensor(to_numpy(v)) for k, v in t.state_dict().items()})
    for k, v in t.state_dict().items():
        assert_close(d.state_dict()[k], v, 0, 0, k)
