"""DDP communication hooks against torch's own, in a world of one rank; the multi-rank cases are in
mpi_comm_hooks.py, run here under mpiexec.

The oracle: one training run written once for both frameworks (`fw` is torch or dtrain), torch's in a
subprocess with DDP over gloo. PowerSGD starts from random Qs that dtrain's generator cannot reproduce, so
both runs get the same Qs: at the first compressed step a wrapper fills `state.q_memory_dict` (and
`p_memory_dict`, whose presence is what tells torch's warm start to skip its random draw)."""
import importlib
import math
import os
import pickle
import subprocess
import sys
import zlib

import numpy as np
import pytest

import dtrain
import dtrain.distributed as dist
from dtrain.distributed.algorithms.ddp_comm_hooks import DDPCommHookType, register_ddp_comm_hook
from dtrain.distributed.algorithms.ddp_comm_hooks import default_hooks
from dtrain.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powerSGD

HERE = os.path.dirname(os.path.abspath(__file__))
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
STEPS = 6

# name → hook and settings; "tol" compares parameters after STEPS steps of float64 training
PSGD = dict(hook="powerSGD", rank=1, start=2, min_rate=2, ef=True, same=False, wrap=None, tol=1e-10)
CASES = {
    "allreduce": dict(hook="allreduce", tol=1e-12),
    "noop": dict(hook="noop", tol=1e-12),
    "fp16": dict(hook="fp16", tol=1e-12),
    "bf16": dict(hook="bf16", tol=1e-12),
    "fp16_wrapper_allreduce": dict(hook="allreduce", wrap="fp16", tol=1e-12),
    "bf16_wrapper_allreduce": dict(hook="allreduce", wrap="bf16", tol=1e-12),
    "powerSGD_rank1": PSGD,
    "powerSGD_rank1_no_error_feedback": dict(PSGD, ef=False),
    "powerSGD_rank3_qr": dict(PSGD, rank=3, min_rate=1),
    "powerSGD_rank2_batched_same_shape": dict(PSGD, rank=2, same=True),
    # the batched hook squares the bucket's flat buffer, whose layout torch changes after the first step to
    # the order the gradients arrived in, except under find_unused_parameters: there both lay it out as dtrain
    "batched_powerSGD_rank1": dict(PSGD, hook="batched", unused=True),
    "batched_powerSGD_rank2": dict(PSGD, hook="batched", rank=2, unused=True),
    # PowerSGD in float16: products and sums accumulate in float32 in both, rounded once
    "fp16_wrapper_powerSGD": dict(PSGD, wrap="fp16"),
}


# ------------------------------------------------------------------ one training run, for either framework
def make_model(fw):
    nn = fw.nn
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(48, 10), nn.Tanh(), nn.Linear(10, 10),
                         nn.Tanh(), nn.Linear(10, 10), nn.Tanh(), nn.Linear(10, 4)).to(fw.float64)


def initial_weights():
    rng = np.random.default_rng(0)
    return [0.3 * rng.standard_normal(tuple(p.shape)) for p in make_model(dtrain).parameters()]


def batches(steps=STEPS, n=8):
    rng = np.random.default_rng(1)
    return [(rng.standard_normal((n, 2, 6, 6)), rng.standard_normal((n, 4))) for _ in range(steps)]


def fixed_q(key, rows, cols):
    """The Q both frameworks start from for one matrix (or one bucket's square, for the batched hook)."""
    return np.random.default_rng(zlib.crc32(key.encode())).standard_normal((rows, cols))


