"""dtrain.utils.tensorboard.SummaryWriter against torch.utils.tensorboard.SummaryWriter: the same calls give logs
that TensorBoard's own reader (EventAccumulator) reads back with the same scalars, histograms, text, hparams."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter as TorchWriter

import dtrain
from dtrain.utils.tensorboard import SummaryWriter


def _read(path, **kw):
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0}, **kw)
    acc.Reload()
    return acc


def _write(writer_cls, mod, log_dir, values):
    with writer_cls(str(log_dir)) as w:
        for step, v in enumerate(values):
            w.add_scalar("loss", float(v.mean()), step)
            w.add_scalar("loss_t", mod.tensor(v.mean()), step, new_style=True)
            w.add_histogram("weights", mod.tensor(v), step)
            w.add_histogram("weights_auto", mod.tensor(v), step, bins="auto")
            w.add_histogram("weights_max", v, step, bins=100, max_bins=30)
        w.add_scalars("curves", {"train": 0.5, "val": 0.7}, 3)
        w.add_text("notes", "lr 0.1, ünïcode", 1)


def _histos(acc, tag):
    return [(e.step, e.histogram_value) for e in acc.Histograms(tag)]


def test_scalars_histograms_and_text_read_back_as_torchs(tmp_path):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(500).astype(np.float32) * (i + 1) for i in range(3)]
    _write(SummaryWriter, dtrain, tmp_path / "d", values)
    _write(TorchWriter, torch, tmp_path / "t", values)
    d, t = _read(tmp_path / "d"), _read(tmp_path / "t")
    assert d.Tags()["scalars"] == t.Tags()["scalars"] and d.Tags()["histograms"] == t.Tags()["histograms"]
    assert d.Tags()["tensors"] == t.Tags()["tensors"]
    for tag in t.Tags()["scalars"]:
        assert [(e.step, e.value) for e in d.Scalars(tag)] == [(e.step, e.value) for e in t.Scalars(tag)]
    for tag in ("loss_t",):  # new style: a tensor the scalars plugin reads
        assert d.SummaryMetadata(tag) == t.SummaryMetadata(tag)
    for tag in t.Tags()["histograms"]:
        dh, th = _histos(d, tag), _histos(t, tag)
        assert [s for s, _ in dh] == [s for s, _ in th]
        for (_, a), (_, b) in zip(dh, th):
            assert (a.min, a.max, a.num, a.bucket_limit, a.bucket) == (b.min, b.max, b.num, b.bucket_limit, b.bucket)
            assert a.sum == pytest.approx(b.sum, rel=1e-12) and a.sum_squares == pytest.approx(b.sum_squares,
                                                                                                rel=1e-12)
    text_tag = "notes/text_summary"
    assert d.Tensors(text_tag)[0].tensor_proto == t.Tensors(text_tag)[0].tensor_proto
    assert d.SummaryMetadata(text_tag) == t.SummaryMetadata(text_tag)
    # add_scalars: one run per curve, named as torch names them
    for run in ("curves_train", "curves_val"):
        assert os.path.isdir(tmp_path / "d" / run)
        assert [(e.step, e.value) for e in _read(tmp_path / "d" / run).Scalars("curves")] == \
               [(e.step, e.value) for e in _read(tmp_path / "t" / run).Scalars("curves")]


def test_hparams_as_torch(tmp_path):
    hp = {"lr": 0.01, "batch": 32, "optimizer": "adam", "nesterov": True, "skip": None}
    for cls, sub in ((SummaryWriter, "d"), (TorchWriter, "t")):
        with cls(str(tmp_path / sub)) as w:
            w.add_hparams(hp, {"hparam/accuracy": 0.9}, hparam_domain_discrete={"batch": [16, 32]}, run_name="r1")
    d, t = _read(tmp_path / "d" / "r1"), _read(tmp_path / "t" / "r1")
    dc, tc = d.PluginTagToContent("hparams"), t.PluginTagToContent("hparams")
    assert sorted(dc) == sorted(tc) == ["_hparams_/experiment", "_hparams_/session_end_info",
                                        "_hparams_/session_start_info"]
    assert dc == tc  # experiment, hyperparameter values and domains, end status: byte for byte
    assert [e.value for e in d.Scalars("hparam/accuracy")] == [e.value for e in t.Scalars("hparam/accuracy")]
    with pytest.raises(TypeError, match="should be dictionary"):
        SummaryWriter(str(tmp_path / "x")).add_hparams([1], {})


def test_purge_step_drops_what_a_crashed_run_wrote_after_it(tmp_path):
    for cls, sub in ((SummaryWriter, "d"), (TorchWriter, "t")):
        with cls(str(tmp_path / sub)) as w:
            for s in range(10):
                w.add_scalar("x", s, s)
        with cls(str(tmp_path / sub), purge_step=5, filename_suffix=".resumed") as w:
            for s in range(5, 8):
                w.add_scalar("x", 100 + s, s)
    d, t = _read(tmp_path / "d"), _read(tmp_path / "t")
    assert [(e.step, e.value) for e in d.Scalars("x")] == [(e.step, e.value) for e in t.Scalars("x")]
    assert [e.step for e in d.Scalars("x")] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert sum(f.endswith(".resumed") for f in os.listdir(tmp_path / "d")) == 1


def test_default_log_dir_is_torchs_runs_date_host_comment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = SummaryWriter(comment="_lr0.1")
    t = TorchWriter(comment="_lr0.1")
    pattern = r"runs/[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_.+_lr0\.1"
    assert re.fullmatch(pattern, d.get_logdir()) and re.fullmatch(pattern, t.get_logdir())
    assert d.get_logdir().split("_", 2)[2] == t.get_logdir().split("_", 2)[2]  # host and comment
    assert os.path.isdir(d.get_logdir())
    d.close()
    t.close()


def test_flush_makes_events_readable_before_close_and_close_twice_is_fine(tmp_path):
    w = SummaryWriter(str(tmp_path), flush_secs=3600, max_queue=1000)
    w.add_scalar("a", 3.0, 0)
    w.flush()
    assert [e.value for e in _read(tmp_path).Scalars("a")] == [3.0]
    w.close()
    w.close()
    w.add_scalar("a", 4.0, 1)  # a closed writer makes a new event file, as torch's does
    w.close()
    assert [e.value for e in _read(tmp_path).Scalars("a")] == [3.0, 4.0]


def test_add_graph_writes_the_module_graph_and_says_so(tmp_path):
    class Net(dtrain.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = dtrain.nn.Sequential(dtrain.nn.Linear(4, 8), dtrain.nn.ReLU())
            self.head = dtrain.nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.body(x).view(2, 8))

    from dtrain.utils.tensorboard import _graph
    _graph._warned.clear()
    with SummaryWriter(str(tmp_path)) as w:
        with pytest.warns(UserWarning, match="graph of module calls"):
            w.add_graph(Net(), dtrain.randn(2, 4))
    g = _read(tmp_path).Graph()
    nodes = {n.name: n for n in g.node}
    assert list(nodes) == ["input/input.1", "Net/Sequential[body]/Linear[0]", "Net/Sequential[body]/ReLU[1]",
                           "Net/Linear[head]", "output/output.1"]
    assert list(nodes["Net/Sequential[body]/ReLU[1]"].input) == ["Net/Sequential[body]/Linear[0]"]
    assert list(nodes["Net/Linear[head]"].input) == ["Net/Sequential[body]/ReLU[1]"]  # through the view
    assert list(nodes["output/output.1"].input) == ["Net/Linear[head]"]
    assert nodes["Net/Linear[head]"].op == "Linear"
    shape = nodes["Net/Linear[head]"].attr["_output_shapes"].list.shape[0]
    assert [d.size for d in shape.dim] == [2, 2]


def test_only_rank_0_writes_under_dtrain_run_and_other_ranks_are_told(tmp_path, monkeypatch):
    # in a fresh interpreter: a process group another test left up here would say rank 0
    code = ("import warnings, dtrain; from dtrain.utils.tensorboard import SummaryWriter\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            f"    w = SummaryWriter({str(tmp_path / 'r1')!r})\n"
            "w.add_scalar('a', 1.0, 0); w.add_histogram('h', dtrain.randn(10), 0); w.flush(); w.close()\n"
            "print([str(c.message) for c in caught])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "MPI_LOCAL", "OMPI_", "DTRAIN_"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(env, RANK="1", WORLD_SIZE="2"))
    assert out.returncode == 0, out.stderr
    assert "SummaryWriter on rank 1: only rank 0 writes" in out.stdout
    assert not (tmp_path / "r1").exists()
    monkeypatch.setenv("RANK", "1")
    with SummaryWriter(str(tmp_path / "all"), all_ranks=True) as w:
        w.add_scalar("a", 1.0, 0)
    assert [e.value for e in _read(tmp_path / "all").Scalars("a")] == [1.0]
    monkeypatch.setenv("DTRAIN_TENSORBOARD_ALL_RANKS", "1")
    with SummaryWriter(str(tmp_path / "env")) as w:
        w.add_scalar("a", 2.0, 0)
    assert [e.value for e in _read(tmp_path / "env").Scalars("a")] == [2.0]
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("DTRAIN_TENSORBOARD_ALL_RANKS")
    with SummaryWriter(str(tmp_path / "r0")) as w:
        w.add_scalar("a", 3.0, 0)
    assert [e.value for e in _read(tmp_path / "r0").Scalars("a")] == [3.0]


def test_without_tensorboard_the_import_fails_with_torchs_text():
    code = ("import sys; sys.modules['tensorboard'] = None\n"
            "try:\n    from dtrain.utils.tensorboard import SummaryWriter\n"
            "except ImportError as e:\n    print('ImportError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "ImportError: TensorBoard logging requires TensorBoard version 1.15 or above" in out


_RUN = os.path.join(os.path.dirname(sys.executable), "dtrain-run")


@pytest.mark.skipif(not os.access(_RUN, os.X_OK), reason="needs the dtrain-run console script")
def test_under_dtrain_run_one_event_file_and_rank_1_is_warned(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import os, sys\n"
        "from dtrain.utils.tensorboard import SummaryWriter\n"
        "with SummaryWriter(sys.argv[1]) as w:\n"
        "    for step in range(3):\n"
        "        w.add_scalar('loss', float(os.environ['RANK']) + step, step)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "OMP_NUM_THREADS")}
    p = subprocess.run([_RUN, "-n", "2", str(script), str(tmp_path / "log")], capture_output=True, text=True,
                       timeout=180, env=env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert len([f for f in os.listdir(tmp_path / "log") if f.startswith("events.out.tfevents")]) == 1
    assert [e.value for e in _read(tmp_path / "log").Scalars("loss")] == [0.0, 1.0, 2.0]  # rank 0's values
    assert "rank 1: only rank 0 writes" in p.stdout + p.stderr
