"""A dataset's original files (byte for byte), image loading by list, the separate reader process, and user-typed data paths.
"""
from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ArchiveError, DataError, ParamError
from ..imageset import ImageSet
from .archive import (JUNK_NAMES, ZIP_ERRORS, Limits, human_size, is_archive_name, is_junk, plan_entries,
                      resolve_limits, top_folder)
from .folder import (REASON_EMPTY, REASON_EXTENSION, REASON_NESTED, DataReport, SkippedFile, class_files,
                     is_inside, load_dataset, scan_classes)
from .images import IMAGE_EXTENSIONS, Unusable, pillow_guard, read_image

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
        limits = resolve_limits(limits)
        try:
            self._zip = zipfile.ZipFile(self.root)
            plan, _ = plan_entries(self._zip, self.root.name, limits, self.root.stat().st_size)
        except ZIP_ERRORS as err:
            self.close()
            raise ArchiveError(f"{self.root.name} is not a readable zip archive ({err})") from None
        except ArchiveError:
            self.close()
            raise
        skip = 1 if top_folder(plan) is not None else 0
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
        if not p.is_file() or not is_inside(p, self.root):
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
        classes, _, _, _ = scan_classes(self.root)
        out: list[str] = []
        for cls in classes:
            out += [rel for rel, _ in class_files(self.root, cls, [], [])]
        return sorted(out)


IMAGE_CHUNK = 256     # images decoded at a time by `iter_images`: 48 MiB of 256-px RGB, whatever the folder holds


def load_images(folder: str | Path, image_size: int, channels: int,
                limits: Limits | None = None) -> tuple[np.ndarray, list[str], list[SkippedFile]]:
    """Every image under `folder` (any depth, no classes), decoded, normalised and resized exactly as
    `load_dataset` does for a run of this image size and channel count: (uint8 [N, S, S, C], file paths relative
    to the folder in sorted order, skipped files with their reason). All of them in memory at once: to score a
    folder of any size, `iter_images` gives them a chunk at a time."""
    skipped: list[SkippedFile] = []
    arrays, names = [], []
    for arr, chunk_names in iter_images(folder, image_size, channels, limits, skipped=skipped):
        arrays.append(arr)
        names += chunk_names
    if not arrays:
        return np.zeros((0, image_size, image_size, int(channels)), np.uint8), [], skipped
    return np.concatenate(arrays), names, skipped


def iter_images(folder: str | Path, image_size: int, channels: int, limits: Limits | None = None,
                chunk: int = IMAGE_CHUNK, skipped: list[SkippedFile] | None = None
                ) -> Iterator[tuple[np.ndarray, list[str]]]:
    """`load_images` a chunk at a time: (uint8 [n <= chunk, S, S, C], their relative paths), in sorted order; the
    files skipped, with their reason, are appended to `skipped`. Memory is one chunk, not the folder (`core
    predict` on 10,000 256-px images held 4.4 GB when they were all decoded first)."""
    limits = resolve_limits(limits)
    skipped = [] if skipped is None else skipped
    files = _image_files(Path(folder), limits, skipped)
    mode = "L" if int(channels) == 1 else "RGB"
    flags = {"rotated": 0, "high_depth": 0, "alpha": 0}
    images, names = [], []
    with pillow_guard(limits.max_image_pixels):
        for rel, p in files:
            try:
                if p.stat().st_size == 0:
                    raise Unusable(REASON_EMPTY)
                img, _, _ = read_image(p, int(image_size), flags)
            except Unusable as why:
                skipped.append(SkippedFile(rel, str(why)))
            except OSError as err:
                skipped.append(SkippedFile(rel, f"cannot read the file ({err.strerror or err})"))
            else:
                images.append(np.asarray(img.convert(mode)))
                names.append(rel)
            if len(images) == chunk:
                yield _stacked(images, mode), names
                images, names = [], []
    if images:
        yield _stacked(images, mode), names


def _stacked(images: list[np.ndarray], mode: str) -> np.ndarray:
    arr = np.stack(images).astype(np.uint8, copy=False)
    return arr[..., None] if mode == "L" else arr


def _image_files(root: Path, limits: Limits, skipped: list[SkippedFile]) -> list[tuple[str, Path]]:
    """(relative path, path) of every image file under `root` in sorted order; the rest go to `skipped`."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; give a folder of images to score")
    files: list[tuple[str, Path]] = []

    def unreadable(err: OSError) -> None:
        skipped.append(SkippedFile(str(err.filename or root) + "/", f"cannot read the folder ({err.strerror or err})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not (n.startswith(".") or n in JUNK_NAMES
                                                          or (d / n).is_symlink()))
        for name in sorted(filenames):
            rel, p = (d / name).relative_to(root).as_posix(), d / name
            if is_junk(name) or name.startswith("."):
                continue
            if p.is_symlink() and not (p.exists() and is_inside(p, root)):
                skipped.append(SkippedFile(rel, "symbolic link pointing outside the folder (not followed)"))
            elif Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(SkippedFile(rel, REASON_NESTED if is_archive_name(name) else REASON_EXTENSION))
            else:
                files.append((rel, p))
        if len(files) > limits.max_entries:
            raise DataError(f"{root} holds more than {limits.max_entries} images; score it in parts")
    files.sort(key=lambda t: t[0])
    return files


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
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", "from core.data.sources import _reader_main; _reader_main()"],
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
        raise DataError(f"reading {Path(path).name} took more than the {human_size(memory)} of memory a dataset "
                        "preview may use, and was stopped; check for huge images (downscale them) or load a "
                        "smaller dataset")
    tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    raise RuntimeError(f"the dataset reader process failed (exit code {proc.returncode}): {tail[0]}")




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
    # by name, as the pages show them: the server's own paths (/srv/.../uploads) stay off the pages
    shown = ", ".join(r.name or str(r) for r in allowed) or "(none configured)"
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
        raise DataError(f"{text} does not exist in the allowed data folders: {shown}")
    return resolved
