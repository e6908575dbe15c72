"""The Ray runner: the experiment's plan as Ray tasks on a cluster, in dependency order, GPU-aware.

    metrics = run_on_ray(config, "runs/x", address="auto")

Chosen by configuration (`runner_settings`): DEFECTAUG_RUNNER=local (the default: the job's own process runs the
plan, core.experiment.run) or ray, with DEFECTAUG_RAY_ADDRESS=auto (a cluster this machine belongs to, started
with `ray start`), ray://host:10001 (Ray Client), or local (a Ray instance of this machine, started for the job).

Every task of `plan(config)` (prepare, fit(method, seed), quality, train(model, seed), aggregate) becomes one Ray
task that runs the local runner on that one task (`run(config, run_dir, tasks=[id])`), its `needs` passed as
object references so Ray starts it only after them. A task reads and writes only the run folder, so the run
folder must be on storage every node mounts at the same path (NFS or a shared volume), and every node runs the
same code and Python environment (the same image). Status, progress, events and failures are the run folder's,
exactly as with the local runner; each task records where it ran (a `task` event: node, host, device).

Resources: the fit of a method whose spec wants a GPU (`MethodSpec.wants_gpu`: GANs, translation, diffusion)
asks for one GPU when the cluster has any; a classifier training or quality task `DEFECTAUG_RAY_TRAIN_GPUS` of
one (default 0.25: a small CNN shares a GPU); everything else, and everything on a CPU-only cluster, `threads`
CPUs and as many torch threads (1 by default: small models train faster as several one-thread tasks, as in
core.experiment.pool). Cancel: the run's CANCEL file, which every task checks between steps, then `ray.cancel`
of every task not finished (and a forced one after a grace period). A task whose process or node is lost is
run again by Ray (`max_retries`, DEFECTAUG_RAY_RETRIES, default 3), resuming from its checkpoints in the run
folder; a task that raised (bad data, a bug) is not retried: the job fails with its message.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from ..errors import Cancelled, DefectAugError, ParamError, RunError
from ..events import Reporter
from ..rundir import RunDir
from .config import ExperimentConfig
from .plan import Task, plan
from .run import run

RUNNER_ENV, ADDRESS_ENV = "DEFECTAUG_RUNNER", "DEFECTAUG_RAY_ADDRESS"
RUNNERS = ("local", "ray")
CANCEL_GRACE = 3.0          # seconds running tasks get to stop at a step boundary before they are killed
# Ray starts its workers at nice 15; a job of the local runner runs at 0. The same priority for both, so a Ray
# instance this project starts (address "local", the tests, the benchmark) is not slowed by everything else on
# the machine. (A cluster started with `ray start` takes RAY_worker_niceness=0 from its environment.)
SYSTEM_CONFIG = {"worker_niceness": 0}


def runner_settings(env: dict | None = None) -> tuple[str, str]:
    """(runner, Ray address) from DEFECTAUG_RUNNER and DEFECTAUG_RAY_ADDRESS; a clear error for a bad value."""
    env = os.environ if env is None else env
    runner = (env.get(RUNNER_ENV) or "local").strip().lower()
    if runner not in RUNNERS:
        raise ParamError(f"{RUNNER_ENV} must be one of {', '.join(RUNNERS)}; got {runner!r}")
    address = (env.get(ADDRESS_ENV) or "auto").strip()
    if runner == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ParamError(f"{RUNNER_ENV}=ray needs the ray package (pip install -r requirements.txt)") from None
    return runner, address


def _number(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ParamError(f"{name} must be a number between {low:g} and {high:g}; got {raw!r}") from None
    if not low <= value <= high:
        raise ParamError(f"{name} must be between {low:g} and {high:g}; got {raw!r}")
    return value


def task_resources(task: Task, cfg: ExperimentConfig, cluster_gpus: float, threads: int) -> dict:
    """What one task asks Ray for: see the module docstring."""
    from ..methods import get_method
    gpus = cluster_gpus if str(cfg.device or "auto").startswith(("auto", "cuda")) else 0
    if gpus and task.kind == "fit" and get_method(task.name).wants_gpu:
        return {"num_cpus": threads, "num_gpus": 1}
    if gpus and task.kind in ("train", "quality"):
        return {"num_cpus": threads, "num_gpus": _number("DEFECTAUG_RAY_TRAIN_GPUS", 0.25, 0.0, 1.0)}
    return {"num_cpus": threads, "num_gpus": 0}


def _probe(address: str, timeout: float = 5.0) -> None:
    """Refuse a host:port (or ray://host:port) nobody listens on now: ray.init would wait minutes for it."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return                                   # auto / local: ray.init says at once when there is none
    import socket
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"nothing answers at {hostport}: {err.strerror or err}") from None


