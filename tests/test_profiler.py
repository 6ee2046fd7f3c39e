"""dtrain.profiler against torch.profiler: the same ops and ranges counted, torch's table layout, schedules that
act on the same steps, valid Chrome traces, and an op hook that is gone when no profile records."""
import json
import re

import pytest
import torch

import dtrain
from dtrain.autograd import graph


def _run(m, prof_kwargs, steps=1, call_step=False):
    m.manual_seed(0)
    net = m.nn.Sequential(m.nn.Linear(8, 4), m.nn.ReLU())
    x = m.randn(2, 8)
    with m.profiler.profile(**prof_kwargs) as prof:
        for _ in range(steps):
            with m.profiler.record_function("model_inference"):
                net(x).sum()
            if call_step:
                prof.step()
    return prof


def _rows(table):
    """{name: cells} of a key_averages table, and its header cells."""
    lines = table.splitlines()
    header = re.split(r"\s{2,}", lines[1].strip())
    rows = {}
    for line in lines[3:]:
        if line.startswith("-"):
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = dict(zip(header, cells))
    return header, rows, lines


def test_ops_and_ranges_are_counted_as_torch_counts_them():
    kw = dict(activities=[dtrain.profiler.ProfilerActivity.CPU])
    got = {e.key: e for e in _run(dtrain, kw, steps=3).key_averages()}
    want = {e.key: e for e in _run(torch, dict(activities=[torch.profiler.ProfilerActivity.CPU]), steps=3)
            .key_averages()}
    for key in ("model_inference", "aten::linear", "aten::relu", "aten::sum"):
        assert got[key].count == want[key].count == 3, key
    rng = got["model_inference"]
    ops = sum(got[k].cpu_time_total for k in ("aten::linear", "aten::relu", "aten::sum"))
    assert rng.cpu_time_total >= ops > 0  # the range holds its ops: total covers them, self is the rest
    assert rng.self_cpu_time_total == pytest.approx(rng.cpu_time_total - ops, rel=1e-9, abs=1e-6)
    assert got["aten::linear"].self_cpu_time_total == got["aten::linear"].cpu_time_total


