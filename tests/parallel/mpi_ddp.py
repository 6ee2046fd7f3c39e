"""DDP cases, run on every rank under `mpiexec -n N python -m pytest --with-mpi` (see test_ddp_worlds.py).

The oracle is single-process training on the concatenated batch, computed on every rank from the same
seed: DDP must reach the same parameters (float64 to 1e-10, float32 to 1e-5 after 20 steps) and every rank
must hold identical parameters after every step."""
import copy
import time

import numpy as np
import pytest

import dtrain
import dtrain.distributed as dist
import dtrain.nn as nn
import dtrain.nn.functional as F
from dtrain.distributed.algorithms import Join
from dtrain.nn.parallel import DistributedDataParallel as DDP

pytestmark = pytest.mark.mpi(min_size=2)


@pytest.fixture(scope="module", autouse=True)
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    yield dist.get_rank(), dist.get_world_size()


def mlp(dtype):
    dtrain.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 4)).to(dtype)


def cnn_bn(dtype):
    dtrain.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 4)).to(dtype)


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 11)

    def forward(self, idx):
        return self.head(self.layer(self.emb(idx)))


def transformer(dtype):
    dtrain.manual_seed(0)
    return TinyTransformer().to(dtype)


def batches(kind, dtype, steps, global_batch, seed=0):
    rng = np.random.default_rng(seed)
    npdt = np.float64 if dtype is dtrain.float64 else np.float32
    for _ in range(steps):
        if kind == "mlp":
            x = rng.standard_normal((global_batch, 8)).astype(npdt)
        elif kind == "cnn":
            x = rng.standard_normal((global_batch, 1, 6, 6)).astype(npdt)
        else:
            x = rng.integers(0, 11, (global_batch, 5))
        y = rng.integers(0, 4 if kind != "transformer" else 11, (global_batch,) if kind != "transformer" else (global_batch, 5))
        yield x, y


def loss_fn(model, x, y, kind):
    out = model(dtrain.from_numpy(x))
    y = dtrain.from_numpy(y)
    if kind == "transformer":
        return F.cross_entropy(out.reshape(-1, 11), y.reshape(-1))
    return F.cross_entropy(out, y)


def flat(model):
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])


def assert_ranks_agree(values):
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, values)
    for r, v in enumerate(everyone):
        np.testing.assert_array_equal(v, everyone[0], err_msg=f"rank {r} differs from rank 0")


def reference_step(model, opt, x, y, kind, world):
    """Single-process step equal to DDP's: mean of per-rank-chunk losses. For BatchNorm each chunk is
    normalised on its own statistics (as each rank does), and only rank 0's running statistics survive
    (DDP broadcasts rank 0's buffers before every forward)."""
    opt.zero_grad()
    chunks = np.array_split(np.arange(len(x)), world)
    kept = None
    total = 0
    for k, idx in enumerate(chunks):
        saved = [b.detach().clone() for b in model.buffers()]
        total = total + loss_fn(model, x[idx], y[idx], kind) / world
        if k == 0:
            kept = [b.detach().clone() for b in model.buffers()]
        for b, s in zip(model.buffers(), saved):
            b.data.copy_(s)
    total.backward()
    for b, s in zip(model.buffers(), kept or []):
        b.data.copy_(s)
    opt.step()


@pytest.mark.parametrize("kind,build", [("mlp", mlp), ("cnn", cnn_bn), ("transformer", transformer)])
@pytest.mark.parametrize("dtype,tol", [(dtrain.float64, 1e-10), (dtrain.float32, 1e-5)])
def test_ddp_equals_single_process_on_concatenated_batch(world, kind, build, dtype, tol):
    rank, size = world
    ref = build(dtype)
    model = DDP(copy.deepcopy(ref), bucket_cap_mb=0.001)  # tiny buckets: many of them, all exercised
    assert model.bucket_count > 1
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = dtrain.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches(kind, dtype, 20, 4 * size):
        mine = np.array_split(np.arange(len(x)), size)[rank]
        opt.zero_grad()
        loss_fn(model, x[mine], y[mine], kind).backward()
        opt.step()
        reference_step(ref, ref_opt, x, y, kind, size)
        assert_ranks_agree(flat(model.module))
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=tol, atol=tol)


