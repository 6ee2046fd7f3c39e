"""Floating-point exceptions stay silent as in torch (log(0), 0/0, overflowing exp and casts, asin(2), ...):
no NumPy RuntimeWarning reaches the user, even under warnings.simplefilter("error"); and the NumPy error state
dtrain sets at import is only the default one (see _backend.numpy_errors_as_torch)."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import dtrain

_VALS = [0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0, 1e38, -2.5, 0.5, 1e-45, 2.0]

_UNARY = ["abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "ceil", "cos", "cosh", "digamma", "erf", "erfc",
          "erfinv", "exp", "exp2", "expm1", "floor", "frac", "lgamma", "log", "log10", "log1p", "log2", "logit",
          "reciprocal", "relu", "round", "rsqrt", "sigmoid", "sign", "sin", "sinc", "sinh", "sqrt", "square", "tan",
          "tanh", "trunc", "deg2rad", "rad2deg", "nan_to_num"]
_BINARY = ["add", "sub", "mul", "div", "pow", "atan2", "maximum", "minimum", "fmod", "remainder", "xlogy", "hypot",
           "logaddexp", "logaddexp2", "copysign", "fmax", "fmin", "float_power"]
_F = ["gelu", "silu", "elu", "selu", "celu", "softplus", "mish", "logsigmoid", "hardswish", "leaky_relu", "softsign",
      "tanhshrink"]


def _x(T, dtype=None, vals=_VALS):
    return T.tensor(vals, dtype=dtype or T.float32, requires_grad=True)


CASES = [
    *[(op, (lambda op: lambda T: getattr(T, op)(_x(T)))(op)) for op in _UNARY],
    *[(op + "_f64", (lambda op: lambda T: getattr(T, op)(_x(T, T.float64)))(op)) for op in ("log", "exp", "acos")],
    *[(op, (lambda op: lambda T: getattr(T, op)(_x(T), _x(T).detach().flip(0)))(op)) for op in _BINARY],
    *[("F." + op, (lambda op: lambda T: getattr(T.nn.functional, op)(_x(T)))(op)) for op in _F],
    ("softmax_all_-inf", lambda T: T.softmax(_x(T, vals=[-np.inf] * 3), 0)),
    ("log_softmax_all_-inf", lambda T: T.log_softmax(_x(T, vals=[-np.inf] * 3), 0)),
    ("sum", lambda T: _x(T).sum()),
    ("prod", lambda T: _x(T).prod()),
    ("cumprod", lambda T: _x(T).cumprod(0)),
    ("logcumsumexp", lambda T: _x(T).logcumsumexp(0)),
    ("logsumexp", lambda T: _x(T).logsumexp(0)),
    ("norm", lambda T: _x(T).norm()),
    ("norm_of_zeros", lambda T: _x(T, vals=[0.0] * 3).norm()),
    ("std_of_two_equal", lambda T: _x(T, vals=[1.0, 1.0]).std()),
    ("mean_of_nothing", lambda T: _x(T, vals=[]).mean()),
    ("amax", lambda T: _x(T).amax()),
    ("normalize_zeros", lambda T: T.nn.functional.normalize(_x(T, vals=[0.0] * 3), dim=0)),
    ("cdist_same_points", lambda T: T.cdist(_x(T, vals=[0.0] * 4).reshape(2, 2), T.zeros(2, 2))),
    ("bce_at_0_and_1", lambda T: T.nn.functional.binary_cross_entropy(_x(T, vals=[0.0, 1.0, 0.5]),
                                                                      T.tensor([0.0, 1.0, 1.0]))),
    ("bce_with_logits_inf", lambda T: T.nn.functional.binary_cross_entropy_with_logits(_x(T), T.ones(len(_VALS)))),
    ("cross_entropy_inf_logit", lambda T: T.nn.functional.cross_entropy(
        _x(T, vals=[np.inf, 0.0, -np.inf]).reshape(1, 3), T.tensor([0]))),
    ("to_int32", lambda T: _x(T).detach().to(T.int32)),
    ("to_half", lambda T: T.tensor([1e38, 7e4, -1e38]).half()),
    ("float64_to_float32", lambda T: T.tensor([1e300], dtype=T.float64).float()),
]


@pytest.mark.parametrize("label,f", CASES, ids=[c[0] for c in CASES])
def test_no_numpy_warning_where_torch_prints_nothing(label, f):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would raise here
        y = f(dtrain)
        if y.requires_grad:
            y.sum().backward()
        out = y.detach().numpy()
    want = f(torch).detach().numpy()
    if want.dtype.kind == "f":  # the values where torch's are finite (at the infinities some differ: gelu(inf))
        finite = np.isfinite(want)
        np.testing.assert_allclose(out[finite], want[finite], rtol=1e-3, atol=1e-30)


def test_optimizer_and_clipping_over_inf_and_nan_gradients_are_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = dtrain.nn.Parameter(dtrain.tensor([1.0, 2.0, 3.0]))
        p.grad = dtrain.tensor([np.inf, np.nan, 0.0])
        dtrain.nn.utils.clip_grad_norm_([p], 1.0)
        dtrain.optim.Adam([p]).step()


def _errstate_after_import(prelude="", **env):
    code = f"import numpy as np\n{prelude}\nimport dtrain\nprint(sorted(np.geterr().items()))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, **env))
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_import_sets_torchs_silence_only_over_numpys_default():
    ignore = str(sorted(dict.fromkeys(["divide", "over", "under", "invalid"], "ignore").items()))
    default = str(sorted({"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}.items()))
    assert _errstate_after_import() == ignore
    # a process that chose its NumPy error state keeps it; so does one that asks dtrain to keep NumPy's
    chosen = _errstate_after_import('np.seterr(divide="raise")')
    assert "('divide', 'raise')" in chosen and "('invalid', 'warn')" in chosen
    assert _errstate_after_import(DTRAIN_NUMPY_ERRSTATE="keep") == default


@pytest.mark.parametrize("f", [lambda T: T.ones(1).std(), lambda T: T.ones(3, 1).var(1),
                               lambda T: T.ones(3).var(correction=3), lambda T: T.ones(0).var(),
                               lambda T: T.ones(0, 3).std(0), lambda T: T.ones(2).var()])
def test_std_and_var_warn_as_torch_where_there_are_no_degrees_of_freedom(f):
    def said(T):
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            f(T)
        return [(w.category, str(w.message).split(" (Triggered internally")[0]) for w in ws]
    assert said(dtrain) == said(torch)
