"""Data in: turn a folder or an uploaded .zip of class folders into an `ImageSet`, safely.

    ds, report = load_dataset("data/magnetic_tile", image_size=64)      # or "upload.zip"
    print(report.summary())                                             # counts + every skipped file
    train_pool, test = split(ds, test_per_class=20, seed=0)
    train = simulate_imbalance(train_pool, ratio=0.1, seed=0, normal_class="normal")
    need = balance_targets(train.counts())                              # synthetic images per class
    protocol_counts(ds.counts(), 20, 0.1)                               # the same counts, without images

Layout: `root/<class>/**/*.{png,jpg,jpeg,bmp,tif,tiff,webp}` (extension case-insensitive). Classes are the
sorted folder names; each image's `source` is its posix path relative to the root ("crack/sub/a.png").

What a user can get wrong never crashes the loader:
- a file that cannot be used (empty, truncated, not an image, too small, a decompression bomb, outside any
  class folder, another extension) is skipped and listed with its reason in `DataReport.skipped`;
- a dataset that cannot be used at all (missing, no class folders, one class, a class with no readable
  image, too many classes) raises `DataError` saying what to do;
- an unsafe or broken archive raises `ArchiveError` before anything leaves the extraction folder.

Decisions (documented here because the UI and the CLI show their effects):
- Channels "auto": 1 when every loaded image is stored grayscale (Pillow modes 1, L, LA, I, I;16*, F);
  any other mode (RGB, palette, CMYK, ...) makes the dataset 3-channel, grayscale images then repeated on
  3 channels. An RGB file whose channels happen to be equal still counts as colour (no pixel inspection).
  Forcing 1 converts colour with Pillow's ITU-R 601-2 luma.
- Every image is squashed to image_size x image_size (aspect ratio not kept, as torchvision's
  Resize((s, s))): LANCZOS when shrinking, BILINEAR when only enlarging. JPEGs are first decoded at a
  reduced DCT scale no smaller than the target (Pillow's draft), which is much faster on big photos.
- Normalisation: EXIF orientation applied; 16-bit (and 32-bit int) grayscale divided by 257 (65535 -> 255,
  scaled, never clipped; values outside 0..65535 are min-max scaled); float images in 0..1 times 255, else
  min-max; palette -> RGB (RGBA when it has transparency); CMYK/YCbCr/LAB/HSV -> RGB; 1-bit -> L (0/255);
  transparency composited on white (defect images are usually photographed on a plain background; white
  keeps transparent margins from reading as dark defects).
- Duplicates: images whose decoded pixels are identical but that sit in two different classes are loaded
  and reported in `DataReport.duplicates` (a labelling problem the user should look at).
- Zip archives: a single top folder is unwrapped when it holds sub-folders; `__MACOSX/`, `.DS_Store`,
  `Thumbs.db`, `desktop.ini` and `._*` are ignored. Nested archives (.zip, .tar, .7z, .rar... inside the
  zip) are written out as plain files but never opened; loading lists them as skipped ("nested archive:
  not supported, unzip it first"), whether the zip was loaded directly or extracted first with
  `safe_extract_zip`. An archive that holds nothing but other archives raises `ArchiveError`. Symbolic links inside a
  dataset folder are followed only for files whose target stays inside the folder; linked folders are not
  followed (both reported as skipped).
"""
from __future__ import annotations

import contextlib
import hashlib
import lzma
import math
import numbers
import os
import re
import shutil
import stat
import struct
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ArchiveError, DataError, ParamError
from .imageset import ImageSet

