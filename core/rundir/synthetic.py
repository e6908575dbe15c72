"""The synthetic images of a run and their provenance and quality: synthetic/<method>/ (s<seed>.npz, the PNG files,
provenance_s<seed>.csv, quality_s<seed>.csv) and quality/<method>_s<seed>.json; the gallery reads them. A part of
`RunDir` (a mixin: it uses `self.root` and the run's split images)."""
from __future__ import annotations

import contextlib
import csv
import io
import re
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import RunError
from ..files import atomic_write, csv_row, csv_value, read_json, write_json
from ..imageset import ImageSet
from .formats import GalleryItem, load_npz, save_npz, unreadable_message

PROVENANCE_COLUMNS = ("file", "class", "seed")
# Provenance of a transplanted defect (core.methods.transplant, cmo): the defect's real image, the real normal
# image it was pasted onto, the mask file beside the image, where it landed (x,y,w,h of the mask's box), the
# flips/turn applied (hflip, vflip, then rot90/180/270), whether the mask was found automatically, given by the
# user or is cmo's box, and where the mask's box lay in the defect image.
TRANSPLANT_COLUMNS = ("defect_source", "background", "mask", "position", "transform", "mask_from", "source_box")
_PROVENANCE_FILE = re.compile(r"^provenance(?:_s(-?\d+))?\.csv$")


