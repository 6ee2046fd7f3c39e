"""nn.DataParallel: scatter / replicate / parallel apply / gather. Without GPUs the replicas are placed on CPU
devices, which runs exactly the same path except for the device moves."""
import numpy as np
import pytest

import dtrain
import dtrain.nn as nn
from dtrain.nn.parallel.data_parallel import gather, scatter


def mlp():
    dtrain.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()


@pytest.mark.parametrize("replicas,batch", [(2, 8), (3, 7), (4, 2)])
def test_replicas_give_the_module_result_and_gradients_reach_the_source(replicas, batch):
    ref, model = mlp(), mlp()
    dp = nn.DataParallel(model, device_ids=["cpu"] * replicas)
    seen = []
    model[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))  # replicas share the hooks
    x = dtrain.randn(batch, 5, dtype=dtrain.float64)
    out = dp(x)
    size = -(-batch // replicas)                    # torch.chunk's piece size
    expected = [min(size, batch - i) for i in range(0, batch, size)]
    assert sorted(seen) == sorted(expected)          # each replica ran on its own piece
    want = ref(x)
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), rtol=1e-12)
    out.square().mean().backward()
    want.square().mean().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert p.grad is not None
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert list(dp.state_dict())[0] == "module.0.weight"


def test_scatter_and_gather_follow_torch_chunking():
    x = dtrain.arange(10).view(5, 2)
    ins, kws = scatter((x, "flag"), {"y": x}, ["cpu"] * 3, dim=0)
    assert [a[0].shape[0] for a in ins] == [2, 2, 1]           # chunk sizes, as torch.chunk
    assert all(a[1] == "flag" for a in ins) and kws[2]["y"].tolist() == [[8, 9]]
    back = gather([a[0] for a in ins], dtrain.device("cpu"), dim=0)
    assert back.tolist() == x.tolist()


def test_replica_errors_name_the_replica():
    class Bad(nn.Module):
        def forward(self, x):
            if x.shape[0] < 3:
                raise ValueError("too small")
            return x
    dp = nn.DataParallel(Bad(), device_ids=["cpu", "cpu"])
    with pytest.raises(ValueError, match="replica 1: too small"):
        dp(dtrain.ones(5, 2))


def test_without_gpus_it_runs_the_module():
    m = mlp()
    dp = nn.DataParallel(m)
    x = dtrain.randn(4, 5, dtype=dtrain.float64)
    assert dp(x).tolist() == m(x).tolist()
    assert dp.module is m
