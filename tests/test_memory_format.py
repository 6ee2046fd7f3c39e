"""torch.memory_format against torch: channels_last / channels_last_3d strides (size-1 and size-0 dims too), the
contiguity checks, and every API that takes memory_format (clone, contiguous, to and the dtype shortcuts, empty,
the *_like factories, nn.Module.to) or makes a tensor of given strides (empty_strided)."""
import pickle

import numpy as np
import pytest
import torch

import dtrain

SHAPES_4D = [(2, 3, 4, 5), (0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0), (2, 1, 1, 5), (1, 1, 1, 1),
             (2, 3, 1, 1), (2, 1, 4, 1)]


def _layout(t):
    return tuple(t.shape), tuple(t.stride()), t.is_contiguous(), t.is_contiguous(memory_format=_mod(t).channels_last)


def _mod(t):
    return torch if isinstance(t, torch.Tensor) else dtrain


def _same(f, device="cpu"):
    want = f(torch, "cpu")
    got = f(dtrain, device)
    assert _layout(got) == _layout(want)
    if got.numel() and got.dtype.is_floating_point:
        np.testing.assert_allclose(got.detach().cpu().numpy(), want.detach().numpy(), rtol=1e-5, atol=2e-5)
    return got


def test_the_formats_are_torch_objects_by_name():
    for name in ("contiguous_format", "preserve_format", "channels_last", "channels_last_3d"):
        f = getattr(dtrain, name)
        assert isinstance(f, dtrain.memory_format)
        assert repr(f) == repr(getattr(torch, name)) == f"torch.{name}"
        assert pickle.loads(pickle.dumps(f)) is f


@pytest.mark.parametrize("shape", SHAPES_4D, ids=str)
def test_empty_channels_last_strides(shape, device):
    _same(lambda T, d: T.empty(shape, memory_format=T.channels_last, device=d).zero_(), device)
    _same(lambda T, d: T.empty(shape + (3,), memory_format=T.channels_last_3d, device=d).zero_(), device)


@pytest.mark.parametrize("shape", SHAPES_4D, ids=str)
def test_contiguous_and_clone_into_channels_last(shape, device):
    src = lambda T, d: T.arange(float(np.prod(shape)), device=d).reshape(shape)  # noqa: E731
    got = _same(lambda T, d: src(T, d).contiguous(memory_format=T.channels_last), device)
    assert got.is_contiguous(memory_format=dtrain.channels_last)
    _same(lambda T, d: src(T, d).clone(memory_format=T.channels_last), device)
    # and back: a channels-last tensor made C-contiguous, cloned into contiguous_format, or kept by preserve
    _same(lambda T, d: src(T, d).contiguous(memory_format=T.channels_last).contiguous(), device)
    _same(lambda T, d: src(T, d).contiguous(memory_format=T.channels_last).clone(
        memory_format=T.contiguous_format), device)
    _same(lambda T, d: src(T, d).contiguous(memory_format=T.channels_last).clone(), device)


def test_contiguous_returns_self_when_already_in_the_format(device):
    for T in (torch, dtrain):
        x = T.randn(2, 3, 4, 5, device=device if T is dtrain else "cpu")
        xc = x.contiguous(memory_format=T.channels_last)
        assert xc is not x and xc.contiguous(memory_format=T.channels_last) is xc
        assert x.contiguous(memory_format=T.preserve_format) is x  # contiguous: no copy needed, no error
        with pytest.raises(RuntimeError, match="preserve memory format is unsupported by the contiguous operator"):
            x.transpose(1, 2).contiguous(memory_format=T.preserve_format)


@pytest.mark.parametrize("view", ["permuted", "permuted_back", "sliced", "n111"])
def test_is_contiguous_and_to_follow_torch_on_views(view):
    views = {"permuted": lambda x: x.permute(0, 2, 3, 1),
             "permuted_back": lambda x: x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
             "sliced": lambda x: x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)[:, :, ::2],
             "n111": lambda x: x[:, :1, :1, :1]}
    for fmt in ("channels_last", "contiguous_format"):
        # to(memory_format=) copies unless the strides already look like the format (torch's suggest_memory_format)
        _same(lambda T, d: views[view](T.arange(120.0).reshape(2, 3, 4, 5)).to(memory_format=getattr(T, fmt)))
    x = {T: views[view](T.arange(120.0).reshape(2, 3, 4, 5)) for T in (torch, dtrain)}
    assert (x[dtrain].to(memory_format=dtrain.channels_last) is x[dtrain]) == \
        (x[torch].to(memory_format=torch.channels_last) is x[torch])


