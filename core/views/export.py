"""Export a run as a balanced dataset zip for real use: the user's own image files untouched, every real image by
default, and the synthetic top-up that balances what is exported.

    r = export_zip("runs/x", "smote", "balanced.zip")                      # flat, all real images, run size
    r = export_zip("runs/x", "smote", "b.zip", layout="split", real="train", size=128)
    r.rows(); r.notes; r.missing                                           # what it holds, what to know

Layouts (both hold a Hugging Face `imagefolder` metadata.csv with file_name, label, origin and role columns):

    flat    <class>/<file>                                   torchvision ImageFolder
            metadata.csv                                     file_name relative to it: <class>/<file>
    split   train/<class>/<file>, train/metadata.csv         real training images + the synthetic top-up
            test/<class>/<file>,  test/metadata.csv          exactly the run's real test split, never synthetic
    manifest.csv    file, class, origin (real|synthetic), role, method, seed, parents, source, and for a
                    transplanted defect (cmo, defect_paste): defect_source, background, mask, position, transform,
                    mask_from, source_box; its mask is written beside it as <file>_mask.png (the layout the
                    Data page reads back as a mask)
    README.txt      the layout, the counts and the notes below; metrics.json and config.json of the run

Real images are the original files, byte for byte (format, size, colour, EXIF), read from the dataset the run
loaded (`core.data.DatasetFiles`); a name is kept unless it collides in its folder (then `_1`, `_2` ... before
the extension, on the later one in source order; case-insensitively, as on Windows and macOS). `real="all"`
(default): every image the run loaded, each with its role: `train` (what the run trained on), `test` (its real
test split), `held_back` (left out of training by the simulated imbalance). `real="train"`: only what the run
trained on (with `split`, test/ still holds the run's test split). Synthetic rows have the role `synthetic`
(made by the run) or `sampled` (drawn at export).

Synthetic top-up: each class gets `balance_targets` of the exported real training counts (the flat layout's
whole set; split's train/ part) at the run's target ratio. The run's synthetic images of one seed are used first
(in their file order); when the run holds fewer, the rest is sampled from the saved generator (role `sampled`,
the `core sample` path, with seeds of their own); when nothing is saved, or with the quality-filtered set
(images sampled now would bypass the gate), the result says how many are missing. Synthetic images are the
run's PNG files at the run's size, or resized to `size` (a note says that upscaled generator output is softer
than real images). Everything is written entry by entry into a temporary file that replaces `out` when complete.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np

from ..data import DatasetFiles, balance_targets, colliding_names, collision_message
from ..errors import ParamError, RunError
from ..files import atomic_path, csv_cell, csv_row
from ..rundir import TRANSPLANT_COLUMNS, RunDir

LAYOUTS = ("flat", "split")
REAL_CHOICES = ("all", "train")
MIN_SIZE, MAX_SIZE = 8, 4096
# Seeds of images sampled at export: apart from the run's own (seed * 1000 + class index), so they differ;
# small enough for every sampler (SMOTE multiplies its seed by 1000 into a 32-bit random_state).
EXPORT_SAMPLE_SEED = 900_000
_SAMPLE_CHUNK = 256             # images sampled (and held) at a time
# Formats that are compressed already: stored as they are (deflating them costs time and saves nothing).
_STORED = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def available_methods(run_dir: str | Path) -> list[str]:
    """Methods of the run whose synthetic images can be exported (`RunDir.synthetic_methods`)."""
    return RunDir(run_dir).synthetic_methods()


@dataclass
class ExportResult:
    """What an export wrote: per class the real images by role, the synthetic ones (from the run, sampled
    now) and how many the balance still lacks; the notes a user should read."""
    path: Path
    layout: str
    real: str
    method: str | None
    seed: int | None
    size: int | None
    counts: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)

    def __fspath__(self) -> str:       # stands for the zip it wrote: open(result), zipfile.ZipFile(result)
        return str(self.path)

    @property
    def missing(self) -> dict[str, int]:
        return {c: v["missing"] for c, v in self.counts.items() if v.get("missing")}

    def rows(self) -> list[dict]:
        """One row per class: real train / test / held back, synthetic from the run / sampled now, missing."""
        return [{"class": c, "real train": v["train"], "real test": v["test"], "real held back": v["held_back"],
                 "synthetic (run)": v["synthetic"], "synthetic (sampled now)": v["sampled"], "missing": v["missing"]}
                for c, v in self.counts.items()]


@dataclass
class _Entry:
    arc: str                      # path inside the zip
    cls: str
    origin: str                   # real | synthetic
    role: str                     # train | test | held_back | synthetic | sampled
    write: Callable[[zipfile.ZipFile, str], None]
    method: str = ""
    seed: int | str = ""
    parents: str = ""
    source: str = ""
    details: dict = field(default_factory=dict)     # TRANSPLANT_COLUMNS of a transplanted defect


class _Names:
    """File names per folder that never collide (case-insensitively, for Windows and macOS file systems)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, folder: str, name: str) -> str:
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
        candidate, k = name, 0
        while f"{folder}/{candidate}".lower() in self._taken:
            k += 1
            candidate = f"{stem}_{k}{suffix}"
        self._taken.add(f"{folder}/{candidate}".lower())
        return f"{folder}/{candidate}"


