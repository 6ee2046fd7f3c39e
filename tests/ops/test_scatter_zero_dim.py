"""gather/scatter with a 0-dim index or src on a tensor of at most one dim: torch counts such a tensor as one
element of one dim (the official FashionMNIST one-hot is `zeros(10).scatter_(0, tensor(y), value=1)`)."""
import pytest
import torch

import dtrain
from helpers import assert_close

CASES = [
    lambda m: m.zeros(10).scatter_(0, m.tensor(3), value=1),
    lambda m: m.zeros(10).scatter(0, m.tensor(3), m.tensor(5.0)),
    lambda m: m.zeros(10).scatter(-1, m.tensor([3]), m.tensor(5.0)),
    lambda m: m.zeros(10).scatter_add(0, m.tensor(7), m.tensor(2.0)),
    lambda m: m.zeros(()).scatter_(0, m.tensor(0), value=1),
    lambda m: m.zeros(()).scatter(0, m.tensor([0]), m.tensor([4.0])),
    lambda m: m.arange(10.0).gather(0, m.tensor(3)),
    lambda m: m.tensor(4.0).gather(0, m.tensor([0, 0])),
    lambda m: m.tensor(4.0).gather(0, m.tensor(0)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_zero_dim_index_matches_torch(case):
    got, want = CASES[case](dtrain), CASES[case](torch)
    assert tuple(got.shape) == tuple(want.shape) and str(got.dtype) == str(want.dtype)
    assert_close(got, want)


def test_one_hot_loop_of_fashion_mnist_tutorial():
    # the tutorial's target_transform, applied to every label
    for y in range(10):
        assert_close(dtrain.zeros(10, dtype=dtrain.float).scatter_(0, dtrain.tensor(y), value=1),
                     torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(y), value=1))


def test_zero_dim_source_has_gradients_as_torch():
    xd, xt = dtrain.zeros(5, requires_grad=True), torch.zeros(5, requires_grad=True)
    sd, st = dtrain.tensor(2.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    (xd.scatter(0, dtrain.tensor(1), sd) * dtrain.arange(5.0)).sum().backward()
    (xt.scatter(0, torch.tensor(1), st) * torch.arange(5.0)).sum().backward()
    assert_close(xd.grad, xt.grad)
    assert_close(sd.grad, st.grad)


def test_zero_dim_index_on_a_matrix_raises_as_torch():
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        torch.zeros(2, 3).scatter_(1, torch.tensor(1), value=1)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        dtrain.zeros(2, 3).scatter_(1, dtrain.tensor(1), value=1)