class SyntheticFiles:
    """synthetic/<method>/ and quality/ of one run folder."""

    root: Path

    # -- synthetic images ------------------------------------------------------------------------
    def synthetic_dir(self, method: str) -> Path:
        return self.root / "synthetic" / method

    def synthetic_npz(self, method: str, seed: int) -> Path:
        return self.synthetic_dir(method) / f"s{seed}.npz"

    def provenance_path(self, method: str, seed: int) -> Path:
        return self.synthetic_dir(method) / f"provenance_s{seed}.csv"

    def save_synthetic(self, method: str, seed: int, synth: ImageSet, parents: list[list[str]],
                       png: bool = True, masks: np.ndarray | None = None,
                       details: list[dict] | None = None) -> None:
        """The synthetic images of one method and seed: always as `s<seed>.npz` (what the classifier
        trains on); with `png`, also as image files with a provenance row each (Gallery, export).
        A transplant method's `details` (defect source, background, position, mask origin) become
        provenance columns, and its `masks` PNG files beside the images (`<image>_mask.png`, the column
        `mask`). Writing a seed again replaces what that seed wrote before."""
        base = self.synthetic_dir(method)
        base.mkdir(parents=True, exist_ok=True)
        for old in base.glob(f"*/s{seed}_*.png"):     # a resumed run writes this seed anew
            old.unlink(missing_ok=True)
        save_npz(self.synthetic_npz(method, seed), synth)
        if not png:
            self.provenance_path(method, seed).unlink(missing_ok=True)
            return
        from PIL import Image
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        details = details if details and any(details) else None
        w.writerow(["file", "class", "seed", "parents", *(TRANSPLANT_COLUMNS if details else ())])
        for k, (img, lab, par, rel) in enumerate(zip(synth.images, synth.labels, parents,
                                                     self.synthetic_files(synth, seed))):
            cls = synth.classes[lab]
            (base / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(base / rel)
            extra = []
            if details:
                d = dict(details[k], mask=rel[:-4] + "_mask.png" if masks is not None else "")
                if masks is not None:
                    Image.fromarray(masks[k]).save(base / d["mask"])
                extra = [d.get(c, "") for c in TRANSPLANT_COLUMNS]
            w.writerow(csv_row([rel, cls, seed, "|".join(par), *extra]))
        atomic_write(self.provenance_path(method, seed), buf.getvalue())

    @staticmethod
    def synthetic_files(synth: ImageSet, seed: int) -> list[str]:
        """The file name (relative to synthetic/<method>/) of each synthetic image, in the set's order."""
        counters: dict[int, int] = {}
        out = []
        for lab in synth.labels:
            i = counters.get(int(lab), 0)
            counters[int(lab)] = i + 1
            out.append(f"{synth.classes[lab]}/s{seed}_{i:05d}.png")
        return out

    # -- the quality of the synthetic images (core.metrics.generative) ----------------------------
    def quality_path(self, method: str, seed: int) -> Path:
        return self.root / "quality" / f"{method}_s{seed}.json"

    def write_quality(self, method: str, seed: int, record: dict, rows: list[dict]) -> None:
        """The quality report of one method and seed, and its per-image table (nearest real image, copy,
        predicted class, kept by the gate) as synthetic/<method>/quality_s<seed>.csv."""
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        cols = ["file", "class", "nearest", "distance", "copy", "predicted", "confidence", "kept"]
        w.writerow(cols)
        for r in rows:
            w.writerow(csv_row([r.get(c, "") for c in cols]))
        atomic_write(self.quality_table_path(method, seed), buf.getvalue())
        write_json(self.quality_path(method, seed), record)

    def quality(self, method: str, seed: int) -> dict | None:
        return read_json(self.quality_path(method, seed))

    def quality_table_path(self, method: str, seed: int) -> Path:
        return self.synthetic_dir(method) / f"quality_s{seed}.csv"

    def quality_table(self, method: str, seed: int) -> dict[str, dict]:
        """{file: row} of one seed's per-image quality table ({} when the run measured none)."""
        try:
            with open(self.quality_table_path(method, seed), newline="", encoding="utf-8") as fh:
                rows = [{k: csv_value(v) if isinstance(v, str) else v for k, v in r.items()}
                        for r in csv.DictReader(fh)]
            return {r["file"]: r for r in rows}
        except (OSError, KeyError, csv.Error):
            return {}

    def load_synthetic(self, method: str, seed: int) -> ImageSet:
        path = self.synthetic_npz(method, seed)
        if not path.exists():
            raise RunError(f"{method} has no synthetic images for seed {seed} in this run; fit it first")
        return load_npz(path)

    def synthetic_methods(self) -> list[str]:
        """Methods of this run with synthetic images to show or export (the one rule): a provenance file
        or image files in synthetic/<method>/ (images without provenance are shown as unreadable)."""
        base = self.root / "synthetic"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if p.is_dir() and (self._provenance_files(p) or next(p.glob("*/*.png"), None)))

    @staticmethod
    def _provenance_files(base: Path) -> list[tuple[int | None, Path]]:
        out = []
        with contextlib.suppress(OSError):
            for p in base.iterdir():
                m = _PROVENANCE_FILE.match(p.name)
                if m and p.is_file():
                    out.append((int(m.group(1)) if m.group(1) is not None else None, p))
        return sorted(out, key=lambda t: (t[0] is not None, t[0] or 0))

    def gallery(self, method: str, cls: str | None = None, seed: int | None = None) -> list[GalleryItem]:
        """Synthetic images of one method (and class, seed) with their provenance, in file order.

        A provenance file still being written may end with half a line: that part waits for the next
        read. A file that is not text, lacks its columns, has a malformed row or names a path outside
        the folder raises `RunError` saying the images are unreadable and to re-run."""
        base = self.synthetic_dir(method)
        if not base.is_dir():
            raise RunError(f"this run has no synthetic images of {method!r}")
        files = self._provenance_files(base)
        if not files:
            raise RunError(unreadable_message(f"synthetic images of {method} are",
                                       f"synthetic/{method} has no provenance file"))
        items: list[GalleryItem] = []
        for _, path in files:
            items += self._read_provenance(base, path, method)
        return [it for it in items if (cls is None or it.cls == cls) and (seed is None or it.seed == seed)
                and it.path.exists()]

    def _read_provenance(self, base: Path, path: Path, method: str) -> list[GalleryItem]:
        where = f"synthetic/{method}/{path.name}"

        def unreadable(why: str) -> RunError:
            return RunError(unreadable_message(f"synthetic images of {method} are", f"{where} {why}"))

        try:
            raw = path.read_bytes()
        except OSError as err:
            raise unreadable(f"cannot be read: {err.strerror or err}") from None
        try:
            text = raw[: raw.rfind(b"\n") + 1].decode("utf-8")   # complete lines only
        except UnicodeDecodeError:
            raise unreadable("is not text") from None
        if not text:
            status = self.job_info().get("status")
            writing = status in ("running", "queued") or (status is None and not self.has_metrics())
            if writing or not any(base.glob("*/*.png")):
                return []     # being written: its rows are not on disk yet
            raise unreadable("is empty although the folder holds images")
        try:
            rows = [[csv_value(cell) for cell in row] for row in csv.reader(io.StringIO(text, newline=""))]
        except csv.Error as err:
            raise unreadable(f"is not a CSV table ({err})") from None
        header = rows[0]
        if not set(PROVENANCE_COLUMNS) <= set(header):
            raise unreadable(f"lacks the columns {', '.join(c for c in PROVENANCE_COLUMNS if c not in header)}")
        col = {name: header.index(name) for name in (*PROVENANCE_COLUMNS, "parents") if name in header}
        items: list[GalleryItem] = []
        counters: dict[tuple[str, int], int] = {}
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise unreadable(f"has {len(row)} fields instead of {len(header)} at line {line}")
            file, klass, seed_text = row[col["file"]], row[col["class"]], row[col["seed"]]
            parts = PurePosixPath(file).parts
            if not file or file.startswith("/") or "\\" in file or "\x00" in file or ".." in parts or len(parts) < 2:
                raise unreadable(f"names an image outside its folder at line {line} ({file[:60]!r})")
            try:
                s = int(seed_text)
            except ValueError:
                raise unreadable(f"has the seed {seed_text[:20]!r} (not a number) at line {line}") from None
            if not klass:
                raise unreadable(f"has no class at line {line}")
            parents = row[col["parents"]] if "parents" in col else ""
            n = counters.get((klass, s), 0)
            counters[(klass, s)] = n + 1
            details = {c: row[header.index(c)] for c in TRANSPLANT_COLUMNS if c in header}
            mask = details.get("mask", "")
            if mask and (mask.startswith("/") or "\\" in mask or ".." in PurePosixPath(mask).parts):
                raise unreadable(f"names a mask outside its folder at line {line} ({mask[:60]!r})")
            items.append(GalleryItem(base / file, file, klass, s, [p for p in parents.split("|") if p], n,
                                     details if any(details.values()) else {}))
        return items

    def images_by_source(self, sources: list[str]) -> dict[str, np.ndarray]:
        """Real images of the run by their source id (train and test splits), for provenance parents."""
        want, out = set(sources), {}
        for name in ("train", "test"):
            if not want - set(out):
                break
            ds = self.load_split(name)
            if ds is None:
                continue
            for i, s in enumerate(ds.sources):
                if s in want and s not in out:
                    out[s] = ds.images[i]
        return out

    def has_quality_filter(self, method: str) -> bool:
        """Whether the quality gate was measured for this method (the export can then keep only what passed)."""
        return any(self.synthetic_dir(method).glob("quality_s*.csv"))


# ---------------------------------------------------------------------------------------------
# npz image sets
# ---------------------------------------------------------------------------------------------
