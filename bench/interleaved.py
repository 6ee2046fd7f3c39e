"""The gpt training step of torch and of dtrain interleaved step by step in one process, on one thread each
(`bench/workloads.py`'s model, data and optimizer), for a machine shared with other jobs: the load then hits both
alike, where compare.py's separate processes see it at different times.

    OMP_NUM_THREADS=1 python bench/interleaved.py [--rounds 40] [--sdpa]

One thread only: with more, the two frameworks' thread pools (torch's OpenMP workers spin after each region)
take each other's cores, which is why compare.py runs each framework in its own process. Prints the medians,
their ratio, and the median of the per-round ratios dtrain / torch."""
import argparse
import importlib
import os
import statistics
import time

import numpy as np

import workloads


def gpt_step(framework, sdpa):
    fw = importlib.import_module(framework)
    fw.manual_seed(0)
    rng = np.random.default_rng(0)
    data, vocab = workloads.text_corpus()
    ctx = workloads.GPT_SIZES["normal"]["ctx"]
    model = workloads.build(fw, "gpt", vocab, sdpa=sdpa)
    opt = fw.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    F = fw.nn.functional

    def step():
        ix = rng.integers(0, len(data) - ctx - 1, 16)
        x = fw.from_numpy(np.stack([data[i:i + ctx] for i in ix]))
        y = fw.from_numpy(np.stack([data[i + 1:i + ctx + 1] for i in ix]))
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--sdpa", action="store_true", help="attention through F.scaled_dot_product_attention")
    a = ap.parse_args()
    if os.environ.get("OMP_NUM_THREADS") != "1":
        raise SystemExit("run with OMP_NUM_THREADS=1 (see the docstring)")
    steps = {fw: gpt_step(fw, a.sdpa) for fw in ("torch", "dtrain")}
    for step in steps.values():  # warm-up: numba's first calls, allocators
        for _ in range(5):
            step()
    times = {fw: [] for fw in steps}
    for _ in range(a.rounds):
        for fw, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[fw].append(time.perf_counter() - t0)
    t, d = (statistics.median(times[fw]) * 1e3 for fw in ("torch", "dtrain"))
    per_round = statistics.median(dt / tt for tt, dt in zip(times["torch"], times["dtrain"]))
    print(f"gpt{' --sdpa' if a.sdpa else ''}, one thread, {a.rounds} rounds: torch {t:.1f} ms, dtrain {d:.1f} ms, "
          f"dtrain / torch {d / t:.2f} (median of per-round ratios {per_round:.2f})")


if __name__ == "__main__":
    main()
