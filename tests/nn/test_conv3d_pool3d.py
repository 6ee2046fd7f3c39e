"""The volumetric family against torch in float64: conv3d, conv_transpose3d, 3-D max/avg/adaptive pooling,
BatchNorm3d and InstanceNorm3d — values, indices, input/weight/bias gradients, module reprs and errors."""
import numpy as np
import pytest
import torch
from helpers import check, check_raises
from test_conv import check_conv_module, module_check

import dtrain

TOL = {"atol": 1e-10, "rtol": 1e-10}

CONV3D = [  # (in_channels, out_channels, kernel, kwargs)
    (2, 3, 3, {}), (2, 3, (3, 2, 1), {"stride": 2}), (2, 3, 3, {"padding": 1}),
    (2, 3, (2, 3, 2), {"padding": (1, 0, 2), "stride": (1, 2, 3)}), (2, 3, 3, {"dilation": 2, "padding": 2}),
    (4, 6, 3, {"groups": 2, "stride": (2, 1, 1)}), (4, 4, 3, {"groups": 4, "padding": 1}),
    (2, 3, 3, {"padding": "same"}), (2, 3, (4, 3, 2), {"padding": "same", "dilation": (1, 2, 1)}),
    (2, 3, 3, {"padding": "valid"}), (3, 5, 1, {}),
    (2, 2, (3, 2, 3), {"stride": 3, "padding": (1, 0, 1), "dilation": (1, 2, 2)}),
]