def test_no_sync_accumulation_equals_larger_batch(world):
    rank, size = world
    ref = mlp(dtrain.float64)
    model = DDP(copy.deepcopy(ref))
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
    ref_opt = dtrain.optim.SGD(ref.parameters(), lr=0.1)
    data = list(batches("mlp", dtrain.float64, 6, 2 * size, seed=3))
    for step in range(0, 6, 3):  # 3 micro-batches per optimizer step, 2 of them without communication
        opt.zero_grad()
        for j in range(3):
            x, y = data[step + j]
            mine = np.array_split(np.arange(len(x)), size)[rank]
            ctx = model.no_sync() if j < 2 else _null()
            with ctx:
                (loss_fn(model, x[mine], y[mine], "mlp") / 3).backward()
        opt.step()
        ref_opt.zero_grad()
        xs = np.concatenate([data[step + j][0] for j in range(3)])
        ys = np.concatenate([data[step + j][1] for j in range(3)])
        # three micro-batches of equal size: the mean over all equals the mean of the three means
        parts = [np.array_split(np.arange(2 * size), size) for _ in range(3)]
        loss = sum(loss_fn(ref, data[step + j][0], data[step + j][1], "mlp") for j in range(3)) / 3
        loss.backward()
        ref_opt.step()
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=1e-10, atol=1e-10)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(4, 2)
        self.unused = nn.Linear(4, 2)

    def forward(self, x):
        return self.used(x)


def test_unused_parameters_with_find_unused(world):
    dtrain.manual_seed(0)
    model = DDP(WithUnused().double(), find_unused_parameters=True)
    for _ in range(2):
        model.zero_grad()
        model(dtrain.randn(3, 4, dtype=dtrain.float64)).sum().backward()
        assert model.module.used.weight.grad is not None
        assert model.module.unused.weight.grad is None
    assert_ranks_agree(model.module.used.weight.grad.numpy())


def test_unused_parameters_without_find_unused_raise_clear_error(world):
    dtrain.manual_seed(0)
    model = DDP(WithUnused().double())
    x = dtrain.randn(3, 4, dtype=dtrain.float64)
    local = dtrain.autograd.grad(model.module(x).sum(), [model.module.used.weight])[0].numpy()
    model(x).sum().backward()  # no hang: reported at the next forward
    # the bucket never completed: like torch, .grad holds this rank's own gradient, not a divided one
    np.testing.assert_allclose(model.module.used.weight.grad.numpy(), local, rtol=1e-12)
    with pytest.raises(RuntimeError, match=r"find_unused_parameters=True(.|\n)*unused.weight"):
        model(dtrain.randn(3, 4, dtype=dtrain.float64))


def test_the_forward_decides_whether_its_backward_syncs(world):
    # torch: a forward run under no_sync gives a local backward wherever backward() is called, and vice versa
    rank, size = world
    model = DDP(mlp(dtrain.float64))
    w = model.module[0].weight
    x = dtrain.from_numpy(np.random.default_rng(rank).standard_normal((3, 8)))
    local = dtrain.autograd.grad(model.module(x).sum(), [w])[0].numpy()
    with model.no_sync():
        out = model(x)
    out.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), local, rtol=1e-12)
    model.zero_grad()
    out = model(x)
    with model.no_sync():
        out.sum().backward()
    total = dtrain.tensor(local)
    dist.all_reduce(total)
    np.testing.assert_allclose(w.grad.numpy(), total.numpy() / size, rtol=1e-12)


def test_unused_parameter_keeps_its_gradient_across_passes(world):
    # torch leaves the .grad of a parameter no rank used untouched, pass after pass
    dtrain.manual_seed(0)
    model = DDP(WithUnused().double(), find_unused_parameters=True)
    model.module.unused.weight.grad = dtrain.full((2, 4), 7.0, dtype=dtrain.float64)
    for _ in range(3):
        model.module.used.zero_grad(set_to_none=False)
        model(dtrain.randn(3, 4, dtype=dtrain.float64)).sum().backward()
        assert model.module.unused.weight.grad.tolist() == [[7.0] * 4] * 2
    assert_ranks_agree(model.module.used.weight.grad.numpy())


