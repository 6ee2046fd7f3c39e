"""Second derivatives (create_graph=True) of pointwise math, activations, reductions, scans, the softmax family
and the losses, each against torch: the first gradient, then the gradient of (g * v).sum() with respect to every
differentiable input and to the incoming gradient."""
import numpy as np
import pytest
import torch

import dtrain
from dtrain.autograd import _double
from helpers import _default_device, assert_close


def _tensor(m, a, grad, device="cpu"):
    if not isinstance(a, np.ndarray):
        return a
    t = torch.from_numpy(a.copy()) if m is torch else dtrain.tensor(a.copy(), device=device)
    return t.requires_grad_(grad and a.dtype.kind == "f")


def _grads(m, outs, wrt, gos, **kw):
    gs = m.autograd.grad(outs, wrt, grad_outputs=gos, allow_unused=True, **kw)
    return [np.zeros(tuple(x.shape)) if g is None else g for g, x in zip(gs, wrt)]


def gradgrad(fn, *arrays, seed=0, rtol=1e-7, atol=1e-10, device="cpu"):
    """Compare first and second gradients of fn(m, *inputs) in dtrain (on `device`) and torch (float arrays
    require grad)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        outs = fn(torch, *[_tensor(torch, a, False) for a in arrays])
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    outs = [o for o in outs if o.dtype.is_floating_point]
    go_arrays = [rng.standard_normal(tuple(o.shape)).astype(str(o.dtype).replace("torch.", "")) for o in outs]
    v_arrays = [rng.standard_normal(a.shape).astype(a.dtype) for a in arrays
                if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    with _default_device(device):
        res = {m: _run(m, fn, arrays, go_arrays, v_arrays, device) for m in (dtrain, torch)}
    (df, ds, dplain), (tf, ts, _) = res[dtrain], res[torch]
    for i, (a, e) in enumerate(zip(df, tf)):
        assert_close(a, e, atol, rtol, f"first gradient of input {i}")
    eps = max(np.finfo(a.dtype).eps for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    for i, (a, e) in enumerate(zip(dplain, df)):  # the same to rounding: formulas reorder a few products
        assert_close(a, e, 1e3 * eps, 1e4 * eps,
                     f"first gradient of input {i}: create_graph against an ordinary pass")
    n = len(df)
    for i, (a, e) in enumerate(zip(ds, ts)):
        what = f"second gradient wrt input {i}" if i < n else f"second gradient wrt the incoming gradient {i - n}"
        assert_close(a, e, atol, rtol, what)


def _run(m, fn, arrays, go_arrays, v_arrays, device):
    xs = [_tensor(m, a, True, device) for a in arrays]
    wrt = [x for x in xs if (torch.is_tensor(x) or isinstance(x, dtrain.Tensor)) and x.requires_grad]
    outs = fn(m, *xs)
    outs = [o for o in (outs if isinstance(outs, (tuple, list)) else (outs,)) if o.dtype.is_floating_point]
    gos = [_tensor(m, a, True, device) for a in go_arrays]
    gs = m.autograd.grad(outs, wrt, grad_outputs=gos, create_graph=True, allow_unused=True)
    first = [np.zeros(tuple(x.shape)) if g is None else g.detach() for g, x in zip(gs, wrt)]
    terms = [(g * _tensor(m, v, False, device)).sum() for g, v in zip(gs, v_arrays)
             if g is not None and g.requires_grad]
    if terms:
        second = _grads(m, sum(terms), wrt + gos, None)
    else:
        second = [np.zeros(tuple(x.shape)) for x in wrt + gos]
    plain = None
    if m is dtrain:
        xs = [_tensor(m, a, True, device) for a in arrays]
        wrt = [x for x in xs if isinstance(x, dtrain.Tensor) and x.requires_grad]
        outs = fn(m, *xs)
        outs = [o for o in (outs if isinstance(outs, (tuple, list)) else (outs,)) if o.dtype.is_floating_point]
        plain = _grads(m, outs, wrt, [_tensor(m, a, False, device) for a in go_arrays])
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
    "elu_inplace": (lambda m, x: _f(m).elu(x * 1, inplace=True), _away, (3, 4)),
    "leaky_relu_inplace": (lambda m, x: _f(m).leaky_relu(x * x, 0.1, inplace=True) * x, _away, (3, 4)),
    "hardswish": (lambda m, x: _f(m).hardswish(x * 3), _away, (3, 4)),
    "softmin": (lambda m, x: _f(m).softmin(x, 1), _randn, (3, 4)),
    "logsigmoid": (lambda m, x: _f(m).logsigmoid(x), _randn, (3, 4)),
    "glu": (lambda m, x: _f(m).glu(x, 1), _randn, (3, 4)),
    "prelu": (lambda m, x: _f(m).prelu(x, m.tensor(np.array([0.1, 0.2, 0.3]))) * x, _away, (2, 3, 4)),
    "threshold": (lambda m, x: _f(m).threshold(x, 0.3, -1.0) * x, _away, (3, 4)),
    "softsign": (lambda m, x: _f(m).softsign(x), _away, (3, 4)),
    "softshrink": (lambda m, x: _f(m).softshrink(x, 0.05) * x, _away, (3, 4)),
    "tanhshrink": (lambda m, x: _f(m).tanhshrink(x), _randn, (3, 4)),
    "mish": (lambda m, x: _f(m).mish(x), _randn, (3, 4)),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_second_derivative_matches_torch(name, device):
    fn, make, shape = ACTIVATIONS[name]
    rng = np.random.default_rng(7)
    gradgrad(fn, make(rng, *shape), seed=8, device=device)


# ---------------------------------------------------------------------------------------- pointwise math
def _u(lo, hi):
    return lambda rng, *shape: rng.uniform(lo, hi, shape)


_pos = _u(0.3, 2.5)
_unit = _u(-0.9, 0.9)


def _sq(op):
    """op(x) times x: its second derivative in x is not zero even where op's is (linear, piecewise ops)."""
    return lambda m, x: op(m, x) * x


