"""The cnn workload's training step (`bench/workloads.py`'s model, SGD with momentum, batch 128 of 8x8 images),
timed by the wall clock and by this process's CPU time.

    OMP_NUM_THREADS=1 python bench/cnn_cpu_time.py --framework torch|dtrain [--steps 150]
    python bench/cnn_cpu_time.py --framework dtrain --ab      # this round's conv/pool kernels on and off

With one thread, CPU time per step is what the step costs even while other jobs share the cores (the wall
clock then measures the queue as well), so alternating runs of this script compare frameworks or commits on a
loaded machine. `--ab` alternates, in one process and in blocks of 20 steps, dtrain with its max-pooling and
direct-convolution kernels and dtrain with those switched off (the paths before them)."""
import argparse
import importlib
import statistics
import time
import types

import numpy as np

from workloads import build


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--framework", default="dtrain")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--ab", action="store_true")
    a = ap.parse_args()
    fw = importlib.import_module(a.framework)
    fw.manual_seed(0)
    F = fw.nn.functional
    model = build(fw, "cnn")
    opt = fw.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    x_all = rng.standard_normal((1024, 1, 8, 8)).astype(np.float32)
    y_all = rng.integers(0, 10, 1024)

    def step():
        ix = rng.integers(0, 1024, 128)
        loss = F.cross_entropy(model(fw.from_numpy(x_all[ix])), fw.from_numpy(y_all[ix]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def timed(n):
        wall, cpu = [], []
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return wall, cpu

    def report(name, wall, cpu):
        print(f"{name}: wall {1e3 * statistics.median(wall):.2f} ms, cpu {1e3 * statistics.median(cpu):.2f} ms "
              f"(min {1e3 * min(cpu):.2f}) per step, median of {len(wall)}")

    if not a.ab:
        timed(20)  # warm-up: numba's first calls, the allocator's first pages
        report(a.framework, *timed(a.steps))
        return
    from dtrain import _cpu_kernels
    from dtrain.nn.functional import _conv, _pool
    direct, off = _conv._DIRECT_MAX_TAPS, types.SimpleNamespace(get=lambda *arrays: None)

    def use(new):
        _pool._cpu_kernels = _cpu_kernels if new else off
        _conv._DIRECT_MAX_TAPS = direct if new else 0

    res = {True: ([], []), False: ([], [])}
    for new in (True, False):
        use(new)
        timed(10)
    for _ in range(max(1, a.steps // 20)):
        for new in (True, False):
            use(new)
            w, c = timed(20)
            res[new][0].extend(w)
            res[new][1].extend(c)
    use(True)
    report("with the kernels", *res[True])
    report("without", *res[False])


if __name__ == "__main__":
    main()
