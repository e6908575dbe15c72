"""Loading a class-folder tree (or a zip of one) into an `ImageSet`, and the `DataReport` of what was skipped and why.
"""
from __future__ import annotations

import numbers
import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import DataError, ParamError
from ..imageset import ImageSet
from .archive import JUNK_NAMES, Limits, extract_with_notes, is_archive_name, is_junk, resolve_limits, shorten
from .images import IMAGE_EXTENSIONS, MIN_SIDE, Unusable, pillow_guard, read_image

REASON_EXTENSION = "not an image extension"
REASON_NESTED = "nested archive: not supported, unzip it first and put its images in class folders"
REASON_EMPTY = "empty file (0 bytes)"
REASON_ROOT = "not in a class folder (move it into one of the class folders)"
REASON_CLASS_NAME = ("class folder not loaded: its name holds a backslash or a control character, which Windows "
                     "tools read as a path (a class 'a\\..\\evil' would leave an exported folder); rename the folder")
_BAD_CLASS_CHARS = re.compile(r"[\\\x00-\x1f\x7f]")


@dataclass
class SkippedFile:
    path: str
    reason: str


def name_key(name: str) -> str:
    """What a file system that ignores case (Windows, macOS) or normalises Unicode (macOS) makes of a folder
    name: NFC, invisible format characters (zero-width space, joiners) dropped, case folded."""
    visible = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFC", visible.casefold())