def test_the_rank_is_checked():
    for T in (torch, dtrain):
        with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
            T.randn(3, 4, 5).contiguous(memory_format=T.channels_last)
        with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
            T.empty(2, 3, 4, memory_format=T.channels_last)
        with pytest.raises(RuntimeError, match="required rank 5 tensor to use channels_last_3d format"):
            T.randn(2, 3, 4, 5).clone(memory_format=T.channels_last_3d)
        with pytest.raises(RuntimeError, match="required rank 4 tensor to use channels_last format"):
            T.nn.Conv3d(2, 3, 3).to(memory_format=T.channels_last)
        assert not T.randn(3, 4, 5).is_contiguous(memory_format=T.channels_last)


def test_wrong_arguments_are_refused_not_ignored():
    for T in (torch, dtrain):
        x = T.randn(2, 3, 4, 5)
        with pytest.raises(TypeError, match="must be torch.memory_format, not int"):
            x.clone(memory_format=5)
        with pytest.raises(TypeError, match="must be torch.memory_format, not str"):
            x.contiguous(memory_format="channels_last")
        with pytest.raises(TypeError):
            T.zeros(2, 3, 4, 5, memory_format=T.channels_last)  # only empty takes one
        with pytest.raises(TypeError):
            x.to(T.float64, foo=1)
        with pytest.raises(TypeError):
            x.to(T.float64, T.channels_last)  # keyword-only
        with pytest.raises(RuntimeError, match="unsupported memory format Preserve"):
            T.empty(2, 3, memory_format=T.preserve_format)


def test_to_copy_flag_and_formats(device):
    for T in (torch, dtrain):
        d = device if T is dtrain else "cpu"
        x = T.randn(2, 3, 4, 5, device=d)
        assert x.to(T.float32, False, False) is x
        assert x.to(T.float32, False, True) is not x  # copy=True, positionally
        assert x.to(T.float64, False, True).dtype == T.float64
    _same(lambda T, d: T.arange(120.0, device=d).reshape(2, 3, 4, 5).to(T.float64, memory_format=T.channels_last),
          device)
    _same(lambda T, d: T.arange(120.0, device=d).reshape(2, 3, 4, 5).float(memory_format=T.channels_last), device)
    _same(lambda T, d: T.arange(120.0, device=d).reshape(2, 3, 4, 5).double(memory_format=T.channels_last), device)
    _same(lambda T, d: T.arange(120.0).reshape(2, 3, 4, 5).to(d, memory_format=T.channels_last), device)
    # a dtype change keeps a channels-last layout (preserve_format)
    _same(lambda T, d: T.arange(120.0, device=d).reshape(2, 3, 4, 5).contiguous(
        memory_format=T.channels_last).to(T.float64), device)


def test_the_like_factories_take_a_format(device):
    for name in ("empty_like", "zeros_like", "ones_like", "rand_like", "randn_like"):
        for fmt in ("channels_last", "contiguous_format", "preserve_format"):
            want = getattr(torch, name)(torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last),
                                        memory_format=getattr(torch, fmt))
            got = getattr(dtrain, name)(dtrain.randn(2, 3, 4, 5, device=device).contiguous(
                memory_format=dtrain.channels_last), memory_format=getattr(dtrain, fmt))
            assert _layout(got) == _layout(want), (name, fmt)
            assert got.device == dtrain.empty(0, device=device).device
    got = dtrain.randint_like(dtrain.zeros(2, 3, 4, 5, device=device), 5, memory_format=dtrain.channels_last)
    assert got.stride() == (60, 1, 15, 3) and int(got.min()) >= 0 and int(got.max()) < 5
    assert dtrain.zeros_like(dtrain.zeros(2, 3, 4, 5), memory_format=dtrain.channels_last).sum().item() == 0
    assert dtrain.ones_like(dtrain.zeros(2, 3, 4, 5), memory_format=dtrain.channels_last).sum().item() == 120


def test_module_to_converts_4d_parameters_only(device):
    for T in (torch, dtrain):
        T.manual_seed(0)
        m = T.nn.Sequential(T.nn.Conv2d(2, 3, 3), T.nn.Linear(4, 5))
        m.to(T.float64, memory_format=T.channels_last)
        assert m[0].weight.stride() == (18, 1, 6, 2) and m[0].weight.dtype == T.float64
        assert m[1].weight.stride() == (4, 1)
        assert isinstance(m[0].weight, T.nn.Parameter) and m[0].weight.requires_grad


