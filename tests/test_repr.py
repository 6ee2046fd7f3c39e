"""repr(tensor) must match torch's string for string."""
import re

import numpy as np
import pytest
import torch

import dtrain

CASES = {
    "int": "m.tensor([1, 2, 3])",
    "int_neg": "m.tensor([[-1, 20], [300, -4000]])",
    "float_int_mode": "m.tensor([1., 2., 3.])",
    "neg_int_mode": "m.tensor([-1., -2.])",
    "float_fixed": "m.tensor([0.12345, 1.5, -2.25])",
    "float_sci": "m.tensor([1e-5, 1.0, 2.0])",
    "float_big": "m.tensor([1e9, 1.0])",
    "float_ratio": "m.tensor([0.001, 10.5])",
    "ratio_1000": "m.tensor([1., 1000.])",
    "ratio_1001": "m.tensor([1., 1001.])",
    "int_sci": "m.tensor([1., 1e5])",
    "e8": "m.tensor([1e8, 1.])",
    "e8_above": "m.tensor([1.1e8, 1.])",
    "min_1e-4": "m.tensor([0.0001, 0.5])",
    "below_1e-4": "m.tensor([0.00009999, 0.5])",
    "tiny": "m.tensor([1e-10, 2e-10])",
    "nan_inf": "m.tensor([float('nan'), float('inf'), -float('inf'), 1.5])",
    "nan_only": "m.tensor([float('nan'), float('inf')])",
    "nan_int_mode": "m.tensor([float('nan'), 1., 2.])",
    "zeros": "m.zeros(3)",
    "signed_zeros": "m.tensor([0., -0.])",
    "neg_zero_fixed": "m.tensor([-0., 1.5])",
    "negatives_fixed": "m.tensor([-0.5, 0.25, 100.125])",
    "negatives_sci": "m.tensor([-1e-7, 3.0, 5e5])",
    "mixed_width": "m.tensor([[1.5, -100.25], [1000.5, 2.]])",
    "rounding": "m.tensor([0.99999, 1.00001])",
    "rounding2": "m.tensor([9.99995, 1.5])",
    "large_fixed": "m.tensor([12345.678, 1.0])",
    "huge_int": "m.tensor([123456789012, 1])",
    "0d_float": "m.tensor(3.5)",
    "0d_int": "m.tensor(7)",
    "0d_bool": "m.tensor(True)",
    "0d_f64": "m.tensor(2.5, dtype=m.float64)",
    "0d_i8": "m.tensor(5, dtype=m.int8)",
    "0d_sci": "m.tensor(1e-6)",
    "bool": "m.tensor([True, False, True])",
    "bool_2d": "m.tensor([[True, False], [False, True]])",
    "empty": "m.tensor([])",
    "empty_2d": "m.zeros(0, 3)",
    "empty_mid": "m.zeros(2, 0, 3)",
    "empty_int": "m.zeros(0, dtype=m.int64)",
    "empty_f64": "m.zeros(2, 0, dtype=m.float64)",
    "empty_bool": "m.zeros(0, dtype=m.bool)",
    "empty_i32": "m.zeros(0, dtype=m.int32)",
    "3d": "m.arange(24.).reshape(2, 3, 4)",
    "4d": "m.arange(48).reshape(2, 2, 3, 4) - 20",
    "5d": "m.ones(1, 1, 2, 1, 2)",
    "column": "m.arange(10.).reshape(10, 1)",
    "wrap_float": "m.arange(40.) / 7",
    "arange_near_zero": "m.arange(-3.3, 3.3, 0.11)",
    "linspace_100": "m.linspace(-1, 1, 100)",
    "wrap_int": "m.arange(100) * 1000",
    "wrap_2d": "(m.arange(60.) / 7).reshape(2, 30)",
    "wrap_sci": "m.arange(1, 30, dtype=m.float64) ** 6",
    "wrap_with_dtype": "m.arange(40, dtype=m.int32)",
    "wrap_suffix": "(m.arange(17.) / 3).to(m.float64)",
    "suffix_overflow": "m.tensor([1.2345, 2.3456, 3.4567, 4.5678, 5.6789, 6.7891, 7.8912], dtype=m.float64)",
    "summarised": "m.arange(2000.)",
    "summarised_edge": "m.arange(1001)",
    "summarised_2d": "m.arange(3000.).reshape(50, 60) / 3",
    "summarised_3d": "m.arange(4000).reshape(10, 20, 20)",
    "summarised_bool": "m.arange(1200) % 2 == 0",
    "summarised_sci_edges": "m.cat([m.full((600,), 1e-6), m.ones(600)])",
    "f64": "m.tensor([1.5, 2.5], dtype=m.float64)",
    "i32": "m.tensor([1, 2], dtype=m.int32)",
    "f16": "m.tensor([1.5, 2.25], dtype=m.float16)",
    "f16_sci": "m.tensor([1e-5, 1.0], dtype=m.float16)",
    "u8": "m.tensor([1, 200], dtype=m.uint8)",
    "i16": "m.tensor([[-3, 4]], dtype=m.int16)",
    "complex": "m.tensor([1 + 2j, -3.5 - 0.25j])",
    "complex_int_mode": "m.tensor([1 + 2j, 3 - 1j], dtype=m.complex128)",
    "requires_grad": "m.tensor([1.5, 2.0], requires_grad=True)",
    "requires_grad_0d": "m.tensor(1.5, requires_grad=True)",
    "requires_grad_f64": "m.ones(2, dtype=m.float64, requires_grad=True)",
    "requires_grad_wrap": "m.linspace(0, 1, 25, requires_grad=True)",
    "meta": "m.empty(2, 3, device='meta')",
    "meta_int": "m.zeros(4, dtype=m.int64, device='meta')",
}


