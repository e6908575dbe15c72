"""What a run folder records about its job and its progress, beside its results: job.json (the job store's
mirror), job_end.json and job_process.log (a job process's end and output), CANCEL, events.jsonl and log.txt;
and the run folders under a folder (the runs of a workspace, the finished runs the estimate calibrates on).
A part of `RunDir` (a mixin: it only uses `self.root`)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import traceback
from pathlib import Path

from ..errors import RunError
from ..files import atomic_write, open_append, read_json, write_json
from .formats import EVENTS

CANCEL_FILE = "CANCEL"
JOB_END_FILE = "job_end.json"      # how a job ended, when its process could not write that to the job store
PROCESS_LOG = "job_process.log"    # the job process's stdout and stderr


class RunRecords:
    """job.json, job_end.json, job_process.log, CANCEL, events.jsonl and log.txt of one run folder."""

    root: Path

    @property
    def job_path(self) -> Path:
        return self.root / "job.json"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.root / "log.txt"

    @property
    def cancel_path(self) -> Path:
        return self.root / CANCEL_FILE

    def job_info(self) -> dict:
        return read_json(self.job_path) or {}

    def write_job_info(self, info: dict) -> None:
        """Best effort: the job store is the record, so a full disk must not hide a status change."""
        if not self.exists():
            return
        with contextlib.suppress(OSError):
            write_json(self.job_path, info)

    def job_end(self) -> dict | None:
        """What the job process left in job_end.json ({status, reason, finished}) when it could not record its end in
        the job store, or None."""
        end = read_json(self.root / JOB_END_FILE)
        return end if isinstance(end, dict) else None

    def write_job_end(self, status: str, reason: str) -> None:
        """Best effort: the worker still sees the process end (its exit code) and, for an experiment, its results."""
        with contextlib.suppress(OSError):
            write_json(self.root / JOB_END_FILE, {"status": status, "reason": reason, "finished": time.time()})

    def open_process_log(self):
        """The job process's log, opened for appending (binary), for a child process's stdout and stderr."""
        return open_append(self.root / PROCESS_LOG, binary=True)

    def log_traceback(self) -> None:
        """The exception being handled, at the end of log.txt (a bug's details, for the report)."""
        with contextlib.suppress(OSError), open_append(self.log_path) as fh:
            fh.write(traceback.format_exc())

    def record_error(self, message: str) -> None:
        """An `error` event at the end of the run's events (and its log line), unless the run already ended with
        one. Best effort, and nothing for a run folder that does not exist."""
        if not self.exists():
            return
        events = self.events()
        if events and events[-1].get("kind") == "error":
            return
        with contextlib.suppress(OSError):
            self.append_event({"t": round(time.time(), 3), "kind": "error", "message": message})
            self.append_log(f"[error]  {message}".strip())   # as Reporter.emit logs it

    def create(self) -> None:
        """The run folder of a job just queued (its parents too)."""
        self.root.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Delete the run folder and everything in it (a deleted job, a job that could not be queued)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def links(self, limit: int = 20) -> list[str]:
        """Paths (relative to the run folder) of up to `limit` symbolic links inside it. The product never makes
        one; one there was put by whoever can write the folder (a shared drive, a restored backup)."""
        found: list[str] = []
        if not self.root.is_dir() or self.root.is_symlink():
            return found
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            for name in dirs + files:
                path = Path(folder) / name
                if path.is_symlink():
                    found.append(path.relative_to(self.root).as_posix())
                    if len(found) >= limit:
                        return found
        return found

    def check_no_links(self) -> None:
        """Refuse a run folder that holds links: its readers and writers (a resumed run, the export) would follow
        them out of the folder, reading or overwriting another file of the server."""
        found = self.links(limit=4)
        if found:
            shown = ", ".join(found[:3]) + (" and more" if len(found) > 3 else "")
            raise RunError(f"the run folder holds links ({shown}); a run's files are never read or written "
                           "through links: remove them, or start a new run")

    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    def request_cancel(self, stamp: str = "") -> None:
        self.mkdir()
        atomic_write(self.cancel_path, stamp)

    def clear_cancel(self) -> None:
        self.cancel_path.unlink(missing_ok=True)

    def events(self) -> list[dict]:
        """All complete events so far (cached per file; a half-written last line waits)."""
        return EVENTS.read(self.events_path)

    def append_event(self, event: dict) -> None:
        """One event (a JSON-safe dict) as the next line of events.jsonl (`core.events.Reporter` writes through
        this)."""
        with open_append(self.events_path) as fh:
            fh.write(json.dumps(event, ensure_ascii=False) + "\n")

    def append_log(self, line: str) -> None:
        """One line of log.txt, stamped with the local time."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open_append(self.log_path) as fh:
            fh.write(f"{stamp} {line}\n")

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - 64 * 1024))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def ended_done(self) -> bool:
        """Whether the run's last event is `done` (read from the end of events.jsonl, not the whole file)."""
        try:
            with open(self.events_path, "rb") as fh:
                fh.seek(0, 2)
                fh.seek(max(0, fh.tell() - 2048))
                tail = fh.read().decode("utf-8", "replace").strip().splitlines()
            return bool(tail) and json.loads(tail[-1]).get("kind") == "done"
        except (OSError, ValueError, AttributeError):
            return False

    @classmethod
    def under(cls, root: str | Path) -> list["RunDir"]:  # noqa: F821  (the class this mixin is part of)
        """The run folders under `root`: a runs/ folder's, or a workspace home's (<ws>/runs/<id>); a run folder is
        one that holds its events, config or job record."""
        root = Path(root)
        found = []
        for pattern in ("*", "*/runs/*"):
            for p in root.glob(pattern):
                rd = cls(p)
                if not p.name.startswith(".") and p.is_dir() and any(
                        f.exists() for f in (rd.events_path, rd.config_path, rd.job_path)):
                    found.append(rd)
        return found

    @classmethod
    def finished_runs(cls, roots: list[str | Path], limit: int) -> list["RunDir"]:  # noqa: F821
        """The `limit` newest run folders under `roots` (by their events' time) whose events end with `done`."""
        found = []
        for root in roots:
            for rd in cls.under(root):
                try:
                    found.append((rd.events_path.stat().st_mtime, str(rd.root), rd))
                except OSError:
                    continue
        out = []
        for _, _, rd in sorted(found, reverse=True):
            if rd.ended_done():
                out.append(rd)
            if len(out) >= limit:
                break
        return out