def colliding_names(names: list[str]) -> list[list[str]]:
    """Groups of names that differ only by case, Unicode form (NFC / NFD `café`) or invisible characters:
    folders that merge into one when unzipped on Windows or macOS."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(name_key(n), []).append(n)
    return [g for g in groups.values() if len(g) > 1]


def collision_message(group: list[str]) -> str:
    shown = ", ".join(ascii(n) for n in group)
    return (f"classes {shown} differ only by case, Unicode form or invisible characters: unzipped on Windows or "
            "macOS their folders merge into one; rename them apart")


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
    collisions: list[list[str]] = field(default_factory=list)   # `colliding_names` of the classes
    masks: int = 0          # images with a defect mask of their own (read as masks, never as class images)

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
        for group in self.collisions:
            lines.append(f"Warning: {collision_message(group)}")
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)




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


def is_inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False


def scan_classes(root: Path) -> tuple[list[str], list[SkippedFile], list[str], int]:
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
        if is_junk(e.name):
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
            skipped.append(SkippedFile(e.name, REASON_NESTED if is_archive_name(e.name) else REASON_ROOT))
    if ignored:
        notes.append(f"ignored hidden folders: {', '.join(ignored)}")
    return classes, skipped, notes, root_images


def class_files(root: Path, cls: str, skipped: list[SkippedFile], hidden: list[str],
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
                skipped.append(SkippedFile(shorten(f"{rel_dir}/{name}/"),
                                           f"nested more than {max_depth} folders deep (not read)"))
            elif (d / name).is_symlink():
                skipped.append(SkippedFile(f"{rel_dir}/{name}/", "symbolic link to a folder (not followed)"))
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if is_junk(name):
                continue
            rel = f"{rel_dir}/{name}"
            p = d / name
            if p.is_symlink() and not (p.exists() and is_inside(p, root)):
                skipped.append(SkippedFile(rel, "symbolic link pointing outside the dataset folder (not followed)"))
                continue
            if is_archive_name(name):
                skipped.append(SkippedFile(rel, REASON_NESTED))
            elif Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                skipped.append(SkippedFile(rel, REASON_EXTENSION))
            else:
                out.append((rel, p))
    out.sort(key=lambda t: t[0])
    return out


def _load_folder(root: Path, image_size: int, channels: str | int, limits: Limits,
                 progress: Callable[[int, int], None] | None, shown_root: str) -> tuple[ImageSet, DataReport]:
    classes, skipped, notes, root_images = scan_classes(root)
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
    mask_tree = _mask_tree(root, classes)
    if mask_tree:
        classes = [c for c in classes if c != mask_tree]
        notes.append(f"{mask_tree}/ holds defect masks (it mirrors the class folders): read as masks, not as a class")
    per_class = {c: class_files(root, c, skipped, hidden, limits.max_depth) for c in classes}
    mask_files: dict[str, Path] = {}
    for c in classes:
        per_class[c], beside = split_masks(per_class[c])
        mask_files.update(beside)
    if mask_tree:
        by_stem = {_stem_key(rel): rel for c in classes for rel, _ in per_class[c]}
        for rel, p in class_files(root, mask_tree, [], [], limits.max_depth):
            image = by_stem.get(_stem_key(rel.split("/", 1)[1]))
            if image is not None and image not in mask_files:
                mask_files[image] = p
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
    with pillow_guard(limits.max_image_pixels):
        for ci, cls in enumerate(classes):
            before = len(loaded)
            for rel, p in per_class[cls]:
                try:
                    if p.stat().st_size == 0:
                        raise Unusable(REASON_EMPTY)
                    img, gray, digest = read_image(p, image_size, flags, limits.max_decode_bytes)
                except Unusable as why:
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
    if mask_files:
        ds.masks = _read_masks(ds.sources, mask_files, image_size, limits, skipped)
        n_masks = int(ds.masks.any(axis=(1, 2)).sum())
        notes.append(f"{n_masks} images have a defect mask (NAME_mask.png or NAME.png beside NAME.jpg, or the "
                     "masks/ folder); defect_paste uses them")

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
                        duplicates=duplicates, channels=c, image_size=image_size, notes=notes,
                        collisions=colliding_names(list(classes)), masks=ds.has_masks())
    return ds, report


MASK_FOLDER = "masks"
_MASK_SUFFIX = "_mask"


def _stem_key(rel: str) -> str:
    """'crack/sub/a.jpg' -> 'crack/sub/a' (what an image and its mask share)."""
    return rel.rsplit(".", 1)[0]


def _mask_tree(root: Path, classes: list[str]) -> str | None:
    """The class-folder name that is a mask tree: `masks/` holding a folder named like another class."""
    for c in classes:
        if c.lower() == MASK_FOLDER and any((root / c / other).is_dir() for other in classes if other != c):
            return c
    return None


def split_masks(files: list[tuple[str, Path]]) -> tuple[list[tuple[str, Path]], dict[str, Path]]:
    """A class's files -> (its images, {image source: mask file}). A mask lies beside its image: NAME_mask.<ext>
    beside NAME.<ext>, or NAME.png beside NAME.<another extension> (a jpg photo and its png mask). Masks are
    never images of the class."""
    stems: dict[str, list[tuple[str, Path]]] = {}
    for rel, p in files:
        stems.setdefault(_stem_key(rel), []).append((rel, p))
    masks: dict[str, Path] = {}
    taken: set[str] = set()
    for stem, group in stems.items():
        if stem.endswith(_MASK_SUFFIX) and stem[:-len(_MASK_SUFFIX)] in stems:
            image = stems[stem[:-len(_MASK_SUFFIX)]][0]
            masks[image[0]] = group[0][1]
            taken.update(rel for rel, _ in group)
        elif len(group) == 2 and sum(rel.lower().endswith(".png") for rel, _ in group) == 1:
            png = next(t for t in group if t[0].lower().endswith(".png"))
            photo = next(t for t in group if t is not png)
            masks[photo[0]] = png[1]
            taken.add(png[0])
    return [t for t in files if t[0] not in taken], masks


def _read_masks(sources: list[str], mask_files: dict[str, Path], size: int, limits: Limits,
                skipped: list[SkippedFile]) -> np.ndarray:
    """uint8 [N, size, size] 0/255 masks in image order (zeros where an image has none), squashed as the images
    are; a pixel is defect when any of it was. A mask that cannot be read is listed as skipped (its image stays)."""
    out = np.zeros((len(sources), size, size), np.uint8)
    with pillow_guard(limits.max_image_pixels):
        for i, src in enumerate(sources):
            p = mask_files.get(src)
            if p is None:
                continue
            try:
                with Image.open(p) as im:
                    m = np.asarray(im.convert("L").resize((size, size), Image.BOX))
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                skipped.append(SkippedFile(f"mask of {src}", f"cannot read the mask ({err})"))
                continue
            out[i] = (m > 0) * 255
    return out


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
    limits = resolve_limits(limits)
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
        root, znotes = extract_with_notes(path, extract_dir, limits)
        ds, report = _load_folder(root, image_size, channels, limits, progress, str(root))
    else:
        with tempfile.TemporaryDirectory(prefix="defectaug-zip-") as tmp:
            root, znotes = extract_with_notes(path, tmp, limits)
            ds, report = _load_folder(root, image_size, channels, limits, progress, str(path))
    report.notes = znotes + report.notes
    return ds, report


