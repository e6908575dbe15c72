"""Workspaces: the folder where one user's uploads, runs and job queue live.

    home = workspace_home()                  # $DEFECTAUG_HOME, default <project>/workspaces
    ws = Workspace.create()                  # a new random (uuid4) workspace under home
    ws = Workspace.open(ws_id)               # the same one again, e.g. from ?ws=<id> in the URL
    ws = Workspace.for_session(requested)    # what the app calls: shared one when configured
    ws.uploads / ws.runs / ws.db_path / ws.exports
    path = ws.resolve_data(user_text)        # a typed folder path, only inside the data roots
    list_data_candidates(data_roots())       # sub-folders and .zip files directly under the data roots
    root = ws.import_zip(uploaded, "tiles.zip")              # an uploaded zip -> uploads/tiles/...
    result = ws.import_folder([("tiles/crack/a.png", data)])  # a folder upload -> result.root, .warnings

Isolation: a workspace id is 32 hex digits (a uuid4, or for a browser session 16 random digits and their
keyed hash, so a link made up by hand never creates a workspace) or the configured shared name; anything
else is refused, so an id from a URL can never point outside `home`. Uploads and runs of one workspace are never
listed in another. `DEFECTAUG_SHARED_WORKSPACE=<name>` makes every session use the workspace
`<name>` (a team server). `DEFECTAUG_DATA_ROOTS` (paths separated by `os.pathsep`) lists the server
folders a user may type; the workspace's own uploads folder is always allowed.

Uploads land only in this workspace: a zip is copied into `<workspace>/.incoming/` and extracted by
`core.data.safe_extract_zip` into a fresh `uploads/<name>/`; a folder upload is written file by file
into a fresh `uploads/<name>/`, refusing names that would leave it (core/uploads.py). A failed import keeps nothing.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from .data import Limits
from .errors import DISK_FULL, DataError, DiskFull, ParamError, RunError, is_disk_full
from .uploads import (  # noqa: F401  (the REFUSED_* reasons and STALE_UPLOAD_SECONDS: re-exported)
                      REFUSED_TAKEN, REFUSED_TOO_LONG, REFUSED_UNSAFE, STALE_UPLOAD_SECONDS, FolderImport,
                      UploadedFileLike, import_folder, import_zip, safe_name)

HOME_ENV = "DEFECTAUG_HOME"
DATA_ROOTS_ENV = "DEFECTAUG_DATA_ROOTS"
SHARED_ENV = "DEFECTAUG_SHARED_WORKSPACE"

_ID = re.compile(r"^[0-9a-f]{32}$")
_SHARED_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def workspace_home() -> Path:
    """Folder holding every workspace: `$DEFECTAUG_HOME` or `<project>/workspaces`."""
    home = os.environ.get(HOME_ENV, "").strip()
    path = Path(home).expanduser() if home else project_root() / "workspaces"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def shared_workspace_name() -> str | None:
    """The configured shared workspace name, or None (each session gets its own workspace)."""
    name = os.environ.get(SHARED_ENV, "").strip()
    if not name:
        return None
    if name.lower() in ("1", "true", "yes", "on"):
        return "shared"
    if not _SHARED_NAME.match(name):
        raise ParamError(f"{SHARED_ENV}={name!r} is not a valid workspace name; use letters, digits, - or _")
    return name


def data_roots() -> list[Path]:
    """Server folders a user may pick data from (configured), existing ones only."""
    raw = os.environ.get(DATA_ROOTS_ENV, "")
    roots = []
    for part in raw.split(os.pathsep):
        part = part.strip()
        if part:
            p = Path(part).expanduser()
            if p.is_dir():
                roots.append(p.resolve())
    return roots


def dataset_label(path: str | Path, uploads: str | Path | None = None,
                  roots: Iterable[str | Path] | None = None) -> str:
    """What a user is shown for a dataset: its path inside the workspace's uploads, or inside the data root it
    comes from (`magnetic_tile`, `tiles/magnetic_tile.zip`), never the server's absolute path; anything else by
    its own name."""
    p = Path(path)
    try:
        real = p.expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return p.name
    for root in ([uploads] if uploads else []) + list(data_roots() if roots is None else roots):
        try:
            rel = real.relative_to(Path(root).expanduser().resolve())
        except (ValueError, OSError, RuntimeError):
            continue
        if str(rel) not in ("", "."):
            return rel.as_posix()
    return real.name or str(p)


def list_data_candidates(roots: Iterable[str | Path] | None = None, limit: int = 500) -> list[Path]:
    """What the Data page offers to pick on the server: the sub-folders and .zip files directly under
    each data root (`data_roots()` by default), as resolved paths, roots in order, names sorted.

    Hidden names are left out, and so is any entry whose real path (after following a symbolic link)
    is not inside its own root: a link in a root that points elsewhere on the server is never listed.
    At most `limit` entries per root. A root that cannot be read lists nothing."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in data_roots() if roots is None else roots:
        try:
            root = Path(raw).expanduser().resolve()
            children = sorted(root.iterdir(), key=lambda p: p.name.lower())
        except (OSError, RuntimeError, ValueError):
            continue
        found = 0
        for child in children:
            if found >= limit:
                break
            if child.name.startswith("."):
                continue
            try:
                real = child.resolve(strict=True)
                is_dir = real.is_dir()
            except (OSError, RuntimeError, ValueError):
                continue   # a dangling or looping link
            if real == root or not real.is_relative_to(root) or overlaps_home(real):
                continue   # the workspaces (other users' uploads) are never a data source
            if not (is_dir or (real.is_file() and real.suffix.lower() == ".zip")):
                continue
            if real not in seen:
                seen.add(real)
                out.append(real)
                found += 1
    return out