def _check_options(layout: str, real: str, size) -> int | None:
    if layout not in LAYOUTS:
        raise ParamError(f"layout must be one of {', '.join(LAYOUTS)} (flat: <class>/, split: train/ and test/), "
                         f"got {layout!r}")
    if real not in REAL_CHOICES:
        raise ParamError(f"real must be 'all' (every real image of the dataset) or 'train' (only what the run "
                         f"trained on), got {real!r}")
    if size in (None, "", 0, "run"):
        return None
    if isinstance(size, bool):
        raise ParamError(f"size must be a whole number of pixels, got {size!r}")
    try:
        value = int(size)
    except (TypeError, ValueError):
        raise ParamError(f"size must be a whole number of pixels, got {size!r}") from None
    if value != size and str(value) != str(size).strip() or not MIN_SIZE <= value <= MAX_SIZE:
        raise ParamError(f"size must be a whole number of pixels between {MIN_SIZE} and {MAX_SIZE}, got {size!r}")
    return value


def _path_cell(arc: str) -> str:
    """A path for a CSV cell that `csv_cell` leaves intact: './' before a path starting like a formula
    (a class folder named '-5' or '=x'), which readers of relative paths (Hugging Face's imagefolder,
    os.path.normpath) read as the same file."""
    return "./" + arc if csv_cell(arc) != arc else arc


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
    return buf.getvalue()


def _resized_png(data: bytes | np.ndarray, size: int) -> bytes:
    from PIL import Image
    im = Image.open(io.BytesIO(data)) if isinstance(data, bytes) else \
        Image.fromarray(data[..., 0] if data.shape[2] == 1 else data)
    resample = Image.Resampling.LANCZOS if max(im.size) > size else Image.Resampling.BICUBIC
    buf = io.BytesIO()
    im.resize((size, size), resample).save(buf, format="PNG")
    return buf.getvalue()


def _compress_type(name: str) -> int:
    return zipfile.ZIP_STORED if PurePosixPath(name).suffix.lower() in _STORED else zipfile.ZIP_DEFLATED


def _is_colour(fh) -> bool | None:
    """Whether an image file is stored in colour (its header only); None when Pillow cannot tell."""
    from PIL import Image
    try:
        with Image.open(fh) as im:
            return im.mode not in _GREY_MODES
    except Exception:  # noqa: BLE001  (any file Pillow cannot identify: the export copies it as it is)
        return None


def _fold_or_self(rd: RunDir, notes: list[str]) -> RunDir:
    """A K-fold run exports its first fold (its split and its synthetic images)."""
    if not rd.split() and rd.folds():
        notes.append(f"This run has {len(rd.folds())} folds: the export uses the first fold's split and synthetic "
                     "images.")
        return rd.one_split()
    return rd


