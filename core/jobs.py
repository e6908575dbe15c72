"""Background jobs: a queue in SQLite under the workspace, and the local worker that runs it.

The app and the CLI only submit and read; training always happens in a separate process.

    store = JobStore(workspace)              # <workspace>/jobs.db (no server to start)
    job_id = store.submit(config)            # checked (config, data path, memory) and queued
    job_id = store.submit(config, start_worker=True)   # ... and a worker started when none runs (the app)
    store.status(job_id).status              # queued | running | done | failed | cancelled | interrupted
    store.cancel(job_id); store.list(); store.delete(job_id); store.rerun(job_id); store.resume(job_id)
    ensure_worker(workspace)                 # start `python -m core.jobs worker W` unless one runs

The worker (`worker_main`) holds an exclusive lock on `<workspace>/worker.lock` while it lives, so
there is at most one per workspace and "is a worker alive?" is a lock test, not a guess from a pid.
Each job runs in its own child process (a crash or a kill never takes the worker down); the child
dies with the worker (PR_SET_PDEATHSIG), and a job left `running` without a live worker is marked
failed with the reason by the next reader. How many jobs run at once is bounded machine-wide by
slot lock files under `<home>/.slots` (default: one per GPU, or one on CPU), so two workspaces never
oversubscribe the CPU; each child gets cpu_count / slots threads.

Cancel writes the run's CANCEL file (the job's reporter raises `Cancelled` at its next check); a job
that has not stopped after `DEFECTAUG_CANCEL_GRACE` seconds is killed. What it wrote is kept.

Job kinds: "experiment" (`core.experiment.run`); others register with `register_job_kind(name, fn)` from a
module named in DEFECTAUG_PLUGINS (the tests register a "sleep" job with crash and disk-full hooks this way),
which the job process imports too.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .errors import DISK_FULL, Cancelled, DefectAugError, DiskFull, ParamError, RunError
from .events import Reporter
from .plugins import load_plugins
from .rundir import RunDir
from .workspace import Workspace, is_valid_id, new_id, project_root, workspace_home

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED, INTERRUPTED)
AUTOSTART_ENV = "DEFECTAUG_AUTOSTART_WORKER"

LOCK_FILE = "worker.lock"
WORKER_LOG = "worker.log"

WORKER_DIED = ("The worker process stopped while this job was running (it was killed or crashed, "
               "for example out of memory). What the job wrote so far is kept in its run folder; "
               "use Re-run to start it again.")


JobFn = Callable[[dict, Path], object]
_KINDS: dict[str, JobFn] = {}


def register_job_kind(name: str, fn: JobFn) -> None:
    """A kind of job the worker can run: `fn(config, run_dir)` in the job's own process."""
    _KINDS[name] = fn


def job_kinds() -> list[str]:
    load_plugins()
    return list(_KINDS)


def _experiment_job(config: dict, run_dir: Path) -> None:
    from .experiment import run
    from .experiment.cluster import run_on_ray, runner_settings
    config = dict(config)
    runner, address = runner_settings()
    if runner == "ray":      # the plan's tasks on the cluster; this process only drives them
        run_on_ray(config, run_dir, address, resume=True)
        return
    threads = os.environ.get("DEFECTAUG_JOB_THREADS")
    if threads and not config.get("num_threads"):
        from .runtime import threads_for_load
        config["num_threads"] = threads_for_load(int(threads), _load())   # 1 on a machine already busy
    run(config, run_dir, resume=True)   # a resumed job reuses what it trained before


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


register_job_kind("experiment", _experiment_job)


