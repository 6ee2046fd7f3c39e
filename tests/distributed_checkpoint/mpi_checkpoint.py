"""Checkpoint cases, run on every rank under `mpiexec -n N python -m pytest --with-mpi` (see
test_checkpoint_worlds.py, which runs worlds of 1, 4, 2 and 3 ranks in turn over one directory).

Each world saves its checkpoints under $DTRAIN_CKPT_ROOT/w<N>/ and loads those earlier worlds wrote, so
resharding is checked between every pair of world sizes that ran. Expected values come from seeds, never
from the world that wrote them: the oracle is NumPy."""
import glob
import os

import numpy as np
import pytest

import dtrain
import dtrain.distributed as dist
import dtrain.distributed.checkpoint as dcp
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.distributed.optim import ZeroRedundancyOptimizer
from dtrain.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi(min_size=1)
ROOT = os.environ.get("DTRAIN_CKPT_ROOT", "")
SHARDED_ROWS = 37  # rows of the sharded tensor: not a multiple of any world size


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    yield dist.get_rank(), dist.get_world_size()


def global_values():
    """Every value of the test state, from a seed (the same in every world)."""
    rng = np.random.default_rng(1234)
    return {
        "big": rng.standard_normal((301, 257)).astype(np.float32),    # split over ranks (> 256 KiB)
        "big64": rng.standard_normal((70, 3, 200)),                    # float64, 3-d, split along dim 0
        "small": rng.standard_normal(5).astype(np.float32),            # written once
        "ints": rng.integers(-10**12, 10**12, (9, 4)),
        "scalar": np.array(rng.standard_normal(), np.float64),
        "half": rng.standard_normal((400, 400)).astype(np.float16),
        "empty": np.zeros((0, 4), np.float32),
        "sharded": rng.standard_normal((SHARDED_ROWS, 1100)).astype(np.float32),
    }


def rows(n, rank, size):
    return n * rank // size, n * (rank + 1) // size


def make_state(values, rank, size, fill=None):
    """The state dict a rank of a world of `size` holds; `fill` replaces every value (a load target)."""
    t = (lambda a: dtrain.from_numpy(np.full_like(a, fill) if fill is not None else a.copy()))
    lo, hi = rows(SHARDED_ROWS, rank, size)
    return {
        "model": {"big": t(values["big"]), "nested": {"big64": t(values["big64"]), "small": t(values["small"])},
                  "half": t(values["half"]), "empty": t(values["empty"])},
        "ints": t(values["ints"]), "scalar": t(values["scalar"]),
        "sharded": dcp.LocalShard(t(values["sharded"][lo:hi]), (lo, 0), values["sharded"].shape),
        "meta": {"name": "run" if fill is None else None, "epochs": [1, 2, 3] if fill is None else None},
    }


def check_state(sd, values, rank, size):
    m = sd["model"]
    for got, want in [(m["big"], values["big"]), (m["nested"]["big64"], values["big64"]),
                      (m["nested"]["small"], values["small"]), (m["half"], values["half"]),
                      (m["empty"], values["empty"]), (sd["ints"], values["ints"]), (sd["scalar"], values["scalar"])]:
        a = got.numpy()
        assert a.dtype == want.dtype and a.shape == want.shape
        np.testing.assert_array_equal(a, want)
    lo, hi = rows(SHARDED_ROWS, rank, size)
    np.testing.assert_array_equal(sd["sharded"].tensor.numpy(), values["sharded"][lo:hi])
    assert sd["meta"] == {"name": "run", "epochs": [1, 2, 3]}


def test_save_spreads_bytes_and_loads_back(world, tmp_path_factory):
    rank, size = world
    values = global_values()
    path = os.path.join(ROOT, f"w{size}", "state")
    dcp.save(make_state(values, rank, size), checkpoint_id=path)
    sd = make_state(values, rank, size, fill=0)
    dcp.load(sd, checkpoint_id=path)
    check_state(sd, values, rank, size)
    # about one copy of the state in total, spread evenly: no rank writes much more than its share
    total = sum(a.nbytes for a in values.values())
    files = {os.path.basename(f): os.path.getsize(f) for f in glob.glob(os.path.join(path, "__*_*.distcp"))}
    assert total <= sum(files.values()) <= total + 4096
    assert len(files) == size
    assert max(files.values()) <= total / size * 1.1 + 4096


@pytest.mark.parametrize("src", [1, 2, 3, 4])
def test_load_saved_by_another_world(world, src):
    rank, size = world
    path = os.path.join(ROOT, f"w{src}", "state")
    if src == size or not os.path.isdir(path):
        pytest.skip(f"no checkpoint from a world of {src} (yet)")
    values = global_values()
    sd = make_state(values, rank, size, fill=7)
    dcp.load(sd, checkpoint_id=path)
    check_state(sd, values, rank, size)


