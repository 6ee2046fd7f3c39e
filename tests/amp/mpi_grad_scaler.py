"""GradScaler under DDP in a real MPI world: every rank runs `mpiexec -n 2 python -m pytest --with-mpi` on this
file (see test_grad_scaler_mpi.py). An inf put into one rank's gradients after DDP's all-reduce must make
every rank skip that step and back off, so the replicas stay identical."""
import numpy as np
import pytest

import dtrain
import dtrain.distributed as dist
from dtrain.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi(min_size=2)


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    yield dist.get_rank(), dist.get_world_size()


def gathered(value):
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, value)
    return everyone


def test_inf_on_one_rank_skips_the_step_on_every_rank(world):
    rank, size = world
    dtrain.manual_seed(0)
    model = DDP(dtrain.nn.Sequential(dtrain.nn.Linear(4, 8), dtrain.nn.Tanh(), dtrain.nn.Linear(8, 1)))
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
    scaler = dtrain.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=2)
    rng = np.random.default_rng(rank)
    x, y = dtrain.tensor(rng.standard_normal((8, 4)).astype(np.float32)), dtrain.tensor(rng.standard_normal((8, 1)).astype(np.float32))
    scales, skipped = [], []
    for step in range(6):
        opt.zero_grad()
        with dtrain.autocast("cpu"):
            loss = dtrain.nn.functional.mse_loss(model(x), y)
        scaler.scale(loss).backward()
        if step == 2 and rank == size - 1:  # the last rank alone: after the all-reduce, so no other rank sees it
            model.module[0].weight.grad[0, 0] = float("inf")
        before = [p.detach().numpy().copy() for p in model.parameters()]
        scaler.step(opt)
        scaler.update()
        skipped.append(all(np.array_equal(b, p.detach().numpy()) for b, p in zip(before, model.parameters())))
        scales.append(scaler.get_scale())
    assert skipped == [False, False, True, False, False, False]
    assert scales == [256.0, 512.0, 256.0, 256.0, 512.0, 512.0]
    params = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    everyone = gathered((scales, skipped, params.tolist()))
    for other in everyone[1:]:
        assert other[0] == everyone[0][0] and other[1] == everyone[0][1]
        np.testing.assert_array_equal(other[2], everyone[0][2])
