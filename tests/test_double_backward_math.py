"""Second derivatives (create_graph=True) of pointwise math, activations, reductions, scans, the softmax family
and the losses, each against torch: the first gradient, then the gradient of (g * v).sum() with respect to every
differentiable input and to the incoming gradient."""
import numpy as np
import pytest
import torch

import dtrain
from helpers import assert_close


def _tensor(m, a, grad):
    if not isinstance(a, np.ndarray):
        return a
    t = torch.from_numpy(a.copy()) if m is torch else dtrain.tensor(a.copy())
    return t.requires_grad_(grad and a.dtype.kind == "f")


def _grads(m, outs, wrt, gos, **kw):
    gs = m.autograd.grad(outs, wrt, grad_outputs=gos, allow_unused=True, **kw)
    return [np.zeros(tuple(x.shape)) if g is None else g for g, x in zip(gs, wrt)]


def gradgrad(fn, *arrays, seed=0, rtol=1e-7, atol=1e-10):
    """Compare first and second gradients of fn(m, *inputs) in dtrain and torch (float arrays require grad)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        outs = fn(torch, *[_tensor(torch, a, False) for a in arrays])
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    outs = [o for o in outs if o.dtype.is_floating_point]
    go_arrays = [rng.standard_normal(tuple(o.shape)) for o in outs]
    v_arrays = [rng.standard_normal(a.shape) for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    res = {m: _run(m, fn, arrays, go_arrays, v_arrays) for m in (dtrain, torch)}
    (df, ds, dplain), (tf, ts, _) = res[dtrain], res[torch]
    for i, (a, e) in enumerate(zip(df, tf)):
        assert_close(a, e, atol, rtol, f"first gradient of input {i}")
    for i, (a, e) in enumerate(zip(dplain, df)):
        assert_close(a, e, 1e-13, 1e-12, f"first gradient of input {i}: create_graph against an ordinary pass")
    n = len(df)
    for i, (a, e) in enumerate(zip(ds, ts)):
        what = f"second gradient wrt input {i}" if i < n else f"second gradient wrt the incoming gradient {i - n}"
        assert_close(a, e, atol, rtol, what)


def _run(m, fn, arrays, go_arrays, v_arrays):
    xs = [_tensor(m, a, True) for a in arrays]
    wrt = [x for x in xs if (torch.is_tensor(x) or isinstance(x, dtrain.Tensor)) and x.requires_grad]
    outs = fn(m, *xs)
    outs = [o for o in (outs if isinstance(outs, (tuple, list)) else (outs,)) if o.dtype.is_floating_point]
    gos = [_tensor(m, a, True) for a in go_arrays]
    gs = m.autograd.grad(outs, wrt, grad_outputs=gos, create_graph=True, allow_unused=True)
    first = [np.zeros(tuple(x.shape)) if g is None else g.detach() for g, x in zip(gs, wrt)]
    terms = [(g * _tensor(m, v, False)).sum() for g, v in zip(gs, v_arrays) if g is not None and g.requires_grad]
    if terms:
        second = _grads(m, sum(terms), wrt + gos, None)
    else:
        second = [np.zeros(tuple(x.shape)) for x in wrt + gos]
    plain = None
    if m is dtrain:
        xs = [_tensor(m, a, True) for a in arrays]
        wrt = [x for x in xs if isinstance(x, dtrain.Tensor) and x.requires_grad]
        outs = fn(m, *xs)
        outs = [o for o in (outs if isinstance(outs, (tuple, list)) else (outs,)) if o.dtype.is_floating_point]
        plain = _grads(m, outs, wrt, [_tensor(m, a, False) for a in go_arrays])
    return first, second, plain


def _randn(rng, *shape):
    return rng.standard_normal(shape)


def _away(rng, *shape, lo=0.1):
    """Random values at least `lo` away from 0 (the kink of relu-like ops), of either sign."""
    a = rng.uniform(lo, 2.0, shape)
    return a * rng.choice([-1.0, 1.0], shape)


# ------------------------------------------------------------------------------------------- activations
def _f(m):
    return m.nn.functional


ACTIVATIONS = {
    "gelu": (lambda m, x: _f(m).gelu(x), _randn, (3, 4)),
    "gelu_tanh": (lambda m, x: _f(m).gelu(x, approximate="tanh"), _randn, (3, 4)),
    "gelu_strided": (lambda m, x: _f(m).gelu(x.t()[::2]), _randn, (5, 4)),
    "silu": (lambda m, x: _f(m).silu(x), _randn, (3, 4)),
    "elu": (lambda m, x: _f(m).elu(x), _away, (3, 4)),
    "elu_alpha": (lambda m, x: _f(m).elu(x, alpha=0.7), _away, (3, 4)),
    "selu": (lambda m, x: _f(m).selu(x), _away, (3, 4)),
    "celu": (lambda m, x: _f(m).celu(x, alpha=1.3), _away, (3, 4)),
    "leaky_relu": (lambda m, x: _f(m).leaky_relu(x, 0.2) * x, _away, (3, 4)),
    "hardtanh": (lambda m, x: _f(m).hardtanh(x * 1.5, -1.0, 0.5) * x, _away, (3, 4)),
    "relu6": (lambda m, x: _f(m).relu6(x * 4) ** 2, _away, (3, 4)),
    "softplus": (lambda m, x: _f(m).softplus(x), _randn, (3, 4)),
    "softplus_beta_threshold": (lambda m, x: _f(m).softplus(x * 3, beta=2.0, threshold=3.0), _randn, (3, 4)),
    "softmax_last": (lambda m, x: m.softmax(x, -1), _randn, (3, 4)),
    "softmax_dim0": (lambda m, x: m.softmax(x, 0), _randn, (3, 4, 2)),
    "softmax_strided": (lambda m, x: m.softmax(x.transpose(0, 1), 1), _randn, (3, 4)),
    "softmax_dtype": (lambda m, x: m.softmax(x.float(), 1, dtype=m.float64), _randn, (3, 4)),
    "log_softmax_last": (lambda m, x: m.log_softmax(x, -1), _randn, (3, 4)),
    "log_softmax_dim1": (lambda m, x: m.log_softmax(x, 1), _randn, (2, 3, 4)),
    "log_softmax_dtype": (lambda m, x: _f(m).log_softmax(x.float(), 0, dtype=m.float64), _randn, (3, 4)),
    "logsumexp": (lambda m, x: m.logsumexp(x, 1), _randn, (3, 4)),
    "logsumexp_keepdim": (lambda m, x: m.logsumexp(x, (0, 2), keepdim=True), _randn, (3, 4, 2)),
    "logsigmoid": (lambda m, x: _f(m).logsigmoid(x), _randn, (3, 4)),
    "mish": (lambda m, x: _f(m).mish(x), _randn, (3, 4)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_second_derivative_matches_torch(name):
    fn, make, shape = ACTIVATIONS[name]
    rng = np.random.default_rng(7)
    gradgrad(fn, make(rng, *shape), seed=8)
