"""Upload limits and safe zip extraction (what an archive may cost, and nothing written outside its folder).
"""
from __future__ import annotations

import contextlib
import lzma
import math
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path


from ..errors import ArchiveError, ParamError

ARCHIVE_EXTENSIONS = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".gz", ".7z", ".rar")
# Operating-system droppings that are never data (macOS resource forks, Finder/Explorer caches).
JUNK_NAMES = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})

_MIB = 1024 ** 2
_CHUNK = _MIB


@dataclass
class Limits:
    """Bounds on what an upload may cost; the defaults suit a web upload of a defect dataset."""
    max_archive_bytes: int = 2 * 1024 ** 3      # size of the zip file itself
    max_total_bytes: int = 4 * 1024 ** 3        # sum of uncompressed sizes
    max_entries: int = 100_000
    max_ratio: float = 200.0                    # compression ratio of a bomb (per entry > 1 MiB, and whole archive)
    max_image_pixels: int = 64_000_000          # Pillow decompression-bomb guard (Image.MAX_IMAGE_PIXELS)
    max_classes: int = 500
    max_depth: int = 32                         # folders on one path ("a/b/c/x.png" is 3 deep); deeper is refused
    max_folders: int = 10_000                   # distinct folders the paths of an upload imply
    max_decode_bytes: int = 512 * _MIB          # what decoding one image may allocate at full resolution

    @classmethod
    def from_env(cls) -> "Limits":
        """The defaults, with the upload bounds the administrator set in the environment (see README):
        DEFECTAUG_MAX_ZIP_BYTES (the zip file), DEFECTAUG_MAX_UPLOAD_BYTES (uncompressed total of a zip or
        folder upload), DEFECTAUG_MAX_UPLOAD_ENTRIES (files in one upload). Numbers like 2e9 are accepted."""
        limits = cls()
        for var, name in _LIMIT_ENV.items():
            raw = os.environ.get(var, "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if not math.isfinite(value) or value < 1:
                raise ParamError(f"{var} must be a positive whole number such as 1e9 (it is {raw!r}); "
                                 "fix it in the environment and restart the app")
            setattr(limits, name, int(value))
        return limits


    def upload_size_mb(self) -> int:
        """The browser's upload limit for Streamlit (`server.maxUploadSize`, in MiB) that lets through the
        largest zip `max_archive_bytes` accepts and nothing much larger (scripts/serve.sh passes it)."""
        return max(1, math.ceil(self.max_archive_bytes / _MIB))


# Environment variable -> Limits field (Limits.from_env).
_LIMIT_ENV = {"DEFECTAUG_MAX_ZIP_BYTES": "max_archive_bytes",
              "DEFECTAUG_MAX_UPLOAD_BYTES": "max_total_bytes",
              "DEFECTAUG_MAX_UPLOAD_ENTRIES": "max_entries"}

# An archive whose declared contents stay under this size is never called a bomb by its overall ratio
# (a small zip of blank masks compresses very well and is harmless).
BOMB_FLOOR_BYTES = 64 * 1024 ** 2



def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def is_junk(name: str) -> bool:
    return name in JUNK_NAMES or name.startswith("._")


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_EXTENSIONS)


def resolve_limits(limits: Limits | None) -> Limits:
    return limits if limits is not None else Limits.from_env()



# --------------------------------------------------------------------------------------------------
# safe zip extraction
# --------------------------------------------------------------------------------------------------
# Everything zipfile and its decompressors raise on a hostile or damaged archive. zipfile has no single
# error type: a bad header can surface as struct.error, a bad name as UnicodeDecodeError (a ValueError),
# bad deflate data as zlib.error, a truncated stream as EOFError, an unknown method as NotImplementedError,
# an encrypted entry as RuntimeError.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, struct.error, ValueError,
               NotImplementedError, RuntimeError, KeyError, IndexError, OverflowError, zlib.error,
               lzma.LZMAError)

_DRIVE = re.compile(r"^[A-Za-z]:")


