"""PyTorch programs run unchanged on dtrain: the same file runs under torch and, with `torch` mapped to
`dtrain` (`import dtrain as torch` without editing the file), under dtrain; both must learn the task."""
import math
import os
import re
import subprocess
import sys

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