def test_gradients_follow_torch_through_accumulation_no_sync_and_hooks(world):
    # .grad after each backward = what torch's DDP leaves there: the previous .grad (if not cleared) plus
    # the average over ranks of this backward's local gradients; a hook of the user's sees local gradients
    rank, size = world
    model = DDP(mlp(dtrain.float64), bucket_cap_mb=0.001)
    params = list(model.parameters())
    seen = []
    params[2].register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy().copy()))
    expected = [None] * len(params)
    rng = np.random.default_rng(rank)

    def local_grads(x):
        return [g.numpy() for g in dtrain.autograd.grad(model.module(x).square().sum(), params)]

    def average(grads):
        out = []
        for g in grads:
            t = dtrain.tensor(g)
            dist.all_reduce(t)
            out.append(t.numpy() / size)
        return out

    def backward(sync=True):
        x = dtrain.from_numpy(rng.standard_normal((3, 8)))
        mine = local_grads(x)
        with (_null() if sync else model.no_sync()):
            model(x).square().sum().backward()
        return mine

    def check():
        for p, e in zip(params, expected):
            np.testing.assert_allclose(p.grad.numpy(), e, rtol=1e-12, atol=1e-12)

    for clear in ("none", "zero", "keep"):
        if clear == "none":
            model.zero_grad()
            expected = [np.zeros(p.shape) for p in params]
        elif clear == "zero":
            model.zero_grad(set_to_none=False)
            expected = [np.zeros(p.shape) for p in params]
        mine = backward()
        assert len(seen) == 1
        np.testing.assert_allclose(seen.pop(), mine[2] + (expected[2] if clear == "keep" else 0), rtol=1e-12)
        expected = [e + a for e, a in zip(expected, average(mine))]
        check()
        held = [p.grad.numpy().copy() for p in params]
        # accumulation over micro-batches: no_sync, then a synced backward reduces everything
        local = [np.array(e) for e in expected]
        for sync in (False, False, True):
            mine = backward(sync)
            local = [l + m for l, m in zip(local, mine)]
        seen.clear()
        expected = [e + a for e, a in zip(expected, average([l - e for l, e in zip(local, expected)]))]
        check()
        assert not all(np.array_equal(h, p.grad.numpy()) for h, p in zip(held, params))
    assert_ranks_agree(np.concatenate([p.grad.numpy().ravel() for p in params]))


def test_models_that_differ_across_ranks_raise(world):
    rank, size = world
    dtrain.manual_seed(0)
    m = nn.Linear(4, 3 if rank == 0 else 5)
    with pytest.raises(RuntimeError, match=r"same model across all ranks(.|\n)*sizes"):
        DDP(m)


def test_parameters_and_buffers_broadcast_from_rank_zero(world):
    rank, size = world
    dtrain.manual_seed(rank)  # different init on every rank
    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with dtrain.no_grad():
        m[1].running_mean.fill_(float(rank))
    d = DDP(m)
    assert_ranks_agree(flat(d.module))
    assert d.module[1].running_mean.tolist() == [0.0] * 4
    assert list(d.state_dict())[0] == "module.0.weight"


@pytest.mark.filterwarnings("ignore:`broadcast_buffers` is deprecated:FutureWarning")
@pytest.mark.parametrize("kw,at_init,at_forward", [(dict(broadcast_buffers=False), False, False),
                                                   (dict(forward_sync_buffers=False), True, False),
                                                   (dict(), True, True)])
def test_buffer_broadcasts_follow_torchs_switches(world, kw, at_init, at_forward):
    """torch 2.13: broadcast_buffers=False skips the buffers' broadcast at construction and before forwards;
    forward_sync_buffers=False only the one before forwards."""
    rank, size = world
    m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with dtrain.no_grad():
        m[1].running_var.fill_(float(rank + 1))
    d = DDP(m, **kw)
    assert d.module[1].running_var.tolist() == [1.0 if at_init else float(rank + 1)] * 4
    with dtrain.no_grad():
        m[1].running_var.fill_(float(rank + 1))
    m.eval()  # the forward leaves the buffers as they are
    d(dtrain.ones(2, 4))
    assert d.module[1].running_var.tolist() == [1.0 if at_forward else float(rank + 1)] * 4


