"""Per-op overhead: a chain of small elementwise ops, forward + backward, dtrain vs torch in one run.

Tiny tensors make the array math negligible, so the time per op is the framework's own Python cost
(building graph nodes, dispatch, the engine). Prints one JSON line per framework and round, then the median
of the rounds' ratios."""
import argparse
import importlib
import json
import statistics
import time


def chain(fw, x, n):
    y = x
    for _ in range(n // 4):
        y = (y * 1.0001 + 0.5).tanh() - y  # four ops per iteration
    return y.sum()


def measure(name, n_ops, repeats, size):
    fw = importlib.import_module(name)
    if name == "torch":
        fw.set_num_threads(1)
    x = fw.ones(size, requires_grad=True)
    fwd, total = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss = chain(fw, x, n_ops)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        fwd.append((t1 - t0) / n_ops * 1e6)
        total.append((t2 - t0) / n_ops * 1e6)
    return {"framework": name, "ops": n_ops, "size": size,
            "forward_us_per_op": round(statistics.median(fwd), 2),
            "fwd_bwd_us_per_op": round(statistics.median(total), 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3,
                    help="torch and dtrain alternate this many times (order swapped each round); the ratio is "
                         "the median of the rounds' ratios, which a shared machine's load moves less")
    a = ap.parse_args()
    ratios = {"forward": [], "fwd_bwd": []}
    for k in range(a.rounds):
        order = ("torch", "dtrain") if k % 2 == 0 else ("dtrain", "torch")
        res = {f: measure(f, a.ops, a.repeats, a.size) for f in order}
        for f in ("torch", "dtrain"):
            print(json.dumps(res[f]))
        t, d = res["torch"], res["dtrain"]
        ratios["forward"].append(d["forward_us_per_op"] / t["forward_us_per_op"])
        ratios["fwd_bwd"].append(d["fwd_bwd_us_per_op"] / t["fwd_bwd_us_per_op"])
    print(json.dumps({"ratio_dtrain_over_torch": {k: round(statistics.median(v), 2) for k, v in ratios.items()},
                      "rounds": {k: [round(r, 2) for r in v] for k, v in ratios.items()}}))


if __name__ == "__main__":
    main()
