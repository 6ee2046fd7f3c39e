"""usage: misbehave.py MODE OUT_DIR

Every rank writes OUT_DIR/pid<RANK> with its pid. In mode "sleep" all ranks then sleep forever;
otherwise rank 1 waits for the others' pid files, writes OUT_DIR/failed_at (time.time()) and
then fails: "raise" raises, "exit" exits with code 3, "sigkill" SIGKILLs itself, "stubborn"
raises while the other ranks ignore SIGTERM.
"""
import os
import signal
import sys
import time

mode, out_dir = sys.argv[1], sys.argv[2]
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
with open(os.path.join(out_dir, f"pid{rank}.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.replace(os.path.join(out_dir, f"pid{rank}.tmp"), os.path.join(out_dir, f"pid{rank}"))
if mode == "stubborn" and rank != 1:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"rank {rank} started", flush=True)
if mode == "sleep" or rank != 1:
    time.sleep(1000)
    sys.exit(0)

deadline = time.time() + 30
while time.time() < deadline and not all(os.path.exists(os.path.join(out_dir, f"pid{r}")) for r in range(world)):
    time.sleep(0.05)
with open(os.path.join(out_dir, "failed_at"), "w") as f:
    f.write(repr(time.time()))
if mode in ("raise", "stubborn"):
    raise RuntimeError(f"rank {rank} failed on purpose")
if mode == "exit":
    sys.exit(3)
if mode == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