@pytest.mark.parametrize("accumulate", [False, True])
def test_existing_grads_stay_the_same_tensors_at_the_same_address(world, accumulate):
    # torch's reducer copies the reduced bucket into an existing .grad (grad.copy_(bucket_view)): with
    # zero_grad(set_to_none=False) p.grad is the same tensor, at the same address, step after step
    rank, size = world
    dtrain.manual_seed(0)
    model = DDP(mlp(dtrain.float64), bucket_cap_mb=0.001)
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
    first = None
    for step in range(4):
        opt.zero_grad(set_to_none=False)
        xs = [dtrain.randn(3, 8, dtype=dtrain.float64, generator=dtrain.Generator().manual_seed(10 * step + rank + j))
              for j in range(2 if accumulate else 1)]
        if accumulate:
            with model.no_sync():
                model(xs[0]).sum().backward()
        model(xs[-1]).sum().backward()
        now = [(id(p.grad), p.grad.data_ptr()) for p in model.parameters()]
        if first is None:
            first = now
        assert now == first, f"step {step}: .grad moved"
        # the average over ranks of every rank's own (accumulated) gradient
        mine = [dtrain.zeros_like(p) for p in model.parameters()]
        for x in xs:
            for m, g in zip(mine, dtrain.autograd.grad(model.module(x).sum(), list(model.parameters()))):
                m += g
        for m in mine:
            dist.all_reduce(m)
        for p, m in zip(model.parameters(), mine):
            np.testing.assert_allclose(p.grad.numpy(), m.numpy() / size, rtol=1e-12, atol=1e-12)
        opt.step()


def test_gradient_as_bucket_view_shares_memory(world):
    dtrain.manual_seed(0)
    model = DDP(mlp(dtrain.float64), gradient_as_bucket_view=True)
    model(dtrain.randn(2, 8, dtype=dtrain.float64)).sum().backward()
    bucket_arrays = [b.flat for b in model._buckets]
    for p in model.parameters():
        assert any(np.shares_memory(p.grad.numpy(), b) for b in bucket_arrays)
    assert_ranks_agree(np.concatenate([p.grad.numpy().ravel() for p in model.parameters()]))


def test_gradients_are_copies_laid_out_for_the_optimizer(world):
    # gradient_as_bucket_view=False: .grad never aliases a bucket, but the averaged values land in one
    # buffer in parameter order, which the optimizer steps over without copying them first
    rank, size = world
    dtrain.manual_seed(0)
    model = DDP(mlp(dtrain.float32), bucket_cap_mb=0.001)
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        dtrain.manual_seed(100 * step + rank)
        x = dtrain.randn(4, 8)
        opt.zero_grad()
        model(x).square().sum().backward()
        grads = [p.grad.numpy() for p in model.parameters()]
        for g in grads:
            assert not any(np.shares_memory(g, b.flat) for b in model._buckets)
        base = grads[0].base
        assert base is not None and all(g.base is base for g in grads)
        offsets = [g.__array_interface__["data"][0] for g in grads]
        assert all(b - a == 4 * g.size for a, b, g in zip(offsets, offsets[1:], grads))
        # the average, as every rank's own gradient summed over ranks / world size
        mine = [dtrain.autograd.grad(model.module(x).square().sum(), list(model.parameters()))]
        total = [dtrain.tensor(m.numpy()) for m in mine[0]]
        for t in total:
            dist.all_reduce(t)
        for g, t in zip(grads, total):
            np.testing.assert_allclose(g, t.numpy() / size, rtol=1e-5, atol=1e-6)
        opt.step()  # steps over the gradients where DDP laid them out: nothing moved
        assert [p.grad.numpy().__array_interface__["data"][0] for p in model.parameters()] == offsets


def test_comm_hooks(world):
    from dtrain.distributed.algorithms.ddp_comm_hooks import default_hooks
    rank, size = world
    results = []
    for hook in (None, default_hooks.allreduce_hook, default_hooks.fp16_compress_hook):
        dtrain.manual_seed(0)
        model = DDP(mlp(dtrain.float32))
        if hook is not None:
            model.register_comm_hook(None, hook)
        dtrain.manual_seed(10 + rank)
        model(dtrain.randn(4, 8)).sum().backward()
        results.append(np.concatenate([p.grad.numpy().ravel() for p in model.parameters()]))
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results[2], results[0], rtol=1e-2, atol=1e-3)
    assert_ranks_agree(results[2])