def too_deep_message(upload: str, path: str, depth: int, limit: int) -> str:
    """Why an upload with a path nested `depth` folders deep is refused (zip and folder uploads)."""
    return (f"{upload} is refused: {path!r} is nested {depth} folders deep, more than the limit of {limit}; "
            "a dataset needs one folder per class (a few levels at most). Nothing was extracted.")


def too_many_folders_message(upload: str, limit: int) -> str:
    return (f"{upload} is refused: its paths make more than {limit} folders (the limit); a dataset needs one "
            "folder per class. Zip the dataset folder itself and upload again. Nothing was extracted.")


def _check_folders(upload: str, count: int, limits: Limits) -> None:
    if count > limits.max_folders:
        raise ArchiveError(too_many_folders_message(upload, limits.max_folders))


def shorten(text: str, keep: int = 80) -> str:
    """A path for a message: at most `keep` characters (a hostile name can be 100 KB long)."""
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"


@dataclass
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def plan_entries(zf: zipfile.ZipFile, zip_name: str, limits: Limits, archive_size: int) -> tuple[list[_Entry], list[str]]:
    """Validate every entry before a single byte is written; return what to write, and which of those
    files are nested archives (written as plain files, never opened). `archive_size`: the zip's size
    on disk, for the whole-archive compression ratio."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveError(f"{zip_name} has {len(infos)} entries, more than the limit of {limits.max_entries}; "
                           "upload fewer files (or ask the administrator to raise the limit)")
    plan: list[_Entry] = []
    nested: list[str] = []
    files: set[tuple[str, ...]] = set()
    dirs: set[tuple[str, ...]] = set()
    total = 0
    for info in infos:
        raw = info.filename
        # Windows tools sometimes write backslashes; treat them as separators so "..\\x" is caught too.
        name = raw.replace("\\", "/")
        if name.startswith("/") or _DRIVE.match(name):
            raise ArchiveError(f"unsafe archive {zip_name}: entry {raw!r} has an absolute path; nothing was "
                               "extracted. Zip the dataset folder itself so that entries are relative paths.")
        parts = tuple(p for p in name.split("/") if p not in ("", "."))
        if ".." in parts:
            raise ArchiveError(f"unsafe archive {zip_name}: entry {raw!r} points outside the extraction folder "
                               "('..'); nothing was extracted. Zip the dataset folder itself and upload again.")
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise ArchiveError(f"unsafe archive {zip_name}: entry {raw!r} is a symbolic link; links are not "
                               "extracted for safety. Replace links with the real files and zip again.")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"unsafe archive {zip_name}: entry {raw!r} is a special file (device, pipe or "
                               "socket); only regular files and folders can be extracted.")
        if not parts or any(is_junk(p) for p in parts):
            continue
        is_dir = name.endswith("/") or kind == stat.S_IFDIR
        if info.flag_bits & 0x1:
            raise ArchiveError(f"{zip_name} is encrypted (entry {raw!r}); password-protected archives are not "
                               "supported: zip the folder again without a password.")
        for p in parts:
            if len(os.fsencode(p)) > 255:
                raise ArchiveError(f"{zip_name}: entry {raw!r} has a name longer than the file system allows "
                                   "(255 bytes per name); rename it and zip again.")
        depth = len(parts) if is_dir else len(parts) - 1
        if depth > limits.max_depth:
            raise ArchiveError(too_deep_message(zip_name, shorten(raw), depth, limits.max_depth))
        if is_dir:
            plan.append(_Entry(info, parts, True))
            dirs.update(parts[:i] for i in range(1, len(parts) + 1))
            _check_folders(zip_name, len(dirs), limits)
            continue
        if is_archive_name(parts[-1]):
            nested.append("/".join(parts))
        if info.file_size > _MIB and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ArchiveError(f"{zip_name} looks like a zip bomb: entry {raw!r} expands {ratio:.0f}:1 "
                               f"(limit {limits.max_ratio:.0f}:1) to {human_size(info.file_size)}; nothing was "
                               "extracted.")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(f"{zip_name} would expand to more than {human_size(limits.max_total_bytes)} (the limit); "
                               "upload a smaller dataset, or resize the images before zipping.")
        if parts in files:
            raise ArchiveError(f"{zip_name} holds two entries named {raw!r}; re-create the zip from the folder.")
        files.add(parts)
        dirs.update(parts[:i] for i in range(1, len(parts)))
        _check_folders(zip_name, len(dirs), limits)
        plan.append(_Entry(info, parts, False))
    # Many entries each just under the per-entry floor (thousands of 1 MiB - 1 zeros) add up to a bomb too.
    if total > BOMB_FLOOR_BYTES and total > limits.max_ratio * max(archive_size, 1):
        ratio = total / max(archive_size, 1)
        raise ArchiveError(f"{zip_name} looks like a zip bomb: its {len(files)} files expand {ratio:.0f}:1 "
                           f"(limit {limits.max_ratio:.0f}:1) to {human_size(total)}; nothing was extracted.")
    clash = files & dirs
    if clash:
        raise ArchiveError(f"{zip_name} holds {'/'.join(sorted(clash)[0])!r} both as a file and as a folder; "
                           "re-create the zip from the folder.")
    return plan, nested


def _copy_entry(zf: zipfile.ZipFile, entry: _Entry, target: Path, budget: int, zip_name: str) -> int:
    """Stream one entry to `target`, never past its declared size nor past the remaining byte budget."""
    info = entry.info

    def corrupt(err: BaseException) -> ArchiveError:
        return ArchiveError(f"{zip_name} is corrupt: entry {info.filename!r} cannot be extracted ({err}); "
                            "re-create the zip and upload it again. Nothing was kept.")

    def unwritable(err: OSError) -> ArchiveError:
        return ArchiveError(f"cannot write {info.filename!r} from {zip_name} ({err.strerror or err}); "
                            "check the free disk space. Nothing was kept.")

    cap = min(info.file_size, budget)
    written = 0
    try:
        src = zf.open(info)
    except ZIP_ERRORS as err:
        raise corrupt(err) from None
    with src:
        try:
            # "xb": never overwrite and never write through an existing link.
            dst = open(target, "xb")
        except OSError as err:
            raise unwritable(err) from None
        with dst:
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except ZIP_ERRORS as err:  # CRC mismatch, bad deflate data, truncated stream...
                    raise corrupt(err) from None
                if not chunk:
                    break
                written += len(chunk)
                if written > cap:
                    # zipfile already stops at the declared size; this guard holds even if that changes.
                    raise ArchiveError(f"{zip_name}: entry {info.filename!r} is larger than its header says "
                                       f"({info.file_size} bytes) or than the size limit; the archive is corrupt "
                                       "or malicious. Nothing was kept.")
                try:
                    dst.write(chunk)
                except OSError as err:
                    raise unwritable(err) from None
    return written


def _clear(folder: Path, remove_folder: bool) -> None:
    """Remove what an aborted extraction wrote (the folder is ours: empty or created by us)."""
    if remove_folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in list(folder.iterdir()) if folder.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


def extract_with_notes(zip_path: str | Path, dest: str | Path, limits: Limits | None) -> tuple[Path, list[str]]:
    """`safe_extract_zip` plus notes for `load_dataset`'s report."""
    limits = resolve_limits(limits)
    zip_path = Path(zip_path)
    zip_name = zip_path.name
    try:
        size = zip_path.stat().st_size
    except OSError:
        raise ArchiveError(f"archive not found: {zip_path}") from None
    if not zip_path.is_file():
        raise ArchiveError(f"{zip_path} is not a file; give the path of a .zip archive")
    if size > limits.max_archive_bytes:
        raise ArchiveError(f"{zip_name} is {human_size(size)}, more than the limit of "
                           f"{human_size(limits.max_archive_bytes)}; upload a smaller archive.")
    if size == 0:
        raise ArchiveError(f"{zip_name} is an empty file (0 bytes), not a zip archive; upload it again.")
    try:
        zf = zipfile.ZipFile(zip_path)
    except ZIP_ERRORS as err:
        raise ArchiveError(f"{zip_name} is not a zip archive, or it is corrupt or truncated ({err}); "
                           "re-create it with a zip tool and upload it again.") from None
    with zf:
        try:
            plan, nested = plan_entries(zf, zip_name, limits, size)
        except ZIP_ERRORS as err:  # e.g. a name that cannot be decoded
            raise ArchiveError(f"{zip_name} is corrupt ({err}); re-create it and upload it again.") from None
        n_files = sum(1 for e in plan if not e.is_dir)
        if n_files and n_files == len(nested):
            raise ArchiveError(f"{zip_name} holds only other archives ({', '.join(nested[:3])}); "
                               "nested archives are not supported: unzip it and upload the inner archive, "
                               "or zip the class folders themselves.")
        if not n_files:
            raise ArchiveError(f"{zip_name} is empty: it holds no files. Zip the dataset folder (one sub-folder "
                               "per class, e.g. normal/ and crack/) and upload again.")

        dest = Path(dest)
        created = not dest.exists()
        if not created and not dest.is_dir():
            raise ArchiveError(f"cannot extract into {dest}: it is a file, not a folder")
        if created:
            dest.mkdir(parents=True)
        elif any(dest.iterdir()):
            # Never mix with (or overwrite) what is already there: use a fresh folder inside it.
            dest = Path(tempfile.mkdtemp(prefix="extract-", dir=dest))
            created = True
        base = dest.resolve()
        try:
            budget = limits.max_total_bytes
            for entry in plan:
                out = base.joinpath(*entry.parts)
                # Belt and braces: the plan already refused '..' and absolute names.
                if os.path.commonpath([base, out.resolve()]) != str(base):
                    raise ArchiveError(f"unsafe archive {zip_name}: entry {entry.info.filename!r} points "
                                       "outside the extraction folder; nothing was kept.")
                try:
                    (out if entry.is_dir else out.parent).mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise ArchiveError(f"cannot create the folder for {entry.info.filename!r} from {zip_name} "
                                       f"({err.strerror or err}). Nothing was kept.") from None
                if not entry.is_dir:
                    budget -= _copy_entry(zf, entry, out, budget, zip_name)
        except BaseException:
            _clear(dest, remove_folder=created)
            raise

    # Unwrap a single top folder ("dataset/normal/...") when it holds sub-folders; a single top folder
    # of loose images is one class and stays, so the user gets the "only one class" message.
    top = top_folder(plan)
    root = dest / top if top is not None else dest
    notes = [f"extracted from {zip_name}"]
    return root, notes


