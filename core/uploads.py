"""Uploads into a workspace: a zip, or a folder the browser sends file by file, stored as a new dataset under
`<workspace>/uploads/<name>/` (`Workspace.import_zip` and `Workspace.import_folder` call these).

A zip is copied into `<workspace>/.incoming/` (never more than the archive limit) and extracted by
`core.data.safe_extract_zip` into a fresh folder; a folder upload is written file by file into a fresh folder,
refusing names that would leave it. A failed import keeps nothing.
"""
from __future__ import annotations

import errno
import io
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, Protocol

from .data import (Limits, human_size, resolve_limits, shorten, safe_extract_zip, too_deep_message,
                   too_many_folders_message)
from .errors import ArchiveError, DataError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
STALE_UPLOAD_SECONDS = 3600


def safe_name(name: str, fallback: str = "dataset") -> str:
    """A file or folder name built from user text: no separators, no dots-only, bounded length."""
    name = _SAFE_NAME.sub("_", name.replace("/", "_").replace("\\", "_"))
    name = re.sub(r"\.{2,}", "_", name).strip(" ._")
    return name[:60] or fallback


class UploadedFileLike(Protocol):
    """What `import_folder` needs of one uploaded file (Streamlit's `UploadedFile` is one)."""
    size: int

    def getvalue(self) -> bytes: ...


# Why `import_folder` refused a file; the warning reads "Ignored N file(s) <reason>: names".
REFUSED_UNSAFE = "with unsafe names"
REFUSED_TOO_LONG = ("with a name longer than the server's file system allows (255 bytes per name); rename "
                    "them and upload again")
REFUSED_TAKEN = "whose path was already taken by another uploaded file or folder"

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FolderImport:
    """What `Workspace.import_folder` did: the dataset root, how many files it wrote, what it refused."""
    root: Path
    written: int
    refused: list[tuple[str, str]] = field(default_factory=list)   # (name as uploaded, REFUSED_* reason)

    @property
    def warnings(self) -> list[str]:
        """One message per reason, naming up to five of the refused files."""
        by_reason: dict[str, list[str]] = {}
        for name, reason in self.refused:
            by_reason.setdefault(reason, []).append(name)
        out = []
        for reason, names in by_reason.items():
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            out.append(f"Ignored {len(names)} file(s) {reason}: {', '.join(names[:5])}{more}")
        return out


def import_zip(ws, upload: BinaryIO | bytes, filename: str, limits: Limits | None = None) -> Path:
    """Store an uploaded .zip of class folders as a new dataset; returns its root (class folders).

    `upload` is the file as a binary stream (read from its start) or bytes; `filename` is the name
    the user gave it, used for the dataset folder and in messages. The upload is copied into
    `<workspace>/.incoming/` (never more than `limits.max_archive_bytes`), then checked and
    extracted into a fresh `uploads/<name>/` by `core.data.safe_extract_zip`; the copy is always
    removed. Raises `ArchiveError` saying what to do; on failure nothing is kept.
    """
    limits = resolve_limits(limits)
    name = _upload_file_name(filename)
    if isinstance(upload, (bytes, bytearray, memoryview)):
        upload = io.BytesIO(bytes(upload))
    elif hasattr(upload, "seek"):
        try:
            upload.seek(0)   # a rerun may hand over a stream already read once
        except (OSError, ValueError):
            pass
    incoming_root = ws.root / ".incoming"
    try:
        ws.ensure()
        incoming_root.mkdir(exist_ok=True)
        _remove_stale_incoming(incoming_root)
        incoming = Path(tempfile.mkdtemp(prefix="upload-", dir=incoming_root))
    except OSError as err:
        raise ArchiveError(f"cannot store {name} ({err.strerror or err}); check the free disk space "
                           "and upload it again.") from None
    try:
        # keep the user's file name: error messages then name the file they uploaded
        copy = incoming / name
        _copy_capped(upload, copy, name, limits.max_archive_bytes)
        return safe_extract_zip(copy, ws.dataset_dir(Path(name).stem), limits)
    finally:
        shutil.rmtree(incoming, ignore_errors=True)



