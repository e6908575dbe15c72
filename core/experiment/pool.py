"""A local runner that spreads the plan over processes on one machine.

    metrics = run_in_processes(config, "runs/x", processes=2, threads=1)

`prepare` runs here; then the plan's chains go to a pool of `processes` fresh processes of `threads` torch
threads each, longest first, in two waves: the baselines' trainings (a method's quality task reads its seed's
baseline classifier), then each method's fit, quality and trainings per seed; `aggregate` runs here once they
are all done. Every task reads and writes only the run folder, so this
gives the metrics of `run` (one process) up to the float rounding of the thread count. On CPU, small models
train faster as several single-thread processes than as one process with every core (per-op overhead
dominates): benchmarks/seed_protocol.py uses this.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

from ..errors import RunError
from ..rundir import RunDir
from .config import ExperimentConfig, steps_of
from .plan import chains, plan
from .run import PROCESSES_ENV, announce_estimate, run


def _run_chain(job: tuple[dict, str, list[str], bool]) -> list[str]:
    config, run_dir, ids, resume = job
    run(config, run_dir, tasks=ids, resume=resume)
    return ids


class _Forward:
    """The run's new events (events.jsonl, which every process appends to) to the caller's callback."""

    def __init__(self, run_dir: str | Path, callback: Callable[[dict], None] | None) -> None:
        self.rd, self.callback = RunDir(run_dir), callback
        self.seen = len(self.rd.events()) if callback else 0

    def __call__(self) -> None:
        if not self.callback:
            return
        events = self.rd.events()
        for ev in events[self.seen:]:
            self.callback(ev)
        self.seen = len(events)


def _stop(pool: ProcessPoolExecutor) -> None:
    """The wave's other chains stop now (a chain failed, was cancelled or a process died): nothing queued
    starts and the processes still training are ended (what they finished is in the run folder)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()


def run_in_processes(config: dict, run_dir: str | Path, processes: int, threads: int = 1,
                     callback: Callable[[dict], None] | None = None, resume: bool = False,
                     on_chain: Callable[[list[str]], None] | None = None, poll: float = 0.5) -> dict:
    """Run the whole plan with `processes` worker processes; returns metrics.json's content. `callback` gets
    every event of the run as the processes write it (polled every `poll` seconds)."""
    started = time.time()
    config = dict(config, num_threads=threads)
    cfg = ExperimentConfig.from_dict(dict(config))
    prepares = [t.id for t in plan(cfg) if t.kind == "prepare"]
    run(config, run_dir, callback, resume=resume, tasks=prepares)
    split = RunDir(run_dir).fold(0 if cfg.folds > 1 else None).split()
    steps_bal, steps_paper = steps_of(cfg, split["train_counts"], split["needed"])
    cost = {t.id: (steps_paper if t.baseline == "paper" else steps_bal) for t in plan(cfg) if t.kind != "aggregate"}
    groups = sorted(chains(plan(cfg)), key=lambda g: -sum(cost[t.id] for t in g))   # longest first
    waves = [[g for g in groups if g[0].baseline], [g for g in groups if not g[0].baseline]]
    os.environ["OMP_NUM_THREADS"] = str(threads)         # inherited by the spawned processes before torch loads
    os.environ[PROCESSES_ENV] = str(max(1, int(processes)))  # what their time estimate assumes
    announce_estimate(config, run_dir)
    forward = _Forward(run_dir, callback)
    for wave in waves:
        jobs = [(config, str(run_dir), [t.id for t in g], resume) for g in wave]
        if processes <= 1 or len(jobs) <= 1:
            for job in jobs:
                (on_chain or (lambda ids: None))(_run_chain(job))
                forward()
            continue
        # one process per slot for the whole wave (importing torch and the methods takes seconds a process)
        with ProcessPoolExecutor(min(processes, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
            pending = {pool.submit(_run_chain, job) for job in jobs}
            try:
                while pending:
                    done, pending = wait(pending, timeout=poll, return_when=FIRST_COMPLETED)
                    forward()
                    for future in done:
                        ids = future.result()        # the chain's own error (a cancel, a bad setting) is raised
                        if on_chain:
                            on_chain(ids)
            except BrokenProcessPool:
                _stop(pool)
                raise RunError("a process training part of this run ended before finishing it (killed, or out "
                               "of memory?); what it finished is kept: run it again to go on from there") from None
            except BaseException:
                _stop(pool)
                raise
    forward()
    return run(config, run_dir, callback, tasks=["aggregate"], started=started)
