"""Optimizer step time alone on the wide MLP (64-2048-2048-10, 4.3 M parameters): SGD with momentum and Adam,
fresh gradients each step as after zero_grad(). Time older code with PYTHONPATH=<its checkout>."""
import json
import statistics
import time

import numpy as np

import dtrain as torch
from dtrain import nn


def main(steps=40):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))
    grads = [np.random.default_rng(i).standard_normal(p.shape).astype(np.float32) for i, p in enumerate(m.parameters())]
    res = {}
    for name, make in (("sgd", lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9)),
                       ("adam", lambda ps: torch.optim.Adam(ps, lr=1e-3))):
        opt = make(m.parameters())
        times = []
        for _ in range(steps):
            for p, g in zip(m.parameters(), grads):
                p.grad = torch.from_numpy(g.copy())
            t0 = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - t0)
        res[name + "_step_ms_median"] = round(1e3 * statistics.median(times[5:]), 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