def import_folder(ws, files: Iterable[tuple[str, bytes | UploadedFileLike]],
                  limits: Limits | None = None) -> FolderImport:
    """Store a folder upload (the browser sends each file with its path) as a new dataset.

    `files`: (relative name as uploaded, e.g. "tiles/crack/a.png"; the content as bytes or an
    object with `size` and `getvalue()`). Names that would leave the dataset folder (absolute,
    '..', drive letters, NUL), that are too long for the file system or whose path is already
    taken are refused and listed in the result; the rest are written into a fresh
    `uploads/<name>/`. When every file sits in one picked folder ("tiles/...") that holds
    sub-folders, that folder is dropped: its sub-folders are the classes. Raises `DataError`
    (too many files, too many bytes, nothing usable, disk full); on failure nothing is kept.
    """
    limits = resolve_limits(limits)
    files = list(files)
    if not files:
        raise DataError("the uploaded folder is empty; pick the dataset folder (one sub-folder per class)")
    if len(files) > limits.max_entries:
        raise DataError(f"{len(files)} files is more than the limit of {limits.max_entries}; "
                        "upload a smaller folder or a zip")
    total = sum(_content_size(content) for _, content in files)
    if total > limits.max_total_bytes:
        raise DataError(f"the folder holds {human_size(total)}, more than the limit of "
                        f"{human_size(limits.max_total_bytes)}; upload a smaller folder, or resize the images "
                        "first")
    refused: list[tuple[str, str]] = []
    named: list[tuple[str, tuple[str, ...], bytes | UploadedFileLike]] = []
    for name, content in files:
        parts = _safe_parts(name)
        if parts is None:
            refused.append((name, REFUSED_UNSAFE))
        elif any(len(os.fsencode(p)) > 255 for p in parts):
            refused.append((name, REFUSED_TOO_LONG))
        else:
            named.append((name, parts, content))
    for name, parts, _ in named:
        if len(parts) - 1 > limits.max_depth:
            raise DataError(too_deep_message("the uploaded folder", shorten(name), len(parts) - 1,
                                             limits.max_depth).replace("extracted", "kept"))
    folders = {parts[:i] for _, parts, _ in named for i in range(1, len(parts))}
    if len(folders) > limits.max_folders:
        raise DataError(too_many_folders_message("the uploaded folder", limits.max_folders)
                        .replace("Zip the dataset folder itself", "Pick the dataset folder itself")
                        .replace("extracted", "kept"))
    chosen: list[tuple[tuple[str, ...], bytes | UploadedFileLike]] = []
    seen: set[tuple[str, ...]] = set()
    for name, parts, content in named:
        if parts in folders or parts in seen:
            refused.append((name, REFUSED_TAKEN))
        else:
            seen.add(parts)
            chosen.append((parts, content))
    if not chosen:
        shown = ", ".join(n for n, _ in refused[:3])
        raise DataError(f"no usable file in the uploaded folder (every name was refused: {shown}); pick the "
                        "dataset folder itself, which holds one sub-folder per class")
    tops = {parts[0] for parts, _ in chosen}
    # The picked folder itself ("tiles/normal/a.png"): drop it, its sub-folders are the classes.
    # A picked folder of loose images stays, so loading says "only one class" (as for a zip).
    strip = len(tops) == 1 and any(len(parts) > 2 for parts, _ in chosen)
    root = ws.dataset_dir(next(iter(tops)) if len(tops) == 1 else "uploaded_folder")
    try:
        ws.ensure()
        for parts, content in chosen:
            out = root.joinpath(*(parts[1:] if strip else parts))
            out.parent.mkdir(parents=True, exist_ok=True)
            data = content if isinstance(content, (bytes, bytearray, memoryview)) else content.getvalue()
            with open(out, "xb") as fh:   # "x": never overwrite, never write through a link
                fh.write(data)
    except OSError as err:
        shutil.rmtree(root, ignore_errors=True)
        where = shorten("/".join(parts))
        raise DataError(f"cannot write {where!r} from the uploaded folder ({err.strerror or err}); check "
                        "the free disk space and upload again. Nothing was kept.") from None
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)    # a failed import keeps nothing, whatever failed
        raise
    return FolderImport(root=root, written=len(chosen), refused=refused)



def _remove_stale_incoming(incoming_root: Path, max_age: float = STALE_UPLOAD_SECONDS) -> None:
    """Drop upload copies left by an app that was killed mid-upload (older than `max_age` seconds);
    a copy being written right now is younger and stays."""
    for old in incoming_root.glob("upload-*"):
        try:
            if time.time() - old.stat().st_mtime > max_age:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def _upload_file_name(filename: str) -> str:
    """The uploaded file's own name when it is a plain file name, else a safe one ending in .zip."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", "..") or "\x00" in base or len(os.fsencode(base)) > 200:
        return safe_name(Path(base.replace("\x00", "")).stem, "upload") + ".zip"
    return base


def _copy_capped(src: BinaryIO, dst: Path, name: str, limit: int) -> None:
    """Copy `src` into the new file `dst`, refusing it as soon as it is over `limit` bytes."""
    written = 0
    try:
        with open(dst, "xb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    while more := src.read(_CHUNK):   # count the rest (never stored) for the message
                        written += len(more)
                    raise ArchiveError(f"{name} is {human_size(written)}, more than the limit of {human_size(limit)}; "
                                       "upload a smaller archive.")
                out.write(chunk)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise ArchiveError(f"cannot store {name} ({err.strerror or err}); check the free disk space and "
                               "upload it again. Nothing was kept.") from None
        raise ArchiveError(f"cannot read or store {name} ({err.strerror or err}); upload it again.") from None


def _content_size(content: bytes | UploadedFileLike) -> int:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return len(content)
    size = getattr(content, "size", None)
    return int(size) if isinstance(size, int) else len(content.getvalue())


def _safe_parts(name: str) -> tuple[str, ...] | None:
    """Path parts of an uploaded file's relative name, or None when it tries to escape."""
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    if not parts or any(p == ".." or p.startswith("/") or ":" in p or "\x00" in p for p in parts):
        return None
    return parts
