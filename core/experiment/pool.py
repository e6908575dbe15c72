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

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Callable

from ..rundir import RunDir
from .config import ExperimentConfig, steps_of
from .plan import chains, plan
from .run import run


def _run_chain(job: tuple[dict, str, list[str], bool]) -> list[str]:
    config, run_dir, ids, resume = job
    run(config, run_dir, tasks=ids, resume=resume)
    return ids


def run_in_processes(config: dict, run_dir: str | Path, processes: int, threads: int = 1,
                     callback: Callable[[dict], None] | None = None, resume: bool = False,
                     on_chain: Callable[[list[str]], None] | None = None) -> dict:
    """Run the whole plan with `processes` worker processes; returns metrics.json's content."""
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
    for wave in waves:
        jobs = [(config, str(run_dir), [t.id for t in g], resume) for g in wave]
        if processes <= 1 or len(jobs) <= 1:
            for job in jobs:
                (on_chain or (lambda ids: None))(_run_chain(job))
            continue
        with mp.get_context("spawn").Pool(min(processes, len(jobs)), maxtasksperchild=1) as pool:
            for ids in pool.imap_unordered(_run_chain, jobs):
                if on_chain:
                    on_chain(ids)
    return run(config, run_dir, callback, tasks=["aggregate"], started=started)