__all__ = ["Limits", "SkippedFile", "DataReport", "safe_extract_zip", "load_dataset", "load_images", "load_dataset_apart",
           "split",
           "simulate_imbalance", "balance_targets", "detect_normal_class", "resolve_normal_class", "fold_split",
           "protocol_counts", "ProtocolCounts", "resolve_data_path", "IMAGE_EXTENSIONS", "DatasetFiles"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
ARCHIVE_EXTENSIONS = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz", ".gz", ".7z", ".rar")
# Operating-system droppings that are never data (macOS resource forks, Finder/Explorer caches).
JUNK_NAMES = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
MIN_SIDE = 8

REASON_EXTENSION = "not an image extension"
REASON_NESTED = "nested archive: not supported, unzip it first and put its images in class folders"
REASON_EMPTY = "empty file (0 bytes)"
REASON_ROOT = "not in a class folder (move it into one of the class folders)"
REASON_NOT_IMAGE = "not an image (Pillow cannot identify it) despite its extension"
REASON_NO_MEMORY = ("too large to decode in the memory this server gives a dataset reader; downscale the image "
                    "and upload it again")
REASON_CLASS_NAME = ("class folder not loaded: its name holds a backslash or a control character, which Windows "
                     "tools read as a path (a class 'a\\..\\evil' would leave an exported folder); rename the folder")
_BAD_CLASS_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")

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


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class DataReport:
    root: str
    classes: list[str]
    counts: dict[str, int]
    skipped: list[SkippedFile] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    channels: int = 0
    image_size: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able form (tuples become lists)."""
        d = asdict(self)
        d["duplicates"] = [list(p) for p in self.duplicates]
        d["total"] = sum(self.counts.values())
        return d

    def summary(self) -> str:
        """Human text: the class table, then every skipped file with its reason, duplicates and notes."""
        total = sum(self.counts.values())
        lines = [f"Dataset: {self.root}",
                 f"{len(self.classes)} classes, {total} images, {self.image_size}x{self.image_size} px, "
                 f"{self.channels} channel{'s' if self.channels != 1 else ''}"]
        width = max([len("class")] + [len(c) for c in self.classes])
        lines.append(f"  {'class'.ljust(width)}  images")
        for c in self.classes:
            lines.append(f"  {c.ljust(width)}  {self.counts.get(c, 0):>6}")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)} file{'s' if len(self.skipped) != 1 else ''}:")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        else:
            lines.append("Skipped: none")
        if self.duplicates:
            lines.append(f"Identical images in two classes ({len(self.duplicates)}), check their labels:")
            lines += [f"  {a} == {b}" for a, b in self.duplicates]
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def _is_junk(name: str) -> bool:
    return name in JUNK_NAMES or name.startswith("._")


def _is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_EXTENSIONS)


def _limits(limits: Limits | None) -> Limits:
    return limits if limits is not None else Limits.from_env()


# --------------------------------------------------------------------------------------------------
# safe zip extraction
# --------------------------------------------------------------------------------------------------
# Everything zipfile and its decompressors raise on a hostile or damaged archive. zipfile has no single
# error type: a bad header can surface as struct.error, a bad name as UnicodeDecodeError (a ValueError),
# bad deflate data as zlib.error, a truncated stream as EOFError, an unknown method as NotImplementedError,
# an encrypted entry as RuntimeError.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, struct.error, ValueError,
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


def _shorten(text: str, keep: int = 80) -> str:
    """A path for a message: at most `keep` characters (a hostile name can be 100 KB long)."""
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-keep // 2:]}"


@dataclass
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def _plan(zf: zipfile.ZipFile, zip_name: str, limits: Limits, archive_size: int) -> tuple[list[_Entry], list[str]]:
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
        if not parts or any(_is_junk(p) for p in parts):
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
            raise ArchiveError(too_deep_message(zip_name, _shorten(raw), depth, limits.max_depth))
        if is_dir:
            plan.append(_Entry(info, parts, True))
            dirs.update(parts[:i] for i in range(1, len(parts) + 1))
            _check_folders(zip_name, len(dirs), limits)
            continue
        if _is_archive_name(parts[-1]):
            nested.append("/".join(parts))
        if info.file_size > _MIB and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ArchiveError(f"{zip_name} looks like a zip bomb: entry {raw!r} expands {ratio:.0f}:1 "
                               f"(limit {limits.max_ratio:.0f}:1) to {_human(info.file_size)}; nothing was "
                               "extracted.")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(f"{zip_name} would expand to more than {_human(limits.max_total_bytes)} (the limit); "
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
                           f"(limit {limits.max_ratio:.0f}:1) to {_human(total)}; nothing was extracted.")
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
    except _ZIP_ERRORS as err:
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
                except _ZIP_ERRORS as err:  # CRC mismatch, bad deflate data, truncated stream...
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


def _extract(zip_path: str | Path, dest: str | Path, limits: Limits | None) -> tuple[Path, list[str]]:
    """`safe_extract_zip` plus notes for `load_dataset`'s report."""
    limits = _limits(limits)
    zip_path = Path(zip_path)
    zip_name = zip_path.name
    try:
        size = zip_path.stat().st_size
    except OSError:
        raise ArchiveError(f"archive not found: {zip_path}") from None
    if not zip_path.is_file():
        raise ArchiveError(f"{zip_path} is not a file; give the path of a .zip archive")
    if size > limits.max_archive_bytes:
        raise ArchiveError(f"{zip_name} is {_human(size)}, more than the limit of "
                           f"{_human(limits.max_archive_bytes)}; upload a smaller archive.")
    if size == 0:
        raise ArchiveError(f"{zip_name} is an empty file (0 bytes), not a zip archive; upload it again.")
    try:
        zf = zipfile.ZipFile(zip_path)
    except _ZIP_ERRORS as err:
        raise ArchiveError(f"{zip_name} is not a zip archive, or it is corrupt or truncated ({err}); "
                           "re-create it with a zip tool and upload it again.") from None
    with zf:
        try:
            plan, nested = _plan(zf, zip_name, limits, size)
        except _ZIP_ERRORS as err:  # e.g. a name that cannot be decoded
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
    top = _top_folder(plan)
    root = dest / top if top is not None else dest
    notes = [f"extracted from {zip_name}"]
    return root, notes


def _top_folder(plan: list[_Entry]) -> str | None:
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
    root, _ = _extract(zip_path, dest, limits)
    return root


# --------------------------------------------------------------------------------------------------
# reading images
# --------------------------------------------------------------------------------------------------
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


def _is_gray_mode(mode: str) -> bool:
    return mode in _GRAY_MODES or mode.startswith("I;16")


@contextlib.contextmanager
def _pillow_guard(max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit set from `Limits`, and its warning raised as an error."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow warns (UserWarning) about damaged metadata it works around; the file then loads or is
            # skipped with a reason, so the warning would only be noise in logs.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


_STRIP = 256   # rows converted at a time: float copies stay a strip, never the whole image


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale -> 8-bit L, scaled (never clipped), a strip of rows at a time."""
    a = np.asarray(im)
    out = np.empty(a.shape, np.uint8)
    strips = [slice(y, y + _STRIP) for y in range(0, a.shape[0], _STRIP)]
    if im.mode == "F":
        def clean(part: np.ndarray) -> np.ndarray:
            return np.nan_to_num(part.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        ranges = [(float(c.min()), float(c.max())) for c in (clean(a[r]) for r in strips) if c.size]
        lo, hi = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else (0.0, 0.0)
    else:
        lo, hi = int(a.min()), int(a.max())
    for rows in strips:
        if im.mode == "F":
            part = clean(a[rows])
            if lo >= 0 and hi <= 1:
                part = part * 255.0
            elif not (lo >= 0 and hi <= 255):
                part = (part - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(part)
        else:
            part = a[rows].astype(np.int64)
            if lo >= 0 and hi <= 65535:
                part = part / 257.0  # 65535 -> 255 exactly, proportional in between
            else:
                part = (part - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros(part.shape)
        out[rows] = np.clip(np.rint(part), 0, 255)
    return Image.fromarray(out, "L")


def _on_white(im: Image.Image, mode: str) -> Image.Image:
    """Composite an image with alpha (mode LA or RGBA) over white, a strip of rows at a time."""
    a = np.asarray(im.convert(mode))
    out = np.empty(a.shape[:2] + (a.shape[2] - 1,), np.uint8)
    for y in range(0, a.shape[0], _STRIP):
        part = a[y:y + _STRIP].astype(np.float32)
        alpha = part[..., -1:] / 255.0
        out[y:y + _STRIP] = np.rint(part[..., :-1] * alpha + 255.0 * (1.0 - alpha))
    return Image.fromarray(out[..., 0] if mode == "LA" else out, "L" if mode == "LA" else "RGB")


def _normalise(im: Image.Image, flags: dict[str, int]) -> tuple[Image.Image, bool]:
    """Any Pillow mode -> (L or RGB image, was stored grayscale). Counts what it did in `flags`."""
    mode = im.mode
    gray = _is_gray_mode(mode)
    if mode == "1":
        return im.convert("L"), True
    if mode == "L":
        return im, True
    if mode in ("I", "F") or mode.startswith("I;"):
        flags["high_depth"] += 1
        return _high_depth_to_l(im), True
    if mode in ("LA", "La"):
        flags["alpha"] += 1
        return _on_white(im, "LA"), True
    if mode in ("P", "PA"):
        if mode == "PA" or "transparency" in im.info:
            im = im.convert("RGBA")
        else:
            return im.convert("RGB"), gray
    if im.mode in ("RGBA", "RGBa"):
        flags["alpha"] += 1
        return _on_white(im, "RGBA"), gray
    if im.mode == "RGB":
        return im, gray
    return im.convert("RGB"), gray  # CMYK, YCbCr, LAB, HSV, RGBX


# EXIF orientation -> the transpose that makes the image upright (what ImageOps.exif_transpose applies); used
# on the already reduced image, so a rotated photo never costs a full-resolution copy.
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1 = as stored); a damaged EXIF block leaves the image as stored rather than losing it."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001  (EXIF parsers raise many types on damaged metadata)
        return 1
    return value if value in _ORIENT else 1


# Bytes per pixel Pillow holds for a mode (every mode of 2 to 4 bands takes 4), and the conversion a mode needs
# before it can be reduced (Image.reduce has no 1-bit, palette or 16-bit support).
def _bytes_per_pixel(mode: str) -> int:
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def _reducible(im: Image.Image) -> Image.Image:
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I;16"):
        return im.convert("I")
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    return im


def _pixel_hash(im: Image.Image) -> str:
    """A hash of the decoded pixels (mode, size, bytes), read a strip of rows at a time."""
    h = hashlib.blake2b(f"{im.mode}{im.size}".encode(), digest_size=16)
    for y in range(0, im.height, _STRIP):
        h.update(im.crop((0, y, im.width, min(im.height, y + _STRIP))).tobytes())
    return h.hexdigest()


def _read_image(path: Path, size: int, flags: dict[str, int],
                max_decode_bytes: int = Limits.max_decode_bytes) -> tuple[Image.Image, bool, str]:
    """Decode, normalise and resize one file. Returns (resized L/RGB image, grayscale?, pixel hash).

    Memory stays near the decoded image itself: a JPEG is decoded at a reduced DCT scale (`draft`), any
    other image is box-reduced by a whole factor (`reduce`) to no less than twice the target before the
    float work of normalising; a decode that would need more than `max_decode_bytes` is refused.
    Raises `_Skip` with the reason when the file cannot be used.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit and w * h > limit:
                raise _Skip(_bomb_reason(w, h, limit))
            if min(w, h) < MIN_SIDE:
                raise _Skip(f"too small: {w}x{h} px (at least {MIN_SIDE} px on a side)")
            if im.format == "JPEG":
                im.draft(im.mode, (size, size))  # decode at a reduced DCT scale, never below `size`
            pixels = im.width * im.height
            need = pixels * (_bytes_per_pixel(im.mode) + (4 if im.mode in ("P", "1") or im.mode.startswith("I;16")
                                                          else 0))
            if need > max_decode_bytes:
                raise _Skip(f"too large to decode: {w}x{h} px in mode {im.mode} needs {_human(need)} of memory, "
                            f"more than the limit of {_human(max_decode_bytes)}; downscale the image and upload "
                            "it again")
            im.load()
            digest = _pixel_hash(im)
            orientation = _orientation(im)
            fx, fy = max(1, im.width // (2 * size)), max(1, im.height // (2 * size))
            if fx > 1 or fy > 1:
                im = _reducible(im).reduce((fx, fy))
            if orientation != 1:
                im = im.transpose(_ORIENT[orientation])
                flags["rotated"] += 1
            norm, gray = _normalise(im, flags)
            shrink = norm.width > size or norm.height > size
            resample = Image.Resampling.LANCZOS if shrink else Image.Resampling.BILINEAR
            return norm.resize((size, size), resample), gray, digest
    except _Skip:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _Skip(_bomb_reason_of(path, err)) from None
    except UnidentifiedImageError:
        raise _Skip(REASON_NOT_IMAGE) from None
    except MemoryError:
        raise _Skip(REASON_NO_MEMORY) from None
    except Exception as err:  # noqa: BLE001
        if isinstance(err, OSError) and err.errno is not None:  # permissions, I/O: not the file's content
            raise _Skip(f"cannot read the file ({err.strerror or err})") from None
        # Decoders fail on damaged files with many exception types (OSError for truncation, SyntaxError
        # for broken PNG chunks, ValueError, struct.error, EOFError...). Any failure to decode one user
        # file means that file is unusable, not that loading should stop.
        raise _Skip(f"truncated or corrupt image ({type(err).__name__}: {err})") from None


def _bomb_reason(w: int, h: int, limit: int) -> str:
    return (f"decompression bomb: {w}x{h} = {w * h} pixels is over the limit of {limit}; downscale the image "
            "and upload it again")


def _bomb_reason_of(path: Path, err: BaseException) -> str:
    """The same reason when Pillow's own guard stopped `Image.open`: its message has no size and no
    remedy, so read the size again from the header alone (no pixel is decoded with the guard off)."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001  (the header was readable a moment ago; keep Pillow's words if not)
        return f"decompression bomb: {err}"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return _bomb_reason(w, h, limit)


class _Skip(Exception):
    """A file that cannot be used; carries the reason shown to the user."""


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def _parse_channels(channels: str | int) -> str | int:
    if isinstance(channels, str) and channels.strip().lower() == "auto":
        return "auto"
    if isinstance(channels, bool):
        raise ParamError(f"channels must be 'auto', 1 or 3, got {channels!r}")
    try:
        c = int(channels)
    except (TypeError, ValueError):
        raise ParamError(f"channels must be 'auto', 1 or 3, got {channels!r}") from None
    if c not in (1, 3) or (isinstance(channels, float) and channels != c):
        raise ParamError(f"channels must be 'auto', 1 or 3, got {channels!r}")
    return c


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def _scan(root: Path) -> tuple[list[str], list[SkippedFile], list[str], int]:
    """Class folders and their candidate files (sorted); files at the root and links are skipped."""
    skipped: list[SkippedFile] = []
    notes: list[str] = []
    classes: list[str] = []
    ignored: list[str] = []
    root_images = 0
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as err:
        raise DataError(f"cannot read the dataset folder {root}: {err.strerror or err}") from None
    for e in entries:
        if _is_junk(e.name):
            continue
        if e.is_symlink() and e.is_dir():
            skipped.append(SkippedFile(e.name + "/", "symbolic link to a folder (not followed)"))
        elif e.is_dir(follow_symlinks=False):
            if e.name.startswith("."):
                ignored.append(e.name)
            elif _BAD_CLASS_CHARS.search(e.name):
                skipped.append(SkippedFile(e.name.encode("unicode_escape").decode("ascii") + "/", REASON_CLASS_NAME))
            else:
                classes.append(e.name)
        else:
            if Path(e.name).suffix.lower() in IMAGE_EXTENSIONS:
                root_images += 1
            skipped.append(SkippedFile(e.name, REASON_NESTED if _is_archive_name(e.name) else REASON_ROOT))
    if ignored:
        notes.append(f"ignored hidden folders: {', '.join(ignored)}")
    return classes, skipped, notes, root_images


def _class_files(root: Path, cls: str, skipped: list[SkippedFile], hidden: list[str],
                 max_depth: int = 32) -> list[tuple[str, Path]]:
    """Candidate image files of one class, as (source path, file path), sorted by source path. Folders
    nested deeper than `max_depth` below the root are not entered (skipped with the reason)."""
    out: list[tuple[str, Path]] = []
    base = root / cls
    def unreadable(err: OSError) -> None:
        where = Path(err.filename).relative_to(root).as_posix() if err.filename else cls
        skipped.append(SkippedFile(where + "/", f"cannot read the folder ({err.strerror or err})"))

    for dirpath, dirnames, filenames in os.walk(base, onerror=unreadable, followlinks=False):
        d = Path(dirpath)
        rel_dir = d.relative_to(root).as_posix()
        keep = []
        for name in sorted(dirnames):
            if name.startswith(".") or name in JUNK_NAMES:
                hidden.append(f"{rel_dir}/{name}")
            elif rel_dir.count("/") + 2 > max_depth:
                skipped.append(SkippedFile(_shorten(f"{rel_dir}/{name}/"),
                                           f"nested more than {max_depth} folders deep (not read)"))
            elif (d / name).is_symlink():
                skipped.append(SkippedFile(f"{rel_dir}/{name}/", "symbolic link to a folder (not followed)"))
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if _is_junk(name):
                continue
            rel = f"{rel_dir}/{name}"
            p = d / name
            if p.is_symlink() and not (p.exists() and _inside(p, root)):
                skipped.append(SkippedFile(rel, "symbolic link pointing outside the dataset folder (not followed)"))
                continue
            if _is_archive_name(name):
                skipped.append(SkippedFile(rel, REASON_NESTED))
            elif Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(SkippedFile(rel, REASON_EXTENSION))
            else:
                out.append((rel, p))
    out.sort(key=lambda t: t[0])
    return out


def _load_folder(root: Path, image_size: int, channels: str | int, limits: Limits,
                 progress: Callable[[int, int], None] | None, shown_root: str) -> tuple[ImageSet, DataReport]:
    classes, skipped, notes, root_images = _scan(root)
    if not classes:
        hint = (f" ({root_images} image{'s' if root_images != 1 else ''} lie directly in it; move them into "
                "class folders)" if root_images else "")
        raise DataError(f"no class folders found in {shown_root}{hint}: DefectAug expects one sub-folder per "
                        "class, e.g. normal/*.png and crack/*.png")
    if len(classes) > limits.max_classes:
        raise DataError(f"found {len(classes)} class folders in {shown_root}, more than the limit of "
                        f"{limits.max_classes}; check that it is the dataset folder (one sub-folder per class) "
                        "and not a folder above or below it")
    if len(classes) < 2:
        only = classes[0]
        hint = ""
        if any(p.is_dir() for p in (root / only).iterdir()):
            hint = f" (if '{only}' holds the class folders, load '{only}' itself)"
        renamed = [s.path for s in skipped if s.reason == REASON_CLASS_NAME]
        if renamed:
            hint += (f"; {len(renamed)} folder(s) were not loaded because their names hold a backslash or a "
                     f"control character ({', '.join(renamed[:3])}): rename them")
        raise DataError(f"found only one class '{only}'; DefectAug needs at least two, e.g. normal/ and crack/"
                        f"{hint}")

    hidden: list[str] = []
    per_class = {c: _class_files(root, c, skipped, hidden, limits.max_depth) for c in classes}
    if hidden:
        notes.append(f"ignored hidden folders: {', '.join(hidden[:10])}" + (" ..." if len(hidden) > 10 else ""))
    total = sum(len(v) for v in per_class.values())
    flags = {"rotated": 0, "high_depth": 0, "alpha": 0}
    loaded: list[tuple[int, str, Image.Image, bool]] = []
    seen: dict[str, dict[int, str]] = {}  # pixel hash -> {class index: first path in that class}
    duplicates: list[tuple[str, str]] = []
    same_class_dups = 0
    done = 0
    if progress is not None:
        progress(0, total)
    with _pillow_guard(limits.max_image_pixels):
        for ci, cls in enumerate(classes):
            before = len(loaded)
            for rel, p in per_class[cls]:
                try:
                    if p.stat().st_size == 0:
                        raise _Skip(REASON_EMPTY)
                    img, gray, digest = _read_image(p, image_size, flags, limits.max_decode_bytes)
                except _Skip as why:
                    skipped.append(SkippedFile(rel, str(why)))
                except OSError as err:
                    skipped.append(SkippedFile(rel, f"cannot read the file ({err.strerror or err})"))
                else:
                    loaded.append((ci, rel, img, gray))
                    where = seen.setdefault(digest, {})
                    if ci in where:
                        same_class_dups += 1
                    else:
                        if where:  # one pair per class pair: the first copy of each class
                            duplicates.append((next(iter(where.values())), rel))
                        where[ci] = rel
                done += 1
                if progress is not None:
                    progress(done, total)
            if len(loaded) == before:
                raise DataError(_empty_class_message(cls, per_class[cls], skipped))

    n_gray = sum(1 for t in loaded if t[3])
    if channels == "auto":
        c = 1 if n_gray == len(loaded) else 3
        notes.append("channels auto: 1 (every image is grayscale)" if c == 1 else
                     f"channels auto: 3 ({len(loaded) - n_gray} of {len(loaded)} images are colour"
                     + (f"; {n_gray} grayscale ones repeated on 3 channels)" if n_gray else ")"))
    else:
        c = int(channels)
        if c == 1 and n_gray < len(loaded):
            notes.append(f"{len(loaded) - n_gray} colour images converted to grayscale (ITU-R 601-2 luma)")
    mode = "L" if c == 1 else "RGB"
    images = np.stack([np.asarray(t[2].convert(mode)) for t in loaded])
    if c == 1:
        images = images[..., None]
    labels = np.array([t[0] for t in loaded], dtype=np.int64)
    ds = ImageSet(images.astype(np.uint8, copy=False), labels, classes, [t[1] for t in loaded])

    notes.append(f"images squashed to {image_size}x{image_size} px (aspect ratio not kept)")
    if flags["rotated"]:
        notes.append(f"{flags['rotated']} images rotated upright from their EXIF orientation")
    if flags["high_depth"]:
        notes.append(f"{flags['high_depth']} high bit-depth images scaled to 8 bits")
    if flags["alpha"]:
        notes.append(f"{flags['alpha']} images with transparency composited on white")
    if same_class_dups:
        notes.append(f"{same_class_dups} images are exact copies of another image in the same class")
    report = DataReport(root=shown_root, classes=list(classes), counts=ds.counts(), skipped=skipped,
                        duplicates=duplicates, channels=c, image_size=image_size, notes=notes)
    return ds, report


def _empty_class_message(cls: str, files: list[tuple[str, Path]], skipped: list[SkippedFile]) -> str:
    prefix = cls + "/"
    mine = [s for s in skipped if s.path.startswith(prefix)]
    if not mine:
        why = "the folder is empty"
    else:
        shown = "; ".join(f"{s.path} ({s.reason})" for s in mine[:3])
        more = f"; and {len(mine) - 3} more" if len(mine) > 3 else ""
        why = f"its {len(mine)} file{'s were' if len(mine) != 1 else ' was'} skipped: {shown}{more}"
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    return (f"class folder '{cls}' has no readable image: {why}. Put images ({exts}) in it, "
            "or remove the folder.")


def load_dataset(path: str | Path, image_size: int = 64, channels: str | int = "auto",
                 limits: Limits | None = None, extract_dir: str | Path | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[ImageSet, DataReport]:
    """Load a folder of class folders, or a .zip of one, as an `ImageSet` of image_size x image_size.

    `channels`: "auto" (1 when every image is grayscale, else 3), 1 or 3. A zip is extracted into
    `extract_dir` (kept) or into a temporary folder removed after loading. `progress(done, total)` is
    called after each file. Unusable files are skipped and listed in the report; a dataset that cannot be
    used raises `DataError` (or `ArchiveError` for the archive) with what to do.
    """
    limits = _limits(limits)
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral) \
            or not MIN_SIDE <= int(image_size) <= 4096:
        raise ParamError(f"image_size must be a whole number of pixels between {MIN_SIDE} and 4096, "
                         f"got {image_size!r}")
    image_size = int(image_size)
    channels = _parse_channels(channels)
    path = Path(path)
    try:
        exists = path.exists()
    except (OSError, ValueError):
        exists = False
    if not exists:
        raise DataError(f"dataset not found: {path}; give a folder of class folders or a .zip of one")
    if path.is_dir():
        return _load_folder(path, image_size, channels, limits, progress, str(path))
    if not (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        raise DataError(f"{path} is a file but not a .zip archive; give a folder with one sub-folder per "
                        "class, or a .zip of such a folder")
    if extract_dir is not None:
        root, znotes = _extract(path, extract_dir, limits)
        ds, report = _load_folder(root, image_size, channels, limits, progress, str(root))
    else:
        with tempfile.TemporaryDirectory(prefix="defectaug-zip-") as tmp:
            root, znotes = _extract(path, tmp, limits)
            ds, report = _load_folder(root, image_size, channels, limits, progress, str(path))
    report.notes = znotes + report.notes
    return ds, report


class DatasetFiles:
    """The original image files of a dataset (a folder, or a .zip of one) by their source path, as
    `load_dataset` names them ("crack/sub/a.png"), read byte for byte and never decoded: what an export copies.

        with DatasetFiles("data/tiles") as files:
            files.path("crack/a.png")            # the file on disk (None inside a zip)
            with files.open("crack/a.png") as fh: ...
            files.sources()                      # every candidate image file, as the loader lists them

    A source that names a place outside the dataset ('..', an absolute path, a link leading out) is refused
    like a missing file (`FileNotFoundError`)."""

    def __init__(self, path: str | Path, limits: Limits | None = None) -> None:
        self.root = Path(path)
        self._zip: zipfile.ZipFile | None = None
        self._entries: dict[str, zipfile.ZipInfo] = {}
        if self.root.is_dir():
            return
        if not self.root.is_file():
            raise DataError(f"dataset not found: {self.root}")
        limits = _limits(limits)
        try:
            self._zip = zipfile.ZipFile(self.root)
            plan, _ = _plan(self._zip, self.root.name, limits, self.root.stat().st_size)
        except _ZIP_ERRORS as err:
            self.close()
            raise ArchiveError(f"{self.root.name} is not a readable zip archive ({err})") from None
        except ArchiveError:
            self.close()
            raise
        skip = 1 if _top_folder(plan) is not None else 0
        for e in plan:
            if not e.is_dir and len(e.parts) - skip >= 2:
                self._entries["/".join(e.parts[skip:])] = e.info

    def __enter__(self) -> "DatasetFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    @staticmethod
    def _check(source: str) -> tuple[str, ...]:
        parts = tuple(source.split("/"))
        if not source or source.startswith("/") or "\\" in source or "\x00" in source or ".." in parts \
                or "" in parts or len(parts) < 2:
            raise FileNotFoundError(f"{source!r} is not a file of a class folder of the dataset")
        return parts

    def path(self, source: str) -> Path | None:
        """The file of `source` on disk (None when the dataset is a zip); FileNotFoundError when it is gone."""
        parts = self._check(source)
        if self._zip is not None:
            if source not in self._entries:
                raise FileNotFoundError(f"{source} is not in {self.root.name}")
            return None
        p = self.root.joinpath(*parts)
        if not p.is_file() or not _inside(p, self.root):
            raise FileNotFoundError(f"{p} is missing")
        return p

    def size(self, source: str) -> int:
        p = self.path(source)
        return self._entries[source].file_size if p is None else p.stat().st_size

    def open(self, source: str):
        """A binary file object of `source`'s bytes, exactly as stored."""
        p = self.path(source)
        return open(p, "rb") if p is not None else self._zip.open(self._entries[source])

    def sources(self) -> list[str]:
        """Every candidate image file (an image extension inside a class folder), sorted: what `load_dataset`
        tries to read; the files it skipped are in its report."""
        if self._zip is not None:
            return sorted(s for s in self._entries if Path(s).suffix.lower() in IMAGE_EXTENSIONS
                          and not any(part.startswith(".") for part in s.split("/")[:-1]))   # hidden folders
        classes, _, _, _ = _scan(self.root)
        out: list[str] = []
        for cls in classes:
            out += [rel for rel, _ in _class_files(self.root, cls, [], [])]
        return sorted(out)


def load_images(folder: str | Path, image_size: int, channels: int,
                limits: Limits | None = None) -> tuple[np.ndarray, list[str], list[SkippedFile]]:
    """Every image under `folder` (any depth, no classes), decoded, normalised and resized exactly as
    `load_dataset` does for a run of this image size and channel count: (uint8 [N, S, S, C], file paths relative
    to the folder in sorted order, skipped files with their reason). For scoring new images with a trained
    classifier (`core.predict`)."""
    limits = _limits(limits)
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give a folder of images to score")
    skipped: list[SkippedFile] = []
    files: list[tuple[str, Path]] = []

    def unreadable(err: OSError) -> None:
        skipped.append(SkippedFile(str(err.filename or root) + "/", f"cannot read the folder ({err.strerror or err})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not (n.startswith(".") or n in JUNK_NAMES
                                                          or (d / n).is_symlink()))
        for name in sorted(filenames):
            rel, p = (d / name).relative_to(root).as_posix(), d / name
            if _is_junk(name) or name.startswith("."):
                continue
            if p.is_symlink() and not (p.exists() and _inside(p, root)):
                skipped.append(SkippedFile(rel, "symbolic link pointing outside the folder (not followed)"))
            elif Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(SkippedFile(rel, REASON_NESTED if _is_archive_name(name) else REASON_EXTENSION))
            else:
                files.append((rel, p))
        if len(files) > limits.max_entries:
            raise DataError(f"{root} holds more than {limits.max_entries} images; score it in parts")
    files.sort(key=lambda t: t[0])
    mode = "L" if int(channels) == 1 else "RGB"
    flags = {"rotated": 0, "high_depth": 0, "alpha": 0}
    images, names = [], []
    with _pillow_guard(limits.max_image_pixels):
        for rel, p in files:
            try:
                if p.stat().st_size == 0:
                    raise _Skip(REASON_EMPTY)
                img, _, _ = _read_image(p, int(image_size), flags)
            except _Skip as why:
                skipped.append(SkippedFile(rel, str(why)))
            except OSError as err:
                skipped.append(SkippedFile(rel, f"cannot read the file ({err.strerror or err})"))
            else:
                images.append(np.asarray(img.convert(mode)))
                names.append(rel)
    if not images:
        return np.zeros((0, image_size, image_size, int(channels)), np.uint8), [], skipped
    arr = np.stack(images).astype(np.uint8, copy=False)
    return (arr[..., None] if mode == "L" else arr), names, skipped


READER_MEMORY_BYTES = 4 * 1024 ** 3     # address space the separate reader process may take (load_dataset_apart)


def _reader_main() -> None:
    """Body of the reader process (`load_dataset_apart`): arguments and result pickled over stdin/stdout."""
    import pickle
    import resource
    import sys
    path, image_size, channels, memory = pickle.load(sys.stdin.buffer)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        out = ("ok", load_dataset(path, image_size=image_size, channels=channels))
    except (DataError, ParamError) as err:
        out = ("error", err)
    except MemoryError:
        out = ("memory", None)
    pickle.dump(out, sys.stdout.buffer)


def load_dataset_apart(path: str | Path, image_size: int = 64, channels: str | int = "auto",
                       memory: int = READER_MEMORY_BYTES) -> tuple[ImageSet, DataReport]:
    """`load_dataset` in a separate process (what the app's Data page previews with): whatever a hostile file
    costs to decode stays there, bounded to `memory` bytes of address space, and the app's own process only
    receives the small image_size x image_size result. A reader that runs out of memory or dies raises
    `DataError` saying so; the errors of `load_dataset` arrive as they are."""
    import pickle
    import subprocess
    import sys
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", "from core.data import _reader_main; _reader_main()"],
                          input=pickle.dumps((str(path), int(image_size), channels, int(memory))),
                          capture_output=True, cwd=root, env=env)
    try:
        kind, value = pickle.loads(proc.stdout) if proc.returncode == 0 else ("died", None)
    except (pickle.UnpicklingError, EOFError, ValueError):
        kind, value = "died", None
    if kind == "ok":
        return value
    if kind == "error":
        raise value
    if kind == "memory" or proc.returncode < 0 or b"MemoryError" in proc.stderr:
        raise DataError(f"reading {Path(path).name} took more than the {_human(memory)} of memory a dataset "
                        "preview may use, and was stopped; check for huge images (downscale them) or load a "
                        "smaller dataset")
    tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    raise RuntimeError(f"the dataset reader process failed (exit code {proc.returncode}): {tail[0]}")


# --------------------------------------------------------------------------------------------------
# split, imbalance, targets
# --------------------------------------------------------------------------------------------------
def _class_rng(seed: int, name: str) -> np.random.Generator:
    # Seeded per class by name, so one class's draw does not change when another class is added.
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def _test_count(n: int, test_per_class: int | float) -> int:
    """Test images a class of `n` images gives: int k -> min(k, n // 2); fraction f -> min(round(f n), n // 2)."""
    k = int(test_per_class) if isinstance(test_per_class, numbers.Integral) else int(round(float(test_per_class) * n))
    return min(k, n // 2)


def _check_test_per_class(test_per_class) -> None:
    if isinstance(test_per_class, bool) or not isinstance(test_per_class, numbers.Real):
        raise ParamError(f"test_per_class must be a count (e.g. 20) or a fraction in (0, 1), got {test_per_class!r}")
    if isinstance(test_per_class, numbers.Integral) and test_per_class <= 0:
        raise ParamError(f"test_per_class must be at least 1 image per class, got {test_per_class}")
    if not isinstance(test_per_class, numbers.Integral) and not (0 < float(test_per_class) < 1):
        raise ParamError(f"a fractional test_per_class must be between 0 and 1 (exclusive), got {test_per_class}; "
                         "use a whole number for a count per class")


def split(ds: ImageSet, test_per_class: int | float = 20, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """(train_pool, test), stratified and fixed by `seed`; both keep the original image order.

    int k: min(k, n // 2) test images per class; float f in (0, 1): round(f * n), capped at n // 2.
    A class of one image keeps it in train (0 test images).
    """
    _check_test_per_class(test_per_class)
    test_idx: list[np.ndarray] = []
    for ci, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.labels == ci)
        k = _test_count(len(idx), test_per_class)
        if k:
            test_idx.append(idx[_class_rng(seed, name).permutation(len(idx))[:k]])
    chosen = np.sort(np.concatenate(test_idx)) if test_idx else np.zeros(0, np.int64)
    mask = np.zeros(len(ds), bool)
    mask[chosen] = True
    return ds.subset(np.flatnonzero(~mask)), ds.subset(np.flatnonzero(mask))


def fold_split(ds: ImageSet, folds: int, seed: int = 0) -> list[tuple[ImageSet, ImageSet]]:
    """Stratified K-fold: [(train_pool, test)] per fold, every image in exactly one fold's test part. Each
    class's images are shuffled (fixed by `seed`, per class by name) and dealt into `folds` parts of sizes
    that differ by at most one; a class with fewer images than folds is missing from some test parts."""
    if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
        raise ParamError(f"folds must be a whole number of at least 2, got {folds!r}")
    parts: list[list[np.ndarray]] = [[] for _ in range(folds)]
    for ci, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.labels == ci)
        for k, chunk in enumerate(np.array_split(idx[_class_rng(seed, name).permutation(len(idx))], folds)):
            parts[k].append(chunk)
    out = []
    for k in range(folds):
        test = np.sort(np.concatenate(parts[k])) if parts[k] else np.zeros(0, np.int64)
        mask = np.zeros(len(ds), bool)
        mask[test] = True
        out.append((ds.subset(np.flatnonzero(~mask)), ds.subset(test)))
    return out


def _check_ratio(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) <= 1):
        raise ParamError(f"{what} must be in (0, 1], e.g. 0.1 for one minority image per ten majority images; "
                         f"got {value!r}")
    return float(value)


# Words of a class name that say "no defect" (MT_Free, good, OK, pass, defect_free, no_defect), unless the
# name also says the opposite (not_ok, no_good, fail).
NORMAL_WORDS = frozenset({"normal", "good", "ok", "okay", "free", "success", "successful", "pass", "passed",
                          "clean", "intact", "nominal", "nodefect", "defectfree", "nodefects"})
NEGATIONS = frozenset({"not", "no", "non", "bad", "ng", "nok", "fail", "failed", "failure"})
_WORD = re.compile(r"[a-z]+")


def _says_normal(name: str) -> bool:
    words = set(_WORD.findall(name.lower()))
    return "".join(_WORD.findall(name.lower())) in NORMAL_WORDS or (bool(words & NORMAL_WORDS)
                                                                    and not words & NEGATIONS)


def detect_normal_class(counts: dict[str, int]) -> str:
    """The class that holds the normal (defect-free) images: one named like normal / good / ok / free /
    success / pass (the largest of them if several are), else the largest class."""
    if not counts:
        raise DataError("the dataset has no classes")
    pool = [c for c in counts if _says_normal(c)] or list(counts)
    return max(pool, key=lambda c: counts[c])      # first in class order on ties


def resolve_normal_class(counts: dict[str, int], requested: str | None) -> str:
    """`requested` when it is one of the classes (ParamError otherwise), else `detect_normal_class`."""
    if requested in (None, "", "auto"):
        return detect_normal_class(counts)
    if requested not in counts:
        raise ParamError(f"unknown normal class {requested!r}; the classes are {', '.join(counts)}")
    return requested


def imbalance_cap(counts: dict[str, int], ratio: float, normal_class: str) -> int:
    """Most images a defect class keeps: max(1, floor(ratio x normal count))."""
    # The epsilon keeps 0.29 * 100 (= 28.999999999999996 in floating point) at 29.
    return max(1, math.floor(_check_ratio(ratio, "ratio") * counts[normal_class] + 1e-9))


def simulate_imbalance(ds: ImageSet, ratio: float, seed: int = 0, normal_class: str | None = None) -> ImageSet:
    """Keep the normal class whole; cut every defect class to at most max(1, floor(ratio x normal count)).

    The normal class is the one named (else `detect_normal_class`): it is kept whole even when it is not
    the largest class, so a set with more defect than normal images still gets rare defects. Which images
    are kept is a random subset fixed by `seed`; the result keeps the original image order.
    """
    counts = ds.counts()
    if not ds.classes:
        return ds
    normal = resolve_normal_class(counts, normal_class)
    cap = imbalance_cap(counts, ratio, normal)
    keep: list[np.ndarray] = []
    for ci, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.labels == ci)
        if name != normal and len(idx) > cap:
            idx = _class_rng(seed, name).choice(idx, size=cap, replace=False)
        keep.append(idx)
    return ds.subset(np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64))