@pytest.mark.parametrize("size,stride", [((2, 3), (1, 2)), ((2, 3), (3, 1)), ((2, 3), (0, 0)), ((2, 0), (1, 2)),
                                         ((), ()), ((4,), (3,)), ((2, 3, 4), (1, 8, 2))], ids=str)
def test_empty_strided(size, stride, device):
    for T in (torch, dtrain):
        t = T.empty_strided(size, stride, device=device if T is dtrain else "cpu")
        assert (tuple(t.shape), t.stride(), t.untyped_storage().nbytes(), t.storage_offset(), t._base) == \
            (size, stride, torch.empty_strided(size, stride).untyped_storage().nbytes(), 0, None)
        n = dtrain.empty(3, 4).new_empty_strided(size, stride) if T is dtrain else \
            torch.empty(3, 4).new_empty_strided(size, stride)
        assert n.stride() == stride
    x = dtrain.empty_strided((2, 3), (1, 2), requires_grad=True)
    assert x.is_leaf and x.requires_grad and not x.is_contiguous()
    for T in (torch, dtrain):
        with pytest.raises(RuntimeError, match=r"dimensionality of sizes \(2\) must match dimensionality of strides "
                                               r"\(1\)"):
            T.empty_strided((2, 3), (1,))
        with pytest.raises(RuntimeError, match="Storage size calculation overflowed"):
            T.empty_strided((2, 3), (-1, 2))
        with pytest.raises(RuntimeError, match="negative dimension -1"):
            T.empty_strided((2, -1), (3, 1))


def test_a_channels_last_tensor_trains_like_a_contiguous_one():
    """Elementwise ops keep the channels-last layout (TensorIterator's order) and gradients come back in it."""
    for T in (torch, dtrain):
        T.manual_seed(0)
    w = {T: T.arange(120.0).reshape(2, 3, 4, 5).div(100).contiguous(memory_format=T.channels_last).requires_grad_()
         for T in (torch, dtrain)}
    out = {T: (w[T].tanh() * 2 + 1).sum() for T in (torch, dtrain)}
    for T in (torch, dtrain):
        out[T].backward()
    assert _layout((w[dtrain].tanh() * 2).detach()) == _layout((w[torch].tanh() * 2).detach())
    np.testing.assert_allclose(w[dtrain].grad.numpy(), w[torch].grad.numpy(), rtol=1e-6)


LAYERS = {
    "dropout": lambda T, x: T.nn.functional.dropout(x, 0.0 + 0.5) * 0,  # the mask's values differ from torch's
    "dropout2d": lambda T, x: T.nn.functional.dropout2d(x, 0.5) * 0,
    "interpolate_nearest": lambda T, x: T.nn.functional.interpolate(x, scale_factor=2),
    "interpolate_bilinear": lambda T, x: T.nn.functional.interpolate(x, size=(4, 5), mode="bilinear"),
    "relu": lambda T, x: T.relu(x),
    "add_bias": lambda T, x: x + T.ones(3, 1, 1, device=x.device),
    "conv2d": lambda T, x: T.nn.functional.conv2d(x, _w(T, x, (4, 3, 3, 3)), _w(T, x, (4,))),
    "conv2d_weight_cl": lambda T, x: T.nn.functional.conv2d(
        x.contiguous(), _w(T, x, (4, 3, 3, 3)).contiguous(memory_format=T.channels_last)),
    "conv2d_first_layer": lambda T, x: T.nn.functional.conv2d(x[:, :1].contiguous(memory_format=T.channels_last),
                                                              _w(T, x, (4, 1, 3, 3))),
    "conv2d_1x1_n111": lambda T, x: T.nn.functional.conv2d(x[:, :, :1, :1].contiguous(memory_format=T.channels_last),
                                                           _w(T, x, (4, 3, 1, 1))),
    "conv2d_grouped": lambda T, x: T.nn.functional.conv2d(x, _w(T, x, (3, 1, 3, 3)), groups=3),
    "conv_transpose2d": lambda T, x: T.nn.functional.conv_transpose2d(x, _w(T, x, (3, 4, 3, 3))),
    "conv3d": lambda T, x: T.nn.functional.conv3d(_x3(T, x), _w(T, x, (4, 3, 2, 2, 2))),
    "max_pool2d": lambda T, x: T.nn.functional.max_pool2d(x, 2),
    "max_pool2d_indices": lambda T, x: T.nn.functional.max_pool2d(x, 2, return_indices=True)[1],
    "max_pool3d": lambda T, x: T.nn.functional.max_pool3d(_x3(T, x), 2),
    "avg_pool2d": lambda T, x: T.nn.functional.avg_pool2d(x, 3, ceil_mode=True),
    "avg_pool3d": lambda T, x: T.nn.functional.avg_pool3d(_x3(T, x), 2),  # contiguous in torch
    "batch_norm": lambda T, x: T.nn.functional.batch_norm(x, None, None, _w(T, x, (3,)), None, training=True),
    "batch_norm_eval": lambda T, x: T.nn.functional.batch_norm(x, T.zeros(3, device=x.device),
                                                               T.ones(3, device=x.device)),
    "batch_norm_3d": lambda T, x: T.nn.functional.batch_norm(_x3(T, x), None, None, training=True),
    "group_norm": lambda T, x: T.nn.functional.group_norm(x, 3, _w(T, x, (3,)), _w(T, x, (3,))),
    "layer_norm": lambda T, x: T.nn.functional.layer_norm(x, (6,)),  # contiguous in torch
    "instance_norm": lambda T, x: T.nn.functional.instance_norm(x),  # contiguous in torch
}


