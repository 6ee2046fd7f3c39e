"""Device-correct CUDA code across two devices: ops and backward on cuda:1 from a thread whose current device is
0, DataParallel over two devices, collectives finishing on other threads, NCCL's stream semantics and abort,
per-device memory statistics. Compared against torch on the CPU.

Marked `cuda`; they need two devices, e.g. `DTRAIN_EMULATE_CUDA=2 pytest tests/test_cuda_devices.py` (the
emulated devices enforce CuPy's rule that an array is used only while its device is current)."""
import copy
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import dtrain
from dtrain import _backend

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not dtrain.cuda.is_available() or dtrain.cuda.device_count() < 2,
                                 reason="needs two CUDA devices (DTRAIN_EMULATE_CUDA=2 emulates them)")]
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True)
def current_device_0():
    # every test starts (and must end) on device 0 whatever it touches: the engine restores what it changes
    cp = _backend.cupy()
    cp.cuda.runtime.setDevice(0)
    yield
    assert cp.cuda.runtime.getDevice() == 0
    cp.cuda.runtime.setDevice(0)


def _np(t):
    return t.detach().cpu().numpy()


def _mlp(mod, lib):
    torch_like = lib
    m = torch_like.nn.Sequential(torch_like.nn.Linear(6, 5), torch_like.nn.GELU(), torch_like.nn.Linear(5, 3))
    return m


def _same_weights(dst, src):
    with torch.no_grad():
        for p, q in zip(dst.parameters(), src.parameters()):
            p.copy_(torch.from_numpy(_np(q)))


