"""Training steps with dtrain's compiled CPU kernels on and off, beside torch, in one process, alternating.

    python bench/kernels_ab.py [--workloads gpt,cnn] [--steps 40] [--rounds 3]

Each round runs torch, dtrain with the kernels (dtrain._cpu_kernels, numba) and dtrain without them (its NumPy
paths, as on a machine without numba), each a fresh model from the same seed (`bench/workloads.py`), and
prints the median step times; then the medians over the rounds of the per-round ratios. One process and
back-to-back runs make the pairs see the same machine, which matters where the cores are shared."""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402

from dtrain import _cpu_kernels  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="gpt,cnn")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    for w in a.workloads.split(","):
        batch = 16 if w == "gpt" else 128
        ratios = {"kernels/torch": [], "numpy/torch": [], "kernels/numpy": []}
        for r in range(a.rounds):
            ms = {}
            for name in ("torch", "kernels", "numpy"):
                _cpu_kernels.ENABLED = name != "numpy"
                res = workloads.run("torch" if name == "torch" else "dtrain", w, a.steps, batch)
                ms[name] = res["step_ms_median"]
            _cpu_kernels.ENABLED = True
            for k in ratios:
                num, den = k.split("/")
                ratios[k].append(ms[num] / ms[den])
            print(json.dumps({"workload": w, "round": r, **ms}), flush=True)
        print(json.dumps({"workload": w, **{k: round(statistics.median(v), 3) for k, v in ratios.items()}}),
              flush=True)


if __name__ == "__main__":
    main()
