"""nn.utils: gradient clipping and parameter/vector conversion against torch."""
import math

import numpy as np
import pytest
import torch

import dtrain


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    grads = [rng.standard_normal(s).astype(np.float32) * 3 for s in shapes]
    dp, tp = [], []
    for g in grads:
        d = dtrain.nn.Parameter(dtrain.zeros(g.shape))
        d.grad = dtrain.tensor(g.copy())
        t = torch.nn.Parameter(torch.zeros(g.shape))
        t.grad = torch.from_numpy(g.copy())
        dp.append(d), tp.append(t)
    dp.append(dtrain.nn.Parameter(dtrain.zeros(2)))  # no grad: skipped
    tp.append(torch.nn.Parameter(torch.zeros(2)))
    return dp, tp


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    nt = float(norm_type) if isinstance(norm_type, str) else norm_type
    dp, tp = _pair()
    nd = dtrain.nn.utils.clip_grad_norm_(dp, max_norm, norm_type=nt)
    nt_ = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type=nt)
    assert isinstance(nd, dtrain.Tensor) and nd.ndim == 0 and nd.dtype == dtrain.float32
    np.testing.assert_allclose(nd.item(), nt_.item(), rtol=1e-5)
    for d, t in zip(dp, tp):
        if t.grad is None:
            assert d.grad is None
        else:
            np.testing.assert_allclose(d.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_clip_grad_norm_single_tensor_and_nonfinite():
    dp, tp = _pair()
    np.testing.assert_allclose(dtrain.nn.utils.clip_grad_norm_(dp[0], 1.0).item(),
                               torch.nn.utils.clip_grad_norm_(tp[0], 1.0).item(), rtol=1e-6)
    dp[1].grad._data[0] = np.nan
    tp[1].grad[0] = float("nan")
    with pytest.raises(RuntimeError) as te:
        torch.nn.utils.clip_grad_norm_(tp, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as de:
        dtrain.nn.utils.clip_grad_norm_(dp, 1.0, error_if_nonfinite=True)
    assert str(de.value) == str(te.value)
    assert math.isnan(dtrain.nn.utils.clip_grad_norm_(dp, 1.0).item())
    assert dtrain.nn.utils.clip_grad_norm_([], 1.0).item() == 0.0


def test_clip_grad_value_matches_torch():
    dp, tp = _pair()
    dtrain.nn.utils.clip_grad_value_(dp, 0.7)
    torch.nn.utils.clip_grad_value_(tp, 0.7)
    for d, t in zip(dp[:3], tp[:3]):
        np.testing.assert_array_equal(d.grad.numpy(), t.grad.numpy())


def test_parameters_vector_round_trip():
    lin = dtrain.nn.Linear(3, 2)
    tl = torch.nn.Linear(3, 2)
    lin.load_state_dict({k: dtrain.tensor(v.detach().numpy()) for k, v in tl.state_dict().items()})
    vd = dtrain.nn.utils.parameters_to_vector(lin.parameters())
    vt = torch.nn.utils.parameters_to_vector(tl.parameters())
    np.testing.assert_array_equal(vd.detach().numpy(), vt.detach().numpy())
    assert vd.requires_grad  # differentiable like torch's
    new = np.arange(8, dtype=np.float32)
    dtrain.nn.utils.vector_to_parameters(dtrain.tensor(new), lin.parameters())
    torch.nn.utils.vector_to_parameters(torch.from_numpy(new), tl.parameters())
    np.testing.assert_array_equal(lin.weight.detach().numpy(), tl.weight.detach().numpy())
    np.testing.assert_array_equal(lin.bias.detach().numpy(), tl.bias.detach().numpy())
    assert isinstance(lin.weight, dtrain.nn.Parameter) and lin.weight.requires_grad
    with pytest.raises(TypeError, match="expected torch.Tensor, but got: list"):
        dtrain.nn.utils.vector_to_parameters([1.0], lin.parameters())
