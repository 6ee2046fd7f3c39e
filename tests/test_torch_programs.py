"""PyTorch programs run unchanged on dtrain: the same file runs under torch and, with `torch` mapped to
`dtrain` (`import dtrain as torch` without editing the file), under dtrain; both must learn the task."""
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "programs", "as_dtrain.py")  # maps every `torch` import to dtrain


@pytest.mark.parametrize("framework", ["torch", "dtrain"])
def test_pytorch_mnist_example_runs_unchanged(framework, tmp_path):
    script = os.path.join(HERE, "programs", "mnist_example.py")
    out_file = tmp_path / "model.pt"
    cmd = [sys.executable, script, str(out_file)] if framework == "torch" else \
        [sys.executable, RUNNER, script, str(out_file)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    acc = float(re.findall(r"ACC ([0-9.]+)", p.stdout)[-1])
    assert acc >= 0.9
    assert out_file.exists()
    if framework == "dtrain":   # what dtrain saved is a state dict torch reads
        import torch
        sd = torch.load(out_file, weights_only=True)
        assert sd["conv1.weight"].shape == (32, 1, 3, 3) and sd["fc2.bias"].shape == (10,)


def test_word_language_model_runs_unchanged_and_learns_like_torch():
    script = os.path.join(HERE, "programs", "word_language_model.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    losses = {}
    for framework, cmd in (("torch", [sys.executable, script]), ("dtrain", [sys.executable, RUNNER, script])):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert p.returncode == 0, p.stderr[-3000:]
        losses[framework] = {m: float(v) for m, v in re.findall(r"(LSTM|GRU) final loss ([0-9.]+)", p.stdout)}
    for rnn in ("LSTM", "GRU"):
        assert losses["dtrain"][rnn] < math.log(20)                      # below the uniform guess
        assert abs(losses["dtrain"][rnn] - losses["torch"][rnn]) < 0.25  # and where torch ends up


def _run_both(script, timeout=120):
    """Run a program under torch and under dtrain (same file, same data); its stdout lines by framework."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = {}
    for framework, cmd in (("torch", [sys.executable, script]), ("dtrain", [sys.executable, RUNNER, script])):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        assert p.returncode == 0, f"{framework}:\n" + p.stdout[-2000:] + p.stderr[-3000:]
        out[framework] = p.stdout
    return out


def _numbers(text, pattern):
    return [[float(v) for v in m] if isinstance(m, tuple) else [float(m)] for m in re.findall(pattern, text)]


def test_graph_network_with_sparse_adjacency_agrees_with_torch():
    """pygcn-style GCN: torch.sparse_coo_tensor adjacency, torch.sparse.mm and torch.spmm in its layers, Adam."""
    out = _run_both(os.path.join(HERE, "programs", "gcn.py"))
    adj = re.findall(r"ADJ (\d+) (\w+)", out["dtrain"])
    assert adj == re.findall(r"ADJ (\d+) (\w+)", out["torch"]) and adj[0][1] == "True"
    pat = r"EPOCH \d+ loss_train ([0-9.]+) loss_val ([0-9.]+) acc_val ([0-9.]+)"
    got, want = _numbers(out["dtrain"], pat), _numbers(out["torch"], pat)
    assert len(got) == len(want) == 7
    # float32 over 120 Adam steps: a few hundred ulps of drift at most
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)
    test = r"TEST loss ([0-9.]+) accuracy ([0-9.]+)"
    np.testing.assert_allclose(_numbers(out["dtrain"], test), _numbers(out["torch"], test), rtol=2e-4)
    assert _numbers(out["dtrain"], test)[0][1] >= 0.8  # and it learned the communities


def test_lbfgs_sine_wave_lstm_agrees_with_torch():
    """time_sequence_prediction-style LSTMCell fit with LBFGS's closure, in float64."""
    out = _run_both(os.path.join(HERE, "programs", "lbfgs_sine.py"))
    steps = r"STEP \d+ evals (\d+) first ([0-9.]+) last ([0-9.]+)"
    tests = r"TEST \d+ loss ([0-9.]+) prediction_end (-?[0-9.]+)"
    got, want = _numbers(out["dtrain"], steps), _numbers(out["torch"], steps)
    assert len(got) == len(want) == 3
    assert [g[0] for g in got] == [w[0] for w in want]  # the same number of closure evaluations
    np.testing.assert_allclose(got, want, rtol=1e-7)
    np.testing.assert_allclose(_numbers(out["dtrain"], tests), _numbers(out["torch"], tests), rtol=1e-6, atol=1e-9)
    assert got[-1][2] < 0.1 * got[0][1]  # LBFGS made progress