def top_folder(plan: list[_Entry]) -> str | None:
    """The single top folder a zip's dataset sits in ("dataset/normal/..."), or None when its entries are the
    class folders themselves; a single top folder of loose images is one class and stays."""
    tops = {e.parts[0] for e in plan}
    if len(tops) == 1:
        (top,) = tops
        if all(len(e.parts) > 1 or e.is_dir for e in plan) and any(
                len(e.parts) > 2 or (e.is_dir and len(e.parts) == 2) for e in plan):
            return top
    return None


def safe_extract_zip(zip_path: str | Path, dest: str | Path, limits: Limits | None = None) -> Path:
    """Extract a zip archive safely into `dest` and return the dataset root inside it.

    Every entry is checked before anything is written: no absolute or '..' paths, no symbolic links or
    special files, at most `max_entries` entries and `max_total_bytes` declared bytes, no entry over 1 MiB
    compressed more than `max_ratio`:1, and no archive whose declared contents exceed 64 MiB
    (`BOMB_FLOOR_BYTES`) and `max_ratio` times the zip's size. While writing, each entry is read in
    chunks and stopped at its declared size and at what is left of `max_total_bytes` (and CRC-checked
    by zipfile), so a header that lies cannot inflate past the limits. `limits=None`: `Limits.from_env()`.
    On any failure everything written is removed and `ArchiveError` says why. If `dest` already holds
    files, a fresh folder is made inside it (nothing is ever overwritten). Nested archives are written
    as plain files, never opened (`load_dataset` lists them as skipped); an archive of only archives is
    an error.
    """
    root, _ = extract_with_notes(zip_path, dest, limits)
    return root