def balance_targets(counts: dict[str, int], target_ratio: float = 1.0) -> dict[str, int]:
    """Synthetic images each class needs to reach ceil(target_ratio * largest count); 0 when already there."""
    target_ratio = _check_ratio(target_ratio, "target_ratio")
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ParamError(f"class counts must be whole numbers >= 0, got {n!r} for {name!r}")
    if not counts:
        return {}
    # The epsilon keeps 0.7 * 10 (= 7.000000000000001) at 7 instead of 8.
    target = math.ceil(target_ratio * max(counts.values()) - 1e-9)
    return {name: max(0, target - int(n)) for name, n in counts.items()}


@dataclass
class ProtocolCounts:
    """What a run's protocol does to each class, from the class counts alone (no image is read):
    the real test images held out, the training pool, what the simulated imbalance keeps, and the
    synthetic images each class then needs. `split` + `simulate_imbalance` + `balance_targets` give
    exactly these counts, so a preview (the Data and Synthesize pages, the memory check) is the run."""
    normal_class: str
    images: dict[str, int]
    test: dict[str, int]
    pool: dict[str, int]
    train: dict[str, int]
    needed: dict[str, int]

    def rows(self) -> list[dict]:
        return [{"class": c, "normal": c == self.normal_class, "images": self.images[c], "test": self.test[c],
                 "train": self.train[c], "synthetic": self.needed[c]} for c in self.images]


