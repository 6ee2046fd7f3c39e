"""DDP communication hooks in a real MPI world: every rank runs `mpiexec -n 2 python -m pytest --with-mpi`
on this file (see test_comm_hooks.py).

Oracles: plain DDP (PowerSGD at full rank reconstructs every matrix exactly, so it must train the same
model), torch's float16 / bfloat16 arithmetic on the gathered local gradients, and agreement of the ranks."""
import numpy as np
import pytest

import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
from dtrain.distributed.algorithms.ddp_comm_hooks import default_hooks as default
from dtrain.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powerSGD
from dtrain.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi(min_size=2)
STEPS = 8


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    yield dist.get_rank(), dist.get_world_size()


def make_model():
    dtrain.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(48, 10), nn.Tanh(), nn.Linear(10, 10),
                         nn.Tanh(), nn.Linear(10, 10), nn.Tanh(), nn.Linear(10, 4)).double()


def flat(model):
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


def gathered(value):
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, value)
    return everyone


def assert_ranks_agree(values):
    for r, v in enumerate(gathered(values)):
        np.testing.assert_array_equal(v, values, err_msg=f"rank {r} differs from this rank")


def train(hook=None, state=None, bucket_cap_mb=None):
    """STEPS steps of DDP on this rank's own data; the ranks must agree after every step."""
    model = make_model()
    ddp = DDP(model, bucket_cap_mb=bucket_cap_mb)
    if hook is not None:
        ddp.register_comm_hook(state, hook)
    opt = dtrain.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.5)
    rng = np.random.default_rng(100 + dist.get_rank())
    for _ in range(STEPS):
        x, y = dtrain.tensor(rng.standard_normal((6, 2, 6, 6))), dtrain.tensor(rng.standard_normal((6, 4)))
        opt.zero_grad()
        ((ddp(x) - y) ** 2).mean().backward()
        opt.step()
        assert_ranks_agree(flat(model))
    return flat(model), ddp


@pytest.mark.parametrize("cap", [None, 0.0005])
@pytest.mark.parametrize("feedback", [True, False])
@pytest.mark.parametrize("same", [False, True])
def test_full_rank_powerSGD_trains_like_plain_ddp(cap, feedback, same):
    # rank 10 >= min(n, m) of every matrix; min_compression_rate=0 compresses even the biases (n x 1)
    state = powerSGD.PowerSGDState(None, matrix_approximation_rank=10, start_powerSGD_iter=2 if feedback else 1,
                                   min_compression_rate=0, use_error_feedback=feedback, warm_start=feedback,
                                   batch_tensors_with_same_shape=same)
    mine, ddp = train(powerSGD.powerSGD_hook, state, cap)
    plain, _ = train()
    np.testing.assert_allclose(mine, plain, rtol=1e-10, atol=1e-10)
    assert state.iter == STEPS
    assert state.total_numel_before_compression > 0
    if cap is not None:
        assert ddp.bucket_count > 3
    if feedback:
        # each rank remembers its own error (its gradient minus the mean): nonzero, different per rank
        errors = np.concatenate([state.error_dict[i].numpy() for i in sorted(state.error_dict)])
        assert np.abs(errors).max() > 1e-3
        assert not np.array_equal(*gathered(errors)[:2])


@pytest.mark.parametrize("hook", ["powerSGD", "batched", "fp16_powerSGD", "bf16_powerSGD"])
def test_rank1_keeps_ranks_identical_and_compresses(hook):
    state = powerSGD.PowerSGDState(None, matrix_approximation_rank=1, start_powerSGD_iter=2)
    fn = powerSGD.batched_powerSGD_hook if hook == "batched" else powerSGD.powerSGD_hook
    if hook.startswith(("fp16", "bf16")):
        fn = getattr(default, hook[:4] + "_compress_wrapper")(fn)
    mine, _ = train(fn, state, bucket_cap_mb=0.0005)  # asserts the ranks agree after every step
    plain, _ = train()
    assert np.abs(mine - plain).max() > 1e-3  # the gradients really were compressed
    assert state.compression_stats()[0] > 1
    assert_ranks_agree(np.array(state.compression_stats()))


def local_and_reduced(hook):
    """This rank's own gradients, and the gradients after one DDP backward with `hook`."""
    model = make_model()
    ddp = DDP(model, bucket_cap_mb=0.0005)
    ddp.register_comm_hook(None, hook)
    rng = np.random.default_rng(7 + dist.get_rank())
    x = dtrain.tensor(rng.standard_normal((6, 2, 6, 6)))
    local = dtrain.autograd.grad(model(x).sum(), list(model.parameters()))
    ddp(x).sum().backward()
    return (np.concatenate([g.numpy().ravel() for g in local]),
            np.concatenate([p.grad.numpy().ravel() for p in model.parameters()]))


@pytest.mark.parametrize("name", ["fp16_compress_hook", "bf16_compress_hook", "fp16_wrapper", "bf16_wrapper"])
def test_compressed_mean_is_the_mean_rounded_as_torch_rounds(name):
    import torch
    half = torch.float16 if name.startswith("fp16") else torch.bfloat16
    hook = getattr(default, name) if name.endswith("hook") else \
        getattr(default, name[:4] + "_compress_wrapper")(default.allreduce_hook)
    local, reduced = local_and_reduced(hook)
    size = dist.get_world_size()
    # each rank's gradient in half precision divided by the world size there, summed in float32 (exactly,
    # for two ranks), the sum rounded once
    parts = torch.stack([torch.tensor(g).to(half) / size for g in gathered(local)])
    expected = parts.float().sum(0).to(half).double().numpy()
    np.testing.assert_array_equal(reduced, expected)
    mean = np.mean(gathered(local), axis=0)
    assert 0 < np.abs(reduced - mean).max() < (4e-3 if half is torch.float16 else 3e-2) * np.abs(mean).max()


def test_noop_hook_leaves_local_gradients():
    from dtrain.distributed.algorithms.ddp_comm_hooks.debugging_hooks import noop_hook
    local, reduced = local_and_reduced(noop_hook)
    np.testing.assert_array_equal(reduced, local)
    assert not np.array_equal(*gathered(reduced)[:2])
