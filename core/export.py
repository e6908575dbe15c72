"""Export a run as a balanced dataset zip in ImageFolder layout.

    export_zip("runs/x", "smote", "balanced.zip")
    export_zip("runs/x", "smote", "gated.zip", quality_filtered=True)   # only what the quality gate keeps

<class>/real_<n>_<name>.png      the real training images of the run (as the run used them)
<class>/syn_<method>_s<seed>_<n>.png  the synthetic images of one seed (the first by default)
manifest.csv                     file, class, origin (real|synthetic), method, seed, parents, source
metrics.json, config.json        what the run measured and how it was configured
File names carry an origin prefix and a running number, so they can never collide.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import numpy as np

from .errors import RunError
from .rundir import RunDir, atomic_path

_SAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


def _safe_stem(path: str) -> str:
    stem = Path(path).stem
    return (_SAFE.sub("_", stem).strip("._") or "img")[:60]


def _png(img: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(buf, format="PNG")
    return buf.getvalue()


def available_methods(run_dir: str | Path) -> list[str]:
    """Methods of the run whose synthetic images can be exported (`RunDir.synthetic_methods`)."""
    return RunDir(run_dir).synthetic_methods()


def export_zip(run_dir: str | Path, method: str | None, out: str | Path, seed: int | None = None,
               quality_filtered: bool = False) -> Path:
    """Write the balanced dataset of `method` (None or "none": the real images only) to the zip `out`."""
    rd, out = RunDir(run_dir), Path(out)
    train = rd.load_split("train")
    if train is None:
        raise RunError(f"{rd.root} is not a finished run directory (no data/train.npz); run an experiment first")
    method = None if method in (None, "", "none") else method
    if quality_filtered and (method is None or not rd.has_quality_filter(method)):
        raise RunError("this run has no quality-filtered set; export the full set instead")
    rows: list[list] = []
    entries: list[tuple[str, bytes]] = []
    counters: dict[str, int] = {}

    def add(cls: str, name: str, data: bytes, row: list) -> None:
        counters[cls] = counters.get(cls, 0) + 1
        arc = f"{cls}/{name}"
        entries.append((arc, data))
        rows.append([arc, cls] + row)

    for i, (img, lab, src) in enumerate(zip(train.images, train.labels, train.sources)):
        cls = train.classes[lab]
        add(cls, f"real_{i:05d}_{_safe_stem(src)}.png", _png(img), ["real", "", "", "", src])

    if method is not None:
        if method not in rd.synthetic_methods():
            have = rd.synthetic_methods()
            raise RunError(f"no synthetic images of {method!r} in this run; "
                           + (f"it has: {', '.join(have)}" if have else
                              "it has none (was it run with save_images off?)"))
        items = rd.gallery(method)
        seeds = sorted({it.seed for it in items})
        use = (seeds[0] if seeds else 0) if seed is None else int(seed)
        if use not in seeds:
            raise RunError(f"seed {use} has no synthetic images of {method}; seeds with images: {seeds}")
        kept = rd.quality_table(method, use) if quality_filtered else {}
        for it in items:
            if it.seed != use or (quality_filtered and kept.get(it.file, {}).get("kept") != "True"):
                continue
            n = counters.get(it.cls, 0)
            add(it.cls, f"syn_{method}_s{use}_{n:05d}.png", it.path.read_bytes(),
                ["synthetic", method, use, "|".join(it.parents), it.file])

    manifest = io.StringIO()
    w = csv.writer(manifest)
    w.writerow(["file", "class", "origin", "method", "seed", "parents", "source"])
    w.writerows(rows)
    with atomic_path(out) as tmp:      # never a half-written zip under the final name
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for arc, data in entries:
                zf.writestr(arc, data)
            zf.writestr("manifest.csv", manifest.getvalue())
            for extra in (rd.metrics_path, rd.config_path):
                if extra.exists():
                    zf.write(extra, extra.name)
    return out


def manifest_counts(zip_path: str | Path) -> dict[str, dict[str, int]]:
    """{class: {origin: count}} from an exported zip's manifest (used by tests and the UI)."""
    with zipfile.ZipFile(zip_path) as zf:
        reader = csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8")))
        out: dict[str, dict[str, int]] = {}
        for r in reader:
            out.setdefault(r["class"], {}).setdefault(r["origin"], 0)
            out[r["class"]][r["origin"]] += 1
    return out
