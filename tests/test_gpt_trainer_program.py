"""A nanoGPT-style trainer (tests/programs/nanogpt_train.py: DDP from the launcher's environment, gradient
accumulation with `require_backward_grad_sync`, bfloat16 autocast with a GradScaler, torch.compile, AdamW
groups, clip_grad_norm_, checkpoint and resume) runs unchanged under torch (torchrun) and dtrain
(dtrain-run), learns like torch, and each framework resumes the other's checkpoint."""
import os
import re
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "programs", "nanogpt_train.py")
RUNNER = os.path.join(HERE, "programs", "as_dtrain.py")
BIN = os.path.dirname(sys.executable)
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _train(framework, ranks, out_dir, *options):
    if framework == "torch":
        cmd = ([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks)] if ranks > 1
               else [sys.executable]) + [PROGRAM]
    else:
        cmd = ([os.path.join(BIN, "dtrain-run"), "-n", str(ranks)] if ranks > 1 else [sys.executable]) + \
            [RUNNER, PROGRAM]
    p = subprocess.run(cmd + [f"--out_dir={out_dir}", *options], capture_output=True, text=True, timeout=300,
                       env=ENV)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    iters = {int(i): float(v) for i, v in re.findall(r"iter (\d+): loss ([0-9.]+)", p.stdout)}
    evals = {int(i): (float(t), float(v)) for i, t, v in
             re.findall(r"step (\d+): train loss ([0-9.]+), val loss ([0-9.]+)", p.stdout)}
    sums = re.findall(r"rank checksums (.*)", p.stdout)
    return iters, evals, [float(s) for s in sums[0].split()] if sums else None


def test_ddp_bf16_trainer_learns_like_torch_and_ranks_stay_identical(tmp_path):
    runs = {}
    for framework, options in (("torch", ()), ("dtrain", ("--compile=True",))):  # torch's inductor is slow here
        runs[framework] = _train(framework, 2, tmp_path / framework, "--dtype=bfloat16", "--max_iters=20",
                                 *options)
    for framework, (iters, evals, sums) in runs.items():
        assert sorted(iters) == list(range(21)), framework
        assert iters[0] > 4.3, (framework, iters[0])              # a fresh model: about ln(128) = 4.85
        assert evals[20][1] < 3.3, (framework, evals)             # it learned
        assert len(sums) == 2 and sums[0] == sums[1], (framework, sums)  # DDP kept the ranks' weights equal
    assert abs(runs["dtrain"][1][20][1] - runs["torch"][1][20][1]) < 0.3, (runs["dtrain"][1], runs["torch"][1])
    assert (tmp_path / "dtrain" / "ckpt.pt").exists() and (tmp_path / "torch" / "ckpt.pt").exists()


@pytest.mark.parametrize("first,then", [("torch", "dtrain"), ("dtrain", "torch")])
def test_each_framework_resumes_the_others_checkpoint(tmp_path, first, then):
    iters, evals, _ = _train(first, 1, tmp_path, "--max_iters=10")
    resumed, resumed_evals, _ = _train(then, 1, tmp_path, "--max_iters=20", "--init_from=resume")
    assert sorted(resumed) == list(range(10, 21))                 # iter_num came from the checkpoint
    assert resumed[10] < iters[0] - 0.8, (iters, resumed)         # the weights came too: no fresh start
    assert resumed_evals[20][1] < evals[10][1], (evals, resumed_evals)  # and the optimizer state: it goes on
