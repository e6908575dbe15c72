"""The job list damaged (garbage, cut short, a folder in its place, a table without a column) and a full disk
outside uploads (settings, the job list, exports, reports): each says what happened and what to do, keeps
nothing half-written, and loses no earlier result; a damaged job list is rebuilt from the run folders.

The full disk is made two ways: writes through Python's `open` under the workspace fail with ENOSPC (the
`disk_full_under` fixture, as tests/robustness/conftest.py's `full_disk` does for uploads), and SQLite's own
size limit (`PRAGMA max_page_count`) makes the job database full for real, SQLITE_FULL as on a full disk.
"""
from __future__ import annotations

import builtins
import errno
import io
import os
import sqlite3
from pathlib import Path

import pytest

from core.errors import DISK_FULL, DiskFull
from core.files import write_json
from core.jobs import FAILED, INTERRUPTED, JobStore, JobStoreDamaged, worker_main
from core.rundir import RunDir


# ---------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def jobs_home(user, monkeypatch):
    monkeypatch.setenv("DEFECTAUG_WORKER_POLL", "0.1")
    monkeypatch.setenv("DEFECTAUG_MAX_PARALLEL", "1")
    monkeypatch.setenv("TMPDIR", str(user.tmp / "systemp"))
    return user


def _with_history(user) -> tuple[JobStore, dict[str, str]]:
    """A store with a done job, a failed one (its reason) and one still queued."""
    store = JobStore(user.ws)
    ids = {"done": store.submit({"seconds": 0.1, "steps": 2}, kind="sleep"),
           "failed": store.submit({"seconds": 0.1, "steps": 2, "fail": "use a smaller ratio"}, kind="sleep")}
    worker_main(user.ws.root, once=True)
    ids["queued"] = store.submit({"seconds": 0.1, "steps": 2}, kind="sleep")
    return store, ids


def _runs(user) -> dict[str, bytes]:
    return {p.relative_to(user.ws.runs).as_posix(): p.read_bytes()
            for p in sorted(user.ws.runs.rglob("*")) if p.is_file()}