UNARY = {
    "reciprocal": (lambda m, x: x.reciprocal(), _away),
    "rsqrt": (lambda m, x: x.rsqrt(), _pos),
    "log1p": (lambda m, x: x.log1p(), _u(-0.8, 2.0)),
    "expm1": (lambda m, x: x.expm1(), _randn),
    "exp2": (lambda m, x: x.exp2(), _randn),
    "log2": (lambda m, x: x.log2(), _pos),
    "log10": (lambda m, x: x.log10(), _pos),
    "erf": (lambda m, x: x.erf(), _randn),
    "erfc": (lambda m, x: x.erfc(), _randn),
    "erfinv": (lambda m, x: x.erfinv(), _unit),
    "sinh": (lambda m, x: x.sinh(), _randn),
    "cosh": (lambda m, x: x.cosh(), _randn),
    "tan": (lambda m, x: x.tan(), _unit),
    "asin": (lambda m, x: x.asin(), _unit),
    "acos": (lambda m, x: x.acos(), _unit),
    "atan": (lambda m, x: x.atan(), _randn),
    "asinh": (lambda m, x: x.asinh(), _randn),
    "acosh": (lambda m, x: x.acosh(), _u(1.2, 3.0)),
    "atanh": (lambda m, x: x.atanh(), _unit),
    "logit": (lambda m, x: x.logit(), _u(0.1, 0.9)),
    "logit_eps": (lambda m, x: x.logit(eps=0.2), _u(0.05, 0.95)),
    "frac": (_sq(lambda m, x: (x * 3).frac()), _u(0.05, 0.3)),
    "deg2rad": (_sq(lambda m, x: x.deg2rad()), _randn),
    "rad2deg": (_sq(lambda m, x: x.rad2deg()), _randn),
    "sinc": (lambda m, x: x.sinc(), _away),
    "lgamma": (lambda m, x: x.lgamma(), _pos),
    "digamma": (lambda m, x: x.digamma(), _pos),
    "polygamma_2": (lambda m, x: m.polygamma(2, x), _pos),
    "i0": (lambda m, x: x.i0(), _randn),
    "special_i0e": (lambda m, x: m.special.i0e(x), _away),
    "special_i1": (lambda m, x: m.special.i1(x), _away),
    "special_i1e": (lambda m, x: m.special.i1e(x), _away),
    "special_entr": (lambda m, x: m.special.entr(x), _pos),
    "special_ndtri": (lambda m, x: m.special.ndtri(x), _u(0.1, 0.9)),
    "special_log_ndtr": (lambda m, x: m.special.log_ndtr(x), _randn),
    "special_erfcx": (lambda m, x: m.special.erfcx(x), _randn),
    "clamp": (_sq(lambda m, x: x.clamp(-0.5, 0.7)), _away),
    "clamp_min": (_sq(lambda m, x: x.clamp(min=0.2)), _away),
    "clamp_max": (_sq(lambda m, x: m.clamp_max(x, 0.3)), _away),
    "nan_to_num": (lambda m, x: m.nan_to_num(x * 1, nan=0.5, posinf=3.0) ** 2,
                   lambda rng, *s: np.where(rng.random(s) < 0.3, np.nan, rng.standard_normal(s))),
    "masked_fill": (_sq(lambda m, x: x.masked_fill(m.tensor(np.arange(12).reshape(3, 4) % 3 == 0), 2.0)), _randn),
    "masked_fill_broadcast": (_sq(lambda m, x: x.masked_fill(m.tensor(np.array([True, False, False, True])), -1.5)),
                              _randn),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_second_derivative_matches_torch(name, device):
    fn, make = UNARY[name]
    rng = np.random.default_rng(11)
    gradgrad(fn, make(rng, 3, 4), seed=12, device=device)


_COND = np.array([[True, False, True, False]] * 2 + [[False, False, True, True]])

BINARY = {
    "atan2": (lambda m, a, b: m.atan2(a, b), _randn, _away, (4,)),
    "maximum": (lambda m, a, b: m.maximum(a, b) * a * b, _randn, _randn, (3, 4)),
    "minimum_broadcast": (lambda m, a, b: m.minimum(a, b) * a * b, _randn, _randn, (4,)),
    "fmax": (lambda m, a, b: m.fmax(a, b) * a * b, _randn, _randn, (4,)),
    "fmin": (lambda m, a, b: m.fmin(a, b) * a * b, _randn, _randn, (3, 4)),
    "lerp_low": (lambda m, a, b: m.lerp(a, b, 0.3) * a * b, _randn, _randn, (3, 4)),
    "lerp_high": (lambda m, a, b: m.lerp(a, b, 0.8) ** 2, _randn, _randn, (4,)),
    "xlogy": (lambda m, a, b: m.xlogy(a, b), _randn, _pos, (4,)),
    "xlog1py": (lambda m, a, b: m.special.xlog1py(a, b), _randn, _pos, (3, 4)),
    "logaddexp": (lambda m, a, b: m.logaddexp(a, b), _randn, _randn, (4,)),
    "logaddexp2": (lambda m, a, b: m.logaddexp2(a, b), _randn, _randn, (3, 4)),
    "copysign": (lambda m, a, b: m.copysign(a, b) * a * b, _randn, _away, (4,)),
    "remainder": (lambda m, a, b: m.remainder(a, b) * a * b, _randn, _away, (4,)),
    "fmod": (lambda m, a, b: m.fmod(a, b) * a * b, _randn, _away, (3, 4)),
    "where": (lambda m, a, b: m.where(m.tensor(_COND), a, b) * a, _randn, _randn, (4,)),
    "clamp_tensor": (lambda m, a, b: m.clamp(a, min=b, max=b + 1) * a * b, _randn, _randn, (4,)),
    "clamp_tensor_min_only": (lambda m, a, b: m.clamp(a, min=b) * a * b, _randn, _randn, (3, 4)),
}


@pytest.mark.parametrize("name", BINARY)
def test_binary_second_derivative_matches_torch(name, device):
    fn, make_a, make_b, shape_b = BINARY[name]
    rng = np.random.default_rng(13)
    gradgrad(fn, make_a(rng, 3, 4), make_b(rng, *shape_b), seed=14, device=device)


def test_maximum_and_minimum_split_ties_evenly_in_the_second_derivative():
    rng = np.random.default_rng(15)
    a = rng.standard_normal((3, 4))
    b = np.where(rng.random((3, 4)) < 0.5, a, rng.standard_normal((3, 4)))
    gradgrad(lambda m, a, b: m.maximum(a, b) * a * b + m.minimum(a, b) ** 2, a, b, seed=16)


# ---------------------------------------------------------------------------------------- reductions, scans
def _with_zeros(rng, *shape):
    """Random values with one zero in most rows and two in the first (prod's and cumprod's special paths)."""
    a = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    a.reshape(-1, shape[-1])[:, 1] = 0.0
    a.reshape(-1, shape[-1])[0, -1] = 0.0
    return a


REDUCTIONS = {
    "prod_all": (lambda m, x: x.prod(), _randn, (3, 4)),
    "prod_dim": (lambda m, x: x.prod(1), _randn, (3, 4)),
    "prod_dim0_keepdim": (lambda m, x: x.prod(0, keepdim=True), _randn, (3, 4)),
    "prod_all_with_zeros": (lambda m, x: x.prod(), _with_zeros, (2, 3)),
    "prod_dim_with_zeros": (lambda m, x: x.prod(1), _with_zeros, (3, 4)),
    "prod_dim0_with_zeros": (lambda m, x: x.prod(0), _with_zeros, (4, 3)),
    "var": (lambda m, x: x.var(), _randn, (3, 4)),
    "var_dim_keepdim": (lambda m, x: x.var(1, keepdim=True), _randn, (3, 4)),
    "var_correction0": (lambda m, x: x.var((0, 2), correction=0), _randn, (3, 4, 2)),
    "std": (lambda m, x: x.std(), _randn, (3, 4)),
    "std_dim": (lambda m, x: x.std(0), _randn, (3, 4)),
    "std_unbiased_false_keepdim": (lambda m, x: m.std(x, 1, unbiased=False, keepdim=True), _randn, (3, 4)),
    "var_mean": (lambda m, x: m.var_mean(x, 1), _randn, (3, 4)),
    "norm": (lambda m, x: x.norm(), _randn, (3, 4)),
    "norm_dim": (lambda m, x: x.norm(dim=1), _randn, (3, 4)),
    "norm_p1": (lambda m, x: x.norm(p=1, dim=0) ** 2, _away, (3, 4)),
    "norm_p3_keepdim": (lambda m, x: x.norm(p=3, dim=1, keepdim=True), _away, (3, 4)),
    "norm_p1_5": (lambda m, x: x.norm(p=1.5), _away, (3, 4)),
    "norm_inf": (lambda m, x: x.norm(p=float("inf"), dim=1) * x.sum(1), _randn, (3, 4)),
    "linalg_vector_norm": (lambda m, x: m.linalg.vector_norm(x, dim=(0, 1)), _randn, (3, 4)),
    "max_all": (lambda m, x: x.max() * x, _randn, (3, 4)),
    "min_all": (lambda m, x: x.min() * x, _randn, (3, 4)),
    "amax_dims": (lambda m, x: x.amax((0, 2)) ** 2, _randn, (3, 4, 2)),
    "max_dim": (lambda m, x: x.max(1)[0] * x.sum(1), _randn, (3, 4)),
    "min_dim_keepdim": (lambda m, x: x.min(0, keepdim=True)[0] * x, _randn, (3, 4)),
    "cumsum": (lambda m, x: x.cumsum(1) ** 2, _randn, (3, 4)),
    "cumsum_dim0": (lambda m, x: x.cumsum(0) * x, _randn, (3, 4, 2)),
    "cumprod": (lambda m, x: x.cumprod(1), _away, (3, 4)),
    "cumprod_dim0": (lambda m, x: x.cumprod(0), _away, (4, 3)),
    "cumprod_with_zeros": (lambda m, x: x.cumprod(1), _with_zeros, (3, 4)),
    "logcumsumexp": (lambda m, x: x.logcumsumexp(1), _randn, (3, 4)),
    "logcumsumexp_dim0": (lambda m, x: x.logcumsumexp(0), _randn, (4, 3)),
    "cummax": (lambda m, x: x.cummax(1)[0] * x, _randn, (3, 4)),
    "cummin_dim0": (lambda m, x: x.cummin(0)[0] ** 2, _randn, (4, 3)),
    # strided inputs, dims of one element, 0-d tensors
    "prod_transposed": (lambda m, x: x.t().prod(1), _randn, (3, 4)),
    "cumsum_transposed": (lambda m, x: x.t().cumsum(1) ** 2, _randn, (3, 4)),
    "cumprod_strided": (lambda m, x: x[:, ::2].cumprod(0), _away, (3, 4)),
    "logsumexp_strided": (lambda m, x: m.logsumexp(x.t()[1:], 0), _randn, (3, 4)),
    "var_transposed": (lambda m, x: x.t().var(1), _randn, (3, 4)),
    "cumsum_dim_of_one": (lambda m, x: x.cumsum(0) ** 2, _randn, (1, 4)),
    "cumprod_dim_of_one": (lambda m, x: x.cumprod(0) ** 2, _randn, (1, 4)),
    "prod_0d": (lambda m, x: x.sum().prod() ** 2, _randn, (3,)),
    "softmax_0d": (lambda m, x: m.softmax(x.sum(), 0) * x, _randn, (3,)),
    "log_softmax_0d": (lambda m, x: m.log_softmax(x.sum(), 0) * x, _randn, (3,)),
    "logsumexp_0d": (lambda m, x: m.logsumexp(x.sum(), 0) * x, _randn, (3,)),
    "var_no_degrees_of_freedom": (lambda m, x: x.var(1) * x.sum(), _randn, (3, 1)),
    "prod_empty": (lambda m, x: x[:, :0].prod(1) * x.sum(1), _randn, (3, 4)),
}


@pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_second_derivative_matches_torch(name, device):
    fn, make, shape = REDUCTIONS[name]
    rng = np.random.default_rng(17)
    gradgrad(fn, make(rng, *shape), seed=18, device=device)


# ----------------------------------------------------------------------------------------------------- losses
_TARGET = np.array([2, 0, 4, 1, 2, 3])
_IGNORED = np.array([2, -100, 4, 1, -100, 3])
_W = np.array([0.5, 1.5, 1.0, 2.0, 0.7])


def _ce(**kw):
    def fn(m, x):
        w = kw.get("weight")
        args = {k: v for k, v in kw.items() if k not in ("weight", "target")}
        return m.nn.functional.cross_entropy(x, m.tensor(kw.get("target", _TARGET)),
                                             weight=None if w is None else m.tensor(w).to(x.dtype), **args)
    return fn


CROSS_ENTROPY = {
    "mean": _ce(),
    "sum": _ce(reduction="sum"),
    "none": _ce(reduction="none"),
    "weight_mean": _ce(weight=_W),
    "weight_none": _ce(weight=_W, reduction="none"),
    "ignore_index_mean": _ce(target=_IGNORED),
    "ignore_index_weight_sum": _ce(target=_IGNORED, weight=_W, reduction="sum"),
    "label_smoothing": _ce(label_smoothing=0.2),
    "label_smoothing_weight_ignore_mean": _ce(target=_IGNORED, weight=_W, label_smoothing=0.3),
    "label_smoothing_none": _ce(reduction="none", label_smoothing=0.1),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", CROSS_ENTROPY)
def test_cross_entropy_second_derivative_matches_torch(name, dtype, device):
    # float32 takes the compiled kernels' path where they are installed (the node keeps other arrays there)
    rng = np.random.default_rng(19)
    x = rng.standard_normal((6, 5)).astype(dtype)
    tol = dict(rtol=1e-7, atol=1e-10) if dtype == "float64" else dict(rtol=2e-5, atol=1e-6)
    gradgrad(CROSS_ENTROPY[name], x, seed=20, **tol, device=device)


@pytest.mark.parametrize("name", ["mean", "weight_none", "ignore_index_weight_sum",
                                  "label_smoothing_weight_ignore_mean"])
def test_cross_entropy_second_derivative_without_the_compiled_kernels_matches_torch(name, monkeypatch):
    # the op's NumPy path keeps other arrays on its node than the compiled kernels' path
    from dtrain._ops import activation
    monkeypatch.setattr(activation, "_fused", lambda dim, *arrays: None)
    rng = np.random.default_rng(37)
    gradgrad(CROSS_ENTROPY[name], rng.standard_normal((6, 5)), seed=38)


def test_cross_entropy_over_spatial_dims_second_derivative_matches_torch():
    rng = np.random.default_rng(21)
    target = rng.integers(0, 3, (2, 4, 2))
    gradgrad(lambda m, x: m.nn.functional.cross_entropy(x, m.tensor(target)), rng.standard_normal((2, 3, 4, 2)),
             seed=22)


LOSSES = {
    "mse": lambda m, x, y: m.nn.functional.mse_loss(x, y),
    "mse_sum": lambda m, x, y: m.nn.functional.mse_loss(x, y, reduction="sum"),
    "l1": lambda m, x, y: m.nn.functional.l1_loss(x, y) * x.sum(),
    "smooth_l1": lambda m, x, y: m.nn.functional.smooth_l1_loss(x, y, beta=0.8),
    "huber": lambda m, x, y: m.nn.functional.huber_loss(x, y, reduction="none", delta=0.7),
    "bce": lambda m, x, y: m.nn.functional.binary_cross_entropy(x.sigmoid(), y.sigmoid()),
    "bce_weight_sum": lambda m, x, y: m.nn.functional.binary_cross_entropy(
        x.sigmoid(), y.sigmoid(), weight=m.tensor(np.linspace(0.5, 1.5, 4)), reduction="sum"),
    "bce_with_logits": lambda m, x, y: m.nn.functional.binary_cross_entropy_with_logits(x, y.sigmoid()),
    "bce_with_logits_pos_weight": lambda m, x, y: m.nn.functional.binary_cross_entropy_with_logits(
        x, y.sigmoid(), pos_weight=m.tensor(np.linspace(0.5, 2.0, 4)), reduction="none"),
    "nll": lambda m, x, y: m.nn.functional.nll_loss(m.log_softmax(x, 1), m.tensor(np.array([1, 0, 3]))) * y.sum(),
    "nll_weight_ignore_none": lambda m, x, y: m.nn.functional.nll_loss(
        m.log_softmax(x * y, 1), m.tensor(np.array([1, -100, 3])), weight=m.tensor(np.linspace(0.5, 2.0, 4)),
        reduction="none"),
    "kl_div": lambda m, x, y: m.nn.functional.kl_div(m.log_softmax(x, 1), m.softmax(y, 1), reduction="batchmean"),
    "kl_div_log_target": lambda m, x, y: m.nn.functional.kl_div(m.log_softmax(x, 1), m.log_softmax(y, 1),
                                                                reduction="sum", log_target=True),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_second_derivative_matches_torch(name, device):
    rng = np.random.default_rng(23)
    x, y = _away(rng, 3, 4), _away(rng, 3, 4)
    if name.startswith("nll") and "Gather" not in _double._FORMULAS:
        # nll_loss picks its terms with gather, whose formula belongs with the indexing ops: until it exists,
        # the error names it (and once it does, this case compares with torch)
        with pytest.raises(NotImplementedError, match="GatherBackward0"):
            gradgrad(LOSSES[name], x, y, seed=24, device=device)
        return
    gradgrad(LOSSES[name], x, y, seed=24, device=device)


# composites of the ops above, as training programs call them (their second derivatives follow from the formulas)
COMPOSITES = {
    "normalize": lambda m, x: m.nn.functional.normalize(x, dim=1),
    "cosine_similarity": lambda m, x: m.nn.functional.cosine_similarity(x, x ** 2, dim=1),
    "pairwise_distance": lambda m, x: m.nn.functional.pairwise_distance(x, x ** 2),
    "cross_entropy_probabilities": lambda m, x: m.nn.functional.cross_entropy(x, m.softmax(x.detach() * 2, 1),
                                                                              label_smoothing=0.1),
    "gaussian_nll_loss": lambda m, x: m.nn.functional.gaussian_nll_loss(x, x ** 2, x.abs() + 1),
    "poisson_nll_loss": lambda m, x: m.nn.functional.poisson_nll_loss(x, x.abs()),
    "soft_margin_loss": lambda m, x: m.nn.functional.soft_margin_loss(x, m.sign(x.detach())),
    "hypot": lambda m, x: m.hypot(x, x * 2 + 1),
    "float_power": lambda m, x: m.float_power(x.abs() + 1, 2.5),
    "dist": lambda m, x: m.dist(x, x.detach() * 2 + 1),
    "addcdiv": lambda m, x: m.addcdiv(x, x, x.abs() + 1),
    "std_mean": lambda m, x: m.std_mean(x, 1)[0] * m.std_mean(x, 1)[1],
    "nanmean": lambda m, x: x.nanmean(1) ** 2,
    "mvlgamma": lambda m, x: (x.abs() + 2).mvlgamma(2),
}


@pytest.mark.parametrize("name", COMPOSITES)
def test_composite_second_derivative_matches_torch(name):
    rng = np.random.default_rng(34)
    gradgrad(COMPOSITES[name], _away(rng, 3, 4) * 1.7, seed=35)


# ---------------------------------------------------------------------------- piecewise constant, selections
PIECEWISE = {
    "floor": lambda m, x: x.floor() * x ** 2,
    "ceil": lambda m, x: x.ceil() * x ** 2,
    "round": lambda m, x: x.round() * x ** 2,
    "round_decimals": lambda m, x: x.round(decimals=1) * x ** 2,
    "trunc": lambda m, x: x.trunc() * x ** 2,
    "sign": lambda m, x: x.sign() * x ** 2,
    "angle_real": lambda m, x: x.angle() * x ** 2,
    "frexp": lambda m, x: m.frexp(x * 5)[0] * x,
    "median": lambda m, x: x.median() * x ** 2,
    "nanmedian": lambda m, x: x.nanmedian() * x,
}


@pytest.mark.parametrize("name", PIECEWISE)
def test_piecewise_constant_and_selection_second_derivative_matches_torch(name, device):
    rng = np.random.default_rng(25)
    gradgrad(PIECEWISE[name], _away(rng, 3, 4) * 3, seed=26, device=device)


def test_median_shares_the_second_derivative_among_ties_as_torch():
    rng = np.random.default_rng(27)
    a = _away(rng, 2, 3)
    gradgrad(lambda m, x: x.median() * x ** 2 + x.max() * x, np.concatenate([a, a]), seed=28)


# ------------------------------------------------------------------------------------------------ third order
def _third(m, fn, x_array, seed):
    """Third derivatives: of (second gradients * w).sum(), the second gradients those of (g * v).sum()."""
    rng = np.random.default_rng(seed)
    x = _tensor(m, x_array, True)
    out = fn(m, x)
    out = out[0] if isinstance(out, tuple) else out
    go = _tensor(m, rng.standard_normal(tuple(out.shape)), True)
    v, w, wg = (_tensor(m, rng.standard_normal(s), False) for s in (x_array.shape, x_array.shape, tuple(out.shape)))
    (g,) = m.autograd.grad(out, x, go, create_graph=True)
    hx, hg = m.autograd.grad((g * v).sum(), (x, go), create_graph=True)
    return m.autograd.grad((hx * w).sum() + (hg * wg).sum(), (x, go), allow_unused=True)


THIRD = {
    "gelu": (lambda m, x: m.nn.functional.gelu(x), _randn),
    "gelu_tanh": (lambda m, x: m.nn.functional.gelu(x, approximate="tanh"), _randn),
    "silu": (lambda m, x: m.nn.functional.silu(x), _randn),
    "elu": (lambda m, x: m.nn.functional.elu(x), _away),
    "softplus": (lambda m, x: m.nn.functional.softplus(x), _randn),
    "softmax": (lambda m, x: m.softmax(x, 1), _randn),
    "log_softmax": (lambda m, x: m.log_softmax(x, 0), _randn),
    "logsumexp": (lambda m, x: m.logsumexp(x, 1), _randn),
    "erfinv": (lambda m, x: x.erfinv(), _unit),
    "logaddexp": (lambda m, x: m.logaddexp(x, x * 0.5 + 1), _randn),
    "std": (lambda m, x: x.std(1), _randn),
    "norm_p3": (lambda m, x: x.norm(p=3, dim=0), _away),
    "prod_with_zeros": (lambda m, x: x.prod(1), _with_zeros),
    "cumsum": (lambda m, x: x.cumsum(1) ** 3, _randn),
    "cumprod": (lambda m, x: x.cumprod(1), _away),
    "logcumsumexp": (lambda m, x: x.logcumsumexp(1), _randn),
    "cummax": (lambda m, x: x.cummax(1)[0] ** 3, _randn),
    "max_dim": (lambda m, x: x.max(0)[0] ** 3, _randn),
    "cross_entropy": (lambda m, x: m.nn.functional.cross_entropy(x, m.tensor(np.array([1, 0, 3])),
                                                                 label_smoothing=0.1), _randn),
}


# torch's own third derivative of logcumsumexp is NaN where its log-space formula takes log(0): the oracle there
# is the plain composite, exact for these moderate values
_THIRD_ORACLE = {"logcumsumexp": lambda m, x: x.exp().cumsum(1).log()}


@pytest.mark.parametrize("name", THIRD)
def test_third_derivative_matches_torch(name):
    # the formulas' own nodes (flips, gathers, cumulative products) are differentiated by their formulas here
    fn, make = THIRD[name]
    x = make(np.random.default_rng(29), 3, 4)
    for a, e in zip(_third(dtrain, fn, x, 30), _third(torch, _THIRD_ORACLE.get(name, fn), x, 30)):
        assert_close(np.zeros(tuple(e.shape)) if a is None else a, np.zeros(tuple(e.shape)) if e is None else e,
                     1e-10, 1e-7, "third derivative")


# ------------------------------------------------------------------------------------------- half precision
LOW_PRECISION = {
    "log_softmax": lambda m, x: m.log_softmax(x, 1),
    "softmax": lambda m, x: m.softmax(x, 0),
    "gelu": lambda m, x: m.nn.functional.gelu(x),
    "gelu_tanh": lambda m, x: m.nn.functional.gelu(x, approximate="tanh"),
    "logsumexp": lambda m, x: m.logsumexp(x, 1),
    "std": lambda m, x: x.std(1),
    "norm": lambda m, x: x.norm(dim=1),
    "lgamma": lambda m, x: (x.abs() + 0.5).lgamma(),
    "cross_entropy": lambda m, x: m.nn.functional.cross_entropy(x, m.tensor(np.array([0, 2, 3]))),
}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_half_precision_second_derivative_keeps_the_dtype_and_matches_torch(name, dtype):
    # ops that compute half precision in float32 (widened) saved float32 arrays; the formulas work in the
    # graph's dtype, as torch's
    rng = np.random.default_rng(31)
    xa, va = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    res = []
    for m in (dtrain, torch):
        x = m.tensor(xa).to(getattr(m, dtype)).requires_grad_()
        out = LOW_PRECISION[name](m, x)
        w = m.tensor(np.linspace(0.5, 2.0, out.numel()).reshape(tuple(out.shape))).to(out.dtype)
        (g,) = m.autograd.grad((out * w).sum(), x, create_graph=True)
        (h,) = m.autograd.grad((g * m.tensor(va).to(g.dtype)).sum(), x)
        res.append((g, h))
    for a, e in zip(*res):
        assert str(a.dtype) == str(e.dtype)
        a, e = a.detach().double().numpy(), e.detach().double().numpy()
        assert np.abs(a - e).max() <= 0.03 * np.abs(e).max() + 1e-3, (a, e)


@pytest.mark.parametrize("fn", [lambda x: x.angle(), lambda x: x.prod().abs(), lambda x: x.tan().abs()],
                         ids=["angle", "prod", "tan"])
def test_create_graph_through_an_op_on_complex_tensors_raises(fn):
    # torch's complex derivatives take conjugates: rather than a wrong second derivative, an error
    x = dtrain.tensor(np.array([1 + 2j, -0.5 + 1j]), requires_grad=True)
    with pytest.raises(NotImplementedError, match="complex tensors \\(complex128, shape \\(2,\\)\\)"):
        dtrain.autograd.grad(fn(x).sum(), x, create_graph=True)


def test_poisson_counts_are_constants_in_the_second_derivative():
    # the draws differ from torch's: torch's side takes dtrain's counts as constants (its rule for poisson)
    rng = np.random.default_rng(32)
    x = rng.uniform(1.0, 4.0, (3, 4))
    dtrain.manual_seed(0)
    counts = dtrain.poisson(dtrain.tensor(x)).numpy()

    def fn(m, x):
        if m is torch:
            return torch.tensor(counts) * x ** 2
        dtrain.manual_seed(0)
        return dtrain.poisson(x * 1) * x ** 2

    gradgrad(fn, x, seed=33)


def test_hardsigmoid_has_no_double_backward_as_in_torch():
    # torch does not differentiate hardsigmoid's backward: the first gradient is made, differentiating it
    # raises; dtrain's hardsigmoid is made of hardtanh, which has a double backward, and stops as torch's does
    xa = np.array([-4.0, -1.0, 0.5, 2.0, 4.0])
    errors = []
    for m in (dtrain, torch):
        x = m.tensor(xa, requires_grad=True)
        (g,) = m.autograd.grad((m.nn.functional.hardsigmoid(x) * x).sum(), x, create_graph=True)
        assert_close(g.detach(), (xa / 3 + 0.5) * (np.abs(xa) < 3) + (xa >= 3))
        (g0,) = m.autograd.grad(m.nn.functional.hardsigmoid(x).sum(), x, create_graph=True)
        assert g0.requires_grad  # (it depends on x, as torch's: only differentiating it fails)
        with pytest.raises(RuntimeError) as e:
            m.autograd.grad(g.sum(), x)
        errors.append(str(e.value))
    assert errors[0] == errors[1] == "derivative for aten::hardsigmoid_backward is not implemented"


# ------------------------------------------------------------------------------- finite differences (no torch)
GRADGRADCHECK = {
    "gelu": lambda a: dtrain.nn.functional.gelu(a),
    "gelu_tanh": lambda a: dtrain.nn.functional.gelu(a, approximate="tanh"),
    "log_softmax": lambda a: dtrain.log_softmax(a, 0),
    "logsumexp": lambda a: dtrain.logsumexp(a, 1),
    "std": lambda a: a.std(1),
    "prod_with_zeros": lambda a: a.prod(1),
    "cumprod_with_zeros": lambda a: a.cumprod(1),
    "cummax": lambda a: a.cummax(1)[0],
    "logcumsumexp": lambda a: a.logcumsumexp(1),
    "cross_entropy": lambda a: dtrain.nn.functional.cross_entropy(a, dtrain.tensor([0, 3, 1]), label_smoothing=0.2),
}


@pytest.mark.parametrize("name", GRADGRADCHECK)
def test_gradgradcheck(name):
    rng = np.random.default_rng(36)
    x = _with_zeros(rng, 3, 4) if "zeros" in name else rng.standard_normal((3, 4))
    assert dtrain.autograd.gradgradcheck(GRADGRADCHECK[name], (dtrain.tensor(x, requires_grad=True),))