def _real_images(rd: RunDir, files, notes: list[str]) -> list[tuple[str, str]]:
    """(source, role) of every real image of the run; for a run prepared before split.json recorded the
    held-back images, those are the dataset's image files the run's loader did not skip and did not split."""
    images, complete = rd.real_images()
    if complete:
        return images
    known = {s for s, _ in images}
    report = rd.data_report()
    skipped = {s.get("path") for s in report.get("skipped", []) if isinstance(s, dict)}
    classes = set(report.get("classes") or [s.split("/")[0] for s in known])
    held = [s for s in files.sources() if s not in known and s not in skipped and s.split("/")[0] in classes]
    if held:
        notes.append(f"This run was prepared before it recorded the images its simulated imbalance held back: the "
                     f"{len(held)} held-back images are the dataset's other image files as they are now.")
    return images + [(s, "held_back") for s in held]


def _synthetic_items(rd: RunDir, method: str, seed: int | None, quality_filtered: bool):
    if method not in rd.synthetic_methods():
        have = rd.synthetic_methods()
        raise RunError(f"no synthetic images of {method!r} in this run; "
                       + (f"it has: {', '.join(have)}" if have else "it has none (was it run with save_images off?)"))
    if quality_filtered and not rd.has_quality_filter(method):
        raise RunError("this run has no quality-filtered set; export the full set instead")
    items = rd.gallery(method)
    seeds = sorted({it.seed for it in items})
    use = (seeds[0] if seeds else 0) if seed is None else int(seed)
    if use not in seeds:
        raise RunError(f"seed {use} has no synthetic images of {method}; seeds with images: {seeds}")
    kept = rd.quality_table(method, use) if quality_filtered else {}
    chosen = [it for it in items if it.seed == use
              and (not quality_filtered or kept.get(it.file, {}).get("kept") == "True")]
    return use, chosen


def _sampler(rd: RunDir, method: str, seed: int, device: str) -> tuple[object | None, str]:
    """(the run's saved generator of `method` and `seed`, the `core sample` path; or None and why not)."""
    if not rd.has_sampler(method, seed):
        return None, f"this run kept no generator of {method} (seed {seed}) to sample more from"
    from ..methods import Context, get_method
    from ..runtime import pick_device
    try:
        return get_method(method).load_sampler(rd.checkpoint_dir(method, seed),
                                               Context(device=pick_device(device), seed=seed, method=method)), ""
    except Exception as err:  # noqa: BLE001  (a damaged checkpoint: safetensors, JSON and the methods raise many types)
        return None, f"its saved generator of {method} (seed {seed}) cannot be loaded ({type(err).__name__}: {err})"


def _sampled(sampler, cls: str, n: int, seed: int, class_index: int) -> Iterator[tuple[np.ndarray, list[str]]]:
    """`n` new images of `cls`, a chunk at a time (bounded memory), with their parents."""
    done, chunk_no = 0, 0
    while done < n:
        k = min(_SAMPLE_CHUNK, n - done)
        batch = sampler.sample(cls, k, seed=EXPORT_SAMPLE_SEED + seed * 1000 + class_index + 10_000 * chunk_no)
        if len(batch.images) != k or batch.images.dtype != np.uint8 or batch.images.ndim != 4:
            raise RunError(f"the saved generator returned {len(batch.images)} images of shape "
                           f"{batch.images.shape[1:]} {batch.images.dtype} for {cls}, expected {k} uint8 images")
        parents = batch.parents if len(batch.parents) == k else [[] for _ in range(k)]
        for img, par in zip(batch.images, parents):
            yield img, par
        done += k
        chunk_no += 1