def test_first_bucket_reduction_starts_before_backward_ends(world):
    """Timestamps: the first bucket's all-reduce is launched while later gradients are still being computed."""
    dtrain.manual_seed(0)
    model = DDP(nn.Sequential(*[nn.Linear(256, 256) for _ in range(8)]), bucket_cap_mb=0.25)
    assert model.bucket_count >= 8
    events = []
    launch = model._launch
    model._launch = lambda b: (events.append(("launch", b.index, time.perf_counter())), launch(b))[1]
    first_param = list(model.parameters())[0]
    first_param.register_post_accumulate_grad_hook(lambda p: events.append(("last_grad", -1, time.perf_counter())))
    model(dtrain.randn(64, 256)).sum().backward()
    t_first_launch = min(t for e, i, t in events if e == "launch" and i == 0)
    t_last_grad = max(t for e, i, t in events if e == "last_grad")
    assert t_first_launch < t_last_grad
    assert [i for e, i, t in events if e == "launch"] == list(range(model.bucket_count))


def cnn_syncbn(dtype):
    return nn.SyncBatchNorm.convert_sync_batchnorm(cnn_bn(dtype))


@pytest.mark.parametrize("dtype,tol", [(dtrain.float64, 1e-10), (dtrain.float32, 1e-5)])
def test_ddp_with_sync_batchnorm_equals_one_process_on_the_whole_batch(world, dtype, tol):
    """SyncBatchNorm normalizes with the whole group's statistics: DDP training of a CNN with it reaches the
    parameters and running statistics of plain BatchNorm trained in one process on the concatenated batch."""
    rank, size = world
    ref = cnn_bn(dtype)
    model = DDP(cnn_syncbn(dtype), bucket_cap_mb=0.001)
    assert type(model.module[1]).__name__ == "SyncBatchNorm"
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = dtrain.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches("cnn", dtype, 20, 4 * size):
        mine = np.array_split(np.arange(len(x)), size)[rank]
        opt.zero_grad()
        loss_fn(model, x[mine], y[mine], "cnn").backward()
        opt.step()
        ref_opt.zero_grad()
        loss_fn(ref, x, y, "cnn").backward()  # equal chunks: the mean of the ranks' means is the global mean
        ref_opt.step()
        assert_ranks_agree(flat(model.module))
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=tol, atol=tol)
    bn, ref_bn = model.module[1], ref[1]
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(bn, name).numpy(), getattr(ref_bn, name).numpy(), rtol=tol, atol=tol)
    assert int(bn.num_batches_tracked.item()) == 20


def test_sync_batchnorm_uneven_and_empty_batches(world):
    """Ranks with different batch sizes, one of them empty: each rank's output and input gradient are its rows
    of one BatchNorm over the concatenated batch; weight/bias gradients summed over ranks equal that one's."""
    rank, size = world
    sizes = [3, 0, 2, 5][:size]
    rng = np.random.default_rng(7)
    x = rng.standard_normal((sum(sizes), 3, 2, 2)) * 2 + 1
    w = rng.standard_normal(x.shape)
    lo = sum(sizes[:rank])
    rows = slice(lo, lo + sizes[rank])
    dtrain.manual_seed(0)
    sync = nn.SyncBatchNorm(3, momentum=0.3).double()
    ref = nn.BatchNorm2d(3, momentum=0.3).double()
    with dtrain.no_grad():
        for m in (sync, ref):
            m.weight.copy_(dtrain.tensor([0.5, 2.0, -1.0]))
            m.bias.copy_(dtrain.tensor([0.1, 0.0, 0.3]))
    xs, xr = dtrain.tensor(x[rows], requires_grad=True), dtrain.tensor(x, requires_grad=True)
    ys, yr = sync(xs), ref(xr)
    (ys * dtrain.tensor(w[rows])).sum().backward()
    (yr * dtrain.tensor(w)).sum().backward()
    np.testing.assert_allclose(ys.detach().numpy(), yr.detach().numpy()[rows], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xs.grad.numpy(), xr.grad.numpy()[rows], rtol=1e-10, atol=1e-12)
    for p, q in ((sync.weight, ref.weight), (sync.bias, ref.bias)):
        g = p.grad.clone()
        dist.all_reduce(g)
        np.testing.assert_allclose(g.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(sync, name).numpy(), getattr(ref, name).numpy(), rtol=1e-12, atol=1e-12)
    sync.eval()  # eval: the running statistics, no communication
    np.testing.assert_allclose(sync(xs).detach().numpy(), ref.eval()(xr).detach().numpy()[rows], rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("divide_by_initial", [True, False])
def test_join_with_uneven_inputs_equals_one_process(world, divide_by_initial):
    """Rank r has 2 + r batches. Under model.join() no rank hangs; an iteration's gradient is the sum over the
    ranks still training divided by the initial world size (or by how many trained), and every rank ends
    with the model of the one that trained longest: one process replaying the same steps reaches it."""
    rank, size = world
    ref = mlp(dtrain.float64)
    model = DDP(copy.deepcopy(ref), bucket_cap_mb=0.001)
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = dtrain.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    data = [list(batches("mlp", dtrain.float64, 2 + r, 4, seed=20 + r)) for r in range(size)]
    with model.join(divide_by_initial_world_size=divide_by_initial):
        for x, y in data[rank]:
            opt.zero_grad()
            loss_fn(model, x, y, "mlp").backward()
            opt.step()
    for i in range(2 + size - 1):
        active = [r for r in range(size) if i < len(data[r])]
        ref_opt.zero_grad()
        div = size if divide_by_initial else len(active)
        sum(loss_fn(ref, *data[r][i], "mlp") for r in active).__truediv__(div).backward()
        ref_opt.step()
    assert_ranks_agree(flat(model.module))
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=1e-10, atol=1e-10)


