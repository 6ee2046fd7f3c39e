"""dtrain's training step against the same step written by hand in its array module: NumPy on the CPU,
CuPy on CUDA. The hand-written step is the floor (no graph, no dispatch, no checks), so the ratio is what
dtrain's own machinery costs on top of the array library. Works where torch is not installed.

Run: python bench/floor.py --device cpu|cuda --workload mlp|mlp-wide [--batch N] [--split]
The two alternate step by step in one process; prints one JSON line with both medians and the ratio. `--split`
adds the median of each phase of a step, in µs: dtrain's input (from_numpy), forward (model and loss), zero_grad,
backward, optimizer step and loss.item(); the hand-written step's forward, backward and update."""
import argparse
import json
import statistics
import time

import numpy as np

import dtrain
from workloads import build, digits

WIDTH = {"mlp": 256, "mlp-wide": 2048}


def by_hand(xp, weights, lr, momentum):
    """The MLP's SGD-with-momentum step over arrays of `xp`, weights in torch's (out, in) layout."""
    velocity = [xp.zeros_like(w) for w in weights]

    def step(x, y, clock=None):
        acts, n = [x], len(y)
        for i in range(0, len(weights), 2):
            z = acts[-1] @ weights[i].T + weights[i + 1]
            acts.append(xp.maximum(z, 0) if i + 2 < len(weights) else z)
        z = acts[-1] - acts[-1].max(1, keepdims=True)
        e = xp.exp(z)
        p = e / e.sum(1, keepdims=True)
        loss = -xp.log(p[xp.arange(n), y]).mean()
        if clock is not None:
            clock.append(time.perf_counter())
        g = p
        g[xp.arange(n), y] -= 1
        g /= n
        grads = [None] * len(weights)
        for i in reversed(range(0, len(weights), 2)):
            grads[i], grads[i + 1] = g.T @ acts[i // 2], g.sum(0)
            if i:
                g = (g @ weights[i]) * (acts[i // 2] > 0)
        if clock is not None:
            clock.append(time.perf_counter())
        for w, v, gr in zip(weights, velocity, grads):
            v *= momentum
            v += gr
            w -= lr * v
        return loss
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workload", default="mlp-wide", choices=sorted(WIDTH))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--split", action="store_true", help="also the median of each phase of a step (µs)")
    a = ap.parse_args()
    dev = dtrain.device(a.device)
    if dev.type == "cuda":
        import cupy as xp
        sync = xp.cuda.Device().synchronize
    else:
        xp, sync = np, (lambda: None)
    lr, momentum = 0.05, 0.9
    dtrain.manual_seed(0)
    model = build(dtrain, a.workload).to(dev)
    opt = dtrain.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    raw = by_hand(xp, [xp.asarray(p.detach().cpu().numpy()) for p in model.parameters()], lr, momentum)
    xtr, ytr, _, _ = digits()
    rng = np.random.default_rng(0)

    clock = [] if a.split else None  # the times between phases of the step being timed (synchronised)

    def tick():
        if clock is not None:
            sync()
            clock.append(time.perf_counter())

    def dtrain_step(x, y):
        xt, yt = dtrain.from_numpy(x).to(dev), dtrain.from_numpy(y).to(dev)
        tick()
        loss = dtrain.nn.functional.cross_entropy(model(xt), yt)
        tick()
        opt.zero_grad()
        tick()
        loss.backward()
        tick()
        opt.step()
        tick()
        return loss.item()

    def raw_step(x, y):
        return float(raw(xp.asarray(x), xp.asarray(y), clock))

    times = {"dtrain": [], "by_hand": []}
    losses = {"dtrain": [], "by_hand": []}
    phases = {"dtrain": ("input", "forward", "zero_grad", "backward", "step", "item"),
              "by_hand": ("forward", "backward", "update")}
    split = {k: {p: [] for p in v} for k, v in phases.items()}
    warm = max(3, a.steps // 10)
    for i in range(a.steps + warm):
        ix = rng.integers(0, len(xtr), a.batch)
        x, y = xtr[ix], ytr[ix]
        for name, fn in (("dtrain", dtrain_step), ("by_hand", raw_step)) if i % 2 else \
                (("by_hand", raw_step), ("dtrain", dtrain_step)):
            sync()
            t0 = time.perf_counter()
            if clock is not None:
                clock[:] = [t0]
            loss = fn(x, y)
            sync()
            t1 = time.perf_counter()
            if i >= warm:
                times[name].append(t1 - t0)
                if clock is not None:
                    for p, a0, a1 in zip(phases[name], clock, clock[1:] + [t1]):
                        split[name][p].append(a1 - a0)
            losses[name].append(loss)
    med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    extra = {}
    if clock is not None:
        extra["split_us"] = {k: {p: round(1e6 * statistics.median(v), 1) for p, v in ph.items()}
                             for k, ph in split.items()}
    print(json.dumps({"device": str(dev), "workload": a.workload, "batch": a.batch, "steps": a.steps,
                      "dtrain_ms": round(med["dtrain"], 3), "by_hand_ms": round(med["by_hand"], 3),
                      "dtrain_over_by_hand": round(med["dtrain"] / med["by_hand"], 3),
                      "final_loss": {k: round(statistics.mean(v[-10:]), 4) for k, v in losses.items()}, **extra}))


if __name__ == "__main__":
    main()