def autostart_enabled() -> bool:
    """Whether submitting a job starts a background worker ($DEFECTAUG_AUTOSTART_WORKER, default on)."""
    return os.environ.get(AUTOSTART_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def default_max_parallel() -> int:
    """Jobs allowed at once on this machine: $DEFECTAUG_MAX_PARALLEL, else one per GPU, else 1."""
    raw = os.environ.get("DEFECTAUG_MAX_PARALLEL", "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ParamError("DEFECTAUG_MAX_PARALLEL must be a whole number such as 1") from None
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
        n = len(list(gpus.iterdir()))
        if n:
            return n
    return 1


# ---------------------------------------------------------------------------------------------
# The job record
# ---------------------------------------------------------------------------------------------
@dataclass
class Job:
    id: str
    kind: str
    status: str
    config: dict
    run_dir: str
    label: str = ""
    reason: str = ""
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    pid: int | None = None
    worker_pid: int | None = None
    cancel_requested: bool = False

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def elapsed(self) -> float | None:
        """Seconds spent running (so far, for a running job)."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def to_dict(self) -> dict:
        return asdict(self)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    worker_pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created);
CREATE TABLE IF NOT EXISTS workers (
    pid INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    max_parallel INTEGER NOT NULL
);
"""


_FIELDS = frozenset(Job.__dataclass_fields__)


def _job_from_row(row: sqlite3.Row) -> Job:
    d = {k: v for k, v in dict(row).items() if k in _FIELDS}   # a column a newer version added is ignored
    try:
        d["config"] = json.loads(d["config"])
    except ValueError:
        d["config"] = {}
    d["cancel_requested"] = bool(d["cancel_requested"])
    return Job(**d)


# ---------------------------------------------------------------------------------------------
# Locks: the worker lock (one worker per workspace) and machine-wide job slots
# ---------------------------------------------------------------------------------------------
def _try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None when someone else holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def slots_dir() -> Path:
    return workspace_home() / ".slots"


def _acquire_slot(max_parallel: int) -> tuple[int, int] | None:
    """(slot index, fd) of a free machine-wide job slot, or None when all are taken."""
    for i in range(max_parallel):
        fd = _try_lock(slots_dir() / f"slot-{i}.lock")
        if fd is not None:
            return i, fd
    return None


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------
class JobStoreDamaged(RunError):
    """jobs.db cannot be read (garbage, cut short, a folder in its place, a table without its columns). The
    run folders are the truth: `JobStore.recover(workspace)` keeps the damaged file aside and rebuilds it."""


_DAMAGE_CODES = (11, 26)   # SQLITE_CORRUPT, SQLITE_NOTADB
_FULL_CODES = (13,)        # SQLITE_FULL: the disk (or the database's size limit) is full


def _damaged_message(why: str) -> str:
    return (f"the job list of this workspace (jobs.db) cannot be read: {why}. The runs themselves are safe in "
            "their run folders: Recover the job list (on the Jobs page, or JobStore.recover) keeps the damaged "
            "file aside and rebuilds the list from them; nothing is deleted.")


class JobStore:
    """The jobs of one workspace, in `<workspace>/jobs.db`. Safe to use from several processes.
    A damaged jobs.db raises `JobStoreDamaged` (say so, offer `recover`); a full disk raises `DiskFull`."""

    def __init__(self, workspace: Workspace | str | Path) -> None:
        if not isinstance(workspace, Workspace):
            workspace = Workspace.from_path(workspace)
        self.workspace = workspace
        self.db_path = workspace.db_path
        self.lock_path = workspace.root / LOCK_FILE
        self.check()

    def _exists(self) -> bool:
        """Whether there is a job list to read: a session's workspace that was never written has none (its
        folder is made by the first submit), and then there are no jobs."""
        return self.db_path.exists() or self.db_path.is_symlink()

    def check(self) -> None:
        """Create the tables (new store) or check that the existing file is a job store with every column.
        A workspace whose folder does not exist yet (a visit that wrote nothing) is left alone."""
        if not self._exists() and not self.workspace.root.is_dir():
            return
        if self.db_path.exists() and not self.db_path.is_file():
            raise JobStoreDamaged(_damaged_message("a folder (or something else that is not a file) is in its "
                                                   "place"))
        with self._db() as db:
            db.executescript(_SCHEMA)
            columns = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
            missing = sorted(set(_FIELDS) - columns)
            if missing:
                raise JobStoreDamaged(_damaged_message(f"its jobs table lacks the column(s) {', '.join(missing)}"))
            problem = db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise JobStoreDamaged(_damaged_message(f"SQLite finds it damaged ({problem})"))

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        except sqlite3.Error as err:
            raise self._translate(err) from None
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=30000")
            try:
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as err:
                if getattr(err, "sqlite_errorcode", 0) & 0xFF in _DAMAGE_CODES:
                    raise
                # e.g. a filesystem without shared memory: the default journal still works
            yield db
        except sqlite3.DatabaseError as err:
            raise self._translate(err) from None
        finally:
            db.close()

    def _translate(self, err: sqlite3.Error) -> Exception:
        """A damaged file or a full disk as the user's error; anything else (a locked or failing disk: worth a
        retry) as it is."""
        code = getattr(err, "sqlite_errorcode", 0) & 0xFF
        if code in _FULL_CODES:
            return DiskFull(DISK_FULL)
        if code in _DAMAGE_CODES or (self.db_path.exists() and not self.db_path.is_file()):
            return JobStoreDamaged(_damaged_message(str(err)))
        return err

    @classmethod
    def recover(cls, workspace: Workspace) -> tuple["JobStore", Path | None]:
        """Keep a damaged jobs.db aside (renamed `jobs.db.damaged-<time>`, with its -wal and -shm files) and
        rebuild the job list from the run folders (each run's job.json and config.json): finished jobs keep
        their status and reason, a job that was queued or running is marked interrupted (Resume or Re-run it).
        Nothing is deleted. Returns the new store and where the damaged file was kept (None: nothing to keep)."""
        db = workspace.db_path
        kept = None
        if db.exists() or db.is_symlink():
            kept = db.with_name(f"{db.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            i = 2
            while kept.exists():
                kept, i = kept.with_name(f"{db.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{i}"), i + 1
            try:
                os.replace(db, kept)
                for extra in ("-wal", "-shm"):
                    side = db.with_name(db.name + extra)
                    if side.exists():
                        os.replace(side, kept.with_name(kept.name + extra))
            except OSError as err:
                raise RunError(f"cannot move the damaged jobs.db aside ({err.strerror or err}); ask the "
                               "administrator to move it away by hand") from None
        store = cls(workspace)
        now = time.time()
        rows = []
        for run_id in workspace.list_run_ids():
            rd = RunDir(workspace.run_dir(run_id))
            info = rd.job_info()
            kind = str(info.get("kind") or "experiment")
            status = info.get("status")
            reason = str(info.get("reason") or "")
            if status not in FINISHED:
                if kind == "experiment" and rd.metrics_problem() is None:
                    status, reason = DONE, ""
                else:
                    reason = ("the job list was rebuilt from the run folders while this job was "
                              f"{status if status in ACTIVE else 'queued or running'}; what it wrote is kept. "
                              "Use Resume or Re-run to start it again.")
                    status = INTERRUPTED
            config = rd.config() if kind == "experiment" else {}
            if kind == "experiment":
                from .experiment import ExperimentConfig
                config = {k: v for k, v in config.items() if k in ExperimentConfig.__dataclass_fields__}
            rows.append((run_id, kind, status, json.dumps(config), str(rd.root), str(info.get("label") or ""),
                         reason, float(info.get("created") or now), info.get("started"), info.get("finished") or now))
        with store._db() as conn:
            conn.executemany("INSERT OR IGNORE INTO jobs (id, kind, status, config, run_dir, label, reason, created, "
                             "started, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return store, kept

    # -- submitting ----------------------------------------------------------------------------
    def submit(self, config: dict, kind: str = "experiment", label: str = "", check: bool = True,
               counts: dict[str, int] | None = None, start_worker: bool = False) -> str:
        """Queue a job; returns its id (also the run id: the run folder is `runs/<id>`).
        `check` validates the config, the data path (inside the workspace or the data roots) and the
        memory the synthetic images will need, so a job that cannot run is refused here with why.
        `counts` (images per class after the simulated imbalance) sharpens the memory estimate.
        `start_worker`: start a background worker when none runs (and autostart is on), as the app does."""
        if kind not in job_kinds():
            raise ParamError(f"unknown job kind {kind!r}; use one of {', '.join(job_kinds())}")
        if not isinstance(config, dict):
            raise ParamError("a job config is a dict of settings")
        try:
            config = json.loads(json.dumps(config))   # a plain-JSON copy, as it will be stored
        except (TypeError, ValueError) as err:
            raise ParamError(f"a job config holds only numbers, text, lists and dicts ({err})") from None
        if kind == "experiment":
            data = config.get("data")
            if not isinstance(data, str) or not data.strip():
                # even unchecked: an empty path would mean the current folder, None no dataset at all
                raise ParamError("no dataset given: set data to a folder or a .zip of class folders")
            if check:
                preflight(config, self.workspace, counts)
        job_id = new_id()
        run_dir = self.workspace.run_dir(job_id)
        try:
            if not self._exists():
                self.workspace.ensure()       # the workspace's first write
                self.check()
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(DISK_FULL) from None
            raise
        if not label:
            label = _default_label(kind, config)
        now = time.time()
        try:
            with self._db() as db:
                db.execute("INSERT INTO jobs (id, kind, status, config, run_dir, label, created) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (job_id, kind, QUEUED, json.dumps(config), str(run_dir), label, now))
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)   # a job that was not queued leaves no run folder
            raise
        self._write_job_file(self.get(job_id))
        if start_worker:
            self.start_worker()
        return job_id

    def start_worker(self) -> bool:
        """Start a background worker for this workspace when autostart is on and none is alive (after a
        submit, or after an app or machine restart left jobs queued). True when one was started."""
        if autostart_enabled() and not self.worker_alive():
            return ensure_worker(self)
        return False

    def rerun(self, job_id: str, start_worker: bool = False) -> str:
        """A new job with the same kind and config as `job_id`."""
        job = self.get(job_id)
        return self.submit(job.config, kind=job.kind, label=job.label, start_worker=start_worker)

    def resume(self, job_id: str, start_worker: bool = False) -> Job:
        """Queue a failed, cancelled or interrupted experiment again in its own run folder: the models it
        had already trained (results/<model>.json) are reused, the rest is trained."""
        job = self.get(job_id)
        if job.kind != "experiment":
            raise RunError("only experiment jobs can be resumed; use Re-run")
        if job.status not in (FAILED, CANCELLED, INTERRUPTED):
            raise RunError(f"this job is {job.status}; only a failed, cancelled or interrupted job can be resumed")
        RunDir(job.run_dir).clear_cancel()
        with self._db() as db:
            db.execute("UPDATE jobs SET status = ?, reason = '', started = NULL, finished = NULL, pid = NULL, "
                       "worker_pid = NULL, cancel_requested = 0 WHERE id = ? AND status IN (?, ?, ?)",
                       (QUEUED, job_id, FAILED, CANCELLED, INTERRUPTED))
        job = self.get(job_id)
        self._write_job_file(job)
        if start_worker:
            self.start_worker()
        return job

    # -- reading -------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        if not is_valid_id(str(job_id)):
            raise RunError(f"{job_id!r} is not a job id")
        if not self._exists():
            raise RunError(f"there is no job {job_id} in this workspace")
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise RunError(f"there is no job {job_id} in this workspace")
        return _job_from_row(row)

    def status(self, job_id: str) -> Job:
        """The job, after marking it failed if its worker has died."""
        self.reap()
        return self.get(job_id)

    def list(self, statuses: tuple[str, ...] | None = None) -> list[Job]:
        """Jobs of this workspace, newest first (after reaping orphans)."""
        self.reap()
        if not self._exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created DESC").fetchall()
        jobs = [_job_from_row(r) for r in rows]
        return [j for j in jobs if statuses is None or j.status in statuses]

    def counts(self) -> dict[str, int]:
        if not self._exists():
            return {}
        with self._db() as db:
            rows = db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    def job_for_run(self, run_id: str) -> Job | None:
        try:
            return self.get(run_id)
        except RunError:
            return None

    # -- changing ------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        """Queued: cancelled at once. Running: asked to stop (CANCEL file); the worker kills it if it
        does not stop within the grace period. Finished: nothing to do."""
        job = self.get(job_id)
        now = time.time()
        with self._db() as db:
            cur = db.execute("UPDATE jobs SET status = ?, reason = ?, finished = ? WHERE id = ? AND status = ?",
                             (CANCELLED, "cancelled before it started", now, job_id, QUEUED))
            if cur.rowcount == 0:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = ?", (job_id, RUNNING))
        job = self.get(job_id)
        if job.status == RUNNING:
            RunDir(job.run_dir).request_cancel(str(now))
        elif job.status == CANCELLED:
            self._write_job_file(job)
        return job

    def delete(self, job_id: str, files: bool = True) -> None:
        """Forget a finished job and (by default) remove its run folder. Active jobs: cancel first."""
        job = self.get(job_id)
        if job.active:
            raise RunError("this job is still queued or running; cancel it first, then delete it")
        with self._db() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        run_dir = Path(job.run_dir).resolve()
        if files and run_dir.parent == self.workspace.runs.resolve():
            shutil.rmtree(run_dir, ignore_errors=True)

    def finish(self, job_id: str, status: str, reason: str = "") -> bool:
        """Record the end of a job; only an active job changes (a late writer never overwrites)."""
        if status not in FINISHED:
            raise ValueError(status)
        with self._db() as db:
            cur = db.execute("UPDATE jobs SET status = ?, reason = ?, finished = ? WHERE id = ? AND status IN (?, ?)",
                             (status, reason, time.time(), job_id, QUEUED, RUNNING))
        changed = cur.rowcount > 0
        if changed:
            job = self.get(job_id)
            self._write_job_file(job)
            if status in (FAILED, INTERRUPTED):
                _append_error(Path(job.run_dir), reason)
        return changed

    # -- worker side ---------------------------------------------------------------------------
    def claim_next(self, worker_pid: int) -> Job | None:
        """Atomically move the oldest queued job to running; the job is read in the same transaction, so a
        store error afterwards can never leave a job claimed that its worker does not know of."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT * FROM jobs WHERE status = ? ORDER BY created LIMIT 1",
                                 (QUEUED,)).fetchone()
                if row is None:
                    db.execute("COMMIT")
                    return None
                now = time.time()
                db.execute("UPDATE jobs SET status = ?, started = ?, worker_pid = ? WHERE id = ?",
                           (RUNNING, now, worker_pid, row["id"]))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        job = _job_from_row(row)
        job.status, job.started, job.worker_pid = RUNNING, now, worker_pid
        self._write_job_file(job)
        return job

    def set_pid(self, job_id: str, pid: int) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET pid = ? WHERE id = ?", (pid, job_id))

    def heartbeat(self, pid: int, started: float, max_parallel: int) -> None:
        with self._db() as db:
            db.execute("INSERT INTO workers (pid, started, heartbeat, max_parallel) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(pid) DO UPDATE SET heartbeat = excluded.heartbeat",
                       (pid, started, time.time(), max_parallel))

    def forget_worker(self, pid: int) -> None:
        with self._db() as db:
            db.execute("DELETE FROM workers WHERE pid = ?", (pid,))

    def worker_info(self) -> dict | None:
        """{pid, started, heartbeat, max_parallel, alive} of the latest worker, or None."""
        if not self._exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT * FROM workers ORDER BY heartbeat DESC LIMIT 1").fetchone()
        if row is None:
            return None
        return {**dict(row), "alive": self.worker_alive()}

    def worker_alive(self) -> bool:
        """True while a worker holds this workspace's lock. A dead worker's lock is released by the
        kernel, so this cannot be fooled by a stale pid file."""
        if not self.workspace.root.is_dir():
            return False      # never make the folder of a workspace that was only visited
        for _ in range(3):
            fd = _try_lock(self.lock_path)
            if fd is None:
                return True
            _unlock(fd)
            time.sleep(0.01)
        return False

    def reap(self) -> list[str]:
        """Mark `running` jobs failed when no worker is alive to run them. Returns their ids."""
        if not self._exists():
            return []
        with self._db() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = ?", (RUNNING,))]
        if not ids or self.worker_alive():
            return []
        failed = []
        for job_id in ids:
            job = self.get(job_id)
            left = _left_end(job)
            if left is not None or _results_complete(job):
                ok = self.finish(job_id, *(left or (DONE, "")))
            elif job.cancel_requested:
                ok = self.finish(job_id, CANCELLED, "cancelled; the worker stopped it. What it wrote is kept")
            else:
                ok = self.finish(job_id, FAILED, WORKER_DIED)
            if ok:
                failed.append(job_id)
        return failed

    def _write_job_file(self, job: Job) -> None:
        """The run's job.json: the run folder says what became of its job, even without the db."""
        RunDir(job.run_dir).write_job_info({k: v for k, v in job.to_dict().items() if k != "config"})


def _left_end(job: Job) -> tuple[str, str] | None:
    """(status, reason) a job process left in its run folder when it could not write them to the store."""
    from .files import read_json
    end = read_json(Path(job.run_dir) / JOB_END_FILE)
    if end and end.get("status") in FINISHED:
        return end["status"], str(end.get("reason", ""))
    return None


def _results_complete(job: Job) -> bool:
    """Whether the job wrote its complete results (an experiment's metrics.json that the result pages can read):
    such a job is done, whatever became of its process afterwards."""
    return job.kind == "experiment" and RunDir(job.run_dir).metrics_problem() is None


def _append_error(run_dir: Path, message: str) -> None:
    """An `error` event at the end of the run's events, unless the job already wrote one."""
    rd = RunDir(run_dir)
    if not rd.exists():
        return
    events = rd.events()
    if events and events[-1].get("kind") == "error":
        return
    try:
        Reporter(run_dir).emit("error", message=message)
    except OSError:
        pass


def _default_label(kind: str, config: dict) -> str:
    if kind != "experiment":
        return kind
    methods = config.get("methods") or []
    if isinstance(methods, str):
        methods = [methods]
    data = Path(str(config.get("data", ""))).name
    seeds = config.get("seeds") or [0]
    return f"{', '.join(methods) or 'baseline'} on {data} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"


# ---------------------------------------------------------------------------------------------
# Checks before a job is queued
# ---------------------------------------------------------------------------------------------
def _available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4 << 30


def memory_limit() -> int:
    """Bytes one job may use for images: $DEFECTAUG_MAX_JOB_MEMORY (e.g. 2e9), else half of the
    memory available now, shared between the jobs allowed to run at once."""
    raw = os.environ.get("DEFECTAUG_MAX_JOB_MEMORY", "").strip()
    if raw:
        try:
            return int(float(raw))
        except ValueError:
            raise ParamError("DEFECTAUG_MAX_JOB_MEMORY must be a number of bytes, e.g. 2e9") from None
    return _available_memory() // 2 // default_max_parallel()


def _human_bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def memory_check(estimate: dict) -> None:
    """Refuse a job whose images would not fit in memory, saying what to change."""
    need = estimate.get("memory_bytes")
    if not need:
        return
    limit = memory_limit()
    if need > limit:
        synthetic = estimate.get("synthetic_per_method") or 0
        total = estimate.get("balanced_size") or 0
        what = (f"{total:,} training images ({synthetic:,} of them synthetic) per method and seed" if total
                else "its images")
        if total and need * (total - synthetic) / total > limit:
            # fewer synthetic images would not help: the real ones alone are over the limit
            fix = "Even the real images alone do not fit: lower the image size, or use fewer images"
        else:
            fix = ("Lower the target balance ratio or the image size, or simulate a stronger imbalance "
                   "(a smaller ratio)")
        raise ParamError(
            f"this job would need about {_human_bytes(need)} of memory for {what}, more than the "
            f"{_human_bytes(limit)} a job may use here. {fix}, then launch again.")


def quick_counts(data: str | Path) -> dict[str, int]:
    """Image files per class folder, counted without decoding (a folder or a .zip); {} if unknown.
    Good enough to bound memory before a job starts; the job itself reports the exact counts."""
    from .data import IMAGE_EXTENSIONS
    path = Path(data)
    counts: dict[str, int] = {}
    try:
        if path.is_dir():
            names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        elif path.is_file() and path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        else:
            return {}
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile):
        return {}
    for name in names:
        parts = name.split("/")
        if len(parts) >= 2 and Path(name).suffix.lower() in IMAGE_EXTENSIONS \
                and not any(p.startswith(".") or p == "__MACOSX" for p in parts):
            counts[parts[-2]] = counts.get(parts[-2], 0) + 1
    return counts


def check_methods(cfg, counts: dict[str, int]) -> None:
    """Refuse a run whose methods cannot train on these training counts (`Sampler.check_data`)."""
    from .data import balance_targets, resolve_normal_class
    from .methods import get_method
    normal = resolve_normal_class(counts, cfg.normal_class) if counts else None
    needed = balance_targets(counts, cfg.target_ratio)
    for name in cfg.methods:
        spec = get_method(name)
        why = spec.sampler_cls.check_data(cfg.method_params(name), counts, normal, needed)
        if why:
            raise ParamError(f"{name} {why}")


def check_classifier(cfg, from_app: bool = False) -> None:
    """Refuse a run whose classifier cannot start: pretrained weights not configured or not found (what to put
    where). From the app a weights file path is refused: the server's configured files are the ones it uses."""
    from .classifier import pretrained_reason
    cp = cfg.classifier_params()
    if from_app and cp.weights_path:
        raise ParamError("classifier.weights_path is a command-line setting; the app starts from the weights "
                         "the server's administrator configured (DEFECTAUG_WEIGHTS_DIR)")
    if cp.pretrained:
        why = pretrained_reason(cp)
        if why:
            raise ParamError(f"the classifier cannot start pretrained: {why} Or set classifier.pretrained=false "
                             f"to train {cp.arch} from scratch.")


def check_model_memory(cfg, n_classes: int) -> None:
    """Refuse a run whose methods' networks would not fit in a job's memory: parameters, gradients, Adam's
    state and one batch's activations, counted on the networks built on the meta device from the method's
    settings (`core.methods.base.training_memory`); the message names the settings to lower."""
    import dataclasses
    from .methods import get_method
    from .methods.base import training_memory
    channels = 1 if str(cfg.channels) == "1" else 3
    size = int(cfg.image_size)
    limit = None
    for name in cfg.methods:
        spec = get_method(name)
        params = cfg.method_params(name)
        need = training_memory(spec.sampler_cls, params, (size, size, channels), n_classes)
        if need is None:
            continue
        limit = memory_limit() if limit is None else limit
        if need.bytes <= limit:
            continue
        values = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}
        widths = [k for k in values if k.endswith("width") or k.endswith("_dim") or k == "n_blocks"]
        shown = ", ".join(f"{k}={values[k]}" for k in widths)
        if need.activation_bytes > need.parameters * need.BYTES_PER_PARAMETER and "batch_size" in values:
            fix = f"Lower {name}.batch_size (now {values['batch_size']}) or the image size"
        else:
            fix = f"Lower {' and '.join(f'{name}.{k}' for k in widths if 'width' in k) or 'its network size'}"
            fix += " or the image size"
        raise ParamError(
            f"{name} would need about {_human_bytes(need.bytes)} of memory to train its networks at {size} px "
            f"({need.parameters / 1e6:,.1f} million parameters{' with ' + shown if shown else ''}: weights, "
            f"gradients and Adam's two moments, plus one batch's activations), more than the "
            f"{_human_bytes(limit)} a job may use here. {fix}, then launch again.")


def preflight(config: dict, workspace: Workspace | None = None, counts: dict[str, int] | None = None) -> dict:
    """Validate an experiment config before it is queued; returns `core.experiment.estimate` plus
    memory_bytes. `counts`: images per class after the simulated imbalance when the caller knows them
    (the app does), else counted from the files. Raises ParamError / DataError saying what to change."""
    from .data import protocol_counts
    from .experiment import ExperimentConfig, estimate
    from .experiment.cluster import runner_settings
    cfg = ExperimentConfig.from_dict(dict(config))
    runner_settings()           # a bad DEFECTAUG_RUNNER is said now, not deep in the job
    check_classifier(cfg, from_app=workspace is not None)
    if workspace is not None:
        workspace.check_data_path(str(cfg.data))
    if counts is None:
        found = quick_counts(cfg.data)
        counts = protocol_counts(found, cfg.test_split, cfg.ratio, cfg.normal_class,
                                 cfg.target_ratio).train if found else None
    if counts:
        check_methods(cfg, counts)
    check_model_memory(cfg, len(counts) if counts else 2)
    est = dict(estimate(dict(config), counts or None) or {})
    if counts:      # the duration on this machine, calibrated from its finished runs (core.estimate)
        from .estimate import estimate as timed, machine_rates
        t = timed(cfg, counts, rates=machine_rates())
        est.update(seconds=round(t.seconds, 1), seconds_low=round(t.low, 1), seconds_high=round(t.high, 1),
                   calibrated_runs=t.runs, uncalibrated=t.uncalibrated, slowdown=round(t.slowdown, 2))
    if est.get("balanced_size"):
        channels = 1 if str(cfg.channels) == "1" else 3
        pixels = int(cfg.image_size) ** 2 * channels
        # the synthetic set, the augmented copy for the classifier and float32 rows for interpolation
        est["memory_bytes"] = int(est["balanced_size"] * pixels * 10)
    memory_check(est)
    return est


# ---------------------------------------------------------------------------------------------
# Starting a worker
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------------------------
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
    log = open(Path(job.run_dir) / "job_process.log", "ab")
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
        lock_fd = _try_lock(store.lock_path)
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
                        _unlock(child.slot_fd)
                        del children[job_id]
                while len(children) < max_parallel and not stopping["flag"]:
                    if not store.counts().get(QUEUED):
                        break
                    slot = _acquire_slot(max_parallel)
                    if slot is None:
                        break   # every machine-wide slot is busy (other workspaces): wait
                    try:
                        job = store.claim_next(me)
                    except BaseException:
                        _unlock(slot[1])   # never keep a slot for a job that was not claimed
                        raise
                    if job is None:
                        _unlock(slot[1])
                        break
                    try:
                        proc = _spawn_child(store, job, slot[0], max_parallel)
                    except OSError as err:
                        _unlock(slot[1])
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
            end = _left_end(child.job) or ((DONE, "") if _results_complete(child.job) else (INTERRUPTED, why))
            _retry(lambda: store.finish(job_id, *end))
            _unlock(child.slot_fd)
        for s, h in old.items():
            signal.signal(s, h)
        try:
            store.forget_worker(me)
        except (sqlite3.Error, DefectAugError):
            pass
        _unlock(lock_fd)
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
        left = _left_end(job)
        if left is not None:
            store.finish(job.id, *left)
        elif code == 0 or _results_complete(job):
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
    the run folder (`job_end.json`) and the worker records it."""
    _watch_parent()
    store = JobStore(workspace)
    job = store.get(job_id)
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    status, reason = _run_kind(job, run_dir)
    _record_end(store, job_id, run_dir, status, reason)
    return 0 if status in (DONE, CANCELLED) else 1


def _run_kind(job: Job, run_dir: Path) -> tuple[str, str]:
    """(status, reason) of running the job's function in this process."""
    try:
        if job.kind not in job_kinds():
            raise ParamError(f"unknown job kind {job.kind!r}")
        _KINDS[job.kind](job.config, run_dir)
        return DONE, ""
    except Cancelled as err:
        return CANCELLED, str(err)
    except DefectAugError as err:
        return FAILED, str(err)
    except MemoryError:
        return FAILED, ("the job ran out of memory; lower the image size, the target balance ratio or the number "
                        "of seeds, then re-run it")
    except OSError as err:
        _log_traceback(run_dir)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return FAILED, ("the disk is full: the job could not write its files. Free some space (delete old runs "
                            "on the Jobs page) and re-run it; earlier runs are intact")
        return FAILED, f"a file operation failed: {err}"
    except BaseException as err:   # noqa: BLE001  a bug: record it, never leave the job hanging
        _log_traceback(run_dir)
        return FAILED, (f"internal error ({type(err).__name__}: {err}); the details are in log.txt of the run. "
                        "Please report it.")


JOB_END_FILE = "job_end.json"    # how a job ended, when its process could not write that to the store


def _record_end(store: JobStore, job_id: str, run_dir: Path, status: str, reason: str,
                tries: int = 5, wait: float = 0.2) -> None:
    for attempt in range(tries):
        try:
            store.finish(job_id, status, reason)
            return
        except _STORE_ERRORS as err:
            _say(f"job {job_id}: cannot record its end yet ({err}); retrying")
            time.sleep(wait * 2 ** attempt)
    from .files import write_json
    try:
        write_json(run_dir / JOB_END_FILE, {"status": status, "reason": reason, "finished": time.time()})
    except OSError:
        pass   # the worker still sees the process end (exit code) and, for an experiment, its results


def _log_traceback(run_dir: Path) -> None:
    try:
        with open(run_dir / "log.txt", "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
    except OSError:
        pass


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


if __name__ == "__main__":
    # `python -m core.jobs` runs this file as __main__: hand over to the module proper, so that job kinds a
    # plugin registers in `core.jobs` are the ones this process looks up
    from core.jobs import main as _main
    sys.exit(_main())