def export_zip(run_dir: str | Path, method: str | None, out: str | Path, seed: int | None = None,
               quality_filtered: bool = False, layout: str = "flat", real: str = "all", size: int | None = None,
               device: str = "cpu", check_data: Callable[[str], object] | None = None) -> ExportResult:
    """Write the balanced dataset of `method` (None or "none": the real images only) to the zip `out`
    (see the module docstring for the layouts and the rules); returns what it holds. `check_data` (the app:
    `Workspace.check_data_path`) raises when the dataset the run's config.json names is not one this user may
    read (another workspace's upload, a server folder outside the data roots). A run folder holding links is
    refused: its images would be read through them."""
    size = _check_options(layout, real, size)
    out, notes = Path(out), []
    rd = RunDir(run_dir)
    rd.check_no_links()
    if not rd.split() and not rd.folds():
        raise RunError(f"{rd.root} is not a finished run directory (no split.json); run an experiment first")
    rd = _fold_or_self(rd, notes)
    method = None if method in (None, "", "none") else method
    if quality_filtered and method is None:
        raise RunError("this run has no quality-filtered set; export the full set instead")
    data = rd.config().get("data")
    if not data or not Path(str(data)).exists():
        raise RunError(f"the dataset this run loaded ({data or 'not recorded'}) is no longer there; the export "
                       "copies the original image files, so put the dataset back at that path first")
    if check_data is not None:
        check_data(str(data))
    opts = _Options(method, seed, quality_filtered, layout, real, size, device)
    with DatasetFiles(str(data)) as files:
        return _export(rd, files, opts, out, notes)


@dataclass(frozen=True)
class _Options:
    method: str | None
    seed: int | None
    quality_filtered: bool
    layout: str
    real: str
    size: int | None
    device: str


def _export(rd: RunDir, files: DatasetFiles, opts: _Options, out: Path, notes: list[str]) -> ExportResult:
    """Plan every entry (real files by role, the synthetic top-up), then write the zip."""
    method, layout, real, size = opts.method, opts.layout, opts.real, opts.size
    cfg, report = rd.config(), rd.data_report()
    images = _real_images(rd, files, notes)
    classes = list(report.get("classes") or sorted({s.split("/")[0] for s, _ in images}))
    clash = colliding_names(classes)
    if clash:    # Crack/ and crack/ in one zip merge when it is unpacked on Windows or macOS
        raise RunError(f"the export refuses this run: {collision_message(clash[0])} in the dataset and run again")
    counts = {c: {"train": 0, "test": 0, "held_back": 0, "synthetic": 0, "sampled": 0, "missing": 0}
              for c in classes}
    names, entries = _Names(), []
    gone: list[str] = []
    run_grey = int(report.get("channels") or 0) == 1
    colour = 0

    def folder(cls: str, test: bool) -> str:
        return cls if layout == "flat" else f"{'test' if test else 'train'}/{cls}"

    def real_writer(source: str) -> Callable[[zipfile.ZipFile, str], None]:
        def write(zf: zipfile.ZipFile, arc: str) -> None:
            path = files.path(source)
            if path is not None:
                zf.write(path, arc, compress_type=_compress_type(arc))
                return
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.file_size = _compress_type(arc), files.size(source)
            with files.open(source) as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        return write

    train_part: dict[str, int] = {c: 0 for c in classes}
    for source, role in sorted(images):          # the first in the dataset's order keeps its name
        cls = source.split("/")[0]
        if cls not in counts or (real == "train" and role == "held_back") or \
                (real == "train" and role == "test" and layout == "flat"):
            continue
        try:
            files.path(source)
        except FileNotFoundError:
            gone.append(source)
            continue
        if run_grey:
            with files.open(source) as fh:
                colour += bool(_is_colour(fh))
        test = role == "test"
        arc = names.take(folder(cls, test), PurePosixPath(source).name)
        entries.append(_Entry(arc, cls, "real", role, real_writer(source), source=source))
        counts[cls][role] += 1
        if not (layout == "split" and test):
            train_part[cls] += 1
    if gone:
        shown = ", ".join(gone[:3]) + (f" and {len(gone) - 3} more" if len(gone) > 3 else "")
        notes.append(f"{len(gone)} real images of the run are no longer in the dataset and were left out: {shown}.")

    used_seed = None
    if method is not None:
        used_seed, items = _synthetic_items(rd, method, opts.seed, opts.quality_filtered)
        target_ratio = float(cfg.get("target_ratio") or 1.0)
        needed = balance_targets(train_part, target_ratio)
        by_class: dict[str, list] = {c: [] for c in classes}
        for it in items:
            if it.cls in by_class:
                by_class[it.cls].append(it)
        short = {}
        for cls in classes:
            take = by_class[cls][:needed[cls]]
            for n, it in enumerate(take):
                arc = names.take(folder(cls, False), f"syn_{method}_s{used_seed}_{n:05d}.png")
                details = dict(it.details)
                mask = it.path.parent.parent / details["mask"] if details.get("mask") else None
                if mask is not None:
                    details["mask"] = arc[:-4] + "_mask.png"
                entries.append(_Entry(arc, cls, "synthetic", "synthetic", _synthetic_writer(it.path, size, mask),
                                      method, used_seed, "|".join(it.parents), f"synthetic/{method}/{it.file}",
                                      details))
            counts[cls]["synthetic"] = len(take)
            if needed[cls] > len(take):
                short[cls] = needed[cls] - len(take)
        sampler, why_not = None, "images sampled now would bypass the quality gate"
        if short and not opts.quality_filtered:
            sampler, why_not = _sampler(rd, method, used_seed, opts.device)
        for cls, n in short.items():
            if sampler is None:
                counts[cls]["missing"] = n
                continue
            first = counts[cls]["synthetic"]
            entries += _sampled_entries(sampler, names, folder(cls, False), cls, n, first, method, used_seed,
                                        classes.index(cls), size)
            counts[cls]["sampled"] = n
        missing = {c: v["missing"] for c, v in counts.items() if v["missing"]}
        if missing:
            notes.append(f"{sum(missing.values())} synthetic images are missing for the balance "
                         f"({', '.join(f'{c}: {n}' for c, n in missing.items())}): {why_not}.")
        sampled = sum(v["sampled"] for v in counts.values())
        if sampled:
            notes.append(f"{sampled} synthetic images were sampled now from the run's saved {method} generator "
                         f"(seed {used_seed}), as the run held fewer than the exported real images need.")
        run_size = int(report.get("image_size") or cfg.get("image_size") or 0)
        if size is not None and run_size and size > run_size:
            notes.append(f"Synthetic images were upscaled from the run's {run_size} px to {size} px: upscaled "
                         "generator output is softer than the real images; a model may learn to tell them apart.")
        if run_grey and colour:
            notes.append(f"The run was grey (1 channel), so its synthetic images are grey, while {colour} of the "
                         "exported real images are colour.")

    result = ExportResult(Path(out), layout, real, method, used_seed, size, counts, notes)
    _write_zip(rd, Path(out), entries, result)
    return result


