"""tqdm progress bars on rank 0 while rank 1 prints (test_progress_bars_pass_through_as_a_terminal_shows_them)."""
import os
import sys
import time

from tqdm import tqdm

rank, flag = int(os.environ["RANK"]), sys.argv[1]
if rank == 0:
    bar = tqdm(total=3, desc="work", mininterval=0, ascii=True)
    bar.update(1)
    bar.update(1)
    open(flag, "w").close()  # rank 1 prints while this bar shows 2/3 and nothing else is written
    time.sleep(1.0)
    bar.update(1)
    bar.close()
    for epoch in range(2):
        for i in tqdm(range(5), desc=f"epoch {epoch + 1}/2", mininterval=0, ascii=True):
            time.sleep(0.01)
else:
    while not os.path.exists(flag):
        time.sleep(0.01)
    time.sleep(0.3)
    print("rank 1 speaks", file=sys.stderr, flush=True)