@pytest.mark.parametrize("cin,cout,k,kw", CONV3D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv3d(device, cin, cout, k, kw, bias):
    kk = (k,) * 3 if isinstance(k, int) else k
    shapes = [(2, cin, 6, 7, 5), (cout, cin // kw.get("groups", 1)) + kk] + ([(cout,)] if bias else [])
    check(lambda m, x, w, *b: m.nn.functional.conv3d(x, w, *b, **kw), *shapes, device=device, **TOL)


def test_conv3d_unbatched_and_float32(device):
    check(lambda m, x, w: m.nn.functional.conv3d(x, w, padding=1), (3, 5, 4, 6), (4, 3, 3, 3, 3), device=device,
          **TOL)
    check(lambda m, x, w, b: m.nn.functional.conv3d(x, w, b, stride=2, padding=1), (3, 3, 6, 5, 7),
          (4, 3, 3, 3, 3), (4,), device=device, dtype=np.float32, atol=1e-5, rtol=1e-5)


CONVT3D = [  # (cin, cout_per_group, kernel, kwargs)
    (2, 3, 3, {}), (2, 3, 3, {"stride": 2}),
    (2, 3, (3, 2, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
    (4, 2, 3, {"groups": 2, "stride": (2, 3, 1), "output_padding": (1, 2, 0)}),
    (2, 3, 3, {"dilation": 2, "padding": 2}), (2, 2, 2, {"stride": 3, "dilation": (2, 1, 1), "output_padding": 1}),
]


@pytest.mark.parametrize("cin,coutg,k,kw", CONVT3D)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose3d(device, cin, coutg, k, kw, bias):
    kk = (k,) * 3 if isinstance(k, int) else k
    shapes = [(2, cin, 4, 3, 5), (cin, coutg) + kk] + ([(coutg * kw.get("groups", 1),)] if bias else [])
    check(lambda m, x, w, *b: m.nn.functional.conv_transpose3d(x, w, *b, **kw), *shapes, device=device, **TOL)


def test_conv_transpose3d_unbatched(device):
    check(lambda m, x, w, b: m.nn.functional.conv_transpose3d(x, w, b, stride=2, padding=1), (2, 3, 4, 3),
          (2, 3, 3, 3, 3), (3,), device=device, **TOL)


@pytest.mark.parametrize("cls,args,kw,shape", [
    ("Conv3d", (2, 4, 3), {}, (2, 2, 5, 6, 5)),
    ("Conv3d", (2, 4, (3, 2, 1)), {"stride": 2, "padding": 1, "bias": False}, (2, 2, 6, 5, 4)),
    ("Conv3d", (4, 6, 3), {"groups": 2, "dilation": (1, 2, 1), "padding": "same"}, (1, 4, 5, 6, 5)),
    ("Conv3d", (2, 3, 3), {"padding": (1, 2, 1), "padding_mode": "circular"}, (2, 2, 4, 5, 6)),
    ("Conv3d", (2, 3, 3), {"padding": 1, "padding_mode": "reflect"}, (2, 2, 4, 5, 6)),
    ("Conv3d", (2, 3, 3), {"padding": (2, 1, 1), "padding_mode": "replicate"}, (2, 2, 4, 5, 6)),
    ("ConvTranspose3d", (2, 4, 3), {}, (2, 2, 3, 4, 3)),
    ("ConvTranspose3d", (4, 2, (2, 3, 2)), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2,
                                            "bias": False}, (2, 4, 3, 3, 4)),
    ("ConvTranspose3d", (2, 3, 3), {"dilation": 2, "stride": (1, 2, 1)}, (1, 2, 3, 3, 3)),
])
def test_conv_modules(device, cls, args, kw, shape):
    check_conv_module(device, cls, args, kw, shape)


def test_conv_transpose3d_output_size(device):
    t = torch.nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1).double()
    d = dtrain.nn.ConvTranspose3d(2, 3, 3, stride=2, padding=1).double()
    module_check(t, d, (1, 2, 3, 4, 3), device=device, kwargs={"output_size": [6, 8, 5]})


def test_conv_errors():
    check_raises(lambda m, x, w: m.nn.functional.conv3d(x, w), (2, 3, 4), (4, 3, 3, 3, 3),
                 match="Expected 4D (unbatched) or 5D (batched) input to conv3d, but got input of size: [2, 3, 4]")
    check_raises(lambda m, x, w: m.nn.functional.conv3d(x, w), (1, 2, 5, 5, 5), (4, 3, 3, 3, 3),
                 match="Given groups=1, weight of size [4, 3, 3, 3, 3], expected input[1, 2, 5, 5, 5] to have 3 "
                       "channels, but got 2 channels instead")
    check_raises(lambda m, x, w: m.nn.functional.conv3d(x, w), (1, 2, 2, 2, 2), (4, 2, 3, 3, 3),
                 match="Calculated padded input size per channel: (2 x 2 x 2). Kernel size: (3 x 3 x 3). Kernel "
                       "size can't be greater than actual input size")
    check_raises(lambda m, x, w: m.nn.functional.conv3d(x, w, stride=2, padding="same"), (1, 2, 5, 5, 5),
                 (4, 2, 3, 3, 3))
    check_raises(lambda m, x, w: m.nn.functional.conv_transpose3d(x, w), (1, 2, 5, 5, 5), (3, 4, 3, 3, 3),
                 match="Given transposed=1, weight of size [3, 4, 3, 3, 3], expected input[1, 2, 5, 5, 5] to have "
                       "3 channels, but got 2 channels instead")
    check_raises(lambda m, x, w: m.nn.functional.conv_transpose3d(x, w, stride=2, output_padding=2),
                 (1, 2, 3, 3, 3), (2, 4, 3, 3, 3),
                 match="output padding must be smaller than either stride or dilation, but got output_padding_depth: "
                       "2 output_padding_height: 2 output_padding_width: 2 stride_depth: 2 stride_height: 2 "
                       "stride_width: 2 dilation_depth: 1 dilation_height: 1 dilation_width: 1")
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        dtrain.nn.Conv3d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported for ConvTranspose3d'):
        dtrain.nn.ConvTranspose3d(2, 3, 3, padding_mode="reflect")


MAX3D = [
    (2, {}), (3, {"stride": 2}), (3, {"stride": 2, "padding": 1}),
    ((3, 2, 2), {"stride": (2, 1, 2), "padding": (1, 0, 1)}), (3, {"stride": 2, "ceil_mode": True}),
    (3, {"stride": 2, "padding": 1, "ceil_mode": True}), (2, {"dilation": 2}),
    ((2, 3, 2), {"stride": 2, "padding": 1, "dilation": (2, 1, 2), "ceil_mode": True}),
]


@pytest.mark.parametrize("k,kw", MAX3D)
@pytest.mark.parametrize("shape", [(2, 3, 7, 6, 5), (3, 5, 7, 6)])
def test_max_pool3d(device, k, kw, shape):
    check(lambda m, x: m.nn.functional.max_pool3d(x, k, **kw), shape, device=device)
    check(lambda m, x: m.nn.functional.max_pool3d(x, k, return_indices=True, **kw), shape, device=device)


@pytest.mark.parametrize("kw", [{}, {"stride": 1}, {"padding": 1}])
def test_max_pool3d_ties_and_nan(device, kw):
    """Tied maxima and NaN in a window: values, indices and gradients land where torch's do."""
    x = np.random.default_rng(5).integers(0, 3, (2, 3, 5, 4, 6)).astype(np.float64)
    x[0, 0, 0, 0, :2] = np.nan
    x[1, 2, 3, 1, 3] = np.nan
    check(lambda m, t: m.nn.functional.max_pool3d(t, 2, return_indices=True, **kw), x, device=device)


AVG3D = [
    (2, {}), (3, {"stride": 2, "padding": 1}), (3, {"stride": 2, "padding": 1, "count_include_pad": False}),
    (3, {"stride": 2, "padding": 1, "ceil_mode": True}),
    (3, {"stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}),
    ((3, 2, 2), {"stride": (2, 3, 1), "padding": (1, 1, 0), "divisor_override": 5}),
    (4, {"stride": 3, "ceil_mode": True}),
]


@pytest.mark.parametrize("k,kw", AVG3D)
@pytest.mark.parametrize("shape", [(2, 3, 7, 6, 8), (3, 5, 7, 9)])
def test_avg_pool3d(device, k, kw, shape):
    check(lambda m, x: m.nn.functional.avg_pool3d(x, k, **kw), shape, device=device, atol=1e-12)


@pytest.mark.parametrize("out", [1, 2, (3, 2, 4), (5, 1, 2), (None, 3, None), (6, 7, 5)])
@pytest.mark.parametrize("shape", [(2, 3, 6, 7, 5), (3, 6, 7, 5)])
def test_adaptive_avg_pool3d(device, out, shape):
    check(lambda m, x: m.nn.functional.adaptive_avg_pool3d(x, out), shape, device=device, atol=1e-12)


@pytest.mark.parametrize("out", [1, 2, (3, 2, 4), (4, 5, 3), (None, 3, 2), (6, 7, 5)])
@pytest.mark.parametrize("shape", [(2, 3, 6, 7, 5), (3, 6, 7, 5)])
def test_adaptive_max_pool3d(device, out, shape):
    check(lambda m, x: m.nn.functional.adaptive_max_pool3d(x, out), shape, device=device)
    check(lambda m, x: m.nn.functional.adaptive_max_pool3d(x, out, return_indices=True), shape, device=device)


def test_adaptive_max_pool3d_ties(device):
    x = np.random.default_rng(6).integers(0, 2, (2, 2, 5, 7, 6)).astype(np.float64)
    check(lambda m, t: m.nn.functional.adaptive_max_pool3d(t, (3, 4, 4), return_indices=True), x, device=device)


@pytest.mark.parametrize("cls,args,kw,shape", [
    ("MaxPool3d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 6, 7, 6)),
    ("MaxPool3d", (2,), {"return_indices": True, "dilation": (1, 2, 1)}, (2, 3, 6, 7, 6)),
    ("AvgPool3d", (3, 2, 1), {"count_include_pad": False}, (2, 3, 6, 5, 7)),
    ("AvgPool3d", ((2, 3, 2),), {"ceil_mode": True, "divisor_override": 4}, (3, 6, 5, 7)),
    ("AdaptiveAvgPool3d", ((2, None, 3),), {}, (2, 3, 5, 4, 7)),
    ("AdaptiveAvgPool3d", (1,), {}, (2, 3, 5, 4, 7)),
    ("AdaptiveMaxPool3d", (3,), {}, (2, 3, 5, 4, 7)),
    ("AdaptiveMaxPool3d", ((2, 3, 4),), {"return_indices": True}, (2, 3, 5, 4, 7)),
])
def test_pool_modules(device, cls, args, kw, shape):
    t, d = getattr(torch.nn, cls)(*args, **kw), getattr(dtrain.nn, cls)(*args, **kw)
    assert repr(d) == repr(t)
    module_check(t, d, shape, device=device)


def test_pool_errors():
    check_raises(lambda m, x: m.nn.functional.max_pool3d(x, 2, padding=2), (1, 1, 6, 6, 6),
                 match="pad should be at most half of effective kernel size, but got pad=2, kernel_size=2 and "
                       "dilation=1")
    check_raises(lambda m, x: m.nn.functional.max_pool3d(x, 2), (2, 3, 4),
                 match="non-empty 4D or 5D (batch mode) tensor expected for input")
    check_raises(lambda m, x: m.nn.functional.avg_pool3d(x, 2, padding=(1, 2, 1)), (1, 1, 6, 6, 6),
                 match="pad should be at most half of effective kernel size, but got pad=2, kernel_size=2")
    check_raises(lambda m, x: m.nn.functional.avg_pool3d(x, 2), (2, 3, 4))
    check_raises(lambda m, x: m.nn.functional.adaptive_avg_pool3d(x, 2), (3, 4),
                 match="adaptive_avg_pool3d(): Expected 4D or 5D tensor, but got [3, 4]")
    check_raises(lambda m, x: m.nn.functional.adaptive_avg_pool3d(x, (2, 2)), (1, 2, 5, 5, 5),
                 match="adaptive_avg_pool3d: output_size must be 3")
    check_raises(lambda m, x: m.nn.functional.adaptive_max_pool3d(x, 2), (3, 4),
                 match="adaptive_max_pool3d(): Expected 4D or 5D tensor, but got: [3, 4]")
    check_raises(lambda m, x: m.nn.functional.adaptive_max_pool3d(x, 2), (2, 3, 4, 0, 4),
                 match="Expected input to have non-zero size for non-batch dimensions, but input has sizes "
                       "[2, 3, 4, 0, 4] with dimension 3 being empty")


@pytest.mark.parametrize("kw", [{}, {"affine": False}, {"momentum": None}, {"track_running_stats": False},
                                {"momentum": 0.3, "eps": 1e-3}])
@pytest.mark.parametrize("train", [True, False])
def test_batch_norm3d(device, kw, train):
    t, d = torch.nn.BatchNorm3d(3, **kw).double(), dtrain.nn.BatchNorm3d(3, **kw).double()
    assert repr(d) == repr(t)
    if t.running_mean is not None:  # non-trivial running statistics to start from
        with torch.no_grad():
            t.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
            t.running_var.copy_(torch.tensor([1.5, 0.5, 3.0]))
    for _ in range(2):  # twice: the running statistics and num_batches_tracked update in step
        module_check(t, d, (2, 3, 4, 3, 5), device=device, train=train)


@pytest.mark.parametrize("kw", [{}, {"affine": True}, {"affine": True, "eps": 1e-3}])
@pytest.mark.parametrize("shape", [(2, 3, 4, 3, 5), (3, 4, 3, 5)])
def test_instance_norm3d(device, kw, shape):
    t, d = torch.nn.InstanceNorm3d(3, **kw).double(), dtrain.nn.InstanceNorm3d(3, **kw).double()
    assert repr(d) == repr(t)
    if kw.get("affine"):
        with torch.no_grad():
            t.weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
            t.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    module_check(t, d, shape, device=device)


def test_functional_norms_5d(device):
    check(lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, training=True), (2, 3, 4, 3, 5),
          (3,), (3,), device=device, **TOL)
    check(lambda m, x, w, b: m.nn.functional.instance_norm(x, weight=w, bias=b), (2, 3, 4, 3, 5), (3,), (3,),
          device=device, **TOL)


def test_norm_errors():
    with pytest.raises(ValueError, match=r"expected 5D input \(got 4D input\)"):
        dtrain.nn.BatchNorm3d(2)(dtrain.randn(2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"expected 4D or 5D input \(got 3D input\)"):
        dtrain.nn.InstanceNorm3d(2)(dtrain.randn(2, 3, 3))
    with pytest.raises(ValueError):
        torch.nn.BatchNorm3d(2)(torch.randn(2, 2, 3, 3))
    with pytest.raises(ValueError):
        torch.nn.InstanceNorm3d(2)(torch.randn(2, 3, 3))