def test_async_save_copies_before_returning(world):
    rank, size = world
    values = global_values()
    path = os.path.join(ROOT, f"w{size}", "async")
    sd = make_state(values, rank, size)
    fut = dcp.async_save(sd, checkpoint_id=path)
    # training goes on: the live tensors change while the save is still being written
    sd["model"]["big"].add_(1.0)
    sd["sharded"].tensor.mul_(2.0)
    fut2 = dcp.async_save(make_state(values, rank, size), checkpoint_id=path + "2")  # waits for the first
    assert fut.done()
    assert fut.result() == os.path.abspath(path)
    fut2.result()
    for p in (path, path + "2"):
        got = make_state(values, rank, size, fill=0)
        dcp.load(got, checkpoint_id=p)
        check_state(got, values, rank, size)


# ---------------------------------------------------------------------------------------------- ZeRO
def mlp(dtype):
    dtrain.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 4)).to(dtype)


def train(model, opt, rank, size, dtype, steps=10, sched=None):
    rng = np.random.default_rng(5)
    npdt = np.float64 if dtype is dtrain.float64 else np.float32
    lo, hi = rows(12, rank, size)
    for _ in range(steps):
        x = rng.standard_normal((12, 8)).astype(npdt)
        y = rng.integers(0, 4, 12)
        opt.zero_grad()
        F.cross_entropy(model(dtrain.from_numpy(x[lo:hi])), dtrain.from_numpy(y[lo:hi])).backward()
        opt.step()
        if sched is not None:
            sched.step()


def flat(model):
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


@pytest.mark.parametrize("dtype,tol", [(dtrain.float32, 1e-6), (dtrain.float64, 1e-12)])
def test_zero_adam_matches_adam(world, dtype, tol):
    rank, size = world
    ref = DDP(mlp(dtype))
    ref_opt = dtrain.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=0.01)
    train(ref, ref_opt, rank, size, dtype)
    model = DDP(mlp(dtype))
    opt = ZeroRedundancyOptimizer(model.parameters(), dtrain.optim.Adam, lr=1e-2, weight_decay=0.01)
    train(model, opt, rank, size, dtype)
    np.testing.assert_allclose(flat(model), flat(ref), rtol=tol, atol=tol)
    # each rank keeps state for its partition only, and the partitions cover every parameter once
    owned = [None] * size
    dist.all_gather_object(owned, sorted(opt._local_state_global()))
    assert sorted(i for o in owned for i in o) == list(range(len(list(model.parameters()))))
    opt.consolidate_state_dict(to=0)
    if rank == 0:
        got, want = opt.state_dict(), ref_opt.state_dict()
        assert got["param_groups"] == want["param_groups"]
        assert sorted(got["state"]) == sorted(want["state"])
        for i, s in want["state"].items():
            for k, v in s.items():
                np.testing.assert_allclose(got["state"][i][k].numpy(), v.numpy(), rtol=tol, atol=tol)
    else:
        with pytest.raises(RuntimeError, match="consolidate_state_dict"):
            opt.state_dict()


def test_zero_sharded_checkpoint_reshards(world):
    """A ZeRO run saves sharded state through TrainingState; every other world size restores it and the
    restored run continues exactly as the run with a plain Adam (saved beside it) would."""
    rank, size = world
    dtype = dtrain.float64
    model = DDP(mlp(dtype))
    opt = ZeroRedundancyOptimizer(model.parameters(), dtrain.optim.Adam, lr=1e-2)
    sched = dtrain.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    train(model, opt, rank, size, dtype, steps=4, sched=sched)
    ts = dcp.TrainingState(model=model, optimizer=opt, scheduler=sched, extra={"epoch": 2})
    ts.save(os.path.join(ROOT, f"w{size}", "zero"), 4)
    for src in (1, 2, 3, 4):
        root = os.path.join(ROOT, f"w{src}", "zero")
        if src == size or dcp.read_latest(root) is None:
            continue
        m2 = DDP(mlp(dtype))
        o2 = ZeroRedundancyOptimizer(m2.parameters(), dtrain.optim.Adam, lr=0.5)
        s2 = dtrain.optim.lr_scheduler.StepLR(o2, step_size=3, gamma=0.5)
        extra = {}
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert dcp.TrainingState(model=m2, optimizer=o2, scheduler=s2, extra=extra).load_latest(root) == 4
        assert extra == {"epoch": 2} and s2.last_epoch == 4 and o2.param_groups[0]["lr"] == 0.005
        np.testing.assert_allclose(flat(m2), flat(model), rtol=1e-12, atol=1e-12)  # same training, any world
        # both continue for 3 more steps: the restored optimizer state must be the saved one
        train(model, opt, rank, size, dtype, steps=3, sched=sched)
        train(m2, o2, rank, size, dtype, steps=3, sched=s2)
        np.testing.assert_allclose(flat(m2), flat(model), rtol=1e-12, atol=1e-12)
        return
