from helpers import check


def test_linear_relu_sum_matches_torch(device):
    check(lambda m, x, w, b: (x @ w.T + b).relu().sum(), (5, 3), (4, 3), (4,), device=device)


def test_broadcast_arith(device):
    check(lambda m, x, y: (x * y + x / (y * y + 1) - 2.5) ** 2, (2, 3, 4), (3, 1), device=device)