def test_table_has_torchs_layout():
    kw = dict(record_shapes=True)
    d = _run(dtrain, dict(kw, activities=[dtrain.profiler.ProfilerActivity.CPU]))
    t = _run(torch, dict(kw, activities=[torch.profiler.ProfilerActivity.CPU]))
    dh, drows, dlines = _rows(d.key_averages().table(sort_by="cpu_time_total", row_limit=10))
    th, trows, tlines = _rows(t.key_averages().table(sort_by="cpu_time_total", row_limit=10))
    assert dh == th
    assert dlines[-1].startswith("Self CPU time total: ") and tlines[-1].startswith("Self CPU time total: ")
    assert drows["model_inference"]["CPU total %"] == "100.00%"
    self_pct = sum(float(r["Self CPU %"].rstrip("%")) for r in drows.values())
    assert self_pct == pytest.approx(100, abs=0.1)
    for r in drows.values():
        assert re.fullmatch(r"\d+\.\d{3}(us|ms|s)", r["CPU total"])
    dh, drows, _ = _rows(d.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total"))
    th, trows, _ = _rows(t.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total"))
    assert dh == th and dh[-1] == "Input Shapes"
    # (not aten::sum: torch lists its optional dtype argument as one more [], dtrain only tensor inputs)
    for key in ("aten::linear", "aten::relu", "model_inference"):
        assert drows[key]["Input Shapes"] == trows[key]["Input Shapes"], key


def test_sort_by_and_row_limit():
    prof = _run(dtrain, {}, steps=2)
    for key in ("cpu_time_total", "self_cpu_time_total", "count", "cuda_time_total"):
        _, rows, lines = _rows(prof.key_averages().table(sort_by=key, row_limit=2))
        assert len(rows) == 2
        ordered = sorted(prof.key_averages(), key=lambda e: getattr(e, key), reverse=True)
        assert list(rows) == [e.key for e in ordered[:2]]


def test_chrome_trace_is_valid_and_nested(tmp_path):
    prof = _run(dtrain, dict(record_shapes=True))
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    doc = json.loads((tmp_path / "trace.json").read_text())
    events = doc["traceEvents"]
    for e in events:
        assert e["ph"] == "X" and isinstance(e["ts"], float) and e["dur"] >= 0 and isinstance(e["name"], str)
    rng = next(e for e in events if e["name"] == "model_inference")
    ops = [e for e in events if e["cat"] == "cpu_op"]
    assert {e["name"] for e in ops} >= {"aten::linear", "aten::relu", "aten::sum"}
    for e in ops:  # every op ran inside the range
        assert rng["ts"] <= e["ts"] and e["ts"] + e["dur"] <= rng["ts"] + rng["dur"] + 1e-3
    assert next(e for e in ops if e["name"] == "aten::linear")["args"]["Input Dims"] == [[2, 8], [4, 8], [4]]
    # torch's trace of the same program has the same event fields
    tprof = _run(torch, dict(record_shapes=True))
    tprof.export_chrome_trace(str(tmp_path / "torch.json"))
    tev = [e for e in json.loads((tmp_path / "torch.json").read_text())["traceEvents"] if e.get("ph") == "X"]
    assert {"ph", "cat", "name", "pid", "tid", "ts", "dur", "args"} <= set(tev[0]) and set(events[0]) <= set(tev[0])


@pytest.mark.parametrize("kw", [dict(wait=1, warmup=1, active=2), dict(wait=0, warmup=1, active=1, repeat=2),
                                dict(wait=2, warmup=1, active=3, repeat=1, skip_first=3),
                                dict(wait=3, warmup=1, active=1, skip_first=2, skip_first_wait=1)])
def test_schedule_acts_on_the_same_steps_as_torch(kw):
    d, t = dtrain.profiler.schedule(**kw), torch.profiler.schedule(**kw)
    assert [d(s).name for s in range(40)] == [t(s).name for s in range(40)]


@pytest.mark.parametrize("acc", [False, True])
@pytest.mark.parametrize("kw,steps", [(dict(wait=1, warmup=1, active=2, repeat=1), 6),
                                      (dict(wait=0, warmup=1, active=2, repeat=2), 7),
                                      (dict(wait=1, warmup=1, active=2), 5)])
def test_on_trace_ready_gets_the_same_cycles_as_torch(kw, steps, acc):
    def cycles(m):
        seen = []

        def ready(p):
            seen.append((p.step_num, {e.key: e.count for e in p.key_averages()}.get("model_inference"),
                         {e.key: e.count for e in p.key_averages()}.get("ProfilerStep*")))
        _run(m, dict(schedule=m.profiler.schedule(**kw), on_trace_ready=ready, acc_events=acc), steps=steps,
             call_step=True)
        return seen
    assert cycles(dtrain) == cycles(torch)


def test_record_function_as_decorator_and_outside_a_profile():
    @dtrain.profiler.record_function("my_block")
    def block(x):
        return x * 2

    assert block(dtrain.ones(2)).sum().item() == 4  # no profile: nothing recorded, nothing fails
    with dtrain.profiler.profile() as prof:
        block(dtrain.ones(2))
        block(dtrain.ones(2))
    avg = {e.key: e for e in prof.key_averages()}
    assert avg["my_block"].count == 2 and avg["aten::mul"].count == 2


def test_hook_is_off_outside_a_profile_even_after_an_error():
    assert graph._profiler_hook is None
    with pytest.raises(ValueError):
        with dtrain.profiler.profile():
            assert graph._profiler_hook is not None
            raise ValueError("boom")
    assert graph._profiler_hook is None


def test_tensorboard_trace_handler_writes_a_trace_per_cycle(tmp_path):
    handler = dtrain.profiler.tensorboard_trace_handler(str(tmp_path / "log"), worker_name="w0")
    _run(dtrain, dict(schedule=dtrain.profiler.schedule(wait=0, warmup=1, active=1, repeat=2),
                      on_trace_ready=handler), steps=5, call_step=True)
    files = sorted((tmp_path / "log").iterdir())
    assert len(files) == 2 and all(re.fullmatch(r"w0\.\d+\.pt\.trace\.json", f.name) for f in files)
    for f in files:
        assert any(e["name"] == "model_inference" for e in json.loads(f.read_text())["traceEvents"])


def test_what_is_not_recorded_warns():
    with pytest.warns(UserWarning, match="records no memory"):
        dtrain.profiler.profile(profile_memory=True)
    with pytest.warns(UserWarning, match="records no stacks"):
        dtrain.profiler.profile(with_stack=True)


@pytest.mark.cuda
def test_cuda_time_column_with_cuda():
    net = dtrain.nn.Linear(64, 64).cuda()
    x = dtrain.randn(32, 64, device="cuda")
    acts = [dtrain.profiler.ProfilerActivity.CPU, dtrain.profiler.ProfilerActivity.CUDA]
    with dtrain.profiler.profile(activities=acts) as prof:
        with dtrain.profiler.record_function("fwd"):
            net(x).sum()
    header, rows, lines = _rows(prof.key_averages().table(sort_by="cuda_time_total"))
    assert "CUDA total" in header and lines[-1].startswith("Self CUDA time total: ")
    avg = {e.key: e for e in prof.key_averages()}
    assert avg["aten::linear"].device_time_total > 0
    assert avg["fwd"].device_time_total >= avg["aten::linear"].device_time_total


class _TwoLayer:
    """A small model whose autograd graph is node for node torch's (matmuls, an add, tanh, pow, mean)."""

    @staticmethod
    def loss(m):
        m.manual_seed(0)
        w1, b1, w2 = (m.randn(*s).requires_grad_() for s in ((4, 8), (8,), (8, 2)))
        x = m.randn(3, 4)
        return (m.tanh(x @ w1 + b1) @ w2).pow(2).mean()


def _profiled_backward(m, loss_fn):
    with m.profiler.profile() as prof:
        loss_fn(m).backward()
    return {e.key: e.count for e in prof.key_averages()}


def _autograd_keys(keys):
    return {k: n for k, n in keys.items() if k.startswith("autograd::engine::") or k.endswith("Backward0")
            or k == "torch::autograd::AccumulateGrad"}


def test_backward_nodes_are_recorded_as_torchs_engine_records_them():
    mine, theirs = (_profiled_backward(m, _TwoLayer.loss) for m in (dtrain, torch))
    assert _autograd_keys(mine) == _autograd_keys(theirs)  # names and counts
    assert "autograd::engine::evaluate_function: MmBackward0" in mine
    # the forward ops dtrain records are among torch's
    assert {k for k in mine if k.startswith("aten::")} <= {k for k in theirs if k.startswith("aten::")}


def test_backward_nodes_of_a_linear_classifier_are_among_torchs():
    """nn.Linear and cross_entropy: dtrain's graph has no TBackward0 (its Linear is one node) and no
    LogSoftmaxBackward0 (its cross-entropy is fused), every other node is torch's."""
    def loss(m):
        m.manual_seed(0)
        net = m.nn.Sequential(m.nn.Linear(4, 8), m.nn.ReLU(), m.nn.Linear(8, 2))
        return m.nn.functional.cross_entropy(net(m.randn(3, 4)), m.tensor([0, 1, 1]))
    mine, theirs = (_autograd_keys(_profiled_backward(m, loss)) for m in (dtrain, torch))
    missing = {k.split(": ")[-1] for k in set(theirs) - set(mine)}
    assert set(mine) <= set(theirs) and missing == {"TBackward0", "LogSoftmaxBackward0"}
    assert mine["autograd::engine::evaluate_function: AddmmBackward0"] == 2


def test_backward_node_ranges_nest_and_the_engine_hook_is_off_outside_a_profile():
    with dtrain.profiler.profile() as prof:
        _TwoLayer.loss(dtrain).backward()
    assert graph._profiler_node is None
    outer = [e for e in prof.events() if e.name == "autograd::engine::evaluate_function: TanhBackward0"]
    assert len(outer) == 1 and [c.name for c in outer[0].cpu_children] == ["TanhBackward0"]