def overlaps_home(path: Path, home: Path | None = None) -> bool:
    """True when `path` (resolved) is the workspace home, lies inside it, or holds it: a data root that
    contains the home must never open another user's workspace, nor a folder above them all."""
    home = workspace_home() if home is None else home
    return path == home or path.is_relative_to(home) or home.is_relative_to(path)


def new_id() -> str:
    """A random id for a workspace, run or job (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


_KEY_FILE = ".session_key"


def _session_key(home: Path) -> bytes:
    """This server's secret for session ids (`<home>/.session_key`, made once, readable by the app only)."""
    import secrets
    path = home / _KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def _session_id(home: Path) -> str:
    """A new session's workspace id: 16 random hex digits and their keyed hash (16 more), so that a link to a
    workspace that has not written anything yet still reopens it, while a made-up id never becomes one."""
    import hmac
    import secrets
    head = secrets.token_hex(8)
    return head + hmac.new(_session_key(home), head.encode(), "sha256").hexdigest()[:16]


def _issued_here(workspace_id: str, home: Path) -> bool:
    import hmac
    head, tail = workspace_id[:16], workspace_id[16:]
    try:
        key = _session_key(home)
    except OSError:
        return False
    return hmac.compare_digest(hmac.new(key, head.encode(), "sha256").hexdigest()[:16], tail)


def is_valid_id(value: str) -> bool:
    return bool(value) and bool(_ID.match(value))