def _eval(expr, m):
    return repr(eval(expr, {"m": m}))


@pytest.mark.parametrize("name", CASES)
def test_repr_matches_torch(name):
    assert _eval(CASES[name], dtrain) == _eval(CASES[name], torch)


def test_str_is_repr():
    t = dtrain.tensor([[1.5, 2.0]])
    assert str(t) == repr(t) == str(torch.tensor([[1.5, 2.0]]))


def _strip_grad_fn(s):
    return re.sub(r"grad_fn=<\w+>", "grad_fn=<>", s)


@pytest.mark.parametrize("expr", ["x * 2", "x.sum()", "(x * 2).view(3, 1)", "x.exp() + 100000"])
def test_repr_grad_fn(expr):
    outs = []
    for m in (dtrain, torch):
        x = m.tensor([1.5, -2.0, 3.25], requires_grad=True)
        outs.append(_strip_grad_fn(repr(eval(expr, {"x": x}))))
    assert outs[0] == outs[1]
    assert "grad_fn=<" in outs[0]


def test_repr_grad_fn_names():
    x = dtrain.tensor([1.0, 2.0], requires_grad=True)
    assert "grad_fn=<" in repr(x * 2) and "Backward" in repr(x * 2)


@pytest.mark.parametrize("data", [[1.5, 2.0], [[1.0, 2.0], [3.0, 4.0]], 3.0])
@pytest.mark.parametrize("requires_grad", [True, False])
def test_repr_parameter(data, requires_grad):
    p = dtrain.nn.Parameter(dtrain.tensor(data), requires_grad=requires_grad)
    q = torch.nn.Parameter(torch.tensor(data), requires_grad=requires_grad)
    assert repr(p) == repr(q)


@pytest.mark.parametrize("opts", [dict(precision=2), dict(threshold=5), dict(edgeitems=1, threshold=5),
                                  dict(linewidth=40), dict(sci_mode=True), dict(sci_mode=False),
                                  dict(profile="short"), dict(profile="full")])
def test_set_printoptions(opts):
    exprs = ["m.arange(12.).reshape(3, 4) / 3", "m.arange(10)", "m.tensor([1e-6, 1.0])", "m.arange(1500.)"]
    try:
        for e in exprs:
            dtrain.set_printoptions(**opts)
            torch.set_printoptions(**opts)
            assert _eval(e, dtrain) == _eval(e, torch), e
    finally:
        dtrain.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")