def protocol_counts(counts: dict[str, int], test_per_class: int | float = 20, ratio: float | None = None,
                    normal_class: str | None = None, target_ratio: float = 1.0) -> ProtocolCounts:
    """Per class: test images, training pool, after the imbalance (ratio None: none), synthetic needed."""
    _check_test_per_class(test_per_class)
    normal = resolve_normal_class(counts, normal_class)
    test = {c: _test_count(n, test_per_class) for c, n in counts.items()}
    pool = {c: n - test[c] for c, n in counts.items()}
    train = dict(pool)
    if ratio is not None:
        cap = imbalance_cap(pool, ratio, normal)
        train = {c: (n if c == normal else min(n, cap)) for c, n in pool.items()}
    return ProtocolCounts(normal, dict(counts), test, pool, train, balance_targets(train, target_ratio))


# --------------------------------------------------------------------------------------------------
# user-typed paths
# --------------------------------------------------------------------------------------------------
def resolve_data_path(user_path: str, roots: list[str | Path]) -> Path:
    """The real path of a folder (or .zip) typed by a user, which must lie inside one of `roots`.

    Symbolic links and '..' are resolved before the check. A relative path is taken relative to each root
    in turn (the first where it exists). Raises `DataError` when it is outside every root or does not exist.
    """
    allowed = []
    for r in roots:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            allowed.append(Path(r).expanduser().resolve())
    shown = ", ".join(str(r) for r in allowed) or "(none configured)"
    if not allowed:
        raise DataError("no data folders are configured; ask the administrator to set the allowed data folders")
    text = (user_path or "").strip()
    if not text or "\x00" in text:
        raise DataError(f"give the path of a dataset folder inside the allowed data folders: {shown}")
    given = Path(text)
    candidates = [given] if given.is_absolute() else [r / given for r in allowed]
    resolved: Path | None = None
    for cand in candidates:
        try:
            real = cand.resolve()
        except (OSError, RuntimeError, ValueError):
            continue
        if resolved is None:
            resolved = real
        if real.exists() and any(real.is_relative_to(r) for r in allowed):
            resolved = real
            break
    if resolved is None or not any(resolved.is_relative_to(r) for r in allowed):
        raise DataError(f"{text} is outside the allowed data folders: {shown}")
    if not resolved.exists():
        raise DataError(f"{text} does not exist (looked for {resolved}); the allowed data folders are: {shown}")
    return resolved
