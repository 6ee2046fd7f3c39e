"""Run the same code in dtrain and in torch on the same inputs; compare outputs and gradients.

    check(lambda m, x, y: m.add(x, y), (3, 4), (4,))
    check(lambda m, x: x.sum(1, keepdim=True), np.random.randn(2, 3))

Each input is a shape (random float64 data), a NumPy array, or a Python scalar. Float and complex inputs
require grad; the gradient of sum(out * w) for random weights w (of a complex output: the real part of it, with
complex w) is compared for every such input, in torch's convention for complex gradients."""
import contextlib

import numpy as np
import torch  # the oracle: a missing torch is an error, never a skip

import dtrain

_rng = np.random.default_rng(1234)


def make(shape_or_array, dtype=np.float64):
    if isinstance(shape_or_array, np.ndarray):
        return shape_or_array
    if isinstance(shape_or_array, (int, float, bool)) and not isinstance(shape_or_array, tuple):
        return shape_or_array
    return _rng.standard_normal(shape_or_array).astype(dtype)


def _to(mod, a, device, requires_grad):
    if not isinstance(a, np.ndarray):
        return a
    if mod is torch:
        t = torch.from_numpy(a.copy())
        return t.requires_grad_(requires_grad and a.dtype.kind in "fc")
    t = dtrain.tensor(a.copy(), device=device)
    return t.requires_grad_(requires_grad and a.dtype.kind in "fc")


def to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, dtrain.Tensor):
        return np.asarray(x.detach().cpu().numpy())
    return np.asarray(x)


def _flatten(out):
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(_flatten(o))
        return res
    return [out]


def assert_close(actual, expected, atol=1e-6, rtol=1e-5, what="output"):
    a, e = to_numpy(actual), to_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != torch's {e.shape}"
    if e.dtype.kind in "fc":
        np.testing.assert_allclose(a.astype(np.complex128 if e.dtype.kind == "c" else np.float64),
                                   e.astype(np.complex128 if e.dtype.kind == "c" else np.float64),
                                   atol=atol, rtol=rtol, err_msg=what, equal_nan=True)
    else:
        np.testing.assert_array_equal(a, e, err_msg=what)


def _default_device(device):
    """The device under test as dtrain's default while a test function runs, so that the tensors it makes
    (indices, masks, out=) are on it, as a torch test on a GPU gets with torch.device("cuda") as the default
    (torch refuses most mixes of CPU and CUDA tensors)."""
    return dtrain.device(device) if device != "cpu" else contextlib.nullcontext()


def check(fn, *inputs, device="cpu", atol=1e-6, rtol=1e-5, grad=True, dtype=np.float64, check_dtype=True):
    """Compare fn(dtrain, *inputs) with fn(torch, *inputs): values, dtypes, shapes, and input gradients."""
    arrays = [make(x, dtype) for x in inputs]
    dt = [_to(dtrain, a, device, grad) for a in arrays]
    tt = [_to(torch, a, device, grad) for a in arrays]
    with _default_device(device):
        out_d = _flatten(fn(dtrain, *dt))
    out_t = _flatten(fn(torch, *tt))
    assert len(out_d) == len(out_t), f"{len(out_d)} outputs, torch gives {len(out_t)}"
    for i, (a, e) in enumerate(zip(out_d, out_t)):
        if isinstance(e, torch.Tensor):
            assert isinstance(a, dtrain.Tensor), f"output {i}: {type(a)} is not a Tensor"
            if check_dtype:
                assert str(a.dtype) == str(e.dtype), f"output {i}: dtype {a.dtype} != torch's {e.dtype}"
            assert tuple(a.shape) == tuple(e.shape), f"output {i}: shape {tuple(a.shape)} != torch's {tuple(e.shape)}"
            assert_close(a, e, atol, rtol, f"output {i}")
        else:
            assert a == e, f"output {i}: {a!r} != torch's {e!r}"
    if not grad:
        return out_d
    diff = [(a, e) for a, e in zip(out_d, out_t) if isinstance(e, torch.Tensor) and e.requires_grad]
    if not diff:
        return out_d
    loss_d = loss_t = 0
    for a, e in diff:
        out_dtype = to_numpy(e).dtype
        w = _rng.standard_normal(tuple(e.shape))
        if out_dtype.kind == "c":  # a real loss of a complex output: the real part of a complex-weighted sum
            w = (w + 1j * _rng.standard_normal(tuple(e.shape))).astype(out_dtype)
            loss_d = loss_d + (a * dtrain.tensor(w, device=device)).sum().real
            loss_t = loss_t + (e * torch.from_numpy(w)).sum().real
            continue
        w = w.astype(out_dtype)
        loss_d = loss_d + (a * dtrain.tensor(w, device=device)).sum()
        loss_t = loss_t + (e * torch.from_numpy(w)).sum()
    loss_t.backward()
    loss_d.backward()
    for i, (a, e) in enumerate(zip(dt, tt)):
        if isinstance(e, torch.Tensor) and e.requires_grad:
            if e.grad is None:
                assert a.grad is None or not to_numpy(a.grad).any(), f"input {i}: dtrain has a grad, torch none"
                continue
            assert a.grad is not None, f"input {i}: no gradient (torch has one)"
            assert_close(a.grad, e.grad, atol, rtol, f"grad of input {i}")
    return out_d


def check_raises(fn, *inputs, device="cpu", match=None):
    """fn must raise the same exception type in dtrain as in torch (and, with `match`, a message containing it)."""
    import pytest
    arrays = [make(x) for x in inputs]
    with pytest.raises(Exception) as te:
        fn(torch, *[_to(torch, a, device, False) for a in arrays])
    with pytest.raises(te.type) as de, _default_device(device):
        fn(dtrain, *[_to(dtrain, a, device, False) for a in arrays])
    if match:
        assert match in str(de.value), f"message {str(de.value)!r} lacks {match!r}"
    return de.value, te.value
