"""The ops that make up the gpt and cnn training steps (`bench/workloads.py`), one at a time, at the steps' own
shapes: forward, and forward + backward, dtrain against torch in one process, alternating op by op.

    python bench/ops.py [--repeats 30] [--only NAME,...] [--numpy]

Prints a markdown table of median microseconds and the ratio dtrain / torch per op, slowest ratio first, then
one JSON line with the geometric mean of the ratios. Each op gets fresh inputs of the same seed for both.
`--numpy` adds dtrain with its compiled CPU kernels switched off (the NumPy paths) as a third contestant in
the same alternation, and the ratio of the two dtrain columns."""
import argparse
import importlib
import json
import math
import statistics
import time

import numpy as np

B, T, C, H, V = 16, 64, 128, 4, 96      # the gpt workload: batch, context, width, heads, vocabulary
N_IMG = 128                              # the cnn workload's batch of 8x8 images


def cases(fw):
    """name -> (make inputs from a numpy Generator, the op); inputs that need gradients are float32 leaves."""
    nn, F = fw.nn, fw.nn.functional

    def leaf(rng, *shape, scale=1.0):
        return fw.tensor((rng.standard_normal(shape) * scale).astype(np.float32), requires_grad=True)

    def const(arr):
        return fw.from_numpy(np.ascontiguousarray(arr))

    def linear(k, n, shape):
        return lambda rng: (leaf(rng, *shape, k), leaf(rng, n, k, scale=k ** -0.5), leaf(rng, n)), F.linear

    def tanh_gelu(x):
        return F.gelu(x, approximate="tanh")

    mask = np.tril(np.ones((T, T), dtype=bool))
    return {
        "linear qkv (B,T,C)->3C": linear(C, 3 * C, (B, T)),
        "linear fc (B,T,C)->4C": linear(C, 4 * C, (B, T)),
        "linear out (B,T,4C)->C": linear(4 * C, C, (B, T)),
        "linear head (B,T,C)->V": linear(C, V, (B, T)),
        "layer_norm (B,T,C)": (lambda rng: (leaf(rng, B, T, C), (C,), leaf(rng, C), leaf(rng, C)), F.layer_norm),
        "gelu (B,T,4C)": (lambda rng: (leaf(rng, B, T, 4 * C),), F.gelu),
        "gelu tanh (B,T,4C)": (lambda rng: (leaf(rng, B, T, 4 * C),), tanh_gelu),
        "softmax (B,H,T,T)": (lambda rng: (leaf(rng, B, H, T, T),), lambda x: F.softmax(x, dim=-1)),
        "masked_fill (B,H,T,T)": (lambda rng: (leaf(rng, B, H, T, T), const(~mask)),
                                  lambda x, m: x.masked_fill(m, float("-inf"))),
        "q @ k^T": (lambda rng: (leaf(rng, B, H, T, C // H), leaf(rng, B, H, C // H, T)), lambda a, b: a @ b),
        "att @ v": (lambda rng: (leaf(rng, B, H, T, T), leaf(rng, B, H, T, C // H)), lambda a, b: a @ b),
        "sdpa causal (B,H,T,C/H)": (lambda rng: tuple(leaf(rng, B, H, T, C // H) for _ in range(3)),
                                    lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
        "attention chain (B,H,T,C/H)": (lambda rng: (*(leaf(rng, B, H, T, C // H) for _ in range(3)), const(~mask)),
                                        lambda q, k, v, m: F.softmax((q @ k.transpose(-2, -1) * (C // H) ** -0.5)
                                                                     .masked_fill(m, float("-inf")), dim=-1) @ v),
        "mul scale (B,H,T,T)": (lambda rng: (leaf(rng, B, H, T, T),), lambda x: x * 0.17677),
        "split+view+transpose": (lambda rng: (leaf(rng, B, T, 3 * C),),
                                 lambda x: sum(t.view(B, T, H, C // H).transpose(1, 2).sum() for t in x.split(C, 2))),
        "transpose+contiguous+view": (lambda rng: (leaf(rng, B, H, T, C // H),),
                                      lambda x: x.transpose(1, 2).contiguous().view(B, T, C)),
        "add residual (B,T,C)": (lambda rng: (leaf(rng, B, T, C), leaf(rng, B, T, C)), lambda a, b: a + b),
        "embedding (B,T)->C": (lambda rng: (const(rng.integers(0, V, (B, T))), leaf(rng, V, C)), F.embedding),
        "cross_entropy (B*T,V)": (lambda rng: (leaf(rng, B * T, V), const(rng.integers(0, V, B * T))),
                                  F.cross_entropy),
        "conv2d 1->32 3x3": (lambda rng: (leaf(rng, N_IMG, 1, 8, 8), leaf(rng, 32, 1, 3, 3), leaf(rng, 32)),
                             lambda x, w, b: F.conv2d(x, w, b, padding=1)),
        "conv2d 32->64 3x3": (lambda rng: (leaf(rng, N_IMG, 32, 8, 8), leaf(rng, 64, 32, 3, 3, scale=0.06),
                                           leaf(rng, 64)), lambda x, w, b: F.conv2d(x, w, b, padding=1)),
        "relu (N,64,8,8)": (lambda rng: (leaf(rng, N_IMG, 64, 8, 8),), F.relu),
        "max_pool2d 2 (N,64,8,8)": (lambda rng: (leaf(rng, N_IMG, 64, 8, 8),), lambda x: F.max_pool2d(x, 2)),
        "flatten+linear 1024->10": (lambda rng: (leaf(rng, N_IMG, 64, 4, 4), leaf(rng, 10, 1024, scale=0.03),
                                                 leaf(rng, 10)), lambda x, w, b: F.linear(x.flatten(1), w, b)),
        "cross_entropy (N,10)": (lambda rng: (leaf(rng, N_IMG, 10), const(rng.integers(0, 10, N_IMG))),
                                 F.cross_entropy),
        "sum (B,T,C)": (lambda rng: (leaf(rng, B, T, C),), lambda x: x.sum()),
        "mean dim -1 (B,T,C)": (lambda rng: (leaf(rng, B, T, C),), lambda x: x.mean(-1)),
        "pow 3 (B,T,4C)": (lambda rng: (leaf(rng, B, T, 4 * C),), lambda x: x.pow(3.0)),
        "tanh (B,T,4C)": (lambda rng: (leaf(rng, B, T, 4 * C),), fw.tanh),
        "exp (B,H,T,T)": (lambda rng: (leaf(rng, B, H, T, T),), fw.exp),
        "dropout p=0.1 (B,T,C)": (lambda rng: (leaf(rng, B, T, C),), lambda x: F.dropout(x, 0.1)),
    }


def time_one(fw, make, op, repeats, backward):
    times = []
    for i in range(repeats + 3):
        args = make(np.random.default_rng(i))
        t0 = time.perf_counter()
        y = op(*args)
        if backward:
            (y if y.ndim == 0 else y.sum()).backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[3:]) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--only", default="", help="comma-separated op names (prefixes)")
    ap.add_argument("--numpy", action="store_true", help="also time dtrain without its compiled kernels")
    a = ap.parse_args()
    fws = {name: importlib.import_module(name) for name in ("torch", "dtrain")}
    table = {name: cases(fw) for name, fw in fws.items()}
    order = ("torch", "dtrain", "numpy") * 2 if a.numpy else ("torch", "dtrain") * 2
    kernels = importlib.import_module("dtrain._cpu_kernels")
    fws["numpy"], table["numpy"] = fws["dtrain"], table["dtrain"]
    rows = []
    for opname in table["torch"]:
        if a.only and not any(opname.startswith(p) for p in a.only.split(",")):
            continue
        r = {}
        for backward in (False, True):
            for fwname in order:  # alternating, best of two medians
                make, op = table[fwname][opname]
                kernels.ENABLED = fwname != "numpy"
                t = time_one(fws[fwname], make, op, a.repeats, backward)
                kernels.ENABLED = True
                key = (fwname, backward)
                r[key] = min(r.get(key, math.inf), t)
        rows.append((opname, r))
    rows.sort(key=lambda row: -row[1][("dtrain", True)] / row[1][("torch", True)])
    extra = " dtrain without kernels fwd µs | fwd+bwd µs | kernels / without, fwd+bwd |" if a.numpy else ""
    print("| op | torch fwd µs | dtrain fwd µs | ratio fwd | torch fwd+bwd µs | dtrain fwd+bwd µs | ratio fwd+bwd |"
          + extra)
    print("|---|---|---|---|---|---|---|" + "---|---|---|" * a.numpy)
    logs = []
    for opname, r in rows:
        rf, rb = r[("dtrain", False)] / r[("torch", False)], r[("dtrain", True)] / r[("torch", True)]
        logs.append(math.log(rb))
        line = (f"| {opname} | {r[('torch', False)]:.0f} | {r[('dtrain', False)]:.0f} | {rf:.2f} | "
                f"{r[('torch', True)]:.0f} | {r[('dtrain', True)]:.0f} | {rb:.2f} |")
        if a.numpy:
            line += (f" {r[('numpy', False)]:.0f} | {r[('numpy', True)]:.0f} | "
                     f"{r[('dtrain', True)] / r[('numpy', True)]:.2f} |")
        print(line, flush=True)
    print(json.dumps({"ops": len(rows), "geomean_ratio_fwd_bwd": round(math.exp(statistics.mean(logs)), 3)}))


if __name__ == "__main__":
    main()