def _synthetic_writer(path: Path, size: int | None, mask: Path | None = None) -> Callable[[zipfile.ZipFile, str], None]:
    def write(zf: zipfile.ZipFile, arc: str) -> None:
        for src, name in ((path, arc), *(((mask, arc[:-4] + "_mask.png"),) if mask is not None else ())):
            if not src.is_file():
                continue
            if size is None:
                zf.write(src, name, compress_type=zipfile.ZIP_STORED)     # the run's PNG, as it is
            else:
                zf.writestr(name, _resized_png(src.read_bytes(), size), compress_type=zipfile.ZIP_STORED)
    return write


def _sampled_entries(sampler, names: _Names, folder: str, cls: str, n: int, first: int, method: str, seed: int,
                     class_index: int, size: int | None) -> list[_Entry]:
    """Entries for `n` images sampled now; the images are drawn while the zip is written, a chunk at a time."""
    stream = _sampled(sampler, cls, n, seed, class_index)
    out = []
    for i in range(n):
        arc = names.take(folder, f"syn_{method}_s{seed}_{first + i:05d}.png")
        entry = _Entry(arc, cls, "synthetic", "sampled", None, method, seed)

        def write(zf: zipfile.ZipFile, arc: str, entry: _Entry = entry) -> None:
            img, parents = next(stream)
            entry.parents = "|".join(parents)
            zf.writestr(arc, _resized_png(img, size) if size else _png_bytes(img), compress_type=zipfile.ZIP_STORED)
        entry.write = write
        out.append(entry)
    return out


def _csv_text(rows: list[list]) -> str:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    for r in rows:
        w.writerow(csv_row(r))
    return buf.getvalue()