@pytest.mark.parametrize("seed", range(5))
def test_repr_random_values(seed):
    rng = np.random.default_rng(seed)
    for shape in [(7,), (3, 5), (2, 3, 4)]:
        for scale in [1e-6, 1e-3, 1.0, 1e3, 1e9]:
            a = (rng.standard_normal(shape) * scale).astype(np.float32)
            assert repr(dtrain.from_numpy(a)) == repr(torch.from_numpy(a))


def test_format_0d():
    assert f"{dtrain.tensor(2.5):.2f}" == f"{torch.tensor(2.5):.2f}"


def test_repr_with_float64_default():
    try:
        dtrain.set_default_dtype(dtrain.float64)
        torch.set_default_dtype(torch.float64)
        for e in ["m.tensor([1.5])", "m.tensor([1.5], dtype=m.float32)", "m.tensor([1j])", "m.zeros(0)",
                  "m.zeros(0, dtype=m.float32)", "m.tensor([1j], dtype=m.complex64)"]:
            assert _eval(e, dtrain) == _eval(e, torch), e
    finally:
        dtrain.set_default_dtype(dtrain.float32)
        torch.set_default_dtype(torch.float32)


def test_repr_bfloat16():
    if dtrain.bfloat16.np is None:
        with pytest.raises(TypeError, match="ml_dtypes"):
            dtrain.tensor([1.5], dtype=dtrain.bfloat16)
        return
    e = "m.tensor([1.5, 2.25, 3.1], dtype=m.bfloat16)"
    assert _eval(e, dtrain) == _eval(e, torch)


NODE_NAMES = ["x.view(6)", "x.t().reshape(6)", "x.reshape(6)", "x.t()", "x.transpose(0, 1)", "x.permute(1, 0)", "x.T",
              "x.unsqueeze(0)", "x.squeeze()", "x.squeeze(0)", "x.squeeze((0,))", "x.expand(2, 2, 3)", "x.repeat(2, 1)",
              "m.cat([x, x])", "x.split(1)[0]", "x.chunk(2)[0]", "x.narrow(0, 0, 1)", "x.flip(0)", "x.tril()",
              "x.triu()", "x.diagonal()", "x.movedim(0, 1)", "x.flatten()", "x[0]", "x[:, 1:]", "x[None]", "x[..., 0]",
              "x[0, None]", "x[None, 0]", "x[m.tensor([0, 1])]", "x[x > 0]", "x.gather(0, m.tensor([[0, 1, 0]]))",
              "x.index_select(0, m.tensor([1]))", "x.masked_fill(x > 1, 0.)", "m.where(x > 1, x, 0.)", "x.clone()",
              "x.to(m.float64)", "x.double()", "x.scatter(0, m.tensor([[0, 1, 0]]), 1.0)",
              "x.scatter(0, m.tensor([[0, 1, 0]]), x)", "x.scatter_add(0, m.tensor([[0, 1, 0]]), x)",
              "x.index_add(0, m.tensor([0]), x[:1])", "x.masked_select(x > 0)", "x.unflatten(1, (3, 1))", "x.mT",
              "x.select(1, 0)", "x.expand_as(m.ones(2, 2, 3))", "m.stack([x, x])", "m.stack([x, x], 2)",
              "x.unbind()[0]", "x.unbind(1)[2]", "x.roll(1)", "x.roll(1, 0)", "x.sort().values", "x.topk(1).values",
              "list(x)[1]"]


@pytest.mark.parametrize("expr", NODE_NAMES)
def test_grad_fn_names_match_torch(expr):
    names = []
    for m in (dtrain, torch):
        x = (m.arange(6.0).reshape(2, 3) + 1).requires_grad_()
        y = eval(expr, {"m": m, "x": x})
        names.append(y.grad_fn.name().split("::")[-1])
        names.append(repr(y))
    assert names[0] == names[2] and names[1] == names[3]
