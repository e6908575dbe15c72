"""The local runner: the plan's tasks in order, in this process.

    from core.experiment import run
    metrics = run({"data": "path/or.zip", "methods": ["smote"], "seeds": [0]}, "runs/x")
    run(config, "runs/x", resume=True)                    # skip every task whose output matches the settings
    run(config, "runs/x", tasks=["fit:smote_s0", "train:smote_s0"], resume=True)   # part of the plan

`tasks` runs part of the plan (another process may run the rest at the same time): a task whose inputs are
not in the run folder yet is an error that names the task to run first. `run` returns metrics.json's content
when the plan's `aggregate` ran, else None.
"""
from __future__ import annotations

import os
import resource
import socket
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..errors import Cancelled, DefectAugError, RunError
from ..events import Reporter
from ..rundir import RunDir
from ..runtime import pick_device
from .config import ExperimentConfig, steps_of
from .plan import Task, plan
from .aggregate import aggregate
from .tasks import (CAS_EPOCH_SHARE, TaskContext, fit, is_done, prepare, quality, result_is_whole, train,
                    write_config)


PROCESSES_ENV = "DEFECTAUG_RUN_PROCESSES"   # set by experiment.pool for its processes: how many run side by side


def run(config: dict | ExperimentConfig, run_dir: str | Path, callback: Callable[[dict], None] | None = None,
        resume: bool = False, tasks: Iterable[str] | None = None, started: float | None = None,
        where: dict | None = None) -> dict | None:
    """Run the experiment's plan (or the `tasks` named) in this process; see the module docstring.

    Every trained model leaves results/<model>_s<seed>.json and every fitted method fits/<method>_s<seed>.json.
    With resume=True a task whose output is there, made with the same data, split, classifier and method
    settings, is not run again: an interrupted run (killed worker, closed laptop) goes on where it stopped.

    Each task it runs is recorded as a `task` event: which runner, node, host, process and device ran it
    (`where` names the runner and node; the default is this machine's local runner).
    """
    reporter = Reporter(run_dir, callback)
    try:
        cfg = ExperimentConfig.from_dict(config)
        rd = RunDir(run_dir)
        rd.check_no_links()         # a resumed run would write through them (results/, checkpoints/, ...)
        return _Runner(cfg, rd, reporter, resume, where).run(tasks, started or time.time())
    except Cancelled as err:
        reporter.emit("error", message=str(err), cancelled=True)
        raise
    except DefectAugError as err:
        reporter.emit("error", message=str(err))
        raise
    except Exception as err:  # a bug or the machine (e.g. disk full): keep what was written, say why
        reporter.log(traceback.format_exc())
        reporter.emit("error", message=f"{type(err).__name__}: {err}")
        raise


def announce_estimate(config: dict | ExperimentConfig, run_dir: str | Path) -> None:
    """The run's `estimate` event, written once before a pool of processes takes its tasks (each would
    otherwise announce its own when they start together). Nothing when the run already has one."""
    cfg = ExperimentConfig.from_dict(config)
    runner = _Runner(cfg, RunDir(run_dir), Reporter(run_dir), resume=True)
    full = plan(cfg)
    runner._weigh(full)
    runner._announce_estimate({t.id for t in full if is_done(t, cfg, runner.rd.fold(t.fold))}, whole=False)