def test_join_shadows_buffers_unused_parameters_and_comm_hooks(world):
    """Uneven inputs with BatchNorm buffers (broadcast from a rank still training), find_unused_parameters
    and a communication hook: every rank gets through and ends with identical parameters and buffers."""
    from dtrain.distributed.algorithms.ddp_comm_hooks import default_hooks
    rank, size = world
    model = DDP(cnn_bn(dtrain.float64), find_unused_parameters=True, bucket_cap_mb=0.001)
    model.register_comm_hook(None, default_hooks.allreduce_hook)
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1)
    with model.join():
        for x, y in batches("cnn", dtrain.float64, 1 + 2 * rank, 4, seed=rank):
            opt.zero_grad()
            loss_fn(model, x, y, "cnn").backward()
            opt.step()
    assert_ranks_agree(flat(model.module))
    assert_ranks_agree(np.concatenate([b.numpy().ravel().astype(np.float64) for b in model.module.buffers()]))
    assert int(model.module[1].num_batches_tracked.item()) == 1 + 2 * (size - 1)


def test_join_throw_on_early_termination(world):
    """With throw_on_early_termination every rank raises once one has run out, none hangs."""
    rank, size = world
    model = DDP(mlp(dtrain.float64))
    steps = 0
    with pytest.raises(RuntimeError) as err:
        with model.join(throw_on_early_termination=True):
            for x, y in batches("mlp", dtrain.float64, 2 if rank == 0 else 5, 4, seed=rank):
                loss_fn(model, x, y, "mlp").backward()
                steps += 1
    expected = "Rank 0 exhausted all inputs." if rank == 0 else \
        "Detected at least one rank that exhausted inputs. Throwing across all ranks."
    assert str(err.value) == expected and steps == 2
    with model.join():  # the context is usable again afterwards
        loss_fn(model, *next(batches("mlp", dtrain.float64, 1, 4)), "mlp").backward()


def test_join_with_zero_redundancy_optimizer(world):
    """Join([model, ZeroRedundancyOptimizer]): a joined rank keeps stepping its partition with the gradients
    the others reduced, so the model still equals one process replaying the same steps."""
    from dtrain.distributed.optim import ZeroRedundancyOptimizer
    rank, size = world
    ref = mlp(dtrain.float64)
    model = DDP(copy.deepcopy(ref), bucket_cap_mb=0.001)
    opt = ZeroRedundancyOptimizer(model.parameters(), dtrain.optim.SGD, lr=0.1, momentum=0.9)
    ref_opt = dtrain.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    data = [list(batches("mlp", dtrain.float64, 1 + 2 * r, 4, seed=40 + r)) for r in range(size)]
    with Join([model, opt]):
        for x, y in data[rank]:
            opt.zero_grad()
            loss_fn(model, x, y, "mlp").backward()
            opt.step()
    for i in range(1 + 2 * (size - 1)):
        active = [r for r in range(size) if i < len(data[r])]
        ref_opt.zero_grad()
        (sum(loss_fn(ref, *data[r][i], "mlp") for r in active) / size).backward()
        ref_opt.step()
    assert_ranks_agree(flat(model.module))
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=1e-10, atol=1e-10)


