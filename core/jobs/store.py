"""The job store: the jobs of one workspace and their SQLite table, `<workspace>/jobs.db` (no server to start).

    store = JobStore(workspace)
    job_id = store.submit(config)            # checked once (core.jobs.preflight) and queued; nothing starts
    job_id = store.submit(checked)           # a config the caller already checked: queued as it is
    store.status(job_id).status              # queued | running | done | failed | cancelled | interrupted
    store.cancel(job_id); store.list(); store.delete(job_id); store.rerun(job_id); store.resume(job_id)

Submitting stores a job; running it is the worker's (`core.jobs.worker`), and starting a worker is the caller's
explicit step (`start_worker(store)`). Safe to use from several processes. What the store changes in a run
folder (job.json, the run's end as an `error` event, the CANCEL file, the folder itself) it asks `RunDir` to
write: the run folder has one owner. A damaged jobs.db raises `JobStoreDamaged` (say so, offer `recover`, which
rebuilds the list from the run folders); a full disk raises `DiskFull`.
"""
from __future__ import annotations

import errno
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from ..errors import DISK_FULL, DiskFull, ParamError, RunError
from ..rundir import RunDir
from ..workspace import Workspace, is_valid_id, new_id
from .kinds import job_kinds
from .locks import LOCK_FILE, try_lock, unlock
from .preflight import Checked, preflight

QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = (QUEUED, RUNNING)
FINISHED = (DONE, FAILED, CANCELLED, INTERRUPTED)

WORKER_DIED = ("The worker process stopped while this job was running (it was killed or crashed, "
               "for example out of memory). What the job wrote so far is kept in its run folder; "
               "use Re-run to start it again.")


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
                from ..experiment import ExperimentConfig
                config = {k: v for k, v in config.items() if k in ExperimentConfig.__dataclass_fields__}
            rows.append((run_id, kind, status, json.dumps(config), str(rd.root), str(info.get("label") or ""),
                         reason, float(info.get("created") or now), info.get("started"), info.get("finished") or now))
        with store._db() as conn:
            conn.executemany("INSERT OR IGNORE INTO jobs (id, kind, status, config, run_dir, label, reason, created, "
                             "started, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return store, kept

    # -- submitting ----------------------------------------------------------------------------
    def submit(self, config: dict | Checked, kind: str = "experiment", label: str = "", check: bool = True,
               counts: dict[str, int] | None = None) -> str:
        """Queue a job; returns its id (also the run id: the run folder is `runs/<id>`). Nothing starts it: a
        worker does (`core.jobs.start_worker(store)`, the caller's step).
        `config` is a dict of settings, or the `Checked` that `core.jobs.preflight` returned for it (the app shows
        that check's estimate, then queues the same object: one check per launch). A dict is checked here unless
        `check` is False: the config, the data path (inside the workspace or the data roots) and the memory the
        synthetic images will need, so a job that cannot run is refused here with why. `counts` (images per class
        after the simulated imbalance) sharpens the memory estimate."""
        if kind not in job_kinds():
            raise ParamError(f"unknown job kind {kind!r}; use one of {', '.join(job_kinds())}")
        if isinstance(config, Checked):
            config, check = config.config, False     # checked by the caller, on this very config
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
        run = RunDir(self.workspace.run_dir(job_id))
        try:
            if not self._exists():
                self.workspace.ensure()       # the workspace's first write
                self.check()
            run.create()
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
                           (job_id, kind, QUEUED, json.dumps(config), str(run.root), label, now))
        except BaseException:
            run.remove()   # a job that was not queued leaves no run folder
            raise
        self._write_job_file(self.get(job_id))
        return job_id

    def rerun(self, job_id: str) -> str:
        """A new job with the same kind and config as `job_id` (queued; start a worker to run it)."""
        job = self.get(job_id)
        return self.submit(job.config, kind=job.kind, label=job.label)

    def resume(self, job_id: str) -> Job:
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
            job = self.get(job_id)
            if job.status not in (RUNNING, CANCELLED):   # it ended (done, failed) as the cancel came: no cancel
                self._drop_cancel(job)
                job = self.get(job_id)
        elif job.status == CANCELLED:
            self._write_job_file(job)
        return job

    def _drop_cancel(self, job: Job) -> None:
        """A job that ended otherwise than cancelled carries no cancel: neither the flag nor the run's CANCEL
        file (a cancel racing completion left both, and a later `--resume` of the run stopped at once)."""
        with self._db() as db:
            db.execute("UPDATE jobs SET cancel_requested = 0 WHERE id = ? AND status NOT IN (?, ?, ?)",
                       (job.id, QUEUED, RUNNING, CANCELLED))
        RunDir(job.run_dir).clear_cancel()

    def delete(self, job_id: str, files: bool = True) -> None:
        """Forget a finished job and (by default) remove its run folder. Active jobs: cancel first."""
        job = self.get(job_id)
        if job.active:
            raise RunError("this job is still queued or running; cancel it first, then delete it")
        with self._db() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        run = RunDir(Path(job.run_dir).resolve())
        if files and run.root.parent == self.workspace.runs.resolve():
            run.remove()

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
            if status != CANCELLED and (job.cancel_requested or RunDir(job.run_dir).cancel_requested()):
                self._drop_cancel(job)
                job = self.get(job_id)
            self._write_job_file(job)
            if status in (FAILED, INTERRUPTED):
                RunDir(job.run_dir).record_error(reason)
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
            fd = try_lock(self.lock_path)
            if fd is None:
                return True
            unlock(fd)
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
            left = left_end(job)
            if left is not None or results_complete(job):
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


def left_end(job: Job) -> tuple[str, str] | None:
    """(status, reason) a job process left in its run folder when it could not write them to the store."""
    end = RunDir(job.run_dir).job_end()
    if end and end.get("status") in FINISHED:
        return end["status"], str(end.get("reason", ""))
    return None


def results_complete(job: Job) -> bool:
    """Whether the job wrote its complete results (an experiment's metrics.json that the result pages can read):
    such a job is done, whatever became of its process afterwards."""
    return job.kind == "experiment" and RunDir(job.run_dir).metrics_problem() is None


def _default_label(kind: str, config: dict) -> str:
    if kind != "experiment":
        return kind
    methods = config.get("methods") or []
    if isinstance(methods, str):
        methods = [methods]
    data = Path(str(config.get("data", ""))).name
    seeds = config.get("seeds") or [0]
    return f"{', '.join(methods) or 'baseline'} on {data} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"

