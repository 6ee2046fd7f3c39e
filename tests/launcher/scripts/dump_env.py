"""Writes what this rank sees (env, argv, __name__) to OUT_DIR/rank<RANK>.json and prints a line."""
import sys

# the launcher's shim must not have imported anything heavy into the rank before the script runs
PRELOADED = sorted(m for m in ("numpy", "cupy", "dtrain", "torch", "mpi4py") if m in sys.modules)

import json  # noqa: E402
import os  # noqa: E402

KEYS = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "OMP_NUM_THREADS", "MASTER_ADDR", "MASTER_PORT",
        "DTRAIN_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT"]

if __name__ == "__main__":
    out_dir = sys.argv[1]
    rank = os.environ["RANK"]
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump({"env": {k: os.environ.get(k) for k in KEYS}, "argv": sys.argv, "name": __name__,
                   "preloaded": PRELOADED}, f)
    print(f"stdout of rank {rank} of {os.environ['WORLD_SIZE']}")
    print(f"stderr of rank {rank}", file=sys.stderr)