def _param_aliases(module):
    params = list(module.parameters())
    return params, [p.view(-1) for p in params], [p.detach().numpy() for p in params], [p.data_ptr() for p in params]


def _check_param_aliases(params, views, arrays, ptrs):
    for p, v, a, q in zip(params, views, arrays, ptrs):
        now = p.detach().numpy()
        assert p.data_ptr() == q and np.shares_memory(a, now)
        np.testing.assert_array_equal(v.detach().numpy(), now.reshape(-1))


@pytest.mark.parametrize("bucket_view", [False, True])
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_ddp_wrapping_and_steps_keep_parameter_aliases(world, bucket_view, opt_name):
    """Views, .numpy() arrays and data_ptr() of a parameter taken before DDP and the optimizer stay aliases
    (torch: all hold), and training still equals one process on the concatenated batch."""
    rank, size = world
    ref = mlp(dtrain.float64)
    module = copy.deepcopy(ref)
    aliases = _param_aliases(module)
    model = DDP(module, bucket_cap_mb=0.001, gradient_as_bucket_view=bucket_view)
    make = lambda ps: getattr(dtrain.optim, opt_name)(ps, lr=0.05)  # noqa: E731
    opt, ref_opt = make(model.parameters()), make(ref.parameters())
    _check_param_aliases(*aliases)
    data = list(batches("mlp", dtrain.float64, 3, 4 * size, seed=7))
    for x, y in data:
        opt.zero_grad()
        loss_fn(model, x[rank * 4:(rank + 1) * 4], y[rank * 4:(rank + 1) * 4], "mlp").backward()
        opt.step()
        _check_param_aliases(*aliases)
        ref_opt.zero_grad()
        loss_fn(ref, x, y, "mlp").backward()
        ref_opt.step()
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=1e-10, atol=1e-12)


def test_zero_redundancy_optimizer_keeps_parameter_aliases(world):
    from dtrain.distributed.optim import ZeroRedundancyOptimizer
    rank, size = world
    ref = mlp(dtrain.float64)
    module = copy.deepcopy(ref)
    aliases = _param_aliases(module)
    model = DDP(module)
    opt = ZeroRedundancyOptimizer(model.parameters(), dtrain.optim.Adam, lr=0.05)
    ref_opt = dtrain.optim.Adam(ref.parameters(), lr=0.05)
    _check_param_aliases(*aliases)
    for x, y in batches("mlp", dtrain.float64, 3, 4 * size, seed=8):
        opt.zero_grad()
        loss_fn(model, x[rank * 4:(rank + 1) * 4], y[rank * 4:(rank + 1) * 4], "mlp").backward()
        opt.step()
        _check_param_aliases(*aliases)
        ref_opt.zero_grad()
        loss_fn(ref, x, y, "mlp").backward()
        ref_opt.step()
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=1e-10, atol=1e-12)


class _Checkpointed(nn.Module):
    """mlp() with its middle layers under activation checkpointing."""

    def __init__(self, plain, reentrant):
        super().__init__()
        self.first, self.middle, self.last = plain[0], nn.Sequential(*plain[1:4]), plain[4]
        self.reentrant = reentrant

    def forward(self, x):
        from dtrain.utils.checkpoint import checkpoint
        return self.last(checkpoint(self.middle, self.first(x), use_reentrant=self.reentrant))


@pytest.mark.parametrize("reentrant", [False, True])
def test_ddp_over_activation_checkpointing_equals_single_process(world, reentrant):
    rank, size = world
    ref = mlp(dtrain.float64)
    model = DDP(_Checkpointed(copy.deepcopy(ref), reentrant), bucket_cap_mb=0.001)
    opt = dtrain.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref_opt = dtrain.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches("mlp", dtrain.float64, 10, 4 * size):
        mine = np.array_split(np.arange(len(x)), size)[rank]
        opt.zero_grad()
        loss_fn(model, x[mine], y[mine], "mlp").backward()
        opt.step()
        reference_step(ref, ref_opt, x, y, "mlp", size)
        assert_ranks_agree(flat(model.module))
    np.testing.assert_allclose(flat(model.module), flat(ref), rtol=1e-10, atol=1e-10)