def seeded(fw, hook, names, buffer_order, batched):
    """`hook`, with the Qs of its first compressed step put in place from fixed_q, in the layout the hook
    uses: per shape (in order of first appearance in the bucket), per matrix, m x rank row-major."""
    def run(state, bucket):
        index = bucket.index()
        if state.iter >= state.start_powerSGD_iter and index not in state.p_memory_dict:
            dtype, R = bucket.buffer().dtype, state.matrix_approximation_rank
            if batched:
                side = math.ceil(math.sqrt(bucket.buffer().numel()))
                state.p_memory_dict[index] = fw.empty(side, R, dtype=dtype)
                state.q_memory_dict[index] = fw.tensor(fixed_q(f"bucket{index}", side, R), dtype=dtype)
            else:
                groups, ps = {}, 0
                for p in buffer_order(bucket):
                    n = p.shape[0]
                    m = p.numel() // n
                    r = min(n, m, R)
                    if (n + m) * r * state.min_compression_rate < n * m:
                        groups.setdefault((n, m), []).append(fixed_q(names[id(p)], m, r).ravel())
                        ps += n * r
                qs = np.concatenate([q for g in groups.values() for q in g] or [np.zeros(0)])
                state.p_memory_dict[index] = fw.empty(ps, dtype=dtype)
                state.q_memory_dict[index] = fw.tensor(qs, dtype=dtype)
        return hook(state, bucket)
    return run


def _in_buffer_order(bucket):
    return bucket.parameters()  # torch's GradBucket lists them in buffer order, and so does dtrain's


def train(fw, case, buffer_order=_in_buffer_order):
    """Train the model under DDP with the case's hook; (flat parameters, the PowerSGD state or None)."""
    hooks = importlib.import_module(fw.__name__ + ".distributed.algorithms.ddp_comm_hooks")
    model = make_model(fw)
    with fw.no_grad():
        for p, w in zip(model.parameters(), initial_weights()):
            p.copy_(fw.tensor(w))
    names = {id(p): n for n, p in model.named_parameters()}
    ddp = fw.nn.parallel.DistributedDataParallel(model, find_unused_parameters=case.get("unused", False))
    state = None
    if case["hook"] in ("powerSGD", "batched"):
        state = hooks.powerSGD.PowerSGDState(
            None, matrix_approximation_rank=case["rank"], start_powerSGD_iter=case["start"],
            min_compression_rate=case["min_rate"], use_error_feedback=case["ef"],
            batch_tensors_with_same_shape=case["same"])
        batched = case["hook"] == "batched"
        base = hooks.powerSGD.batched_powerSGD_hook if batched else hooks.powerSGD.powerSGD_hook
        hook = seeded(fw, base, names, buffer_order, batched)
    else:
        hook = {"allreduce": hooks.default.allreduce_hook, "fp16": hooks.default.fp16_compress_hook,
                "bf16": hooks.default.bf16_compress_hook, "noop": hooks.debugging.noop_hook}[case["hook"]]
    if case.get("wrap"):
        hook = getattr(hooks.default, case["wrap"] + "_compress_wrapper")(hook)
    # torch refuses hooks named bf16_compress_* unless it runs over NCCL (gloo reduces bfloat16 all the same)
    ddp.register_comm_hook(state, lambda state, bucket: hook(state, bucket))
    opt = fw.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.5)
    for x, y in batches():
        opt.zero_grad()
        loss = ((ddp(fw.tensor(x)) - fw.tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
    return np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]), state


def _torch_main(out_path):
    """The oracle runs: every case with torch's hooks, DDP over gloo in a world of one."""
    import tempfile

    import torch
    import torch.distributed as tdist
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as tpsgd

    # torch 2.13's batched hook hands _orthogonalize a plain matrix, which its batch-only shape check
    # rejects: the oracle views the matrix as a batch of one, which is what the hook means
    orthogonalize = tpsgd._orthogonalize
    tpsgd._orthogonalize = lambda m, epsilon=0: orthogonalize(m.unsqueeze(0) if m.dim() == 2 else m, epsilon)
    with tempfile.TemporaryDirectory() as tmp:
        tdist.init_process_group("gloo", init_method="file://" + os.path.join(tmp, "store"), rank=0,
                                 world_size=1)
        results = {}
        for name, case in CASES.items():
            params, state = train(torch, case)
            results[name] = (params, state.compression_stats() if state is not None else None)
        tdist.destroy_process_group()
    with open(out_path, "wb") as f:
        pickle.dump(results, f)


# ------------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def world():
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    assert dist.get_world_size() == 1
    return dist.group.WORLD


