"""Autocast against float32, in dtrain and in torch, alternating runs in one invocation; prints a markdown
table of median step times: each framework's AMP/fp32 ratio, and dtrain/torch for each precision.

    python bench/amp_compare.py --workloads gpt --steps 60 --rounds 2          # CPU: bfloat16 autocast
    python bench/amp_compare.py --device cuda --steps 100 --rounds 2          # CUDA: float16 + GradScaler

On CUDA the table is in tokens/s (the GPT's batch x context per median step) for dtrain fp32 / AMP and torch
fp32 / AMP. A torch without CUDA (the CPU wheel) gets "n/a" in its columns. Under DTRAIN_EMULATE_CUDA the
devices are host memory: the run shows that the CUDA AMP step trains (its losses), not its speed, so use
a tiny model there:

    DTRAIN_EMULATE_CUDA=1 python bench/amp_compare.py --device cuda --size tiny --steps 8 --rounds 1"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def one(framework, workload, steps, batch, amp, device="cpu", size="normal"):
    """One run of workloads.py in a fresh process: its JSON result, or None where the framework cannot run
    on the device (torch's CPU wheel on CUDA)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    cmd = [sys.executable, os.path.join(HERE, "workloads.py"), "--framework", framework, "--workload", workload,
           "--steps", str(steps), "--batch", str(batch), "--device", device, "--size", size] + \
        (["--amp"] if amp else [])
    if framework == "torch" and device == "cuda":
        probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], env=env,
                               capture_output=True, text=True)
        if probe.stdout.strip() != "True":
            return None
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _best(runs, key):
    """The run with the smallest median step of each setting (over rounds); None stays None."""
    best = {}
    for k, r in runs:
        if r is None:
            best.setdefault(k, None)
        elif best.get(k) is None or r[key] < best[k][key]:
            best[k] = r
    return best


def cpu_table(a):
    print("| workload | batch | torch fp32 | torch bf16 | torch bf16/fp32 | dtrain fp32 | dtrain bf16 | "
          "dtrain bf16/fp32 | dtrain/torch bf16 | final loss torch / dtrain (bf16) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w in a.workloads.split(","):
        batch = a.batch or (16 if w == "gpt" else 128)
        runs = [((fw, amp), one(fw, w, a.steps, batch, amp, "cpu", a.size))
                for _ in range(a.rounds) for fw in ("torch", "dtrain") for amp in (False, True)]
        best = _best(runs, "step_ms_median")
        ms = {k: v["step_ms_median"] for k, v in best.items()}
        print(f"| {w} | {batch} | {ms['torch', False]:.2f} | {ms['torch', True]:.2f} | "
              f"{ms['torch', True] / ms['torch', False]:.2f} | {ms['dtrain', False]:.2f} | {ms['dtrain', True]:.2f} | "
              f"{ms['dtrain', True] / ms['dtrain', False]:.2f} | {ms['dtrain', True] / ms['torch', True]:.2f} | "
              f"{best['torch', True]['final_loss']} / {best['dtrain', True]['final_loss']} |", flush=True)


def cuda_table(a):
    batch = a.batch or (64 if a.size == "normal" else 4)
    print("| workload | batch | dtrain fp32 tok/s | dtrain AMP tok/s | dtrain AMP/fp32 | torch fp32 tok/s | "
          "torch AMP tok/s | torch AMP/fp32 | dtrain/torch AMP | first → final loss dtrain fp32 / AMP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    runs = [((fw, amp), one(fw, "gpt", a.steps, batch, amp, "cuda", a.size))
            for _ in range(a.rounds) for fw in ("dtrain", "torch") for amp in (False, True)]
    best = _best(runs, "step_ms_median")

    def tok(k):
        return "n/a" if best[k] is None else f"{best[k]['tokens_per_s']:.0f}"

    def ratio(k1, k2):
        return "n/a" if best[k1] is None or best[k2] is None else \
            f"{best[k1]['tokens_per_s'] / best[k2]['tokens_per_s']:.2f}"
    d32, d16 = best["dtrain", False], best["dtrain", True]
    print(f"| gpt ({a.size}) | {batch} | {tok(('dtrain', False))} | {tok(('dtrain', True))} | "
          f"{ratio(('dtrain', True), ('dtrain', False))} | {tok(('torch', False))} | {tok(('torch', True))} | "
          f"{ratio(('torch', True), ('torch', False))} | {ratio(('dtrain', True), ('torch', True))} | "
          f"{d32['first_loss']} → {d32['final_loss']} / {d16['first_loss']} → {d16['final_loss']} |", flush=True)
    if os.environ.get("DTRAIN_EMULATE_CUDA"):
        print("\n(emulated CUDA devices: host memory, so the tokens/s say nothing about a GPU; the losses show that "
              "the float16 step with loss scaling trains)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--workloads", default="gpt", help="CPU only: comma-separated (gpt, mlp, mlp-wide, cnn)")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=0, help="0: 16 for the GPT on the CPU, 64 on CUDA, 128 for the rest")
    ap.add_argument("--size", default="normal", choices=["normal", "tiny"], help="the GPT's size")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each setting; the best median counts")
    a = ap.parse_args()
    (cuda_table if a.device == "cuda" else cpu_table)(a)


if __name__ == "__main__":
    main()
