"""The worker: the process that runs a workspace's job queue, and the job process it starts for each job.

    start_worker(store)                      # start `python -m core.jobs worker W` unless one runs (autostart on)
    ensure_worker(workspace)                 # the same, whatever the autostart setting
    wait_for(store, job_id)                  # block until the job ends (tests, CLI)

The worker (`worker_main`) holds an exclusive lock on `<workspace>/worker.lock` while it lives, so
there is at most one per workspace and "is a worker alive?" is a lock test, not a guess from a pid.
Each job runs in its own child process (a crash or a kill never takes the worker down); the child
dies with the worker (PR_SET_PDEATHSIG), and a job left `running` without a live worker is marked
failed with the reason by the next reader. How many jobs run at once is bounded machine-wide by
slot lock files under `<home>/.slots` (`core.jobs.locks`), so two workspaces never oversubscribe the CPU;
each child gets cpu_count / slots threads.

Cancel writes the run's CANCEL file (the job's reporter raises `Cancelled` at its next check); a job
that has not stopped after `DEFECTAUG_CANCEL_GRACE` seconds is killed. What it wrote is kept.
The job process runs the job's kind (`core.jobs.kinds`) and records how it ended in the store, or, when the
store cannot take it, in the run folder (`RunDir.write_job_end`), where the worker finds it.
"""
from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Cancelled, DefectAugError, DiskFull, ParamError
from ..plugins import load_plugins
from ..rundir import RunDir
from ..workspace import Workspace, project_root
from .kinds import job_function
from .locks import acquire_slot, default_max_parallel, try_lock, unlock
from .store import (CANCELLED, DONE, FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING, Job, JobStore,
                    JobStoreDamaged, left_end, results_complete)

AUTOSTART_ENV = "DEFECTAUG_AUTOSTART_WORKER"
WORKER_LOG = "worker.log"


