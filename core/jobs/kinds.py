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
    from ..experiment import run
    from ..experiment.cluster import run_on_ray, runner_settings
    config = dict(config)
    runner, address = runner_settings()
    if runner == "ray":      # the plan's tasks on the cluster; this process only drives them
        run_on_ray(config, run_dir, address, resume=True)
        return
    run(config, run_dir, resume=True)   # resumed: reuses what it trained; each training on its fixed threads


register_job_kind("experiment", _experiment_job)
