"""Run each workload under torch and under dtrain, alternating, in one invocation; print a markdown table of
median step times, throughput and the ratio dtrain/torch (`--device cuda` on a GPU machine, `--amp` for autocast). Each framework runs in its own subprocess so neither's thread
pools or allocators affect the other; OpenBLAS tuning variables meant for old builds are removed for both."""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def one(framework, workload, steps, batch, device="cpu", amp=False):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = subprocess.run([sys.executable, os.path.join(HERE, "workloads.py"), "--framework", framework,
                          "--workload", workload, "--steps", str(steps), "--batch", str(batch), "--device", device]
                         + ["--amp"] * amp, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", default="mlp,mlp-wide,cnn,gpt")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs per framework; the best median counts")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true", help="autocast: bfloat16 on cpu, float16 + GradScaler on cuda")
    ap.add_argument("--batch", default="", help="WORKLOAD=N,... to override the default batch (gpt 16, others 128)")
    a = ap.parse_args()
    batches = dict((k, int(v)) for k, v in (kv.split("=") for kv in a.batch.split(",") if kv))
    print(f"device {a.device}, amp {a.amp}")
    print("| workload | batch | torch ms/step | dtrain ms/step | dtrain / torch | torch items/s | dtrain items/s "
          "| torch final loss | dtrain final loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for w in a.workloads.split(","):
        batch = batches.get(w, 16 if w == "gpt" else 128)
        best = {}
        for _ in range(a.rounds):
            for fw in ("torch", "dtrain"):
                r = one(fw, w, a.steps, batch, a.device, a.amp)
                if fw not in best or r["step_ms_median"] < best[fw]["step_ms_median"]:
                    best[fw] = r
        t, d = best["torch"], best["dtrain"]
        rate = "tokens_per_s" if w == "gpt" else "samples_per_s"
        print(f"| {w} | {batch} | {t['step_ms_median']:.2f} | {d['step_ms_median']:.2f} | "
              f"{d['step_ms_median'] / t['step_ms_median']:.2f} | {t[rate]} | {d[rate]} | "
              f"{t['final_loss']} | {d['final_loss']} |", flush=True)


if __name__ == "__main__":
    main()
