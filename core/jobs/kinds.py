"""Job kinds: what a job runs in its own process, by name.

"experiment" runs `core.experiment.run` (or, with DEFECTAUG_RUNNER=ray, the same plan on a Ray cluster,
`core.experiment.cluster`); other kinds register with `register_job_kind(name, fn)` from a module named in
DEFECTAUG_PLUGINS (the tests register a "sleep" job with crash and disk-full hooks this way), which the job
process imports too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..plugins import load_plugins

JobFn = Callable[[dict, Path], object]
_KINDS: dict[str, JobFn] = {}


def register_job_kind(name: str, fn: JobFn) -> None:
    """A kind of job the worker can run: `fn(config, run_dir)` in the job's own process."""
    _KINDS[name] = fn


def job_kinds() -> list[str]:
    load_plugins()
    return list(_KINDS)


def job_function(kind: str) -> JobFn | None:
    """The function a job of `kind` runs, or None for a kind nobody registered."""
    return _KINDS.get(kind) if kind in job_kinds() else None


def _experiment_job(config: dict, run_dir: Path) -> None:
    from ..experiment.cluster import run_on_ray, runner_settings
    config = dict(config)
    runner, address = runner_settings()
    if runner == "ray":      # the plan's tasks on the cluster; this process only drives them
        run_on_ray(config, run_dir, address, resume=True)
        return
    run_local(config, run_dir, resume=True)   # resumed: reuses what it trained


def run_local(config, run_dir: Path, callback=None, resume: bool = False) -> dict | None:
    """The plan on this machine: a long run on a CPU with its trainings side by side in processes (as many as
    this process's share of the cores allows, `core.runtime.local_processes`), else in this process; each
    training on its fixed threads either way, so the metrics are the same. Returns metrics.json's content."""
    from ..experiment import ExperimentConfig, run, run_in_processes
    from ..runtime import local_processes
    cfg = ExperimentConfig.from_dict(dict(config) if isinstance(config, dict) else config)
    secs = _idle_seconds(cfg)
    processes = local_processes(cfg.device, cfg.num_threads, secs if secs is not None else 0.0)
    if processes > 1:    # independent trainings side by side, each on its fixed threads: the same numbers
        import dataclasses
        plain = dict(config) if isinstance(config, dict) else dataclasses.asdict(cfg)
        return run_in_processes(plain, run_dir, processes, threads=cfg.num_threads, callback=callback,
                                resume=resume)
    return run(cfg, run_dir, callback, resume=resume)


def _idle_seconds(cfg) -> float | None:
    """The run's duration on an idle machine by the priors (core.estimate), its tasks one after another, from
    its files' counts; None when it cannot be told (the run then keeps its trainings in one process)."""
    from ..estimate import Rates, estimate
    from .preflight import quick_protocol
    try:
        proto = quick_protocol(cfg)
        if proto is None:
            return None
        return estimate(cfg, proto.train, rates=Rates(), load=0.0, processes=1).seconds
    except Exception:   # noqa: BLE001  the run reports its own errors
        return None


register_job_kind("experiment", _experiment_job)