@pytest.fixture(scope="module")
def torch_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("oracle") / "torch.pkl"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(out)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with open(out, "rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("name", list(CASES))
def test_hook_trains_like_torchs(world, torch_results, name):
    case = CASES[name]
    params, state = train(dtrain, case)
    expected, expected_stats = torch_results[name]
    np.testing.assert_allclose(params, expected, rtol=case["tol"], atol=case["tol"])
    if state is not None:
        assert state.iter == STEPS
        assert state.compression_stats() == pytest.approx(expected_stats)


def test_compressed_steps_change_the_gradients(world, torch_results):
    # the cases above would agree trivially if compression did nothing: it must change the trajectory
    plain = torch_results["allreduce"][0]
    for name in ("fp16", "bf16", "powerSGD_rank1", "batched_powerSGD_rank1"):
        assert np.abs(torch_results[name][0] - plain).max() > 1e-8, name


def test_grad_bucket_gradients_are_views_of_its_buffer_in_parameter_order(world):
    dtrain.manual_seed(0)
    model = dtrain.nn.Sequential(dtrain.nn.Linear(3, 4), dtrain.nn.Linear(4, 2)).double()
    ddp = dtrain.nn.parallel.DistributedDataParallel(model)
    local = {}

    def hook(state, bucket):
        grads, flat = bucket.gradients(), bucket.buffer().numpy()
        assert [tuple(g.shape) for g in grads] == [tuple(p.shape) for p in bucket.parameters()]
        offset = 0
        for p, g in zip(bucket.parameters(), grads):
            assert np.shares_memory(g.numpy(), flat)  # torch: views into the bucket, laid out in this order
            np.testing.assert_array_equal(g.numpy().ravel(), flat[offset:offset + g.numel()])
            offset += g.numel()
            local[id(p)] = g.numpy().copy()
        assert offset == bucket.buffer().numel()
        return default_hooks.allreduce_hook(None, bucket)
    ddp.register_comm_hook(None, hook)
    x = dtrain.randn(5, 3, dtype=dtrain.float64)
    ddp(x).sum().backward()
    want = dtrain.autograd.grad(model(x).sum(), list(model.parameters()))
    for p, g in zip(model.parameters(), want):
        np.testing.assert_array_equal(local[id(p)], g.numpy())


def test_bf16_rounding_is_torchs():
    import torch
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(1000) * 10.0 ** rng.integers(-30, 30, 1000),
                        [0.0, -0.0, np.inf, -np.inf, np.nan, 3.4e38, 1e-40, 1.00390625, 1.01171875]])
    mine = default_hooks._round_bf16(x, np)
    theirs = torch.tensor(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(mine, theirs)
    assert mine.dtype == np.float32


def test_orthogonalize_matches_torchs():
    import torch
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as tpsgd
    rng = np.random.default_rng(0)
    for shape, eps in [((3, 7, 1), 0), ((2, 6, 2), 0), ((2, 9, 4), 0), ((1, 5, 2), 1e-8)]:
        a = rng.standard_normal(shape)
        mine, theirs = a.copy(), torch.tensor(a)
        powerSGD._orthogonalize(mine, eps)
        tpsgd._orthogonalize(theirs, eps)
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(AssertionError):
        powerSGD._orthogonalize(np.zeros((4, 2)))


def test_state_validates_and_prints_like_torch():
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as tpsgd
    for kwargs in [dict(start_powerSGD_iter=1), dict(start_powerSGD_iter=0, use_error_feedback=False),
                   dict(start_powerSGD_iter=1, warm_start=False)]:
        with pytest.raises(ValueError) as theirs:
            tpsgd.PowerSGDState(None, **kwargs)
        with pytest.raises(ValueError) as mine:
            powerSGD.PowerSGDState(None, **kwargs)
        assert str(mine.value) == str(theirs.value)
    # without error feedback and warm start, PowerSGD may start at once
    s = powerSGD.PowerSGDState(None, start_powerSGD_iter=1, use_error_feedback=False, warm_start=False)
    t = tpsgd.PowerSGDState(None, start_powerSGD_iter=1, use_error_feedback=False, warm_start=False)
    for slot in powerSGD.PowerSGDState.__slots__:
        if slot != "rng":
            assert getattr(s, slot) == getattr(t, slot), slot
    assert powerSGD.PowerSGDState.__slots__ == tpsgd.PowerSGDState.__slots__
    assert powerSGD.PowerSGDState(None, compression_stats_logging_frequency=0).compression_stats_logging_frequency == 1
    assert s.compression_stats() == t.compression_stats() == (0, 0, 0)


def test_state_pickles_without_its_group(world):
    state = train(dtrain, CASES["powerSGD_rank1"])[1]
    state.process_group = object()  # not picklable: must be left out
    back = pickle.loads(pickle.dumps(state))
    assert back.process_group is dist.group.WORLD
    assert back.iter == state.iter and back.compression_stats() == state.compression_stats()
    for d in ("error_dict", "p_memory_dict", "q_memory_dict"):
        assert getattr(back, d).keys() == getattr(state, d).keys()
        for k in getattr(state, d):
            np.testing.assert_array_equal(getattr(back, d)[k].numpy(), getattr(state, d)[k].numpy())
    assert back.rng.randint(1_000_000_000) == state.rng.randint(1_000_000_000)


def test_register_ddp_comm_hook_by_type(world):
    import torch.distributed.algorithms.ddp_comm_hooks as tddp
    assert [t.name for t in DDPCommHookType] == [t.name for t in tddp.DDPCommHookType
                                                 if not t.name.startswith("QUANTIZE")]
    model = dtrain.nn.parallel.DistributedDataParallel(dtrain.nn.Linear(3, 2))
    register_ddp_comm_hook(DDPCommHookType.POWER_SGD_RANK2, model)
    assert model._comm_hook is powerSGD.powerSGD_hook
    st = model._comm_state
    assert (st.matrix_approximation_rank, st.start_powerSGD_iter, st.process_group) == (2, 1_000, None)
    model = dtrain.nn.parallel.DistributedDataParallel(dtrain.nn.Linear(3, 2))
    register_ddp_comm_hook(DDPCommHookType.BF16_COMPRESS, model, state=dist.group.WORLD)
    assert model._comm_hook is default_hooks.bf16_compress_hook and model._comm_state is dist.group.WORLD
    with pytest.raises(RuntimeError, match="can only be called once"):
        register_ddp_comm_hook(DDPCommHookType.NOOP, model)
    with pytest.raises(AttributeError):  # torch: 'str' object has no attribute 'value'
        register_ddp_comm_hook("ALLREDUCE", model)


def test_module_layout_is_torchs():
    from dtrain.distributed.algorithms import ddp_comm_hooks as mine
    from torch.distributed.algorithms import ddp_comm_hooks as theirs
    for sub in ("default", "powerSGD", "debugging"):
        assert getattr(mine, sub).__all__ == getattr(theirs, sub).__all__, sub
    assert mine.__all__ == theirs.__all__
    import inspect
    for sub, fn in [("powerSGD", "PowerSGDState"), ("default", "fp16_compress_wrapper"),
                    ("default", "bf16_compress_hook"), ("powerSGD", "powerSGD_hook")]:
        a, b = inspect.signature(getattr(getattr(mine, sub), fn)), inspect.signature(getattr(getattr(theirs, sub), fn))
        assert [(p.name, p.default) for p in a.parameters.values()] == \
               [(p.name, p.default) for p in b.parameters.values()], fn


def test_multi_rank_cases_under_mpiexec():
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", DTRAIN_DIST_TIMEOUT="120")
    proc = subprocess.run([MPIEXEC, "-n", "2", sys.executable, "-m", "pytest", "--with-mpi", "-q", "-x",
                           "-p", "no:cacheprovider", os.path.join(HERE, "mpi_comm_hooks.py")],
                          cwd=os.path.dirname(HERE), env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert " passed" in out and "failed" not in out.split("\n")[-2]


if __name__ == "__main__":
    _torch_main(sys.argv[1])