def _w(T, x, shape):
    n = int(np.prod(shape))
    return T.linspace(-1, 1, n, device=x.device).reshape(shape)


def _x3(T, x):
    return x[:, :, :4].reshape(2, 3, 2, 2, 6).contiguous(memory_format=T.channels_last_3d)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_keep_a_channels_last_input_channels_last(name, device):
    """What torch's kernels write for a channels-last input: a channels-last result."""
    def run(T, d):
        x = T.arange(216.0, device=d).reshape(2, 3, 6, 6).div(10).contiguous(memory_format=T.channels_last)
        return LAYERS[name](T, x)
    _same(run, device)


def test_interpolate_area_and_antialias():
    for T in (torch, dtrain):
        x = T.arange(72.0).reshape(2, 3, 3, 4)
        np.testing.assert_allclose(T.nn.functional.interpolate(x, size=(2, 2), mode="area").numpy(),
                                   torch.nn.functional.adaptive_avg_pool2d(torch.arange(72.0).reshape(2, 3, 3, 4),
                                                                           (2, 2)).numpy())
        with pytest.raises(ValueError, match="Anti-alias option is restricted to bilinear, bicubic"):
            T.nn.functional.interpolate(x, scale_factor=2, antialias=True)
    with pytest.raises(NotImplementedError, match="antialias=True is not supported"):
        dtrain.nn.functional.interpolate(dtrain.zeros(1, 1, 4, 4), scale_factor=0.5, mode="bilinear", antialias=True)


def test_a_channels_last_cnn_trains_as_in_torch(device):
    """A model and its input converted to channels_last: every layer's layout, the loss and the gradients (laid
    out as their parameters) as torch's."""
    outs, grads = {}, {}
    for T in (torch, dtrain):
        T.manual_seed(0)
        d = device if T is dtrain else "cpu"
        model = T.nn.Sequential(T.nn.Conv2d(3, 8, 3, padding=1), T.nn.BatchNorm2d(8), T.nn.ReLU(),
                                T.nn.MaxPool2d(2), T.nn.Conv2d(8, 4, 3), T.nn.Flatten(), T.nn.Linear(16, 5))
        if T is dtrain:
            model.load_state_dict({k: dtrain.tensor(v.numpy()) for k, v in ref.items()})
        else:
            ref = model.state_dict()
        model = model.to(d, memory_format=T.channels_last)
        x = T.arange(2 * 3 * 8 * 8.0, device=d).reshape(2, 3, 8, 8).sin().contiguous(memory_format=T.channels_last)
        h, layouts = x, []
        for layer in model:
            h = layer(h)
            layouts.append(h.stride())
        loss = h.square().mean()
        loss.backward()
        outs[T] = (layouts, loss.item())
        grads[T] = [(p.grad.stride(), p.grad.cpu().numpy() if T is dtrain else p.grad.numpy())
                    for p in model.parameters()]
    assert outs[dtrain][0] == outs[torch][0]
    np.testing.assert_allclose(outs[dtrain][1], outs[torch][1], rtol=1e-5)
    for (sd, gd), (st, gt) in zip(grads[dtrain], grads[torch]):
        assert sd == st
        np.testing.assert_allclose(gd, gt, rtol=1e-4, atol=1e-6)
