"""Background jobs: a queue in SQLite under the workspace, and the local worker that runs it.

The app and the CLI only submit and read; training always happens in a separate process.

    checked = preflight(config, workspace, counts)   # preflight.py: everything checked once, with the estimate
    store = JobStore(workspace)                      # store.py: <workspace>/jobs.db, the jobs and their table
    job_id = store.submit(checked)                   # queued (a plain dict is checked first)
    start_worker(store)                              # worker.py: the caller's explicit step (the app does it)
    store.status(job_id).status                      # queued | running | done | failed | cancelled | interrupted
    store.cancel(job_id); store.list(); store.delete(job_id); store.rerun(job_id); store.resume(job_id)

    kinds.py   job kinds by name ("experiment"; plugins register more)
    locks.py   the worker lock (one worker per workspace) and machine-wide job slots
    worker.py  the worker process, one child process per job, cancel and crash handling

The experiment's runners are `core.experiment`'s: the local one (`core.experiment.run`, in the job's process) and
the Ray one (`core.experiment.cluster`, chosen by DEFECTAUG_RUNNER), which the CLI also uses without a job.
`python -m core.jobs worker WORKSPACE` runs a worker; `python -m core.jobs run-job WORKSPACE JOB_ID` is a job's
process.
"""
from .kinds import job_kinds, register_job_kind
from .locks import default_max_parallel, slots_dir
from .preflight import (Checked, check_classifier, check_methods, check_model_memory, memory_check, memory_limit,
                        preflight, quick_counts)
from .store import (ACTIVE, CANCELLED, DONE, FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, WORKER_DIED, Job,
                    JobStore, JobStoreDamaged)
from .worker import autostart_enabled, ensure_worker, main, run_job_process, start_worker, wait_for, worker_main

__all__ = ["ACTIVE", "CANCELLED", "Checked", "DONE", "FAILED", "FINISHED", "INTERRUPTED", "Job", "JobStore",
           "JobStoreDamaged", "QUEUED", "RUNNING", "WORKER_DIED", "autostart_enabled", "check_classifier",
           "check_methods", "check_model_memory", "default_max_parallel", "ensure_worker", "job_kinds", "main",
           "memory_check", "memory_limit", "preflight", "quick_counts", "register_job_kind", "run_job_process",
           "slots_dir", "start_worker", "wait_for", "worker_main"]
