"""usage: flaky.py OUT_DIR [always]

Each rank records its restart counters in OUT_DIR/attempt<N>_rank<RANK>.json; rank 1 then
raises on the first attempt (or on every attempt with "always").
"""
import json
import os
import sys

out_dir = sys.argv[1]
attempt, rank = os.environ["DTRAIN_RESTART_COUNT"], os.environ["RANK"]
with open(os.path.join(out_dir, f"attempt{attempt}_rank{rank}.json"), "w") as f:
    json.dump({"DTRAIN_RESTART_COUNT": attempt, "TORCHELASTIC_RESTART_COUNT": os.environ["TORCHELASTIC_RESTART_COUNT"]}, f)
if rank == "1" and (attempt == "0" or sys.argv[2:] == ["always"]):
    raise ValueError(f"flaky failure in attempt {attempt}")
