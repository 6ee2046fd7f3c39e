"""usage: fault.py MODE OUT_DIR

Every rank joins the world (init_process_group), writes OUT_DIR/pid<RANK> with its pid and then
all-reduces in a loop. Once every rank is in that loop, rank 1 misbehaves:

  raise     raises a RuntimeError            os_exit   os._exit(3)
  sys_exit  sys.exit(3)                      segv      SIGSEGV to itself (a crash in native code)
  abort     os.abort() (SIGABRT)             atexit    ends its script normally; an atexit handler raises
  loop      nothing: it loops like the others until it is killed from outside
  restart   SIGKILLs itself in attempt 0; in a restarted attempt every rank all-reduces its rank a few
            times, writes OUT_DIR/result<RANK> (the sum, the attempt and time.time()) and exits 0

Rank 1 writes OUT_DIR/failed_at (time.time()) just before it misbehaves.
"""
import atexit
import json
import os
import signal
import sys
import time

import dtrain as torch
import dtrain.distributed as dist

mode, out_dir = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
attempt = int(os.environ["DTRAIN_RESTART_COUNT"])

if mode == "restart" and attempt > 0:
    started = time.time()
    total = torch.tensor([0.0])
    for _ in range(5):
        x = torch.tensor([float(rank)])
        dist.all_reduce(x)
        total += x
    with open(os.path.join(out_dir, f"result{rank}"), "w") as f:
        json.dump({"sum": total.item(), "attempt": attempt, "started": started}, f)
    dist.destroy_process_group()
    sys.exit(0)

x = torch.ones(1000)
dist.all_reduce(x)  # every rank is connected
with open(os.path.join(out_dir, f"pid{rank}.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.replace(os.path.join(out_dir, f"pid{rank}.tmp"), os.path.join(out_dir, f"pid{rank}"))

if rank == 1 and mode != "loop":
    while not all(os.path.exists(os.path.join(out_dir, f"pid{r}")) for r in range(world)):
        dist.all_reduce(x)
    time.sleep(0.2)  # the others are inside all_reduce, waiting for this rank
    with open(os.path.join(out_dir, "failed_at"), "w") as f:
        f.write(repr(time.time()))
    if mode == "raise":
        raise RuntimeError("rank 1 failed on purpose")
    if mode == "os_exit":
        os._exit(3)
    if mode == "sys_exit":
        sys.exit(3)
    if mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "abort":
        os.abort()
    if mode == "restart":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "atexit":
        def flush_metrics():
            raise OSError("metrics server unreachable")
        atexit.register(flush_metrics)
        sys.exit(0)
    raise SystemExit(f"unknown mode {mode!r}")

while True:
    dist.all_reduce(x)
