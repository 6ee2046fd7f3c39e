"""torch.multiprocessing.spawn's ways to end, one per CASE; prints one JSON line of what the caller saw:
python spawn_cases.py CASE."""
import json
import os
import signal
import sys
import time

import torch.multiprocessing as mp


def worker(i, case, out):
    with open(f"{out}.pid{i}", "w") as f:
        f.write(str(os.getpid()))
    if case == "ok":
        with open(f"{out}.{i}", "w") as f:
            f.write(str(i * 10))
    elif case == "raise" and i == 1:
        raise ValueError(f"bad value in process {i}")
    elif case == "exit" and i == 0:
        sys.exit(3)
    elif case == "signal" and i == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    elif case == "slow":
        time.sleep(1.5)
        return
    time.sleep(600 if case != "ok" else 0)  # the others wait, as ranks blocked in a collective would


if __name__ == "__main__":
    case, out = sys.argv[1], sys.argv[2]
    seen = {}
    start = time.monotonic()
    try:
        if case == "slow":
            ctx = mp.start_processes(worker, args=(case, out), nprocs=2, join=False, start_method="spawn")
            seen["joined_early"] = ctx.join(timeout=0.05)
            seen["pids"] = len(ctx.pids())
            while not ctx.join():
                pass
            seen["joined"] = True
        else:
            seen["returned"] = mp.spawn(worker, args=(case, out), nprocs=3 if case == "ok" else 2)
            if case == "ok":
                seen["files"] = [open(f"{out}.{i}").read() for i in range(3)]
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
        seen.update(type=type(e).__name__, index=e.error_index, pid_ok=isinstance(e.error_pid, int) and e.error_pid > 0,
                    exit_code=getattr(e, "exit_code", None), signal_name=getattr(e, "signal_name", None),
                    head=str(e).strip().splitlines()[0], last=str(e).strip().splitlines()[-1])
    seen["seconds"] = time.monotonic() - start
    print(json.dumps(seen), flush=True)
