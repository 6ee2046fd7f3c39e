"""dtrain.linalg against torch.linalg: values and gradients."""
import numpy as np
import pytest

from helpers import check, check_raises

rng = np.random.default_rng(0)
SPD = rng.standard_normal((3, 4, 4)) + 4 * np.eye(4)   # well conditioned

CASES = {
    "vector_norm": (lambda m, x: m.linalg.vector_norm(x), [(3, 4)]),
    "vector_norm_dim_ord3": (lambda m, x: m.linalg.vector_norm(x, 3, dim=1, keepdim=True), [(3, 4)]),
    "vector_norm_inf": (lambda m, x: m.linalg.vector_norm(x, float("inf"), dim=0), [(3, 4)]),
    "matrix_norm": (lambda m, x: m.linalg.matrix_norm(x), [(2, 3, 4)]),
    "matrix_norm_1": (lambda m, x: m.linalg.matrix_norm(x, 1), [(3, 4)]),
    "norm_vec": (lambda m, x: m.linalg.norm(x), [(5,)]),
    "norm_mat": (lambda m, x: m.linalg.norm(x), [(3, 4)]),
    "inv": (lambda m, a: m.linalg.inv(a), [SPD]),
    "inverse_method": (lambda m, a: a[0].inverse(), [SPD]),
    "det": (lambda m, a: m.linalg.det(a), [SPD]),
    "solve": (lambda m, a, b: m.linalg.solve(a, b), [SPD, (3, 4, 2)]),
    "solve_vec": (lambda m, a, b: m.linalg.solve(a, b), [SPD, (3, 4)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_linalg_matches_torch(name, device):
    fn, inputs = CASES[name]
    check(fn, *inputs, device=device, atol=1e-8, rtol=1e-6)


def test_errors():
    import dtrain
    check_raises(lambda m, a: m.linalg.inv(a), (3, 4))
    # torch raises torch.linalg.LinAlgError, a RuntimeError; dtrain its own LinAlgError with the same message
    with pytest.raises(dtrain.linalg.LinAlgError, match="the input matrix is singular"):
        dtrain.linalg.inv(dtrain.zeros(3, 3))
    assert issubclass(dtrain.linalg.LinAlgError, RuntimeError)