def _metadata(entries: list[_Entry], base: str) -> str:
    """A Hugging Face imagefolder metadata.csv for the images under `base` ("" for the whole zip): file_name
    relative to the folder of the metadata file, then label (the class), origin and role."""
    prefix = f"{base}/" if base else ""
    rows = [["file_name", "label", "origin", "role"]]
    rows += [[_path_cell(e.arc[len(prefix):]), e.cls, e.origin, e.role] for e in entries if e.arc.startswith(prefix)]
    return _csv_text(rows)


def _readme(result: ExportResult) -> str:
    layout = ("<class>/<file>: every image of a class in its folder (torchvision ImageFolder); metadata.csv beside "
              "them (Hugging Face imagefolder)." if result.layout == "flat" else
              "train/<class>/<file>: real training images and the synthetic top-up; test/<class>/<file>: the run's "
              "real test split, never mixed with synthetic images. Each part has its own metadata.csv (Hugging "
              "Face imagefolder: load_dataset('imagefolder', data_dir=...) gives a train and a test split).")
    lines = ["DefectAug balanced dataset", "", f"Layout: {layout}",
             f"Real images: {'every real image of the dataset' if result.real == 'all' else 'what the run trained on'}"
             ", as the original files (never re-encoded).",
             f"Synthetic images: {result.method or 'none'}" + (f", seed {result.seed}" if result.method else "")
             + (f", resized to {result.size} px" if result.size else ", at the run's size" if result.method else ""),
             "", "manifest.csv: one row per image. origin: real or synthetic. role: train (the run trained on it), "
             "test (the run's real test split), held_back (left out of training by the run's simulated "
             "imbalance), synthetic (made by the run), sampled (drawn from the run's saved generator at export).",
             "In the CSV files a cell starting with = + - @ gets a leading ' so that a spreadsheet shows it as text.",
             "", "Per class:"]
    for r in result.rows():
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in r.items()))
    if result.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def _write_zip(rd: RunDir, out: Path, entries: list[_Entry], result: ExportResult) -> None:
    """Every image entry by entry (the files streamed from disk, generated ones one at a time), then the CSVs,
    the README and the run's metrics and config, into a temporary file that becomes `out` only when complete."""
    extra = TRANSPLANT_COLUMNS if any(e.details for e in entries) else ()
    with atomic_path(out) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            for e in entries:
                e.write(zf, e.arc)
            zf.writestr("manifest.csv", _csv_text(
                [["file", "class", "origin", "role", "method", "seed", "parents", "source", *extra]]
                + [[_path_cell(e.arc), e.cls, e.origin, e.role, e.method, e.seed, e.parents, e.source,
                    *(e.details.get(c, "") for c in extra)] for e in entries]))
            if result.layout == "flat":
                zf.writestr("metadata.csv", _metadata(entries, ""))
            else:
                for part in ("train", "test"):
                    zf.writestr(f"{part}/metadata.csv", _metadata(entries, part))
            zf.writestr("README.txt", _readme(result))
            if rd.metrics_path.exists():
                zf.writestr(rd.metrics_path.name, _shareable_text(rd.metrics_path.read_text(encoding="utf-8"), rd))
            if rd.config_path.exists():
                zf.writestr(rd.config_path.name, json.dumps(shareable_config(rd.config(), rd), indent=1))


def shareable_config(config: dict, rd: RunDir | None = None) -> dict:
    """The run's config as it goes into a zip users share: the dataset by its name, never the server's path (an
    upload's path holds the workspace id, which works like a password), nor any other server path or the ids of
    the run folder's parents."""
    out = json.loads(_shareable_text(json.dumps(config), rd))
    if isinstance(out.get("data"), str) and out["data"]:
        out["data"] = Path(out["data"]).name or out["data"]
    return out


def _shareable_text(text: str, rd: RunDir | None) -> str:
    """`text` with every server path in it cut to its last part and the workspace id (the run folder's
    grandparent, `<home>/<workspace>/runs/<run>`) replaced."""
    if rd is not None:
        root = rd.root.resolve()
        ws = root.parent.parent.name
        if len(ws) >= 16:                 # a workspace id (a long random token), never a short folder name
            text = text.replace(ws, "<workspace>")
    return re.sub(r'(?<![\w.])/(?:[^"\s/]+/)+([^"\s/]+)', r"\1", text)   # any other absolute path: its name

