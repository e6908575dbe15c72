"""Workspaces: the folder where one user's uploads, runs and job queue live.

    home = workspace_home()                  # $DEFECTAUG_HOME, default <project>/workspaces
    ws = Workspace.create()                  # a new random (uuid4) workspace under home
    ws = Workspace.open(ws_id)               # the same one again, e.g. from ?ws=<id> in the URL
    ws = Workspace.for_session(requested)    # what the app calls: shared one when configured
    ws.uploads / ws.runs / ws.db_path / ws.exports
    path = ws.resolve_data(user_text)        # a typed folder path, only inside the data roots

Isolation: a workspace id is a uuid4 hex (or the configured shared name); anything else is refused,
so an id from a URL can never point outside `home`. Uploads and runs of one workspace are never
listed in another. `DEFECTAUG_SHARED_WORKSPACE=<name>` makes every session use the workspace
`<name>` (a team server). `DEFECTAUG_DATA_ROOTS` (paths separated by `os.pathsep`) lists the server
folders a user may type; the workspace's own uploads folder is always allowed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, ParamError, RunError

HOME_ENV = "DEFECTAUG_HOME"
DATA_ROOTS_ENV = "DEFECTAUG_DATA_ROOTS"
SHARED_ENV = "DEFECTAUG_SHARED_WORKSPACE"

_ID = re.compile(r"^[0-9a-f]{32}$")
_SHARED_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


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


def new_id() -> str:
    """A random id for a workspace, run or job (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


def is_valid_id(value: str) -> bool:
    return bool(value) and bool(_ID.match(value))


def safe_name(name: str, fallback: str = "dataset") -> str:
    """A file or folder name built from user text: no separators, no dots-only, bounded length."""
    name = _SAFE_NAME.sub("_", name.replace("/", "_").replace("\\", "_"))
    name = re.sub(r"\.{2,}", "_", name).strip(" ._")
    return name[:60] or fallback


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
        id when valid; else a new one. An invalid id never raises here: the user gets a fresh workspace."""
        shared = shared_workspace_name()
        if shared:
            return cls.open(shared, home)
        if requested:
            try:
                return cls.open(requested, home)
            except (ParamError, RunError):
                pass
        return cls.create(home)

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

    def remove_dataset(self, path: Path) -> None:
        path = Path(path).resolve()
        if path.parent != self.uploads.resolve():
            raise DataError("only datasets uploaded to this workspace can be removed")
        shutil.rmtree(path, ignore_errors=True)

    def allowed_roots(self) -> list[Path]:
        """Where job data may come from: this workspace's uploads plus the configured data roots."""
        return [self.uploads.resolve(), *data_roots()]

    def resolve_data(self, user_path: str | Path) -> Path:
        """A folder or zip path typed by the user, resolved (symlinks too) and checked to lie inside
        `allowed_roots()`. Relative paths are taken relative to each root in turn."""
        text = str(user_path).strip()
        if not text:
            raise DataError("type a folder path first")
        roots = self.allowed_roots()
        try:
            from .data import resolve_data_path
        except ImportError:  # core.data not there yet: the same rule, here
            resolve_data_path = _resolve_inside
        return Path(resolve_data_path(text, roots))

    def check_data_path(self, path: str | Path) -> Path:
        """Same rule for a path coming from a stored config (re-run, CLI submit)."""
        return _resolve_inside(str(path), self.allowed_roots())

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
        data = {**self.settings(), **values}
        tmp = self.settings_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.settings_path)
        return data


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
    shown = ", ".join(str(r) for r in roots) or "(none configured)"
    raise DataError(f"{user_path!r} is not an existing folder inside the allowed data folders ({shown}); "
                    f"ask the administrator to add it to {DATA_ROOTS_ENV}, or upload the data instead")