class _NoSpace(io.RawIOBase):
    """A file opened for writing on a full disk: every write fails with ENOSPC (the rest works)."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def writelines(self, lines) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def close(self) -> None:
        self._fh.close()
        super().close()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._fh.seekable()

    def tell(self) -> int:
        return self._fh.tell()

    def seek(self, *args) -> int:
        return self._fh.seek(*args)


@pytest.fixture
def disk_full_under(monkeypatch):
    """`disk_full_under(folder)`: from now on, files opened for writing under `folder` through Python's open
    (builtins, io, pathlib, zipfile all use it) cannot be written: ENOSPC."""
    real_open = io.open

    def fill(folder: Path) -> None:
        folder = Path(folder).resolve()

        def full_open(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wxa+") \
                    and Path(os.fspath(file)).resolve().is_relative_to(folder):
                return _NoSpace(fh)
            return fh
        monkeypatch.setattr(io, "open", full_open)
        monkeypatch.setattr(builtins, "open", full_open)
    return fill


@pytest.fixture
def sqlite_full(monkeypatch):
    """`sqlite_full()`: every new SQLite connection may not grow its database by a page (SQLITE_FULL)."""
    real_connect = sqlite3.connect

    def fill() -> None:
        def connect(*args, **kwargs):
            db = real_connect(*args, **kwargs)
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {max(1, pages)}")
            return db
        monkeypatch.setattr(sqlite3, "connect", connect)
    return fill


# ---------------------------------------------------------------------------------------------------
# 9. A damaged jobs.db: said, kept aside, rebuilt from the run folders
# ---------------------------------------------------------------------------------------------------
def _garbage(db: Path) -> None:
    db.write_bytes(b"this is not a database, it is a holiday photo" * 200)


def _truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2 + 100])


def _folder(db: Path) -> None:
    db.unlink()
    (db / "inside").mkdir(parents=True)


def _missing_column(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE jobs DROP COLUMN label")


DAMAGE = {"garbage": (_garbage, "file is not a database"),
          "truncated": (_truncated, "database disk image is malformed"),
          "folder": (_folder, "a folder (or something else that is not a file) is in its place"),
          "missing column": (_missing_column, "its jobs table lacks the column(s) label")}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_job_list_is_said_and_rebuilt_from_the_run_folders(jobs_home, case):
    user = jobs_home
    store, ids = _with_history(user)
    for _ in range(40):       # the truncation must cut real pages: make the file larger than a page or two
        store.submit({"seconds": 0.1, "steps": 2, "pad": "x" * 2000}, kind="sleep", label="padding")
    for job in store.list():
        if job.label == "padding":
            store.cancel(job.id)
    damage, why = DAMAGE[case]
    damage(user.ws.db_path)
    runs = _runs(user)
    with user.unchanged_outside():
        with pytest.raises(JobStoreDamaged) as err:
            JobStore(user.ws).list()
        assert str(err.value) == (
            f"the job list of this workspace (jobs.db) cannot be read: {why}. The runs themselves are safe in their "
            "run folders: Recover the job list (on the Jobs page, or JobStore.recover) keeps the damaged file aside "
            "and rebuilds the list from them; nothing is deleted.")
        new, kept = JobStore.recover(user.ws)
    assert kept is not None and kept.parent == user.ws.root and kept.name.startswith("jobs.db.damaged-")
    assert kept.is_dir() if case == "folder" else kept.stat().st_size > 0      # kept aside, not deleted
    assert _runs(user) == runs                                                 # every run folder as it was
    got = {j.id: j for j in new.list()}
    assert got[ids["done"]].status == "done" and got[ids["done"]].reason == ""
    assert (got[ids["failed"]].status, got[ids["failed"]].reason) == (FAILED, "use a smaller ratio")
    assert got[ids["queued"]].status == INTERRUPTED
    assert got[ids["queued"]].reason.startswith("the job list was rebuilt from the run folders while this job was "
                                                "queued")
    assert len(got) == 43
    rerun = new.rerun(ids["done"])                                             # and the store works again
    worker_main(user.ws.root, once=True)
    assert new.status(rerun).status == "done"


def test_a_column_a_newer_version_added_is_ignored(jobs_home):
    user = jobs_home
    store, ids = _with_history(user)
    with sqlite3.connect(user.ws.db_path) as conn:
        conn.execute("ALTER TABLE jobs ADD COLUMN priority INTEGER DEFAULT 3")
    assert {j.id: j.status for j in JobStore(user.ws).list()} == {ids["done"]: "done", ids["failed"]: FAILED,
                                                                 ids["queued"]: "queued"}


def test_the_jobs_page_says_what_happened_and_recovers(jobs_home, monkeypatch):
    """On the Jobs page: the message and a Recover button (never 'this is a bug'); after it, the list."""
    from tests.app.conftest import assert_clean, open_page, texts
    monkeypatch.setenv("DEFECTAUG_AUTOSTART_WORKER", "0")
    user = jobs_home
    store, ids = _with_history(user)
    _garbage(user.ws.db_path)
    at = open_page("jobs", ws=user.ws.id)
    assert_clean(at)
    (error,) = texts(at.error)
    assert error.startswith("the job list of this workspace (jobs.db) cannot be read: file is not a database.")
    assert "bug" not in error
    [b for b in at.button if b.label == "Recover the job list"][0].click().run()
    assert_clean(at)
    assert any(t.startswith("Rebuilt the job list from 3 run folder(s); the damaged file is kept as `jobs.db.damaged-")
               for t in texts(at.success)), texts(at.success)
    assert not at.error or all("Failed: use a smaller ratio" in t for t in texts(at.error))


# ---------------------------------------------------------------------------------------------------
# 8. A full disk outside uploads: said, nothing half-written, earlier results kept
# ---------------------------------------------------------------------------------------------------
def _leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.name.endswith((".part", ".tmp")) or ".part" in p.name)


def test_settings_on_a_full_disk(user, disk_full_under):
    user.ws.update_settings(dataset="earlier", ratio=0.1)
    before = user.ws.settings_path.read_bytes()
    disk_full_under(user.ws.root)
    with user.unchanged_outside():
        with pytest.raises(DiskFull) as err:
            user.ws.update_settings(ratio=0.2)
    assert str(err.value) == DISK_FULL == ("the disk is full: free some space (delete old runs or exports on the "
                                           "Jobs page), then try again. Nothing was changed.")
    assert user.ws.settings_path.read_bytes() == before and _leftovers(user.ws.root) == []


def test_submitting_a_job_on_a_full_disk(jobs_home, sqlite_full):
    user = jobs_home
    store, ids = _with_history(user)
    runs_before = sorted(p.name for p in user.ws.runs.iterdir())
    sqlite_full()
    with user.unchanged_outside():
        with pytest.raises(DiskFull) as err:
            store.submit({"seconds": 0.1, "steps": 2, "note": "n" * 20_000}, kind="sleep")
    assert str(err.value) == DISK_FULL
    assert sorted(p.name for p in user.ws.runs.iterdir()) == runs_before          # no run folder left behind
    assert {j.id for j in store.list()} == set(ids.values())                      # earlier jobs all there
    assert _leftovers(user.ws.root) == []


def test_export_and_report_on_a_full_disk_leave_nothing_and_keep_the_earlier_export(finished_run, user,
                                                                                    disk_full_under):
    from core.views.export import export_zip
    from core.views.report import write_report
    earlier = user.ws.exports / "balanced.zip"
    export_zip(finished_run, "smote", earlier)
    before = earlier.read_bytes()
    disk_full_under(user.ws.exports)
    with user.unchanged_outside():
        for build in (lambda: export_zip(finished_run, "smote", user.ws.exports / "balanced.zip"),
                      lambda: write_report(finished_run, user.ws.exports / "report.html")):
            with pytest.raises(OSError) as err:
                build()
            assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in user.ws.exports.iterdir()) == ["balanced.zip"]   # no .part, no half report
    assert earlier.read_bytes() == before


def test_the_export_page_says_the_disk_is_full(finished_run, user, monkeypatch, disk_full_under):
    """The page's words for it: the disk is full, nothing changed (it once said 'this is a bug')."""
    import shutil
    from tests.app.conftest import assert_clean, open_page, texts
    monkeypatch.setenv("DEFECTAUG_AUTOSTART_WORKER", "0")
    ws = user.ws
    store = JobStore(ws)
    job_id = store.submit({"seconds": 0.1, "steps": 1}, kind="sleep")
    shutil.rmtree(ws.run_dir(job_id))
    shutil.copytree(finished_run, ws.run_dir(job_id))
    rd = RunDir(ws.run_dir(job_id))                   # its dataset in the workspace, as a job's run has it
    data = shutil.copytree(rd.config()["data"], ws.uploads / "tiles")
    write_json(rd.config_path, dict(rd.config(), data=str(data)))
    at = open_page("export", ws=ws.id, run=job_id)
    assert_clean(at)
    disk_full_under(ws.exports)
    for button in ("Build the zip", "Build the report"):
        [b for b in at.button if b.label == button][0].click().run()
        assert_clean(at)
        assert texts(at.error)[-1] == ("The disk is full: free some space (delete old runs or exports on the Jobs "
                                       "page), then try again. Nothing was changed.")
    assert list(ws.exports.iterdir()) == []
