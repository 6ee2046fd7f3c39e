"""CPU autocast (bfloat16) against float32, in dtrain and in torch, alternating runs in one invocation; prints a
markdown table of median step times: each framework's bf16/fp32 ratio, and dtrain/torch for each precision.

    python bench/amp_compare.py --workloads gpt --steps 60 --rounds 2"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def one(framework, workload, steps, batch, amp):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    cmd = [sys.executable, os.path.join(HERE, "workloads.py"), "--framework", framework, "--workload", workload,
           "--steps", str(steps), "--batch", str(batch)] + (["--amp"] if amp else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="gpt")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each setting; the best median counts")
    a = ap.parse_args()
    print("| workload | batch | torch fp32 | torch bf16 | torch bf16/fp32 | dtrain fp32 | dtrain bf16 | "
          "dtrain bf16/fp32 | dtrain/torch bf16 | final loss torch / dtrain (bf16) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for w in a.workloads.split(","):
        batch = 16 if w == "gpt" else 128
        best = {}
        for _ in range(a.rounds):
            for fw in ("torch", "dtrain"):
                for amp in (False, True):
                    r = one(fw, w, a.steps, batch, amp)
                    if (fw, amp) not in best or r["step_ms_median"] < best[fw, amp]["step_ms_median"]:
                        best[fw, amp] = r
        ms = {k: v["step_ms_median"] for k, v in best.items()}
        print(f"| {w} | {batch} | {ms['torch', False]:.2f} | {ms['torch', True]:.2f} | "
              f"{ms['torch', True] / ms['torch', False]:.2f} | {ms['dtrain', False]:.2f} | {ms['dtrain', True]:.2f} | "
              f"{ms['dtrain', True] / ms['dtrain', False]:.2f} | {ms['dtrain', True] / ms['torch', True]:.2f} | "
              f"{best['torch', True]['final_loss']} / {best['dtrain', True]['final_loss']} |", flush=True)


if __name__ == "__main__":
    main()