@dataclass(frozen=True)
class Workspace:
    id: str
    root: Path

    # -- finding -----------------------------------------------------------------------------
    @classmethod
    def create(cls, home: Path | None = None) -> "Workspace":
        return cls._at(new_id(), home)

    @classmethod
    def open(cls, workspace_id: str, home: Path | None = None, create: bool = True) -> "Workspace":
        """The workspace with this id. Ids are uuid4 hex or the configured shared name."""
        workspace_id = (workspace_id or "").strip()
        if _ID.match(workspace_id.lower()):
            workspace_id = workspace_id.lower()
        shared = shared_workspace_name()
        if not (is_valid_id(workspace_id) or (shared and workspace_id == shared)):
            raise ParamError(f"{workspace_id!r} is not a workspace id; open the app without ?ws= "
                             "to start a new workspace")
        ws = cls._at(workspace_id, home, mkdir=False)
        if not ws.root.is_dir():
            if not create:
                raise RunError(f"workspace {workspace_id} does not exist")
            ws._mkdirs()
        return ws

    @classmethod
    def for_session(cls, requested: str | None, home: Path | None = None) -> "Workspace":
        """The workspace a browser session uses: the shared one when configured; else the requested
        workspace when it exists; else a new one with a random id. An id from a link never makes a workspace
        (a made-up one gets a fresh random workspace), and a new one is only a name until its first write
        (`ensure`): a visit that uploads nothing leaves no folder. An invalid id never raises here."""
        shared = shared_workspace_name()
        if shared:
            return cls.open(shared, home)
        home = Path(home).resolve() if home is not None else workspace_home()
        if requested:
            try:
                return cls.open(requested, home, create=False)
            except (ParamError, RunError):
                requested = requested.strip().lower()
                if is_valid_id(requested) and _issued_here(requested, home):
                    return cls._at(requested, home, mkdir=False)   # bookmarked before its first write
        ws = cls._at(_session_id(home), home, mkdir=False)
        remove_empty_workspaces(home)
        return ws

    def ensure(self) -> "Workspace":
        """Make the workspace's folders (its first write: an upload, a setting, a job)."""
        self._mkdirs()
        return self

    @classmethod
    def from_path(cls, root: str | Path) -> "Workspace":
        """A workspace at an explicit folder (CLI `--workspace W`, tests); created if missing."""
        root = Path(root).expanduser().resolve()
        ws = cls(id=root.name, root=root)
        ws._mkdirs()
        return ws

    @classmethod
    def _at(cls, workspace_id: str, home: Path | None, mkdir: bool = True) -> "Workspace":
        home = Path(home).resolve() if home is not None else workspace_home()
        ws = cls(id=workspace_id, root=home / workspace_id)
        if mkdir:
            ws._mkdirs()
        return ws

    def _mkdirs(self) -> None:
        for p in (self.root, self.uploads, self.runs, self.exports):
            p.mkdir(parents=True, exist_ok=True)

    # -- layout --------------------------------------------------------------------------------
    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def db_path(self) -> Path:
        return self.root / "jobs.db"

    @property
    def shared(self) -> bool:
        return self.id == shared_workspace_name()

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run; refuses anything that is not a run id (no path tricks)."""
        if not is_valid_id(run_id):
            raise RunError(f"{run_id!r} is not a run id")
        return self.runs / run_id

    def list_run_ids(self) -> list[str]:
        """Run ids in this workspace, newest first."""
        if not self.runs.is_dir():
            return []
        dirs = [p for p in self.runs.iterdir() if p.is_dir() and is_valid_id(p.name)]
        dirs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        return [p.name for p in dirs]

    # -- datasets -------------------------------------------------------------------------------
    def dataset_dir(self, name: str) -> Path:
        """A fresh folder under uploads/ for a dataset called `name` (suffixed if taken)."""
        base = safe_name(name)
        path, i = self.uploads / base, 2
        while path.exists():
            path, i = self.uploads / f"{base}_{i}", i + 1
        return path

    def datasets(self) -> list[Path]:
        """Dataset folders under uploads/ (each one a class-folder tree), newest first."""
        if not self.uploads.is_dir():
            return []
        dirs = [p for p in self.uploads.iterdir() if p.is_dir() and not p.name.startswith(".")]
        dirs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        return dirs

    def dataset_label(self, path: str | Path) -> str:
        """The dataset's name relative to this workspace's uploads or its data root (`dataset_label`)."""
        return dataset_label(path, self.uploads)

    def remove_dataset(self, path: Path) -> None:
        path = Path(path).resolve()
        if path.parent != self.uploads.resolve():
            raise DataError("only datasets uploaded to this workspace can be removed")
        shutil.rmtree(path, ignore_errors=True)

    def dataset_root(self, folder: Path) -> Path:
        """The class-folder root of a dataset under uploads/: the folder itself, or the single wrapper
        folder inside it when that one holds the class folders (as a zip or folder upload may leave it)."""
        subs = [p for p in folder.iterdir() if p.is_dir()]
        if len(subs) == 1 and any(q.is_dir() for q in subs[0].iterdir()):
            return subs[0]
        return folder

    # -- uploads ---------------------------------------------------------------------------------
    def import_zip(self, upload: BinaryIO | bytes, filename: str, limits: Limits | None = None) -> Path:
        """Store an uploaded .zip of class folders as a new dataset; returns its root (`core.uploads.import_zip`)."""
        return import_zip(self, upload, filename, limits)

    def import_folder(self, files: Iterable[tuple[str, bytes | UploadedFileLike]],
                      limits: Limits | None = None) -> FolderImport:
        """Store a folder upload as a new dataset (`core.uploads.import_folder`)."""
        return import_folder(self, files, limits)

    def allowed_roots(self) -> list[Path]:
        """Where job data may come from: this workspace's uploads plus the configured data roots."""
        return [self.uploads.resolve(), *data_roots()]

    def resolve_data(self, user_path: str | Path) -> Path:
        """A folder or zip path typed by the user, resolved (symlinks too) and checked to lie inside
        `allowed_roots()`. Relative paths are taken relative to each root in turn."""
        text = str(user_path).strip()
        if not text:
            raise DataError("type a folder path first")
        from .data import resolve_data_path
        return self._not_in_workspaces(Path(resolve_data_path(text, self.allowed_roots())), text)

    def check_data_path(self, path: str | Path) -> Path:
        """Same rule for a path coming from a stored config (re-run, CLI submit)."""
        return self._not_in_workspaces(_resolve_inside(str(path), self.allowed_roots()), str(path))

    def _not_in_workspaces(self, resolved: Path, text: str) -> Path:
        """`resolved` unless it is in (or holds) the workspaces folder or this workspace, outside this
        workspace's own uploads: whatever the data roots are, a path never reaches another user's files."""
        uploads = self.uploads.resolve()
        if resolved.is_relative_to(uploads):
            return resolved
        if overlaps_home(resolved) or overlaps_home(resolved, self.root.resolve()):
            raise DataError(f"{text} is in (or holds) the folder where the app keeps every user's workspace, "
                            "which is never a data source; upload the dataset, or pick a folder of the server "
                            "data folders outside it")
        return resolved

    # -- small per-workspace settings (last dataset, ...) ----------------------------------------
    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    def settings(self) -> dict:
        try:
            return json.loads(self.settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def update_settings(self, **values) -> dict:
        """Change some settings; written whole or not at all (a full disk keeps the old file, no leftovers)."""
        from .files import atomic_write
        data = {**self.settings(), **values}
        try:
            self.ensure()
            atomic_write(self.settings_path, json.dumps(data, indent=1))
        except OSError as err:
            if is_disk_full(err):
                raise DiskFull(DISK_FULL) from None
            raise RunError(f"cannot save this workspace's settings ({err.strerror or err}); try again") from None
        return data


EMPTY_WORKSPACE_SECONDS = 24 * 3600
# What a visit that never uploaded, ran or set anything may have left (an empty job list, the worker's lock).
_TRACE_FILES = frozenset({"jobs.db", "jobs.db-wal", "jobs.db-shm", "worker.lock"})


def remove_empty_workspaces(home: Path, max_age: float = EMPTY_WORKSPACE_SECONDS, limit: int = 200) -> list[str]:
    """Remove workspace folders (uuid4 names only, never the shared one) untouched for `max_age` seconds that
    hold nothing: no upload, run, export or setting; at most an empty job list. Returns the ids removed.
    At most `limit` folders are looked at per call, so a large home never slows a page down."""
    import sqlite3
    import time
    removed: list[str] = []
    try:
        entries = [e for e in os.scandir(home) if e.is_dir(follow_symlinks=False) and is_valid_id(e.name)]
    except OSError:
        return removed
    now = time.time()
    for entry in entries[:limit]:
        root = Path(entry.path)
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < max_age:
                continue
            files = [p for p in root.rglob("*") if not p.is_dir()]
            if any(p.parent != root or p.name not in _TRACE_FILES or p.is_symlink() for p in files):
                continue
            db = root / "jobs.db"
            if db.exists():
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                    if conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]:
                        continue
            if any(now - p.stat().st_mtime < max_age for p in files):
                continue
        except (OSError, sqlite3.Error):
            continue          # unreadable, being written, or not a job list we know: leave it alone
        shutil.rmtree(root, ignore_errors=True)
        removed.append(entry.name)
    return removed


def _resolve_inside(user_path: str, roots: list[Path]) -> Path:
    """`user_path` resolved; must exist and be inside one of `roots`."""
    if "\x00" in user_path:
        raise DataError("the path contains a NUL character")
    raw = Path(user_path).expanduser()
    candidates = [raw] if raw.is_absolute() else [r / raw for r in roots]
    for cand in candidates:
        resolved = cand.resolve()
        for root in roots:
            root = root.resolve()
            if resolved == root or root in resolved.parents:
                if resolved.exists():
                    return resolved
    shown = ", ".join(r.name or str(r) for r in roots) or "(none configured)"    # by name: no server paths
    raise DataError(f"{user_path!r} is not an existing folder inside the allowed data folders ({shown}); "
                    f"ask the administrator to add it to {DATA_ROOTS_ENV}, or upload the data instead")