def test_ops_and_backward_on_the_second_device_from_a_thread_on_the_first():
    rng = np.random.default_rng(0)
    xs, ys = rng.standard_normal((8, 6)).astype(np.float32), rng.integers(0, 3, 8)
    m = _mlp(None, dtrain).to("cuda:1")
    ref = _mlp(None, torch)
    _same_weights(ref, m)
    x = dtrain.tensor(xs, device="cuda:1", requires_grad=True)
    loss = dtrain.nn.functional.cross_entropy(m(x) * 2 + 1, dtrain.tensor(ys, device="cuda:1"))
    loss.backward()
    xt = torch.tensor(xs, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(ref(xt) * 2 + 1, torch.tensor(ys))
    lt.backward()
    assert loss.device == dtrain.device("cuda:1") and x.grad.device == dtrain.device("cuda:1")
    np.testing.assert_allclose(_np(loss), lt.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(_np(x.grad), xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    for p, q in zip(m.parameters(), ref.parameters()):
        assert p.grad.device == dtrain.device("cuda:1")
        np.testing.assert_allclose(_np(p.grad), q.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_autograd_grad_and_scalar_operands_on_the_second_device():
    x = dtrain.arange(4.0, device="cuda:1").requires_grad_()
    y = (3 - x * x / 2).exp().sum()
    (g,) = dtrain.autograd.grad(y, x)
    xt = torch.arange(4.0, requires_grad=True)
    (gt,) = torch.autograd.grad((3 - xt * xt / 2).exp().sum(), xt)
    assert g.device == dtrain.device("cuda:1")
    np.testing.assert_allclose(_np(g), gt.numpy(), rtol=1e-6)


_NON_APPLY_OPS = {  # ops that compute on arrays outside Function.apply (checks, sorting, index arithmetic)
    "sort": lambda m, x: m.sort(x, dim=1, descending=True)[0],
    "argmax": lambda m, x: m.argmax(x, dim=1),
    "any": lambda m, x: (x > 0.5).any(dim=0),
    "gt": lambda m, x: x > 0.1,
    "median": lambda m, x: m.median(x, dim=1).values,
    "quantile": lambda m, x: m.quantile(x, m.tensor([0.25, 0.5], device=x.device), dim=0),
    "index_select": lambda m, x: m.index_select(x, 0, m.tensor([2, 0], device=x.device)),
    "gather": lambda m, x: m.gather(x, 1, m.tensor([[0, 1]] * 4, device=x.device)),
    "index": lambda m, x: x[m.tensor([3, 1], device=x.device)],
    "copy_": lambda m, x: m.zeros(4, 5, device=x.device).copy_(x),
    "add_": lambda m, x: x.clone().add_(1.5),
    "where": lambda m, x: m.where(x > 0, x, 0.0),
    "nonzero": lambda m, x: m.nonzero(x > 0),
    "histc": lambda m, x: m.histc(x, bins=4, min=-2, max=2),
    "index_add": lambda m, x: x.index_add(0, m.tensor([1, 1], device=x.device), x[:2]),
    "out=": lambda m, x: m.add(x, 1, out=m.empty(0, device=x.device)),
    "sdpa": lambda m, x: m.nn.functional.scaled_dot_product_attention(x[None], x[None], x[None]),
    "nll_loss": lambda m, x: m.nn.functional.nll_loss(x, m.tensor([0, 4, 2, 1], device=x.device)),
    "embedding": lambda m, x: m.nn.functional.embedding(m.tensor([3, 0], device=x.device), x),
    "one_hot": lambda m, x: m.nn.functional.one_hot((x > 0).long().sum(1), 6),
    "count_nonzero": lambda m, x: m.count_nonzero(x > 0, dim=1),
    "take": lambda m, x: m.take(x, m.tensor([0, 7, 19], device=x.device)),
    "mode": lambda m, x: m.mode((x > 0).long(), dim=1).values,
}


def test_in_place_op_keeps_its_saved_copy_on_the_tensors_device():
    # mul_ saves a copy of self's old values for its backward: CuPy's copy() lands on the current device
    x0 = dtrain.ones(3, 4, device="cuda:1", requires_grad=True)
    y = dtrain.full((4,), 2.0, device="cuda:1", requires_grad=True)
    x = x0 * 1
    x.mul_(y)
    x.sum().backward()
    xt0, yt = torch.ones(3, 4, requires_grad=True), torch.full((4,), 2.0, requires_grad=True)
    xt = xt0 * 1
    xt.mul_(yt)
    xt.sum().backward()
    np.testing.assert_array_equal(_np(x0.grad), xt0.grad.numpy())
    np.testing.assert_array_equal(_np(y.grad), yt.grad.numpy())


def _set(y, key, value):
    y[key] = value
    return y


def _with_grad(m, x, fn):
    p = m.nn.Parameter(x.clone())
    p.grad = x.clone() * 3
    fn([p])
    return p.grad


# Paths that bypassed the device made current by Function.apply: setitem, in-place fills, deepcopy, factory
# functions with device=, and ops that make index or weight arrays of their own (each made on the current
# device, or run a kernel there, before it was fixed). The random ones are compared through a property that
# holds for any draw.
_NON_APPLY_OPS.update({
    "setitem_int": lambda m, x: _set(x.clone(), 1, -1.0),
    "setitem_mask": lambda m, x: _set(x.clone(), x > 0, 0.0),
    "setitem_list": lambda m, x: _set(x.clone(), [0, 2], 1.0),
    "setitem_slice_tensor": lambda m, x: _set(x.clone(), slice(1, 3), x[0]),
    "setitem_in_graph": lambda m, x: _set(x.clone().requires_grad_() * 1, ([0, 2], [1, 3]), 9.0),
    "fill_": lambda m, x: x.clone().fill_(2.5),
    "fill_in_graph": lambda m, x: (x.clone().requires_grad_() * 1).fill_(2.5),
    "zero_": lambda m, x: x.clone().zero_(),
    "fill_diagonal_": lambda m, x: x.clone().fill_diagonal_(2.0),
    "deepcopy": lambda m, x: copy.deepcopy(x),
    "max_of_0d": lambda m, x: m.max(x[1, 2], 0).indices,
    "median_of_0d": lambda m, x: m.median(x[1, 2], 0).indices,
    "hann_window": lambda m, x: m.hann_window(5, device=x.device),
    "kaiser_window": lambda m, x: m.kaiser_window(6, device=x.device),
    "fftfreq": lambda m, x: m.fft.fftfreq(5, device=x.device),
    "stft": lambda m, x: m.stft(x.reshape(-1), 8, window=m.hann_window(8, device=x.device),
                                return_complex=True).abs(),
    "interpolate_linear": lambda m, x: m.nn.functional.interpolate(x[None], scale_factor=2, mode="linear"),
    "interpolate_nearest": lambda m, x: m.nn.functional.interpolate(x[None], size=7),
    "combinations": lambda m, x: m.combinations(x[0]),
    "put": lambda m, x: m.put(x, m.tensor([1, 7], device=x.device), x[0, :2]),
    "diagonal_scatter": lambda m, x: m.diagonal_scatter(x, x[0, :4]),
    "pinv": lambda m, x: m.linalg.pinv(x.double(), atol=0.1),
    "unique": lambda m, x: m.unique((x * 2).round()),
    "bincount": lambda m, x: m.bincount((x > 0).long().reshape(-1)),
    "searchsorted": lambda m, x: m.searchsorted(m.sort(x[0]).values, x[1]),
    "equal": lambda m, x: m.full((1,), float(m.equal(x, x + 0)), device=x.device),
    "allclose": lambda m, x: m.full((1,), float(m.allclose(x, x + 1e-9)), device=x.device),
    "ctc_loss": lambda m, x: m.nn.functional.ctc_loss(x[:, None].log_softmax(2), m.tensor([[1, 2]], device=x.device),
                                                      [4], [2]),
    "fractional_max_pool2d": lambda m, x: m.nn.functional.fractional_max_pool2d(
        x[None, None], 2, output_size=(2, 2), _random_samples=m.full((1, 1, 2), 0.5, device=x.device)),
    "grid_sample": lambda m, x: m.nn.functional.grid_sample(x[None, None], x[:2, :4].reshape(1, 2, 2, 2) / 3,
                                                            align_corners=False),
    "grid_sample_reflection": lambda m, x: m.nn.functional.grid_sample(
        x[None, None], x[:2, :4].reshape(1, 2, 2, 2), padding_mode="reflection", align_corners=True),
    "exponential_": lambda m, x: x.clone().exponential_() >= 0,
    "geometric_": lambda m, x: x.clone().geometric_(0.5) >= 1,
    "log_normal_": lambda m, x: x.clone().log_normal_() > 0,
    "bernoulli_": lambda m, x: x.clone().bernoulli_(m.ones_like(x)),
    "multinomial": lambda m, x: m.multinomial(m.eye(4, 5, device=x.device), 1),
    "alpha_dropout": lambda m, x: m.nn.functional.alpha_dropout(x, 0.5, training=True).isfinite(),
    "init.eye_": lambda m, x: m.nn.init.eye_(x.clone()),
    "init.dirac_": lambda m, x: m.nn.init.dirac_(x.clone()[:, :, None].expand(4, 5, 3).contiguous()),
    "init.orthogonal_": lambda m, x: (lambda w: (w @ w.T).round())(m.nn.init.orthogonal_(x.clone())),
    "init.trunc_normal_": lambda m, x: m.nn.init.trunc_normal_(x.clone(), a=-1.0, b=1.0).abs() <= 1,
    "init.sparse_": lambda m, x: (m.nn.init.sparse_(x.clone(), 0.5) == 0).sum(0),
    "clip_grad_norm_": lambda m, x: _with_grad(m, x, lambda ps: m.nn.utils.clip_grad_norm_(ps, 0.5)),
    "clip_grad_value_": lambda m, x: _with_grad(m, x, lambda ps: m.nn.utils.clip_grad_value_(ps, 0.5)),
    "zero_grad_in_place": lambda m, x: _with_grad(m, x, lambda ps: m.optim.SGD(ps, lr=0.1).zero_grad(False)),
    "index_fill": lambda m, x: x.index_fill(1, m.tensor([1, 3], device=x.device), -2.0),
    "default_collate": lambda m, x: m.utils.data.default_collate([x[0], x[2], x[1]]),
})


@pytest.mark.parametrize("name", sorted(_NON_APPLY_OPS))
def test_ops_beyond_function_apply_on_the_second_device(name):
    xs = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    fn = _NON_APPLY_OPS[name]
    got = fn(dtrain, dtrain.tensor(xs, device="cuda:1"))
    want = fn(torch, torch.tensor(xs))
    assert got.device == dtrain.device("cuda:1")
    # and its array lives there: CuPy's copy(), asarray() and zeros() make arrays on the current device
    assert got._data.device.id == 1, f"a cuda:1 tensor whose array is on device {got._data.device.id}"
    np.testing.assert_allclose(_np(got), want.detach().numpy(), rtol=1e-5, atol=1e-7)  # float32: a few roundings


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_optimizer_steps_parameters_on_the_second_device(opt):
    rng = np.random.default_rng(3)
    w0, g = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    kw = {"lr": 0.1, "momentum": 0.9} if opt == "SGD" else {"lr": 0.1}
    p = dtrain.nn.Parameter(dtrain.tensor(w0, device="cuda:1"))
    q = torch.nn.Parameter(torch.tensor(w0))
    o, r = getattr(dtrain.optim, opt)([p], **kw), getattr(torch.optim, opt)([q], **kw)
    for _ in range(2):
        p.grad, q.grad = dtrain.tensor(g, device="cuda:1"), torch.tensor(g)
        o.step()
        r.step()
    assert p.device == dtrain.device("cuda:1")
    np.testing.assert_allclose(_np(p), q.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_lbfgs_steps_on_the_second_device_and_runs_the_closure_on_the_callers():
    xs = np.random.default_rng(6).standard_normal(5)
    seen = []

    def run(m, device):
        p = m.nn.Parameter(m.tensor(xs, device=device))
        opt = m.optim.LBFGS([p], lr=0.5, max_iter=4, line_search_fn="strong_wolfe")

        def closure():
            if m is dtrain:
                seen.append(dtrain.cuda.current_device())
            opt.zero_grad()
            loss = ((p - 1) ** 2 * (p * p + 1)).sum()
            loss.backward()
            return loss
        for _ in range(2):
            opt.step(closure)
        return p
    got, want = run(dtrain, "cuda:1"), run(torch, "cpu")
    assert got._data.device.id == 1 and seen and set(seen) == {0}  # the closure on the caller's device, as torch
    np.testing.assert_allclose(_np(got), want.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_grad_scaler_unscales_and_steps_on_the_second_device():
    g = np.random.default_rng(4).standard_normal(5).astype(np.float32)
    p = dtrain.nn.Parameter(dtrain.zeros(5, device="cuda:1"))
    opt, scaler = dtrain.optim.SGD([p], lr=1.0), dtrain.amp.GradScaler("cuda", init_scale=1024.0)
    scaler.scale((p * dtrain.tensor(g, device="cuda:1")).sum()).backward()
    np.testing.assert_allclose(_np(p.grad), g * 1024, rtol=1e-6)
    scaler.unscale_(opt)  # the fused check-and-unscale kernel runs on the gradients' device
    np.testing.assert_allclose(_np(p.grad), g, rtol=1e-6)
    scaler.step(opt)
    scaler.update()
    np.testing.assert_allclose(_np(p), -g, rtol=1e-6)


def test_clip_grad_norm_over_parameters_on_two_devices():
    rng = np.random.default_rng(5)
    gs = [rng.standard_normal(3).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    ps = [dtrain.nn.Parameter(dtrain.zeros(len(g), device=f"cuda:{i}")) for i, g in enumerate(gs)]
    qs = [torch.nn.Parameter(torch.zeros(len(g))) for g in gs]
    for p, q, g in zip(ps, qs, gs):
        p.grad, q.grad = dtrain.tensor(g, device=p.device), torch.tensor(g)
    with dtrain._backend.on_device(dtrain.device("cuda:1")):  # whichever device is current: torch's result
        total = dtrain.nn.utils.clip_grad_norm_(ps, 0.5, norm_type=3.0)
    want = torch.nn.utils.clip_grad_norm_(qs, 0.5, norm_type=3.0)
    assert total.device == dtrain.device("cuda:0") and total._data.device.id == 0  # the first one's, as torch
    np.testing.assert_allclose(_np(total), want.numpy(), rtol=1e-6)
    for p, q in zip(ps, qs):
        assert p.grad._data.device.id == p.device.index
        np.testing.assert_allclose(_np(p.grad), q.grad.numpy(), rtol=1e-6)


def test_the_emulated_devices_write_and_gather_only_on_the_current_device():
    # CuPy's setitem, fill and advanced indexing run kernels on the current device (peer access is off on the
    # emulated devices, CuPy's strictest case); a basic index is a view and runs nothing
    cp = _backend.cupy()
    with cp.cuda.Device(1):
        a = cp.arange(6.0).reshape(2, 3)
        idx = cp.asarray([0, 1])
    writes = {"setitem": lambda: a.__setitem__((0, 1), 5.0), "fill": lambda: a.fill(0.0),
              "setitem_host_index": lambda: a.__setitem__((np.array([0, 1]), 1), 0.0),
              "gather": lambda: a[idx], "gather_host_index": lambda: a[[1, 0]]}
    for name, fn in writes.items():
        with pytest.raises(ValueError, match=r"resides \(1\) is different from the current device \(0\)"):
            fn()
    assert a[1, 1:].device.id == 1
    with cp.cuda.Device(1):
        a[0, 1] = 7.0
        a[[1], 0] = 9.0
        np.testing.assert_array_equal(cp.asnumpy(a[idx, 0]), [0.0, 9.0])
    np.testing.assert_array_equal(cp.asnumpy(a), [[0.0, 7.0, 2.0], [9.0, 4.0, 5.0]])


class _Probe(dtrain.autograd.Function):
    """Identity that records the current CUDA device in its forward and backward."""
    seen = []

    @staticmethod
    def forward(ctx, x):
        _Probe.seen.append(("forward", x.device.index, dtrain.cuda.current_device()))
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        _Probe.seen.append(("backward", g.device.index, dtrain.cuda.current_device()))
        return g


class _Probed(dtrain.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(_Probe.apply(x))


@pytest.mark.parametrize("grad_mode", ["backward", "no_grad"])
def test_data_parallel_over_two_devices_matches_one_model(grad_mode):
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((10, 6)).astype(np.float32)
    inner = _mlp(None, dtrain).to("cuda:0")
    ref = _mlp(None, torch)
    _same_weights(ref, inner)
    dp = dtrain.nn.DataParallel(_Probed(inner), device_ids=[0, 1])
    _Probe.seen = []
    x = dtrain.tensor(xs, device="cuda:0", requires_grad=grad_mode == "backward")
    if grad_mode == "no_grad":
        with dtrain.no_grad():
            out = dp(x)
        np.testing.assert_allclose(_np(out), ref(torch.tensor(xs)).detach().numpy(), rtol=1e-5, atol=1e-6)
        return
    out = dp(x)
    assert out.device == dtrain.device("cuda:0")
    (out ** 2).mean().backward()
    xt = torch.tensor(xs, requires_grad=True)
    ot = ref(xt)
    (ot ** 2).mean().backward()
    np.testing.assert_allclose(_np(out), ot.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert x.grad.device == dtrain.device("cuda:0")
    np.testing.assert_allclose(_np(x.grad), xt.grad.numpy(), rtol=1e-4, atol=1e-7)
    for p, q in zip(inner.parameters(), ref.parameters()):
        assert p.grad.device == dtrain.device("cuda:0")  # every replica's gradient summed into the source
        np.testing.assert_allclose(_np(p.grad), q.grad.numpy(), rtol=1e-4, atol=1e-6)
    # each replica ran its forward in a thread with its device current, and each backward node with its own
    forwards = sorted(s for s in _Probe.seen if s[0] == "forward")
    backwards = sorted(s for s in _Probe.seen if s[0] == "backward")
    assert forwards == [("forward", 0, 0), ("forward", 1, 1)]
    assert backwards == [("backward", 0, 0), ("backward", 1, 1)]


def test_parallel_apply_takes_torchs_devices_argument():
    from dtrain.nn.parallel.data_parallel import parallel_apply
    seen = {}

    class Where(dtrain.nn.Module):
        def forward(self, tag):
            seen[tag] = dtrain.cuda.current_device()
            return tag

    assert parallel_apply([Where(), Where()], [("a",), ("b",)], None, [1, "cuda:0"]) == ["a", "b"]
    assert seen == {"a": 1, "b": 0}


def test_memory_statistics_per_device():
    c = dtrain.cuda
    c.reset_peak_memory_stats(0)
    c.reset_peak_memory_stats("cuda:1")
    base0, base1 = c.memory_allocated(0), c.memory_allocated(1)
    a = dtrain.zeros(1000, device="cuda:1")  # 4000 bytes on device 1 only
    assert c.memory_allocated(1) - base1 >= 4000 and c.memory_allocated(0) == base0
    b = dtrain.zeros(5000, device="cuda:1")
    held = c.memory_allocated(1)
    del b
    assert c.memory_allocated(1) <= held - 20000
    # the peak saw the freed 20000 bytes; the pool keeps them (reserved) until empty_cache
    assert c.max_memory_allocated(1) >= held >= c.memory_allocated(1) + 20000
    assert c.max_memory_allocated(0) == c.memory_allocated(0) == base0
    assert c.memory_reserved(1) >= c.max_memory_allocated(1) - 0 or c.memory_reserved(1) >= c.memory_allocated(1)
    assert c.max_memory_reserved(1) >= c.memory_reserved(1)
    c.reset_peak_memory_stats(1)
    assert c.max_memory_allocated(1) == c.memory_allocated(1)
    with dtrain.cuda.device(1):
        assert c.memory_allocated() == c.memory_allocated(1)  # None: the current device
    stats = c.memory_stats(1)
    assert stats["allocated_bytes.all.current"] == c.memory_allocated(1)
    assert stats["allocated_bytes.all.peak"] == c.max_memory_allocated(1)
    with pytest.warns(FutureWarning, match="reset_peak_memory_stats"):
        c.reset_max_memory_allocated(1)
    with pytest.raises(ValueError, match="Expected a cuda device"):
        c.memory_allocated("cpu")
    del a


def test_mpi_average_of_a_device_array_finishes_on_its_device(monkeypatch):
    # CUDA-aware MPI reduces the device buffer itself; the division of ReduceOp.AVG then runs on whichever
    # thread completes the request (the progress thread, current device 0), on a device-1 array
    from mpi4py import MPI
    from dtrain.distributed._backend import RedOpType
    from dtrain.distributed._mpi import MPIBackend
    monkeypatch.setenv("DTRAIN_CUDA_AWARE_MPI", "1")
    backend = MPIBackend(MPI.COMM_WORLD.Dup())
    try:
        assert not backend._host_staging
        cp = _backend.cupy()
        with cp.cuda.Device(1):
            a = cp.arange(6, dtype=cp.float32) * 2
        req = backend.all_reduce(a, RedOpType.AVG)
        errors = []

        def progress():  # a thread that has not selected a device: device 0 is current there
            try:
                while not req.test():
                    time.sleep(1e-4)
            except BaseException as e:
                errors.append(e)
        t = threading.Thread(target=progress)
        t.start()
        t.join()
        assert not errors, errors
        np.testing.assert_array_equal(a.get(), np.arange(6, dtype=np.float32) * 2)
        assert a.device.id == 1
    finally:
        backend.close()


def _nccl_group():
    import dtrain.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("mpi")
    return dist.new_group(backend="nccl")


def test_work_wait_makes_the_current_stream_wait_for_an_nccl_collective(monkeypatch):
    import dtrain.distributed as dist
    cp = _backend.cupy()
    g = _nccl_group()
    waits = []
    real = cp.cuda.Stream.wait_event

    def wait_event(stream, event):
        waits.append((stream, event, threading.get_ident()))
        return real(stream, event)
    x = dtrain.ones(4, device="cuda:1")
    try:
        work = dist.all_reduce(x, group=g, async_op=True)
        monkeypatch.setattr(cp.cuda.Stream, "wait_event", wait_event)
        assert work.wait() is True
        # torch's NCCL wait: the current stream of the tensor's device waits for the collective's end event
        # (the host does not poll it), whichever device the calling thread has current
        done = work._req.device_event[0]
        assert [(s, e) for s, e, t in waits if t == threading.get_ident()] == [(cp.cuda.get_current_stream(1), done)]
        assert work.synchronize() is None
        np.testing.assert_array_equal(_np(x * 1), np.full(4, float(dist.get_world_size())))
        assert work.is_completed() and work.is_success()
    finally:
        monkeypatch.undo()
        dist.destroy_process_group(g)


_DDP_ON_THE_OTHER_DEVICE = """
import json, numpy as np
import dtrain as torch
import dtrain.distributed as dist
dist.init_process_group("nccl")  # makes cuda:rank current
rank = dist.get_rank()
dev = torch.device(f"cuda:{1 - rank}")  # the model on the other device: DDP's own arrays must follow it
model = torch.nn.Linear(4, 3).to(dev)
with torch.no_grad():
    model.weight.copy_(torch.tensor(np.arange(12.0).reshape(3, 4) / 10, device=dev))
    model.bias.zero_()
ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[1 - rank])
opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
rng = np.random.default_rng(rank)
for _ in range(3):
    x = torch.tensor(rng.standard_normal((5, 4)), dtype=torch.float32, device=dev)
    opt.zero_grad()
    ddp(x).pow(2).mean().backward()
    opt.step()
print("RESULT", rank, torch.cuda.current_device(), model.weight.device.index,
      json.dumps([p.detach().cpu().tolist() for p in model.parameters()]), flush=True)
dist.destroy_process_group()
"""


_COLLECTIVES_ON_THE_OTHER_DEVICE = """
import numpy as np
import dtrain as torch
import dtrain.distributed as dist
dist.init_process_group("nccl")  # makes cuda:rank current
r = dist.get_rank()
dev = torch.device(f"cuda:{1 - r}")  # every tensor on the other device


def T(*v):
    return torch.tensor([float(x) for x in v], device=dev)


def same(t, want):
    assert t.device == dev and t._data.device.id == 1 - r, (t.device, t._data.device.id)
    np.testing.assert_array_equal(t.cpu().numpy(), np.asarray(want, dtype=np.float32))


t = torch.ones(3, 2, device=dev) * r
dist.all_reduce(t[:, 0])  # a non-contiguous tensor: reduced in a copy, written back
same(t, [[1.0, r]] * 3)
outs = [T(0), T(0)]
dist.all_gather(outs, T(r))
same(torch.cat(outs), [0, 1])
outs = [T(0), T(0)]
dist.all_gather(outs, T(r + 5), async_op=True).wait()  # the copy-out at wait()
same(torch.cat(outs), [5, 6])
o = T(0)
dist.reduce_scatter(o, [T(r), T(r + 1)])
same(o, [[1], [3]][r])
g = [T(0), T(0)] if r == 0 else None
dist.gather(T(r + 2), g, 0)
if r == 0:
    same(torch.cat(g), [2, 3])
o = T(0)
dist.scatter(o, [T(5), T(6)] if r == 0 else None, 0)
same(o, [5 + r])
outs = [T(0), T(0)]
dist.all_to_all(outs, [T(r), T(r + 10)])
same(torch.cat(outs), [[0, 1], [10, 11]][r])
assert torch.cuda.current_device() == r
print("RANK", r, "collectives ok", flush=True)
dist.destroy_process_group()
"""


def _run_two_ranks(tmp_path, source):
    script = tmp_path / "two_ranks.py"
    script.write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "OMPI_", "SLURM_"))}
    env["DTRAIN_EMULATE_CUDA"] = "2"
    run = os.path.join(os.path.dirname(sys.executable), "dtrain-run")
    proc = subprocess.run([run, "-n", "2", str(script)], env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.skipif("PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ,
                    reason="starts its own MPI job; not run inside one")
def test_collectives_on_tensors_of_another_device_than_the_current_one(tmp_path):
    # their staging buffers and copy-outs (list outputs, non-contiguous tensors) on the tensors' device
    out = _run_two_ranks(tmp_path, _COLLECTIVES_ON_THE_OTHER_DEVICE)
    assert "RANK 0 collectives ok" in out and "RANK 1 collectives ok" in out, out[-4000:]


@pytest.mark.skipif("PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ,
                    reason="starts its own MPI job; not run inside one")
def test_ddp_trains_a_model_on_another_device_than_the_current_one(tmp_path):
    # each rank's current device is its rank (init_process_group), its model on the other device
    out = _run_two_ranks(tmp_path, _DDP_ON_THE_OTHER_DEVICE)
    import json
    rows = {int(line.split()[2]): line.split(None, 5)[3:] for line in out.splitlines() if "RESULT" in line}
    assert sorted(rows) == [0, 1], out[-4000:]
    ref = torch.nn.Linear(4, 3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(np.arange(12.0).reshape(3, 4) / 10))
        ref.bias.zero_()
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    rngs = [np.random.default_rng(r) for r in range(2)]
    for _ in range(3):  # DDP's average of two equal batches' gradients: the gradient over both
        x = torch.tensor(np.concatenate([g.standard_normal((5, 4)) for g in rngs]), dtype=torch.float32)
        opt.zero_grad()
        ref(x).pow(2).mean().backward()
        opt.step()
    for rank, (current, model_device, params) in rows.items():
        assert (int(current), int(model_device)) == (rank, 1 - rank)
        for got, want in zip(json.loads(params), ref.parameters()):
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif("PMI_SIZE" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ,
                    reason="starts its own MPI job; not run inside one")
def test_nccl_communicator_is_aborted_after_a_timeout():
    # rank 1 joins the all_reduce 6 s late; rank 0 times out after 1 s and closes its group: destroy() would
    # wait for the hung operation (until rank 1 comes), abort() returns at once
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_", "OMPI_", "SLURM_"))}
    env["DTRAIN_EMULATE_CUDA"] = "2"
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", "2"]
    if "HYDRA" in subprocess.run([cmd[0], "--version"], capture_output=True, text=True).stdout.upper():
        cmd += ["-launcher", "fork"]
    cmd += [sys.executable, os.path.join(HERE, "distributed", "scripts", "nccl_abort.py")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "rank 0 closed in" in out and "rank 1 done" in out, out[-4000:]


def test_a_tensor_unpickled_on_the_second_device_has_its_array_there():
    import pickle
    t = dtrain.arange(3.0, device="cuda:1")
    with dtrain.cuda.device(0):
        u = pickle.loads(pickle.dumps(t))
    assert u.device == dtrain.device("cuda:1") and u._data.device.id == 1 and u.tolist() == [0.0, 1.0, 2.0]
