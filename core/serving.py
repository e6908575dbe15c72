"""Serving an exported file to the browser from disk, so the app's process never holds it (issue 17).

    token = register(ws, ws.exports / "run_smote.zip")    # the Export page, for a file it exported
    download_url(token, base_url)                         # "/api/download/<token>": the page's link
    served = lookup(token)                                # the route: Served(path, name, size) or None
    route(base_url)                                       # that route (starlette), for st.App(routes=[...])

Streamlit 1.67 keeps every `st.download_button` payload in memory (a 1 GiB zip peaked at 3.1 GB RSS) and its
static serving refuses files over 200 MB, so app.py mounts this route beside Streamlit on the same port
(`st.App`, started by `streamlit run app.py`), and the Export page links to it for large files.

What can be fetched: only a file the app registered, a regular file directly in one workspace's `exports/`
(never a symlink, never a subfolder). A token is `secrets.token_urlsafe(32)`, recorded server-side in
`<DEFECTAUG_HOME>/.downloads.json` with the workspace's folder and the file's name; the URL carries the token
only and nothing from it is joined onto a path. An unknown, malformed or tampered token, a file since deleted
or replaced by something else, is a 404. The file's download name goes into Content-Disposition both as an
ASCII fallback and as RFC 5987 UTF-8 (`filename*=`), so any name is safe. A token stays valid while its file
exists (the registry keeps the newest `MAX_ENTRIES`), across restarts of the app.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from .workspace import Workspace, workspace_home

ROUTE = "/api/download/{token}"
REGISTRY = ".downloads.json"
MAX_ENTRIES = 2000
# The Export page's threshold: a file larger than this gets the served link; a smaller one st.download_button
# (Streamlit then holds up to about three copies of it while it is downloaded: 150 MB at this size).
INLINE_MAX_BYTES = 50_000_000

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")         # what secrets.token_urlsafe(32) makes
_NOT_ASCII_SAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_mounted = False


@dataclass(frozen=True)
class Served:
    path: Path
    name: str
    size: int


def registry_path(home: Path | None = None) -> Path:
    return (Path(home) if home is not None else workspace_home()) / REGISTRY


def download_name(name: str) -> str:
    """A download name from any text: its last path part (either separator), no control characters."""
    name = _CONTROL.sub("", str(name).replace("\\", "/")).rsplit("/", 1)[-1].strip()
    return name if name not in ("", ".", "..") else "download"


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 5987)."""
    name = download_name(name)
    fallback = _NOT_ASCII_SAFE.sub("_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _plain_name(name: Any) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\x00" not in name)


def _regular_file(path: Path) -> os.stat_result | None:
    """lstat of `path` when it is a regular file (not a symlink, folder, device...), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _read(home: Path | None) -> dict[str, dict]:
    try:
        data = json.loads(registry_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _locked(home: Path | None) -> Iterator[None]:
    lock = registry_path(home).with_suffix(".lock")
    with open(lock, "a+b") as fh:
        try:
            import fcntl
        except ImportError:                 # not POSIX: one process serves, the page's writes are rare
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write(entries: dict[str, dict], home: Path | None) -> None:
    path = registry_path(home)
    fd, tmp = tempfile.mkstemp(prefix=".downloads-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entries, fh, ensure_ascii=False, indent=0)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _resolve(entry: Any) -> Path | None:
    """The file an entry names, when it is still a regular file directly in its workspace's exports/."""
    if not isinstance(entry, dict) or not _plain_name(entry.get("file")) or not isinstance(entry.get("root"), str):
        return None
    try:
        exports = (Path(entry["root"]) / "exports").resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    path = exports / entry["file"]
    if path.parent != exports or _regular_file(path) is None:
        return None
    return path


def register(ws: Workspace, path: str | Path, name: str | None = None, home: Path | None = None) -> str:
    """A token that serves `path`, a file the app exported into `ws.exports` (ValueError for anything else:
    a file elsewhere, in a subfolder, a symlink, a folder). The same file (and name) keeps its token."""
    path = Path(path)
    exports = ws.exports.resolve()
    if path.is_symlink() or path.parent.resolve() != exports or _regular_file(exports / path.name) is None:
        raise ValueError(f"{path} is not a file exported into this workspace")
    file = path.name
    shown = download_name(name if name is not None else file)
    root = str(ws.root.resolve())
    with _locked(home):
        entries = _read(home)
        for token, entry in entries.items():
            if entry.get("root") == root and entry.get("file") == file and entry.get("name") == shown:
                return token
        kept = sorted(((t, e) for t, e in entries.items() if _resolve(e) is not None),
                      key=lambda te: te[1].get("at", 0))[-(MAX_ENTRIES - 1):]
        token = secrets.token_urlsafe(32)
        entries = dict(kept)
        entries[token] = {"root": root, "ws": ws.id, "file": file, "name": shown, "at": time.time()}
        _write(entries, home)
    return token


