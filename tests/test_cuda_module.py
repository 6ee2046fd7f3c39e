"""dtrain.cuda beyond device selection: memory statistics, random state, streams and events, the
deprecated torch.cuda.amp spelling, OutOfMemoryError. Without a device the queries answer as torch's do on a
machine without CUDA; the `cuda`-marked tests run where a device is usable."""
import warnings

import numpy as np
import pytest
import torch

import dtrain

no_device = pytest.mark.skipif(dtrain.cuda.is_available(), reason="checks the answers without a CUDA device")


@no_device
@pytest.mark.parametrize("name", ["memory_reserved", "max_memory_reserved", "memory_stats", "memory_allocated",
                                  "max_memory_allocated", "get_rng_state_all", "is_bf16_supported", "is_initialized",
                                  "get_arch_list", "seed", "seed_all", "device_count", "is_available"])
def test_queries_without_a_device_answer_as_torch(name):
    assert getattr(dtrain.cuda, name)() == getattr(torch.cuda, name)()


@no_device
@pytest.mark.parametrize("call", [lambda c: c.mem_get_info(), lambda c: c.initial_seed(), lambda c: c.get_rng_state(),
                                  lambda c: c.default_stream(), lambda c: c.get_device_capability(),
                                  lambda c: c.init(), lambda c: c.set_per_process_memory_fraction(0.5)])
def test_device_calls_without_a_device_raise(call):
    with pytest.raises(AssertionError, match="^Torch not compiled with CUDA enabled"):
        call(dtrain.cuda)


@no_device
def test_event_and_stream_context_without_a_device():
    for m in (dtrain, torch):
        with pytest.raises(RuntimeError, match="Tried to instantiate dummy base class Event"):
            m.cuda.Event(enable_timing=True)
        with m.cuda.stream(None):  # None: the current stream stays
            pass
    dtrain.cuda.set_rng_state_all([])
    dtrain.cuda.reset_peak_memory_stats  # noqa: B018  (exists, as torch's)


def test_cuda_amp_spelling():
    import dtrain.cuda.amp as amp
    from dtrain.cuda.amp import GradScaler, autocast
    assert amp.autocast is autocast and amp.custom_fwd.__module__ == "dtrain.cuda"
    with autocast(enabled=False) as ctx:
        assert ctx.device == "cuda" and ctx.fast_dtype == dtrain.float16
        assert not dtrain.is_autocast_enabled("cuda")
    assert not dtrain.is_autocast_enabled("cuda")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = GradScaler(init_scale=8.0)
    assert scaler.is_enabled() == dtrain.cuda.is_available()
    assert any("CUDA is not available" in str(w.message) for w in caught) != dtrain.cuda.is_available()
    loss = dtrain.tensor(3.0)
    assert scaler.scale(loss).item() == (24.0 if scaler.is_enabled() else 3.0)
    with pytest.raises(AttributeError):
        amp.no_such_name  # noqa: B018


def test_out_of_memory_error_is_catchable_by_its_torch_names():
    assert dtrain.OutOfMemoryError is dtrain.cuda.OutOfMemoryError
    assert dtrain.cuda.OutOfMemoryError.__name__ == "OutOfMemoryError"
    if not dtrain.cuda.is_available():
        assert issubclass(dtrain.cuda.OutOfMemoryError, RuntimeError)
        with pytest.raises(dtrain.OutOfMemoryError):
            raise dtrain.cuda.OutOfMemoryError("CUDA out of memory")


@pytest.mark.cuda
def test_device_memory_rng_streams_and_events():
    c = dtrain.cuda
    major, minor = c.get_device_capability()
    assert major >= 3 and f"sm_{major}{minor}" in c.get_arch_list()
    free, total = c.mem_get_info()
    assert 0 < free <= total
    x = dtrain.randn(1024, 1024, device="cuda")
    assert c.memory_stats()["allocated_bytes.all.current"] >= x.numel() * 4 and c.memory_reserved() >= c.memory_allocated()
    state = c.get_rng_state()
    a = dtrain.randn(5, device="cuda").cpu().numpy()
    c.set_rng_state(state)
    np.testing.assert_array_equal(dtrain.randn(5, device="cuda").cpu().numpy(), a)
    s = c.Stream()
    start, end = c.Event(enable_timing=True), c.Event(enable_timing=True)
    with c.stream(s):
        assert c.current_stream() == s
        start.record()
        y = x @ x
        end.record()
    assert c.current_stream() != s
    end.synchronize()
    assert end.query() and start.elapsed_time(end) > 0
    np.testing.assert_allclose(y.cpu().numpy()[:2, :2], (x.cpu().numpy() @ x.cpu().numpy())[:2, :2], rtol=1e-3)
    with pytest.raises(dtrain.cuda.OutOfMemoryError):
        dtrain.empty(1 << 50, device="cuda")


_CUDA_REQUESTS = [
    lambda T: T.zeros(1, device="cuda"),
    lambda T: T.tensor([1.0], device="cuda:0"),
    lambda T: T.randn(2, device=T.device("cuda")),
    lambda T: T.ones(2).cuda(),
    lambda T: T.ones(2).to("cuda"),
    lambda T: T.nn.Linear(2, 2).cuda(),
    lambda T: T.nn.Linear(2, 2).to("cuda"),
    lambda T: T.cuda.current_device(),
    lambda T: T.cuda.synchronize(),
    lambda T: T.cuda.get_device_name(),
    lambda T: T.cuda.get_device_properties(0),
    lambda T: T.cuda.current_stream(),
    lambda T: T.cuda.Stream(),
    lambda T: T.ones(2).pin_memory(),
]


@no_device
@pytest.mark.parametrize("request_cuda", _CUDA_REQUESTS)
def test_cuda_requests_without_cuda_raise_torchs_error_with_dtrains_reason(request_cuda):
    """torch's CPU build: AssertionError 'Torch not compiled with CUDA enabled' (its text first, then ours)."""
    with pytest.raises(Exception) as want:
        request_cuda(torch)
    with pytest.raises(Exception) as got:
        request_cuda(dtrain)
    assert type(got.value) is type(want.value)
    assert str(got.value).startswith(str(want.value))
    if type(want.value) is AssertionError:
        assert "CuPy" in str(got.value)  # why, for dtrain's users