def _connect(address: str) -> None:
    import ray
    if ray.is_initialized():
        return
    # the workers import the tasks' code from this project's folder, at the same path on every node
    job = ray.job_config.JobConfig(code_search_path=[str(Path(__file__).resolve().parents[2])])
    try:
        _probe(address)
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, namespace="defectaug", job_config=job,
                     _system_config=SYSTEM_CONFIG)
        else:
            ray.init(address=address, log_to_driver=False, namespace="defectaug", job_config=job)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise RunError(f"could not reach the Ray cluster at {address!r} ({err}); start it with `ray start --head` "
                       f"on the head node (and `ray start --address=HEAD:6379` on the others), or set "
                       f"{ADDRESS_ENV}") from None


def _run_task(config: dict, run_dir: str, task_id: str, resume: bool, started: float, *_needs) -> dict | None:
    """Body of one Ray task, on whichever node Ray chose: the local runner on this one task."""
    import ray
    ctx = ray.get_runtime_context()
    if not ray.get_gpu_ids() and str(config.get("device") or "auto") == "auto":
        config = dict(config, device="cpu")          # no GPU was given to this task: never take one anyway
    where = {"runner": "ray", "node": f"{ray.util.get_node_ip_address()} ({ctx.get_node_id()[:8]})"}
    return run(config, run_dir, tasks=[task_id], resume=resume, started=started, where=where)   # aggregate: metrics


def _cause(err: BaseException) -> BaseException:
    """The exception a task raised, out of Ray's wrapper."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def run_on_ray(config: dict | ExperimentConfig, run_dir: str | Path, address: str = "auto", callback: Callable[[dict], None] | None = None,
               resume: bool = True, threads: int | None = None, poll: float = 0.5) -> dict:
    """Run the whole plan as Ray tasks; returns metrics.json's content (see the module docstring)."""
    import dataclasses

    import ray
    started = time.time()
    if isinstance(config, ExperimentConfig):
        config = dataclasses.asdict(config)
    rd, reporter = RunDir(run_dir), Reporter(run_dir, callback)
    threads = int(threads or config.get("num_threads") or 1)
    config = dict(config, num_threads=threads)
    cfg = ExperimentConfig.from_dict(dict(config))
    try:
        _connect(address)
    except RunError as err:
        reporter.emit("error", message=str(err))
        raise
    gpus = float(ray.cluster_resources().get("GPU", 0))
    retries = int(_number("DEFECTAUG_RAY_RETRIES", 3, 0, 100))
    body = ray.remote(_run_task)
    refs: dict[str, ray.ObjectRef] = {}
    for task in plan(cfg):
        opts = task_resources(task, cfg, gpus, threads)
        refs[task.id] = body.options(name=task.id, max_retries=retries, retry_exceptions=False, **opts).remote(
            config, str(run_dir), task.id, resume, started, *[refs[n] for n in task.needs])
    reporter.log(f"ray: {len(refs)} tasks submitted to {address} ({gpus:g} GPUs in the cluster)")
    pending, metrics = list(refs.values()), None
    try:              # on any way out before every task ended (cancel, a failed task, an interrupt): stop the rest
        while pending:
            if rd.cancel_requested():
                message = "the job was cancelled; what it wrote so far is kept"
                reporter.emit("error", message=message, cancelled=True)
                raise Cancelled(message)
            done, pending = ray.wait(pending, num_returns=1, timeout=poll)
            for ref in done:
                try:
                    out = ray.get(ref)
                except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError,
                        ray.exceptions.TaskCancelledError) as err:
                    cause = _cause(err)
                    if rd.cancel_requested() and not isinstance(cause, Cancelled):   # stopped by the cancel
                        cause = Cancelled("the job was cancelled; what it wrote so far is kept")
                    if isinstance(cause, (DefectAugError, Cancelled)):
                        raise cause from None
                    raise RunError(f"a task of the run failed on the cluster: {type(cause).__name__}: {cause}") \
                        from None
                if ref == refs["aggregate"]:
                    metrics = out
    except BaseException:
        _stop(pending)
        raise
    return metrics


def _stop(pending: list) -> None:
    """Cancel every task not finished: politely (KeyboardInterrupt; each also sees the CANCEL file), then by
    killing its worker after CANCEL_GRACE seconds."""
    import ray
    if not pending:
        return
    for ref in pending:
        ray.cancel(ref, force=False, recursive=True)
    _, still = ray.wait(pending, num_returns=len(pending), timeout=CANCEL_GRACE)
    for ref in still:
        try:
            ray.cancel(ref, force=True)
        except Exception:   # noqa: BLE001  one that ended meanwhile
            pass
