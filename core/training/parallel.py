"""Independent models (a per-class generator each) trained side by side on the CPU's cores.

    results = train_models([lambda stop: train_one(c, stop) for c in classes], device)

On CPU the models train side by side, as many at once as the process's cores allow, each on the run's fixed
torch thread count (one by default): a small GAN step uses two threads of one process poorly (one model on two
threads is 1.6x one thread, two single-thread models side by side 2x). A model never gets more threads because
a core is idle (the count changes how its sums round), and every model has its own seeded generators, so the
results never depend on the cores, the load or which model finishes first: they are bit for bit the models
trained one after another.
CUDA: one at a time. The first failure (or a cancel, or Ctrl-C) stops the others at their next step
(`Stopped`); each saves its checkpoint then, and the failure itself is raised.
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, TypeVar

import torch

from ..errors import Cancelled
from ..runtime import cpu_budget, cpu_threads

T = TypeVar("T")


class Stopped(Cancelled):
    """A model stopped because one trained beside it (same fit) failed or was interrupted."""


def side_by_side(n_models: int, device: torch.device, threads: int | None = None,
                 cores: int | None = None) -> list[tuple[int, int, int]]:
    """How to train `n_models` independent models: (models, at once, torch threads each) groups. Each model
    trains on `threads` torch threads (the run's fixed count, default what this process is set to), never more
    because a core is idle: the thread count changes how a model's sums round, and a model's numbers must not
    depend on how many models or cores there were (runtime.training_threads). `cores`: runtime.cpu_budget()."""
    threads = max(1, int(threads or torch.get_num_threads()))
    if n_models <= 0:
        return []
    if device.type != "cpu":
        return [(n_models, 1, threads)]
    cores = cores or cpu_budget()
    return [(n_models, max(1, min(n_models, cores // threads)), threads)]


def train_models(jobs: list[Callable[[threading.Event], T]], device: torch.device) -> list[T]:
    """Run every `job(stop)` (each trains one model and returns what it made), grouped by `side_by_side`;
    the results come back in `jobs` order. `stop` is set when another job failed: a job's training loop
    then raises `Stopped` at its next step."""
    stop = threading.Event()
    done: list[T] = []
    at = 0
    for count, workers, threads in side_by_side(len(jobs), device):
        group, at = jobs[at:at + count], at + count
        with cpu_threads(threads, device):
            if workers == 1:
                done += [job(stop) for job in group]
            else:
                done += _together(group, workers, stop)
    return done


def _together(group: list[Callable[[threading.Event], T]], workers: int, stop: threading.Event) -> list[T]:
    """`group` in `workers` threads (torch ops release the GIL), results in order."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="model") as pool:
        futures = [pool.submit(job, stop) for job in group]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:                # Ctrl-C while waiting: the models stop at their next step
            stop.set()
            raise
        if any(f.done() and f.exception() is not None for f in futures):
            stop.set()
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])
        return [f.result() for f in futures]
