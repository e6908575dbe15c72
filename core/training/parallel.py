"""Independent models (a per-class generator each) trained side by side on the CPU's cores.

    results = train_models([lambda stop: train_one(c, stop) for c in classes], device)

On CPU the models train side by side, one per core with one torch thread each: a small GAN step uses
two threads of one process poorly (one model on two threads is 1.6x one thread, two single-thread models
side by side 2x). Models left over when the count does not divide by the cores share the cores between
them (5 models on 2 cores: 4 two at a time, then 1 on both cores), so no core idles. The grouping depends
only on the counts and every model has its own seeded generators, so the results never depend on which
model finishes first: they are bit for bit the models trained one after another on one thread.
CUDA: one at a time. The first failure (or a cancel, or Ctrl-C) stops the others at their next step
(`Stopped`); each saves its checkpoint then, and the failure itself is raised.
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, TypeVar

import torch

from ..errors import Cancelled
from ..runtime import cpu_threads

T = TypeVar("T")


class Stopped(Cancelled):
    """A model stopped because one trained beside it (same fit) failed or was interrupted."""


def side_by_side(n_models: int, device: torch.device) -> list[tuple[int, int, int]]:
    """How to train `n_models` independent models: (models, at once, torch threads each) groups."""
    cores = torch.get_num_threads()       # what the run allows (num_threads / the machine's cores)
    if device.type != "cpu":
        return [(n_models, 1, cores)] if n_models > 0 else []
    groups = []
    full = (n_models // cores) * cores
    if full:
        groups.append((full, cores, 1))
    rest = n_models - full
    if rest:
        groups.append((rest, rest, max(1, cores // rest)))
    return groups


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