_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_registered(entry: Any) -> tuple[int, os.stat_result] | None:
    """(open file descriptor, its fstat) of the file an entry names, opened once and checked as opened: every
    folder from / to the workspace's exports/ and the file itself are opened without following a link (the
    workspace, exports/ or the file swapped for a link after registration reaches nothing), and what was opened
    must be a regular file. None for anything else. The caller closes the descriptor."""
    if not isinstance(entry, dict) or not _plain_name(entry.get("file")) or not isinstance(entry.get("root"), str):
        return None
    root = Path(entry["root"])
    if not root.is_absolute() or any(part in ("..", ".") for part in root.parts):
        return None
    fds: list[int] = []
    try:
        fds.append(os.open("/", _NOFOLLOW_DIR))
        for part in [*root.parts[1:], "exports"]:
            fds.append(os.open(part, _NOFOLLOW_DIR, dir_fd=fds[-1]))
        fd = os.open(entry["file"], os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0), dir_fd=fds[-1])
    except OSError:      # a link (ELOOP / ENOTDIR), gone, unreadable
        return None
    finally:
        for d in fds:
            os.close(d)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


def lookup(token: str, home: Path | None = None) -> Served | None:
    """What `token` serves, or None (unknown, malformed, the file gone or no longer a plain exported file)."""
    opened = open_served(token, home)
    if opened is None:
        return None
    os.close(opened[0])
    return opened[1]


def open_served(token: str, home: Path | None = None) -> tuple[int, Served] | None:
    """(open descriptor, what it is) of the file `token` serves, or None; the route sends from the descriptor."""
    if not isinstance(token, str) or not _TOKEN.match(token):
        return None
    entry = _read(home).get(token)
    opened = _open_registered(entry)
    if opened is None:
        return None
    fd, st = opened
    path = Path(entry["root"]) / "exports" / entry["file"]
    return fd, Served(path=path, name=download_name(entry.get("name") or path.name), size=st.st_size)


def route_path(base_url: str | None = "") -> str:
    base = (base_url or "").strip("/")
    return f"/{base}{ROUTE}" if base else ROUTE


def download_url(token: str, base_url: str | None = "") -> str:
    return route_path(base_url).replace("{token}", token)


def route(base_url: str | None = "", home: Path | None = None):
    """The starlette Route that sends a registered file from disk (FileResponse: 64 KiB at a time, Range
    requests, Content-Length from the file), 404 for anything else."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import FileResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    class _DescriptorResponse(FileResponse):
        """FileResponse (64 KiB chunks, Range, HEAD) of an open descriptor, closed however the response ends."""

        def __init__(self, fd: int, **kwargs) -> None:
            self.fd = fd
            super().__init__(f"/proc/self/fd/{fd}", stat_result=os.fstat(fd), **kwargs)

        async def __call__(self, scope, receive, send) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                os.close(self.fd)

    async def download(request):
        opened = await run_in_threadpool(open_served, request.path_params["token"], home)
        if opened is None:
            return PlainTextResponse("Not found: this download link is unknown or its file is gone.",
                                     status_code=404, headers={"Cache-Control": "no-store"})
        fd, served = opened
        media = "application/zip" if served.path.suffix.lower() == ".zip" else "application/octet-stream"
        headers = {"Content-Disposition": content_disposition(served.name), "Cache-Control": "no-store",
                   "X-Content-Type-Options": "nosniff"}
        # Sent from the descriptor opened and checked above, never by its name again: /proc/self/fd/N opens the
        # same file whatever its path now names (Linux); elsewhere the bytes are streamed from the descriptor.
        if Path(f"/proc/self/fd/{fd}").exists():
            return _DescriptorResponse(fd, media_type=media, headers=headers)
        return StreamingResponse(_chunks(fd), media_type=media,
                                 headers={**headers, "Content-Length": str(served.size)})

    return Route(route_path(base_url), download, methods=["GET", "HEAD"], name="defectaug_download")


def _chunks(fd: int, size: int = 1 << 16) -> Iterator[bytes]:
    try:
        while chunk := os.read(fd, size):
            yield chunk
    finally:
        os.close(fd)


def mount(base_url: str | None = "") -> Any:
    """The route, for app.py's `st.App`; from then on `mounted()` says the page may link to it."""
    global _mounted
    r = route(base_url)
    _mounted = True
    return r


def mounted() -> bool:
    """Whether this process serves the route (app.py under `streamlit run`; not AppTest, which has no server)."""
    return _mounted
