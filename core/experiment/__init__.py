"""The experiment: data -> split -> imbalance -> baselines and methods -> metrics, as a plan of tasks.

    from core.experiment import run, ExperimentConfig, plan
    metrics = run({"data": "path/or.zip", "methods": ["smote"], "seeds": [0]}, "runs/x")

`config` (settings, estimate, result keys), `plan` (the tasks and their order), `tasks` (what each task
does, reading and writing only the run folder through `core.rundir.RunDir`), `run` (the local runner, one
process), `pool` (the same plan spread over processes of one machine).
"""
from .config import (BASELINE_HELP, BASELINES, SUPPORTED_SIZES, ExperimentConfig, estimate, parse_seeds,
                     steps_of)
from .plan import Task, chains, plan
from .pool import run_in_processes
from .run import run
from .tasks import is_done

__all__ = ["BASELINES", "BASELINE_HELP", "ExperimentConfig", "SUPPORTED_SIZES", "Task", "chains", "estimate",
           "is_done", "parse_seeds", "plan", "run", "run_in_processes", "steps_of"]
