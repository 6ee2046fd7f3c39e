"""The Python operators' fast path (`a + 2.0`, `a * b` of one dtype and shape) and the shared wrapped numbers:
the same values, dtypes, errors and graphs as torch's, whichever path an operand takes."""
import operator

import numpy as np
import pytest
import torch

import dtrain

OPS = [operator.add, operator.sub, operator.mul, operator.truediv]
DTYPES = ["float32", "float64", "float16", "complex64", "int32", "int64", "uint8", "bool"]


def _pair(dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 5, size=(3, 4)) if dtype in ("int32", "int64", "uint8") else rng.standard_normal((3, 4))
    a = (rng.random((3, 4)) > 0.5) if dtype == "bool" else a
    if dtype == "complex64":
        a = a + 1j * rng.standard_normal((3, 4))
    a = a.astype(dtype)
    return dtrain.tensor(a.copy()), torch.tensor(a.copy())


def _same(run, *args):
    """Run `run(module-tensors...)` in both; the same error type, or the same dtype and values."""
    try:
        want = run(*(a[1] for a in args))
    except Exception as e:  # noqa: BLE001 - torch's exception type is the oracle
        with pytest.raises(type(e)):
            run(*(a[0] for a in args))
        return
    got = run(*(a[0] for a in args))
    assert str(got.dtype) == str(want.dtype), (got.dtype, want.dtype)
    np.testing.assert_allclose(got.numpy().astype(np.complex128), want.numpy().astype(np.complex128),
                               rtol=1e-3 if want.dtype == torch.float16 else 1e-6)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scalar", [2.5, 3, -0.0, 300, True])
def test_tensor_and_number(op, dtype, scalar):
    a = _pair(dtype, 0)
    _same(lambda t: op(t, scalar), a)
    _same(lambda t: op(scalar, t), a)  # the reflected operator


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_and_tensor(op, dtype):
    a, b = _pair(dtype, 1), _pair(dtype, 2)
    _same(op, a, b)  # one dtype and shape: the fast path
    _same(lambda x, y: op(x, y[:1]), a, b)  # broadcast: the general path
    if dtype != "complex64":
        _same(lambda x, y: op(x, y.double()), a, b)  # promotion: the general path


def test_signed_zero_is_not_shared_with_zero():
    x = dtrain.tensor([1.0, -2.0])
    assert np.array_equal(np.signbit((x * 0.0).numpy()), [False, True])
    assert np.array_equal(np.signbit((x * -0.0).numpy()), [True, False])
    assert np.array_equal(np.signbit((x * 0.0).numpy()), [False, True])


def test_many_numbers_and_their_gradients():
    # more distinct numbers than the shared ones kept: every product and gradient still matches torch
    xs = np.random.default_rng(3).standard_normal(5).astype(np.float32)
    x, tx = dtrain.tensor(xs, requires_grad=True), torch.tensor(xs, requires_grad=True)
    for k in range(600):
        c = 1.0 + k / 7
        y, ty = (x * c + c).sum(), (tx * c + c).sum()
        y.backward()
        ty.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(y.item(), ty.item(), rtol=1e-6)


def test_number_operand_graph_is_torchs():
    x = dtrain.ones(3, requires_grad=True)
    tx = torch.ones(3, requires_grad=True)
    y, ty = x * 2.0, tx * 2.0
    assert type(y.grad_fn).__name__ == type(ty.grad_fn).__name__ == "MulBackward0"
    names = [None if n is None else type(n).__name__ for n, _ in y.grad_fn.next_functions]
    tnames = [None if n is None else type(n).__name__ for n, _ in ty.grad_fn.next_functions]
    assert names == tnames == ["AccumulateGrad", None]


def test_pack_hooks_never_see_a_shared_number():
    # a pack hook is handed the saved operands; writing into one must not leak into later products
    x = dtrain.ones(3, requires_grad=True)
    seen = []

    def pack(t):
        if t.dim() == 0:
            seen.append(t)
            t.add_(100.0)
        return t

    with dtrain.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        (x * 3.0).sum().backward()
    assert seen, "the number was saved and handed to the hook"
    np.testing.assert_array_equal((x * 3.0).detach().numpy(), [3.0, 3.0, 3.0])


def test_bool_subtraction_error_on_the_fast_path():
    a = dtrain.tensor([True, False])
    with pytest.raises(RuntimeError, match="Subtraction, the `-` operator, with two bool tensors"):
        a - a