def autostart_enabled() -> bool:
    """Whether submitting a job starts a background worker ($DEFECTAUG_AUTOSTART_WORKER, default on)."""
    return os.environ.get(AUTOSTART_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default



def start_worker(store: JobStore) -> bool:
    """Start a background worker for this workspace when autostart is on and none is alive (after a
    submit, or after an app or machine restart left jobs queued). True when one was started."""
    if autostart_enabled() and not store.worker_alive():
        return ensure_worker(store)
    return False


def ensure_worker(workspace: Workspace | str | Path) -> bool:
    """Start a background worker for this workspace unless one is alive. True if one was started.
    The worker runs in its own session, so it outlives the app process that started it."""
    store = workspace if isinstance(workspace, JobStore) else JobStore(workspace)
    if store.worker_alive():
        return False
    root = store.workspace.root
    log = open(root / WORKER_LOG, "ab")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(project_root()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        subprocess.Popen([sys.executable, "-m", "core.jobs", "worker", str(root)], cwd=str(project_root()),
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True, close_fds=True)
    finally:
        log.close()
    return True


def wait_for(store: JobStore, job_id: str, timeout: float = 600, statuses: tuple[str, ...] = FINISHED,
             poll: float = 0.25) -> Job:
    """Block until the job reaches one of `statuses` (tests, CLI); raises TimeoutError."""
    end = time.time() + timeout
    while True:
        job = store.status(job_id)
        if job.status in statuses:
            return job
        if time.time() > end:
            raise TimeoutError(f"job {job_id} still {job.status} after {timeout:.0f}s")
        time.sleep(poll)



@dataclass
class _Child:
    job: Job
    proc: subprocess.Popen
    slot: int
    slot_fd: int
    cancel_deadline: float | None = None
    killed_at: float | None = None
    extra: dict = field(default_factory=dict)


def _say(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [worker {os.getpid()}] {msg}", flush=True)


def _set_pdeathsig() -> None:
    """In the child, before exec: die with SIGKILL when the worker dies (Linux)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:   # noqa: BLE001  not Linux: the child's own parent watchdog still applies
        pass


def _spawn_child(store: JobStore, job: Job, slot: int, max_parallel: int) -> subprocess.Popen:
    env = dict(os.environ)
    threads = max(1, (os.cpu_count() or 1) // max_parallel)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               DEFECTAUG_JOB_THREADS=str(threads), DEFECTAUG_WORKER_PID=str(os.getpid()))
    env["PYTHONPATH"] = os.pathsep.join([str(project_root()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if default_max_parallel() > 1 and Path("/proc/driver/nvidia/gpus").is_dir():
        env["CUDA_VISIBLE_DEVICES"] = str(slot)   # one job per GPU
    log = RunDir(job.run_dir).open_process_log()
    try:
        return subprocess.Popen([sys.executable, "-m", "core.jobs", "run-job", str(store.workspace.root), job.id],
                                cwd=str(project_root()), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_set_pdeathsig)
    finally:
        log.close()


def _kill(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)   # the child leads its own process group: its helpers go too
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def worker_main(workspace: Path, once: bool = False, max_parallel: int | None = None) -> int:
    """Run the job queue of `workspace` until stopped (SIGTERM/SIGINT), idle for
    $DEFECTAUG_WORKER_IDLE seconds (default 600), or, with `once`, until the queue is empty.
    Returns 0; returns 0 at once when another worker already serves this workspace."""
    load_plugins()   # the job kinds (and any hooks) plugins register, as the job processes see them
    store = JobStore(workspace)
    lock_fd = None
    for _ in range(20):   # the app may be probing the lock this very moment: try for ~2 s
        lock_fd = try_lock(store.lock_path)
        if lock_fd is not None:
            break
        time.sleep(0.1)
    if lock_fd is None:
        _say(f"another worker already serves {store.workspace.root}; exiting")
        return 0
    max_parallel = max(1, int(max_parallel or default_max_parallel()))
    grace = _env_float("DEFECTAUG_CANCEL_GRACE", 5.0)
    idle_limit = _env_float("DEFECTAUG_WORKER_IDLE", 600.0)
    poll = _env_float("DEFECTAUG_WORKER_POLL", 0.3)
    me, started = os.getpid(), time.time()
    stopping = {"flag": False, "why": ""}

    def stop(signum, _frame):
        stopping["flag"], stopping["why"] = True, signal.Signals(signum).name

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    children: dict[str, _Child] = {}
    _say(f"serving {store.workspace.root} (max {max_parallel} job(s) at once)")
    try:
        # We hold the lock: any job still marked running was left by a worker that died.
        for job_id in _retry(store.reap, default=[]):
            _say(f"job {job_id} was left running by a dead worker: marked failed")
        _retry(lambda: store.heartbeat(me, started, max_parallel))
        last_beat, idle_since, failures = time.time(), time.time(), 0
        while not stopping["flag"]:
            if not store.db_path.exists():
                _say("the workspace was removed; exiting")
                break
            try:
                now = time.time()
                if now - last_beat >= 2:
                    store.heartbeat(me, started, max_parallel)
                    last_beat = now
                for job_id, child in list(children.items()):
                    if _watch_child(store, child, grace):
                        _say(f"job {job_id} ended: {store.get(job_id).status}")
                        unlock(child.slot_fd)
                        del children[job_id]
                while len(children) < max_parallel and not stopping["flag"]:
                    if not store.counts().get(QUEUED):
                        break
                    slot = acquire_slot(max_parallel)
                    if slot is None:
                        break   # every machine-wide slot is busy (other workspaces): wait
                    try:
                        job = store.claim_next(me)
                    except BaseException:
                        unlock(slot[1])   # never keep a slot for a job that was not claimed
                        raise
                    if job is None:
                        unlock(slot[1])
                        break
                    try:
                        proc = _spawn_child(store, job, slot[0], max_parallel)
                    except OSError as err:
                        unlock(slot[1])
                        store.finish(job.id, FAILED, f"could not start the job process: {err}")
                        continue
                    children[job.id] = _Child(job, proc, slot[0], slot[1])
                    _say(f"job {job.id} started (pid {proc.pid}, slot {slot[0]})")
                    _retry(lambda: store.set_pid(job.id, proc.pid))   # only shown on the Jobs page
                if children or store.counts().get(QUEUED):
                    idle_since = time.time()
                elif once or time.time() - idle_since > idle_limit:
                    break
                time.sleep(poll)
            except JobStoreDamaged as err:
                _say(f"stopping: {err}")
                break
            except _STORE_ERRORS as err:
                # a failing or full disk, a locked jobs.db: keep serving, try again (a job's end is recorded later)
                failures += 1
                pause = min(5.0, poll * 2 ** failures)
                _say(f"the job store failed ({err}); retrying in {pause:.1f}s")
                time.sleep(pause)
                continue
            failures = 0
    finally:
        for job_id, child in children.items():
            _kill(child.proc, signal.SIGTERM)
        deadline = time.time() + 5
        for job_id, child in children.items():
            try:
                child.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _kill(child.proc, signal.SIGKILL)
                child.proc.wait()
            why = (f"the worker was stopped ({stopping['why'] or 'shutdown'}) while this job ran; what it wrote "
                   "is kept. Use Re-run to start it again.")
            end = left_end(child.job) or ((DONE, "") if results_complete(child.job) else (INTERRUPTED, why))
            _retry(lambda: store.finish(job_id, *end))
            unlock(child.slot_fd)
        for s, h in old.items():
            signal.signal(s, h)
        try:
            store.forget_worker(me)
        except (sqlite3.Error, DefectAugError):
            pass
        unlock(lock_fd)
        _say("stopped")
    return 0


# What a failing disk or a busy store raises: worth another try (JobStoreDamaged is not: a person must recover it).
_STORE_ERRORS = (sqlite3.OperationalError, DiskFull)


def _retry(call: Callable, tries: int = 5, wait: float = 0.2, default=None):
    """`call()`, tried again after a store error (a failing disk, a locked jobs.db); `default` if it never worked."""
    for attempt in range(tries):
        try:
            return call()
        except _STORE_ERRORS as err:
            _say(f"the job store failed ({err}); {'retrying' if attempt + 1 < tries else 'giving up'}")
            time.sleep(wait * 2 ** attempt)
    return default


def _watch_child(store: JobStore, child: _Child, grace: float) -> bool:
    """Check one running child: enforce cancel, and finish its record once it exited. True if done."""
    code = child.proc.poll()
    if code is None:
        job = store.get(child.job.id)
        now = time.time()
        if job.cancel_requested and child.cancel_deadline is None:
            child.cancel_deadline = now + grace
            RunDir(job.run_dir).request_cancel()
        if child.cancel_deadline is not None and now > child.cancel_deadline:
            if child.killed_at is None:
                _say(f"job {job.id} did not stop within {grace:.0f}s of cancel: terminating it")
                _kill(child.proc, signal.SIGTERM)
                child.killed_at = now
            elif now - child.killed_at > 3:
                _kill(child.proc, signal.SIGKILL)
        return False
    job = store.get(child.job.id)
    if job.status == RUNNING:   # the child did not record its end: it was killed or crashed, or the store failed it
        left = left_end(job)
        if left is not None:
            store.finish(job.id, *left)
        elif code == 0 or results_complete(job):
            store.finish(job.id, DONE, "")
        elif job.cancel_requested:
            store.finish(job.id, CANCELLED, "cancelled; the job was stopped. What it wrote so far is kept")
        elif code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (SIGKILL often means the machine ran out of memory)" if -code == signal.SIGKILL else ""
            store.finish(job.id, FAILED, f"the job process was killed by {sig}{hint}. What it wrote so far "
                                         "is kept; use Re-run to try again.")
        else:
            store.finish(job.id, FAILED, f"the job process exited with code {code} without finishing; "
                                         "see log.txt and job_process.log in its run folder.")
    return True


# ---------------------------------------------------------------------------------------------
# The job process
# ---------------------------------------------------------------------------------------------
def _watch_parent() -> None:
    """Exit when the worker that started us is gone (backup for PR_SET_PDEATHSIG)."""
    parent = int(os.environ.get("DEFECTAUG_WORKER_PID", "0") or 0)
    if not parent:
        return

    def loop() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(70)
            time.sleep(1)

    threading.Thread(target=loop, daemon=True, name="parent-watch").start()


def run_job_process(workspace: Path, job_id: str) -> int:
    """Body of the child process: run one job and record how it ended (0: done or cancelled, 1: failed).
    When the store cannot take the record (a failing disk, a locked or broken jobs.db), the end is left in
    the run folder (`RunDir.write_job_end`) and the worker records it."""
    _watch_parent()
    store = JobStore(workspace)
    job = store.get(job_id)
    run = RunDir(job.run_dir)
    run.create()
    status, reason = _run_kind(job, run)
    _record_end(store, job_id, run, status, reason)
    return 0 if status in (DONE, CANCELLED) else 1


def _run_kind(job: Job, run: RunDir) -> tuple[str, str]:
    """(status, reason) of running the job's function in this process."""
    try:
        try:
            fn = job_function(job.kind)
            if fn is None:
                raise ParamError(f"unknown job kind {job.kind!r}")
            fn(job.config, run.root)
            return DONE, ""
        except BaseException as err:
            # A cancel can end a job another way than with Cancelled: a Ray driver turns the worker's SIGTERM
            # (after the grace) into SystemExit, a task stopped on the cluster fails as a RunError. Asked to
            # stop, it stopped: cancelled, never "internal error (SystemExit: 1)".
            if not isinstance(err, Cancelled) and run.cancel_requested():
                raise Cancelled("the job was cancelled; what it wrote so far is kept") from err
            raise
    except Cancelled as err:
        return CANCELLED, str(err)
    except DefectAugError as err:
        return FAILED, str(err)
    except MemoryError:
        return FAILED, ("the job ran out of memory; lower the image size, the target balance ratio or the number "
                        "of seeds, then re-run it")
    except OSError as err:
        run.log_traceback()
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return FAILED, ("the disk is full: the job could not write its files. Free some space (delete old runs "
                            "on the Jobs page) and re-run it; earlier runs are intact")
        return FAILED, f"a file operation failed: {err}"
    except BaseException as err:   # noqa: BLE001  a bug: record it, never leave the job hanging
        run.log_traceback()
        return FAILED, (f"internal error ({type(err).__name__}: {err}); the details are in log.txt of the run. "
                        "Please report it.")


def _record_end(store: JobStore, job_id: str, run: RunDir, status: str, reason: str,
                tries: int = 3, wait: float = 0.2) -> None:
    # three tries (1.4 s of waiting, not 6.2 s): the end is never lost (the run folder holds it for the worker),
    # and a process that waits holds its job's slot
    for attempt in range(tries):
        try:
            store.finish(job_id, status, reason)
            return
        except _STORE_ERRORS as err:
            _say(f"job {job_id}: cannot record its end yet ({err}); retrying")
            time.sleep(wait * 2 ** attempt)
    run.write_job_end(status, reason)   # the worker still sees the process end (exit code) and the results


def main(argv: list[str] | None = None) -> int:
    """`python -m core.jobs worker WORKSPACE [--once] [--max-parallel N]` or `run-job WORKSPACE JOB_ID`."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m core.jobs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="run the job queue of a workspace")
    w.add_argument("workspace")
    w.add_argument("--once", action="store_true", help="exit when the queue is empty")
    w.add_argument("--max-parallel", type=int, default=None)
    r = sub.add_parser("run-job", help="(internal) run one job in this process")
    r.add_argument("workspace")
    r.add_argument("job_id")
    args = ap.parse_args(argv)
    if args.cmd == "worker":
        return worker_main(Path(args.workspace), once=args.once, max_parallel=args.max_parallel)
    return run_job_process(Path(args.workspace), args.job_id)


