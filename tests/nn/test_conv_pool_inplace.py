"""Convolutions and pooling refuse a backward through an input written in place since forward, as torch does:
their nodes save the input (and the weight), and the version check names it. The forward keeps its own copies
(column matrices, a padded channels-last input), so without the check the gradient of the old values would
come back silently."""
import numpy as np
import pytest
import torch

import dtrain

OPS = {  # name -> (fn(module, x, w), x shape, w shape or None)
    "conv1d": (lambda m, x, w: m.nn.functional.conv1d(x, w, padding=1), (2, 3, 9), (4, 3, 3)),
    "conv2d": (lambda m, x, w: m.nn.functional.conv2d(x, w, stride=2), (2, 3, 9, 7), (4, 3, 3, 2)),
    "conv2d 16 channels": (lambda m, x, w: m.nn.functional.conv2d(x, w, padding=1), (2, 16, 6, 6), (5, 16, 3, 3)),
    "conv2d groups": (lambda m, x, w: m.nn.functional.conv2d(x, w, groups=2), (2, 4, 6, 6), (6, 2, 3, 3)),
    "conv3d": (lambda m, x, w: m.nn.functional.conv3d(x, w), (2, 3, 5, 4, 5), (4, 3, 3, 2, 3)),
    "conv_transpose2d": (lambda m, x, w: m.nn.functional.conv_transpose2d(x, w, stride=2), (2, 3, 5, 5),
                         (3, 4, 3, 3)),
    "conv_transpose1d": (lambda m, x, w: m.nn.functional.conv_transpose1d(x, w), (2, 3, 7), (3, 2, 3)),
    "max_pool2d": (lambda m, x, w: m.nn.functional.max_pool2d(x, 2), (2, 3, 8, 7), None),
    "max_pool2d indices": (lambda m, x, w: m.nn.functional.max_pool2d(x, 3, 2, 1, return_indices=True)[0],
                           (2, 3, 8, 7), None),
    "max_pool3d": (lambda m, x, w: m.nn.functional.max_pool3d(x, 2), (2, 3, 4, 4, 4), None),
    "avg_pool2d": (lambda m, x, w: m.nn.functional.avg_pool2d(x, 2, padding=1), (2, 3, 8, 7), None),
    "avg_pool1d": (lambda m, x, w: m.nn.functional.avg_pool1d(x, 3), (2, 3, 9), None),
}
# 1-D ops run as 2-D over an unsqueezed view here: the message names that view ([N, C, 1, L], a view's node),
# where torch's conv names the 3-D input
SAME_TEXT = {"conv2d", "conv2d 16 channels", "conv2d groups", "conv3d", "conv_transpose2d", "max_pool2d",
             "max_pool2d indices", "max_pool3d", "avg_pool2d"}


def _run(mod, name, write, dtype, numba_on):
    fn, xs, ws = OPS[name]
    rng = np.random.default_rng(7)
    x = mod.tensor(rng.standard_normal(xs), dtype=getattr(mod, dtype), requires_grad=True)
    w = mod.tensor(rng.standard_normal(ws), dtype=getattr(mod, dtype), requires_grad=True) if ws else None
    h = x * 1.0  # a non-leaf input, so that it may be written in place
    y = fn(mod, h, w)
    if write == "input":
        h.add_(1.0)
    elif write == "weight":
        with mod.no_grad():
            w.mul_(2.0)
    try:
        y.sum().backward()
    except RuntimeError as e:
        return e
    return x.grad.detach().float().numpy()


def _fact(err):
    """The message up to its hint (the engine's hint text is not these ops' business)."""
    return str(err).split(" Hint:")[0]


@pytest.fixture(params=[True, False], ids=["numba", "numpy"])
def numba_on(request, monkeypatch):
    from dtrain import _cpu_kernels
    if request.param:
        if not _cpu_kernels.ENABLED or not _cpu_kernels.available():
            pytest.skip("numba not available or DTRAIN_NUMBA=0")
    else:
        monkeypatch.setattr(_cpu_kernels, "ENABLED", False)
    return request.param


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_input_written_in_place_fails_backward(name, dtype, numba_on):
    got, want = _run(dtrain, name, "input", dtype, numba_on), _run(torch, name, "input", dtype, numba_on)
    assert isinstance(want, RuntimeError)
    assert isinstance(got, RuntimeError), f"{name}: backward ran through a modified input"
    assert "modified by an inplace operation" in str(got) and "is at version 1; expected version 0" in str(got)
    if name in SAME_TEXT and dtype != "bfloat16":  # torch names a bfloat16 tensor CPUBFloat16Type here
        assert _fact(got) == _fact(want)


@pytest.mark.parametrize("name", [n for n in sorted(OPS) if OPS[n][2] is not None])
def test_weight_written_in_place_fails_backward(name, numba_on):
    got, want = _run(dtrain, name, "weight", "float32", numba_on), _run(torch, name, "weight", "float32", numba_on)
    assert isinstance(want, RuntimeError) and isinstance(got, RuntimeError)
    assert "is at version 1; expected version 0" in str(got)
    if name in SAME_TEXT:
        assert _fact(got) == _fact(want)


@pytest.mark.parametrize("name", sorted(OPS))
def test_untouched_inputs_still_differentiate(name, numba_on):
    got, want = _run(dtrain, name, None, "float64", numba_on), _run(torch, name, None, "float64", numba_on)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_write_before_forward_and_after_backward_is_fine():
    """Only a write between forward and backward is refused: the usual training step writes the weights after
    backward, and an input may be prepared in place before forward. Two such steps end on torch's weights."""
    rng = np.random.default_rng(3)
    x0, w0 = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    weights = []
    for mod in (dtrain, torch):
        x, w = mod.tensor(x0), mod.tensor(w0, requires_grad=True)
        x.mul_(0.5)
        for _ in range(2):
            y = mod.nn.functional.max_pool2d(mod.nn.functional.conv2d(x, w, padding=1), 2)
            (y * y).sum().backward()
            with mod.no_grad():
                w.sub_(0.01 * w.grad)
        weights.append(w.detach().numpy())
    np.testing.assert_allclose(weights[0], weights[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_indices_written_in_place_fail_backward(nd, numba_on):
    """max pooling's node saves the indices it returns (torch scatters the gradient through them)."""
    errors = []
    for mod in (dtrain, torch):
        x = mod.tensor(np.random.default_rng(9).standard_normal((2, 3) + (6,) * nd), requires_grad=True)
        pool = getattr(mod.nn.functional, f"max_pool{nd}d")
        y, idx = pool(x, 2, return_indices=True)
        idx.add_(0)
        with pytest.raises(RuntimeError) as e:
            y.sum().backward()
        errors.append(str(e.value))
    assert "is at version 1; expected version 0" in errors[0]
    assert errors[0].split(" [")[0] == errors[1].split(" [")[0]
