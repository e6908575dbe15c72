"""The file formats under a run folder that more than one part of `RunDir` reads: events.jsonl read incrementally,
the image sets as .npz, metrics.json checked to hold what the result pages read, and the gallery's items."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RunError
from ..files import atomic_path
from ..imageset import ImageSet

RERUN_HINT = "re-run it from the Jobs page"


def unreadable_message(what: str, why: str) -> str:
    return f"This run's {what} unreadable ({why}); {RERUN_HINT}."


# ---------------------------------------------------------------------------------------------
# events.jsonl, read incrementally (a long GAN run writes thousands of events)
# ---------------------------------------------------------------------------------------------
class EventCache:
    """Per-file cache: only the bytes appended since the last read are parsed."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[int, int, list[dict]]] = {}   # path -> (inode, offset, events)

    def read(self, path: Path) -> list[dict]:
        try:
            st = path.stat()
        except OSError:
            self._files.pop(str(path), None)
            return []
        inode, offset, events = self._files.get(str(path), (st.st_ino, 0, []))
        if inode != st.st_ino or st.st_size < offset:   # replaced or truncated: start over
            offset, events = 0, []
        if st.st_size > offset:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1        # a half-written last line waits for the next read
            events = list(events)
            for line in chunk[:end].splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line.decode("utf-8", errors="replace"))
                except ValueError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
            offset += end
        self._files[str(path)] = (st.st_ino, offset, events)
        if len(self._files) > 64:
            self._files.pop(next(iter(self._files)))
        return events


EVENTS = EventCache()


# ---------------------------------------------------------------------------------------------
# Synthetic images and their provenance
# ---------------------------------------------------------------------------------------------
@dataclass
class GalleryItem:
    path: Path
    file: str        # relative to synthetic/<method>/
    cls: str
    seed: int
    parents: list[str]
    index: int = 0   # running number of the image within its class and seed
    details: dict = field(default_factory=dict)   # TRANSPLANT_COLUMNS of a transplanted defect ({} otherwise)


# ---------------------------------------------------------------------------------------------
# Image sets and metrics.json
# ---------------------------------------------------------------------------------------------
def save_npz(path: Path, ds: ImageSet) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            extra = {} if ds.targets is None else {"targets": ds.targets}     # class shares (cmo)
            if ds.masks is not None and ds.masks.any():                       # the dataset's own masks
                extra["masks"] = ds.masks
            np.savez_compressed(fh, images=ds.images, labels=ds.labels, classes=np.array(ds.classes),
                                sources=np.array(ds.sources), **extra)


def load_npz(path: Path) -> ImageSet:
    try:
        with np.load(path, allow_pickle=False) as z:
            return ImageSet(z["images"], z["labels"], [str(c) for c in z["classes"]],
                            [str(s) for s in z["sources"]], z["targets"] if "targets" in z.files else None,
                            z["masks"] if "masks" in z.files else None)
    except (OSError, ValueError, KeyError) as err:
        raise RunError(unreadable_message("images are", f"{path.name} cannot be read: {err}")) from None


# ---------------------------------------------------------------------------------------------
# metrics.json: the shape the result pages read
# ---------------------------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _matrix_problem(cm, n: int) -> str | None:
    if not (isinstance(cm, list) and len(cm) == n
            and all(isinstance(row, list) and len(row) == n and all(_is_number(v) for v in row) for row in cm)):
        return f"is not a {n}x{n} matrix of counts"
    return None


def _metrics_shape_problem(m) -> str | None:
    """What a parsed metrics.json lacks for the result pages, or None. Checks the parts the pages read."""
    if not isinstance(m, dict):
        return "metrics.json does not hold an object"
    classes = m.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        return "metrics.json has no list of classes"
    n = len(classes)
    for table in ("baselines", "methods"):
        if not isinstance(m.get(table), dict):
            return f"metrics.json has no {table!r} results"
    if not m["baselines"]:
        return "metrics.json has no baseline results"
    for table in ("baselines", "methods"):
        for name, block in m[table].items():
            where = f"metrics.json: {table[:-1]} {name!r}"
            if not isinstance(block, dict):
                return f"{where} is not an object"
            if "confusion_matrix" not in block and not block.get("seeds"):
                return f"{where} has no confusion matrix"
            if "confusion_matrix" in block and (bad := _matrix_problem(block["confusion_matrix"], n)):
                return f"{where}: the confusion matrix {bad}"
            seeds = block.get("seeds", {})
            if not isinstance(seeds, dict) or not all(isinstance(v, dict) for v in seeds.values()):
                return f"{where}: the per-seed results are not objects"
            for seed, res in seeds.items():
                if "confusion_matrix" in res and (bad := _matrix_problem(res["confusion_matrix"], n)):
                    return f"{where}, seed {seed}: the confusion matrix {bad}"
            if "verdict" in block and not isinstance(block["verdict"], dict):
                return f"{where}: the verdict is not an object"
    strongest = m.get("strongest_baseline")
    if strongest is not None and strongest not in m["baselines"]:
        return f"metrics.json names {strongest!r} as the strongest baseline but has no results for it"
    board = m.get("leaderboard", [])
    if not isinstance(board, list):
        return "metrics.json: the leaderboard is not a list"
    for row in board:
        if not (isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("kind"), str)
                and all(_is_number(row.get(k)) for k in ("f1_macro", "precision_macro", "recall_macro", "accuracy"))):
            return "metrics.json: a leaderboard row lacks its name, kind or scores"
    for key in ("failed", "protocol"):
        if m.get(key) is not None and not isinstance(m[key], dict):
            return f"metrics.json: {key!r} is not an object"
    return None


def parse_metrics(path: Path) -> tuple[dict | None, str | None]:
    """(metrics, None) when metrics.json can be shown, else (None, why not)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "metrics.json is missing"
    except UnicodeDecodeError:
        return None, "metrics.json is not text"
    except OSError as err:
        return None, f"metrics.json cannot be read: {err.strerror or err}"
    if not text.strip():
        return None, "metrics.json is empty"
    try:
        data = json.loads(text)
    except ValueError as err:
        where = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        return None, f"metrics.json is not valid JSON{where}; it may have been cut short"
    problem = _metrics_shape_problem(data)
    return (None, problem) if problem else (data, None)
