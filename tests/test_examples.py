"""The examples, run the way users run them: plain `python` and through `dtrain-run -n 2 / -n 4`."""
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def run(cmd, timeout=300):
    p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    return out


def metric(out, name):
    m = re.findall(rf"{name}=([0-9.]+)", out)
    assert m, f"no {name}= in output:\n{out[-2000:]}"
    return float(m[-1])


@pytest.mark.parametrize("script", ["digits_mlp.py", "digits_cnn.py"])
def test_single_process_examples_reach_95_percent(script):
    out = run([sys.executable, f"examples/{script}"])
    assert metric(out, "test_acc") >= 0.95


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_ddp_digits_with_python_and_dtrain_run(ranks, tmp_path):
    ckpt = tmp_path / "ddp.pt"
    cmd = [sys.executable] if ranks == 1 else [os.path.join(BIN, "dtrain-run"), "-n", str(ranks)]
    out = run(cmd + ["examples/ddp_digits.py", "--epochs", "8", "--out", str(ckpt)])
    assert f"ranks={ranks}" in out
    assert metric(out, "test_acc") >= 0.95
    assert out.count("test_acc=") == 1  # only rank 0 reports
    ck = torch.load(ckpt, weights_only=True)  # rank 0's checkpoint, in PyTorch's own format
    assert set(ck["model"]) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    assert abs(ck["test_acc"] - metric(out, "test_acc")) < 1e-3


@pytest.mark.parametrize("launcher", ["python", "dtrain-run"])
def test_char_gpt_trains_saves_and_resumes(launcher, tmp_path):
    ckpt = tmp_path / "gpt.pt"
    cmd = [sys.executable] if launcher == "python" else [os.path.join(BIN, "dtrain-run"), "-n", "2"]
    args = ["examples/char_gpt.py", "--ckpt", str(ckpt), "--ckpt-every", "10", "--layers", "1", "--batch-size", "16"]
    first = run(cmd + args + ["--steps", "20"])
    loss20 = metric(first, "train_loss")
    assert loss20 < 4.0  # from ln(vocab) ~ 4.5 at step 0
    assert torch.load(ckpt, weights_only=True)["step"] == 20
    second = run(cmd + args + ["--steps", "30", "--resume"])
    assert "resumed from" in second and "at step 20" in second
    assert torch.load(ckpt, weights_only=True)["step"] == 30


def test_char_gpt_amp_trains_in_bfloat16_on_the_cpu(tmp_path):
    ckpt = tmp_path / "gpt.pt"
    base = [sys.executable, "examples/char_gpt.py", "--ckpt", str(ckpt), "--layers", "1", "--batch-size", "16",
            "--steps", "30"]
    amp = run(base + ["--amp"])
    assert "amp=torch.bfloat16" in amp
    plain = run(base)
    # the same run in mixed precision learns as the float32 one does, to bfloat16's noise
    assert metric(amp, "train_loss") < 3.6
    assert abs(metric(amp, "train_loss") - metric(plain, "train_loss")) < 0.15
    ck = torch.load(ckpt, weights_only=True)
    assert all(v.dtype == torch.float32 for v in ck["model"].values())  # the weights stay float32



def test_char_gpt_amp_trains_in_float16_on_cuda(tmp_path):
    # on the emulated CUDA devices where no GPU is here: float16 autocast with a GradScaler, as on a GPU
    base = [sys.executable, "-W", "ignore", "examples/char_gpt.py", "--ckpt", str(tmp_path / "gpt.pt"),
            "--layers", "1", "--width", "64", "--batch-size", "16", "--steps", "30"]
    env = dict(ENV, DTRAIN_EMULATE_CUDA="1")
    outs = []
    for extra in (["--amp"], []):
        p = subprocess.run(base + extra, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
        outs.append(p.stdout + p.stderr)
    amp, plain = outs
    assert "amp=torch.float16" in amp and "amp=None" in plain
    assert metric(amp, "train_loss") < 3.8
    assert abs(metric(amp, "train_loss") - metric(plain, "train_loss")) < 0.15
