"""The fused CUDA kernels (dtrain._cuda_kernels) per op, forward + backward: dtrain fused, dtrain unfused (its
array-level CuPy path, DTRAIN_CUDA_KERNELS=0) and torch eager on the same GPU, alternating, one JSON line per op.

    python bench/cuda_kernels.py [--dtype float32] [--reps 20] [--rounds 3] [--ops gelu,layer_norm,...] [--small]

Shapes are a GPT-2-small step's (batch 16 x 512 tokens, width 768, 12 heads, vocabulary 50257; AdamW over 124 M
parameters as one tensor); --small shrinks them to check that the script runs (also on emulated devices, where
the times mean nothing). Each time is the wall-clock median over rounds of `reps` calls, the device synchronised
before and after, so launch overhead counts as it does in an eager training step. torch is only the reference
here (dtrain never imports it); without torch's CUDA build its column is left out."""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import dtrain  # noqa: E402
from dtrain import _cuda_kernels  # noqa: E402

TOKENS, WIDTH, HEADS, VOCAB, PARAMS = 16 * 512, 768, 12, 50257, 124_000_000


def _shapes(small):
    s = 64 if small else 1
    return {
        "gelu": [(TOKENS // s, 4 * WIDTH // s)],
        "gelu_tanh": [(TOKENS // s, 4 * WIDTH // s)],
        "softmax": [(16 * HEADS * 512 // s ** 2, 512 // s)],  # attention scores, a row per query
        "log_softmax": [(TOKENS // s, VOCAB // s)],
        "layer_norm": [(TOKENS // s, WIDTH // s), (WIDTH // s,), (WIDTH // s,)],
        "rms_norm": [(TOKENS // s, WIDTH // s), (WIDTH // s,)],
        "cross_entropy": [(TOKENS // s, VOCAB // s)],
        "adamw": [(PARAMS // s ** 2,)],
    }


def _forward(lib, op, args):
    F = lib.nn.functional
    if op == "gelu":
        return F.gelu(args[0])
    if op == "gelu_tanh":
        return F.gelu(args[0], approximate="tanh")
    if op in ("softmax", "log_softmax"):
        return getattr(args[0], op)(-1)
    if op == "layer_norm":
        return F.layer_norm(args[0], args[0].shape[-1:], args[1], args[2])
    if op == "rms_norm":
        return F.rms_norm(args[0], args[0].shape[-1:], args[1])
    if op == "cross_entropy":
        return F.cross_entropy(args[0], args[1])
    raise ValueError(op)


def _case(lib, op, shapes, dtype, device):
    """A closure running one forward + backward (or one AdamW step) of `op` in `lib` (dtrain or torch)."""
    rng = np.random.default_rng(0)
    dt = getattr(lib, dtype)
    if op == "adamw":
        p = lib.nn.Parameter(lib.tensor(rng.standard_normal(shapes[0]).astype(dtype), device=device))
        p.grad = lib.tensor(rng.standard_normal(shapes[0]).astype(dtype), device=device)
        opt = lib.optim.AdamW([p], lr=1e-3, weight_decay=0.1)
        return opt.step
    args = [lib.tensor(rng.standard_normal(s).astype(dtype), device=device, dtype=dt).requires_grad_()
            for s in shapes]
    if op == "cross_entropy":
        args.append(lib.tensor(rng.integers(0, shapes[0][1], shapes[0][0]), device=device))
    y = _forward(lib, op, args)
    gy = lib.tensor(rng.standard_normal(tuple(y.shape)).astype(dtype), device=device) if y.ndim else None

    def step():
        for a in args:
            a.grad = None
        out = _forward(lib, op, args)
        out.backward(gy)
    return step


def _ms(step, sync, reps):
    step()
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        step()
    sync()
    return (time.perf_counter() - t) / reps * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ops", default=",".join(_shapes(False)))
    ap.add_argument("--small", action="store_true")
    a = ap.parse_args()
    try:
        import torch
        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    shapes = _shapes(a.small)
    for op in a.ops.split(","):
        steps = {"fused": _case(dtrain, op, shapes[op], a.dtype, "cuda")}
        _cuda_kernels.ENABLED = False
        steps["unfused"] = _case(dtrain, op, shapes[op], a.dtype, "cuda")
        _cuda_kernels.ENABLED = True
        if have_torch:
            steps["torch"] = _case(torch, op, shapes[op], a.dtype, "cuda")
        times = {k: [] for k in steps}
        for _ in range(a.rounds):
            for k, step in steps.items():  # alternating, so that each pair sees the same GPU state
                _cuda_kernels.ENABLED = k != "unfused"
                sync = torch.cuda.synchronize if k == "torch" else dtrain.cuda.synchronize
                times[k].append(_ms(step, sync, a.reps))
            _cuda_kernels.ENABLED = True
        ms = {f"{k}_ms": round(statistics.median(v), 4) for k, v in times.items()}
        row = {"bench": "cuda_kernels", "op": op, "shape": list(shapes[op][0]), "dtype": a.dtype, **ms,
               "fused/unfused": round(ms["fused_ms"] / ms["unfused_ms"], 3)}
        if have_torch:
            row["fused/torch"] = round(ms["fused_ms"] / ms["torch_ms"], 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
