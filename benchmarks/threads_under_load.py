"""One torch thread against two on a busy machine: ms per training step of a small CNN (3 conv layers, 64 px,
batch 64), the evaluation classifier's size.

    .venv/bin/python benchmarks/threads_under_load.py 2; .venv/bin/python benchmarks/threads_under_load.py 1

A team of two OpenMP threads waits at every operation for the one the scheduler took away; with the machine's
load average at 11 on 2 cores a step took 430-945 ms on 2 threads against 54 ms on 1 (benchmarks/RESULTS.md,
"estimate"), which is one reason every training now runs on one thread (`core.runtime.training_threads`; it was chosen from
the load, `threads_for_load`, until the thread count was found to change the numbers: issue 37).
"""
from __future__ import annotations

import os
import sys
import time

import torch


def main(threads: int, steps: int = 60) -> None:
    torch.set_num_threads(threads)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1),
                              torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3, 2, 1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(64 * 8 * 8, 64), torch.nn.Linear(64, 4))
    opt = torch.optim.Adam(net.parameters())
    x, y = torch.randn(64, 1, 64, 64), torch.randint(0, 4, (64,))

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"{threads} thread(s): {(time.perf_counter() - start) / steps * 1000:.1f} ms/step, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads())