class _Runner:
    def __init__(self, cfg: ExperimentConfig, rd: RunDir, reporter: Reporter, resume: bool,
                 where: dict | None = None) -> None:
        torch.set_num_threads(cfg.num_threads)   # every training's fixed count (runtime.training_threads)
        self.cfg, self.rd, self.reporter, self.resume = cfg, rd, reporter, resume
        device = pick_device(cfg.device)
        self.where = {"runner": "local", "node": socket.gethostname(), **(where or {})}
        self.where.update(host=socket.gethostname(), pid=os.getpid(), device=_device_name(device))
        folds = [None] if cfg.folds == 1 else list(range(cfg.folds))
        self.ctxs = {f: TaskContext(cfg, rd.fold(f), reporter, device, progress=self._overall, fold=f, top=rd)
                     for f in folds}
        self.units: dict[str, float] = {}
        self.done_units, self.current = 0.0, 0.0
        self.estimated: dict[str, float] = {}      # task id -> seconds, by core.estimate (the `estimate` event)

    def _overall(self, fraction: float) -> float:
        total = sum(self.units.values()) or 1.0
        return round(min(1.0, (self.done_units + fraction * self.current) / total), 4)

    def _weigh(self, tasks: list[Task]) -> None:
        """Progress weights: classifier steps for trainings, a balanced run's steps for a fit."""
        split = self.rd.fold(next(iter(self.ctxs))).split()
        bal, paper = steps_of(self.cfg, split["train_counts"], split["needed"])
        units = {"fit": bal, "train": bal, "quality": bal * CAS_EPOCH_SHARE * 1.5}
        self.units = {t.id: paper if t.baseline == "paper" else units.get(t.kind, 0.0) for t in tasks}

    def run(self, only: Iterable[str] | None, t_start: float) -> dict | None:
        full = plan(self.cfg)
        wanted = set(only) if only is not None else {t.id for t in full}
        unknown = wanted - {t.id for t in full}
        if unknown:
            raise RunError(f"no task {', '.join(sorted(unknown))} in this run's plan; its tasks are "
                           f"{', '.join(t.id for t in full)}")
        todo = [t for t in full if t.id in wanted]
        self.by_id = {t.id: t for t in full}
        finished = {t.id for t in full if t.id not in wanted and is_done(t, self.cfg, self.rd.fold(t.fold))}
        before = set(finished)           # done by other processes (or earlier): counted in the overall progress
        failed: dict[str, int] = {}      # method -> the seed it failed at, in this session
        metrics = None
        for task in todo:
            for need in task.needs:
                if need not in finished and not (need.startswith("fit:") and self._fit_failed(need)):
                    raise RunError(f"the task {task.id} needs {need}, which has not run yet; run it first")
            if task.kind != "prepare" and not self.units:
                self._weigh(full)
                self.done_units = sum(self.units.get(i, 0.0) for i in before)
                self._announce_estimate(before, whole=only is None)
            self.current = self.units.get(task.id, 0.0)
            t_task = time.time()
            ctx = self.ctxs.get(task.fold)
            reuse = task.kind != "aggregate" and self.resume and is_done(task, self.cfg, ctx.rd)
            if self.resume and not reuse and task.kind == "train":
                rec = ctx.rd.result(task.name, task.seed)
                if rec and not result_is_whole(rec):
                    self.reporter.warn(f"results/{task.model_id}.json is damaged (values of the wrong type): "
                                       f"{task.model_id} is trained again")
            if not reuse:
                self.reporter.emit("task", task=task.id, **self.where)
            if task.kind == "aggregate":
                peak = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
                metrics = aggregate(list(self.ctxs.values()), self.rd, round(time.time() - t_start, 1), peak)
            elif reuse:
                self._reused(task, ctx)
            elif task.kind == "prepare":
                prepare(ctx)
            elif task.kind == "quality":
                quality(ctx, task.name, task.seed)
            elif task.kind == "fit":
                if task.name in failed:
                    ctx.rd.write_fit(task.name, task.seed, {
                        "key": self.cfg.key(task.name, classifier=False), "method": task.name, "seed": task.seed,
                        "failed": f"not tried: it failed for seed {failed[task.name]}"})
                elif fit(ctx, task.name, task.seed).get("failed"):
                    failed[task.name] = task.seed
            else:
                train(ctx, task)
            finished.add(task.id)
            if task.kind != "aggregate":           # its `done` stays the last event (finished runs end so)
                self._pace(task.id, t_task, reuse)
            self.done_units += self.current
            self.current = 0.0
        return metrics

    def _announce_estimate(self, finished: set[str], whole: bool = True) -> None:
        """An `estimate` event: each task's seconds by `core.estimate` (at the load now, calibrated on this
        machine's finished runs) and the training steps each fit will report, so the Jobs page weighs the tasks
        and reads a fit's progress from its step counts without importing the experiment. Never fails the run.
        Part of a plan (a pool process, a Ray task) announces none when the run already has one: the run is
        estimated once, whichever runner runs its tasks (its events are the same on every runner)."""
        from .. import estimate as est_mod
        if not whole:
            known = [e for e in self.rd.events() if e.get("kind") == "estimate"]
            if known:
                self.estimated = dict(known[-1].get("tasks") or {})
                return
        try:
            split = self.rd.fold(next(iter(self.ctxs))).split()
            counts, needed = split["train_counts"], split["needed"]
            side = int(os.environ.get(PROCESSES_ENV, "1") or 1) if not whole else 1   # a pool's chain: its size
            est = est_mod.estimate(self.cfg, counts, needed, n_test=sum(split["test_counts"].values()),
                                   rates=est_mod.rates_for_run(self.rd.root), processes=side)
            self.estimated = {tid: round(sec, 3) for tid, sec in est.tasks.items() if tid != "startup"}
            self.reporter.emit("estimate", tasks=self.estimated, done=sorted(finished),
                               steps=est_mod.planned_steps(self.cfg, counts, needed),
                               sampling=est_mod.sampling_shares(self.cfg, counts, needed),
                               seconds=round(est.seconds, 1), low=round(est.low, 1), high=round(est.high, 1),
                               processes=est.processes)
        except Exception as err:   # noqa: BLE001  the Jobs page then falls back to the step fractions
            self.reporter.log(f"no time estimate for the Jobs page: {type(err).__name__}: {err}")

    def _pace(self, task_id: str, started: float, reused: bool) -> None:
        """A `pace` event when a task ends: its seconds against the estimate's (the run's own pace so far)."""
        estimated = self.estimated.get(task_id)
        self.reporter.emit("pace", task=task_id, seconds=round(time.time() - started, 3),
                           estimated=estimated, reused=bool(reused))

    def _fit_failed(self, fit_id: str) -> bool:
        t = self.by_id[fit_id]
        rec = self.rd.fold(t.fold).fit(t.name, t.seed)
        return bool(rec and rec.get("failed"))

    def _reused(self, task: Task, ctx: TaskContext) -> None:
        """A task whose output is already there (resume): say so in the events and the log."""
        if task.kind == "train":
            m = ctx.rd.result(task.name, task.seed)["metrics"]
            self.reporter.emit("result", model=task.id.split(":", 1)[1], f1_macro=m["f1_macro"],
                               recall_macro=m["recall_macro"], resumed=True)
            self.reporter.log(f"resumed: {task.model_id} reused from results/{task.model_id}.json")
        else:
            self.reporter.log(f"resumed: {task.id} reused from the run folder")
        if task.kind == "prepare":
            write_config(ctx, ctx.rd.split().get("normal_class"))   # this session's settings
            self.reporter.emit("stage", stage="split", message="train / test split reused",
                               **{k: ctx.rd.split()[k] for k in ("train_counts", "test_counts", "needed")})


def _device_name(device: torch.device) -> str:
    """`cpu` or `cuda:0 (NVIDIA H200)`: what the Jobs page shows for where a task ran."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
