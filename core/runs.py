"""Reading a run directory: what the UI pages and the CLI show about a run, never how it is made.

    p = progress(run_dir)           # stage, overall fraction, elapsed, remaining time, last error
    loss_rows(run_dir)              # generative monitors (d_loss, g_loss, ...) as long-form rows
    epoch_rows(run_dir)             # classifier curves (loss, test F1 per epoch)
    gallery(run_dir, "smote", "crack")        # synthetic images with seed and parents
    predictions(run_dir, "smote_s0")          # per test image: true, pred, probabilities
    cell(run_dir, "baseline_paper_s0", "crack", "normal")   # test images in one confusion cell
    leaderboard_rows(metrics)                  # flat rows for a table, fairest first
    list_runs(workspace)                       # summaries of every run of a workspace
    read_metrics(run_dir)                      # metrics.json, or RunError saying it is unreadable
    metrics_problem(run_dir)                   # why metrics.json cannot be shown, or None

Everything here tolerates a run that is still being written (half a line at the end of
events.jsonl, metrics.json not there yet) and a run that failed half way.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import RunError

MONITOR_SKIP = {"t", "kind", "method", "class", "seed", "step", "total"}


# ---------------------------------------------------------------------------------------------
# events.jsonl, read incrementally (a long GAN run writes thousands of events)
# ---------------------------------------------------------------------------------------------
class _EventCache:
    """Per-file cache: only the bytes appended since the last read are parsed."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[int, int, list[dict]]] = {}   # path -> (inode, offset, events)

    def read(self, run_dir: str | Path) -> list[dict]:
        path = Path(run_dir) / "events.jsonl"
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
            for line in chunk[:end].splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line.decode("utf-8", errors="replace")))
                except ValueError:
                    continue
            offset += end
            events = list(events)
        self._files[str(path)] = (st.st_ino, offset, events)
        if len(self._files) > 64:
            self._files.pop(next(iter(self._files)))
        return events


_CACHE = _EventCache()


def events(run_dir: str | Path) -> list[dict]:
    """All complete events of the run so far (cached; safe while the run writes)."""
    return _CACHE.read(run_dir)


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------
@dataclass
class Progress:
    stage: str = ""
    message: str = ""
    fraction: float = 0.0          # the run overall, 0..1
    step: int = 0                  # inside the current stage
    total: int = 0
    started: float | None = None   # first event time
    last: float | None = None      # latest event time
    elapsed: float | None = None   # seconds
    remaining: float | None = None  # seconds, a rough guess from the overall fraction
    finished: bool = False
    error: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def stage_fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


def progress(run_dir: str | Path, active: bool | None = None, now: float | None = None) -> Progress:
    """Where the run stands. `active` (job still running) decides whether elapsed time runs on;
    by default a run is active until it wrote `done` or `error`."""
    evs = events(run_dir)
    p = Progress()
    if not evs:
        return p
    p.started, p.last = evs[0].get("t"), evs[-1].get("t")
    for ev in evs:
        kind = ev.get("kind")
        if kind == "stage":
            p.stage, p.message = str(ev.get("stage", "")), str(ev.get("message", ""))
            p.step, p.total = 0, 0
        elif kind == "progress":
            p.stage = str(ev.get("stage", p.stage))
            p.step, p.total = int(ev.get("step", 0) or 0), int(ev.get("total", 0) or 0)
        elif kind == "warning":
            p.warnings.append(str(ev.get("message", "")))
        elif kind == "done":
            p.finished, p.fraction = True, 1.0
            p.message = str(ev.get("message", p.message))
        elif kind == "error":
            p.error = str(ev.get("message", ""))
        if "overall" in ev and isinstance(ev["overall"], (int, float)):
            p.fraction = max(0.0, min(1.0, float(ev["overall"])))
    if active is None:
        active = not (p.finished or p.error)
    end = (now or time.time()) if active else (p.last or p.started)
    if p.started is not None and end is not None:
        p.elapsed = max(0.0, end - p.started)
    if active and p.elapsed and 0.02 <= p.fraction < 1:
        p.remaining = p.elapsed * (1 - p.fraction) / p.fraction
    return p


def format_seconds(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


# ---------------------------------------------------------------------------------------------
# Curves and log
# ---------------------------------------------------------------------------------------------
def loss_rows(run_dir: str | Path) -> list[dict]:
    """Generative training monitors as rows {method, class, seed, step, series, value}."""
    rows = []
    for ev in events(run_dir):
        if ev.get("kind") != "monitor":
            continue
        for key, value in ev.items():
            if key in MONITOR_SKIP or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            rows.append({"method": ev.get("method", ""), "class": ev.get("class") or "all",
                         "seed": ev.get("seed", 0), "step": ev.get("step", 0), "series": key,
                         "value": float(value)})
    return rows


def epoch_rows(run_dir: str | Path) -> list[dict]:
    """Classifier curves: {model, epoch, series (loss, test_f1, ...), value}."""
    rows = []
    for ev in events(run_dir):
        if ev.get("kind") != "epoch":
            continue
        for key, value in ev.items():
            if key in ("t", "kind", "model", "epoch", "epochs", "step", "steps") or isinstance(value, bool) \
                    or not isinstance(value, (int, float)):
                continue
            rows.append({"model": ev.get("model", ""), "epoch": ev.get("epoch", 0), "series": key,
                         "value": float(value)})
    return rows


def log_tail(run_dir: str | Path, lines: int = 40) -> str:
    path = Path(run_dir) / "log.txt"
    if not path.exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def sample_grids(run_dir: str | Path) -> list[dict]:
    """GAN sample grids written during training: {method, class, seed, step, path}, in order."""
    out = []
    for ev in events(run_dir):
        if ev.get("kind") == "image" and ev.get("path"):
            p = Path(ev["path"])
            p = p if p.is_absolute() else Path(run_dir) / p
            if p.exists():
                out.append({"method": ev.get("method", ""), "class": ev.get("class") or "all",
                            "seed": int(ev.get("seed", 0)), "step": ev.get("step", 0), "path": str(p)})
    return out


# ---------------------------------------------------------------------------------------------
# Files of a run
# ---------------------------------------------------------------------------------------------
def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_metrics(run_dir: str | Path) -> dict | None:
    """metrics.json as it is, None when missing or not JSON (no shape check: see `read_metrics`)."""
    return _json(Path(run_dir) / "metrics.json")


RERUN_HINT = "re-run it from the Jobs page"


def _unreadable(what: str, why: str) -> str:
    return f"This run's {what} unreadable ({why}); {RERUN_HINT}."


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


def _parse_metrics(path: Path) -> tuple[dict | None, str | None]:
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


_PROBLEMS: dict[str, tuple[tuple[int, int], str | None]] = {}


def metrics_problem(run_dir: str | Path) -> str | None:
    """Why this run's metrics.json cannot be shown (missing, cut short, not JSON, parts missing), or None
    when the result pages can read it. Cached per file version: `list_runs` asks it for every run."""
    path = Path(run_dir) / "metrics.json"
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return "metrics.json is missing"
    cached = _PROBLEMS.get(str(path))
    if cached and cached[0] == stamp:
        return cached[1]
    problem = _parse_metrics(path)[1]
    _PROBLEMS[str(path)] = (stamp, problem)
    if len(_PROBLEMS) > 256:
        _PROBLEMS.pop(next(iter(_PROBLEMS)))
    return problem


def read_metrics(run_dir: str | Path) -> dict:
    """metrics.json of a finished run, checked to hold what the result pages read. Raises `RunError`
    saying it is unreadable and what to do (re-run) when it is missing, cut short or incomplete."""
    data, problem = _parse_metrics(Path(run_dir) / "metrics.json")
    if problem:
        raise RunError(_unreadable("results are", problem))
    return data


def load_config(run_dir: str | Path) -> dict:
    return _json(Path(run_dir) / "config.json") or {}


def load_job_info(run_dir: str | Path) -> dict:
    return _json(Path(run_dir) / "job.json") or {}


def run_status(run_dir: str | Path) -> str:
    """done | failed | cancelled | interrupted | queued | running | unknown, from the run folder alone."""
    info = load_job_info(run_dir)
    if info.get("status"):
        return str(info["status"])
    if (Path(run_dir) / "metrics.json").exists():
        return "done"
    p = progress(run_dir)
    return "failed" if p.error else ("running" if p.started else "unknown")


def run_summary(run_dir: str | Path) -> dict:
    """{id, label, status, created, methods, seeds, data, has_metrics, results_problem, has_synthetic}.
    `has_metrics`: metrics.json is there; `results_problem`: why it cannot be read (None when it can)."""
    run_dir = Path(run_dir)
    info, cfg = load_job_info(run_dir), load_config(run_dir)
    methods = cfg.get("methods") or []
    created = info.get("created") or (run_dir.stat().st_mtime if run_dir.exists() else 0)
    has_metrics = (run_dir / "metrics.json").exists()
    return {"id": run_dir.name, "label": info.get("label") or ", ".join(methods) or run_dir.name,
            "status": run_status(run_dir), "created": created, "methods": methods,
            "seeds": cfg.get("seeds") or [], "data": cfg.get("data", ""),
            "has_metrics": has_metrics,
            "results_problem": metrics_problem(run_dir) if has_metrics else None,
            "has_synthetic": bool(synthetic_methods(run_dir))}


def list_runs(runs_root: str | Path) -> list[dict]:
    """Summaries of the runs under a `runs/` folder, newest first."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    marks = ("events.jsonl", "config.json", "job.json")
    out = [run_summary(p) for p in root.iterdir()
           if p.is_dir() and not p.name.startswith(".") and any((p / m).exists() for m in marks)]
    return sorted(out, key=lambda r: -float(r["created"] or 0))


def run_label(summary: dict) -> str:
    when = time.strftime("%m-%d %H:%M", time.localtime(summary["created"])) if summary.get("created") else ""
    status = summary["status"] + (" (results unreadable)" if summary.get("results_problem") else "")
    return f"{summary['label']} · {status} · {when} · {summary['id'][:8]}"


# ---------------------------------------------------------------------------------------------
# Synthetic images and provenance
# ---------------------------------------------------------------------------------------------
@dataclass
class GalleryItem:
    path: Path
    file: str        # relative to synthetic/<method>/
    cls: str
    seed: int
    parents: list[str]


def synthetic_methods(run_dir: str | Path) -> list[str]:
    base = Path(run_dir) / "synthetic"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.iterdir()))


def gallery(run_dir: str | Path, method: str, cls: str | None = None, seed: int | None = None) -> list[GalleryItem]:
    """Synthetic images of one method (and class, seed) with their provenance, in file order.

    synthetic/<method>/provenance.csv lists every image the run wrote. A run still writing it may end it
    with half a line (or with rows not flushed yet): that part waits for the next read. A file that is
    missing, not text, without its columns, with a malformed row or a path leaving the folder raises
    `RunError` saying the images are unreadable and to re-run."""
    base = Path(run_dir) / "synthetic" / method
    if not base.is_dir():
        raise RunError(f"this run has no synthetic images of {method!r}")
    items = _read_provenance(run_dir, base, method)
    return [it for it in items if (cls is None or it.cls == cls) and (seed is None or it.seed == seed)
            and it.path.exists()]


PROVENANCE_COLUMNS = ("file", "class", "seed")


def _read_provenance(run_dir: str | Path, base: Path, method: str) -> list[GalleryItem]:
    where = f"synthetic/{method}/provenance.csv"

    def unreadable(why: str) -> RunError:
        return RunError(_unreadable(f"synthetic images of {method} are", f"{where} {why}"))

    try:
        raw = (base / "provenance.csv").read_bytes()
    except FileNotFoundError:
        raise unreadable("is missing") from None
    except OSError as err:
        raise unreadable(f"cannot be read: {err.strerror or err}") from None
    try:
        text = raw[: raw.rfind(b"\n") + 1].decode("utf-8")   # complete lines only
    except UnicodeDecodeError:
        raise unreadable("is not text") from None
    if not text:
        if run_status(run_dir) in ("running", "queued") or not any(base.glob("*/*.png")):
            return []     # being written: its rows are not on disk yet
        raise unreadable("is empty although the folder holds images")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise unreadable(f"is not a CSV table ({err})") from None
    header = rows[0]
    if not set(PROVENANCE_COLUMNS) <= set(header):
        raise unreadable(f"lacks the columns {', '.join(c for c in PROVENANCE_COLUMNS if c not in header)}")
    col = {name: header.index(name) for name in (*PROVENANCE_COLUMNS, "parents") if name in header}
    items: list[GalleryItem] = []
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
        items.append(GalleryItem(base / file, file, klass, s, [p for p in parents.split("|") if p]))
    return items


def _npz(run_dir: str | Path, name: str) -> dict | None:
    path = Path(run_dir) / "data" / f"{name}.npz"
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {"images": z["images"], "labels": z["labels"], "classes": [str(c) for c in z["classes"]],
                "sources": [str(s) for s in z["sources"]]}


def real_images(run_dir: str | Path, cls: str, split: str = "train") -> tuple[np.ndarray, list[str]]:
    """The real images of a class the run used (train split by default): (uint8 [n,H,W,C], sources)."""
    z = _npz(run_dir, split)
    if z is None or cls not in z["classes"]:
        return np.zeros((0, 1, 1, 1), np.uint8), []
    idx = np.flatnonzero(z["labels"] == z["classes"].index(cls))
    return z["images"][idx], [z["sources"][i] for i in idx]


def images_by_source(run_dir: str | Path, sources: list[str]) -> dict[str, np.ndarray]:
    """Real images of the run by their source id (train and test splits), for provenance parents."""
    want, out = set(sources), {}
    for split in ("train", "test"):
        if not want - set(out):
            break
        z = _npz(run_dir, split)
        if z is None:
            continue
        for i, s in enumerate(z["sources"]):
            if s in want and s not in out:
                out[s] = z["images"][i]
    return out


def to_display(img: np.ndarray) -> np.ndarray:
    """[H,W,1] -> [H,W] for st.image / PIL."""
    return img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img


# ---------------------------------------------------------------------------------------------
# Predictions and comparison
# ---------------------------------------------------------------------------------------------
def prediction_models(run_dir: str | Path) -> list[str]:
    """Model ids with a predictions file, e.g. baseline_paper_s0, smote_s0."""
    base = Path(run_dir) / "predictions"
    return sorted(p.stem for p in base.glob("*.csv")) if base.is_dir() else []


def predictions(run_dir: str | Path, model: str) -> list[dict]:
    """Rows {file, true, pred, probs: {class: p}} of one model, in test order."""
    path = Path(run_dir) / "predictions" / f"{model}.csv"
    if not path.exists():
        raise RunError(f"no predictions of {model!r} in this run")
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            probs = {k[2:]: float(v) for k, v in r.items() if k.startswith("p_") and v not in ("", None)}
            rows.append({"file": r["file"], "true": r["true"], "pred": r["pred"], "probs": probs})
    return rows


def model_id(name: str, seed: int) -> str:
    """Prediction file id: baselines are named 'paper' etc. in metrics.json, 'baseline_paper_s0' on disk."""
    if name.startswith("baseline:"):
        name = name.split(":", 1)[1]
    if name in ("paper", "equal_steps", "class_weighted"):
        name = f"baseline_{name}"
    return f"{name}_s{seed}"


def cell(run_dir: str | Path, model: str, true_cls: str, pred_cls: str) -> list[dict]:
    """Test images with this true class that `model` predicted as `pred_cls`."""
    return [r for r in predictions(run_dir, model) if r["true"] == true_cls and r["pred"] == pred_cls]


def confusion_from_predictions(rows: list[dict], classes: list[str]) -> list[list[int]]:
    cm = [[0] * len(classes) for _ in classes]
    pos = {c: i for i, c in enumerate(classes)}
    for r in rows:
        if r["true"] in pos and r["pred"] in pos:
            cm[pos[r["true"]]][pos[r["pred"]]] += 1
    return cm


def model_metrics(metrics: dict, name: str) -> dict:
    """The metrics block of a method or a baseline ('paper', 'baseline:paper', 'smote')."""
    if name.startswith("baseline:"):
        name = name.split(":", 1)[1]
    if name in metrics.get("baselines", {}):
        return metrics["baselines"][name]
    if name in metrics.get("methods", {}):
        return metrics["methods"][name]
    raise RunError(f"no results for {name!r} in this run")


def seed_confusion(metrics: dict, name: str, seed: int | None) -> list[list[int]]:
    """Confusion matrix of one model: for a seed when given, else summed over seeds (so counts stay
    whole test images), falling back to the matrix stored at the top of the block."""
    m = model_metrics(metrics, name)
    seeds = m.get("seeds") or {}
    if seed is not None and str(seed) in seeds:
        return seeds[str(seed)]["confusion_matrix"]
    if seed is None and seeds:
        mats = [np.asarray(s["confusion_matrix"]) for s in seeds.values() if "confusion_matrix" in s]
        if mats:
            return np.sum(mats, axis=0).tolist()
    if "confusion_matrix" in m:
        return m["confusion_matrix"]
    raise RunError(f"no confusion matrix for {name!r}")


def seeds_of(metrics: dict) -> list[int]:
    return list((metrics.get("protocol") or {}).get("seeds") or [])


def leaderboard_rows(metrics: dict) -> list[dict]:
    """Flat rows for a table: name, kind, macro F1 mean ± std, 95% CI, P, R, accuracy, gain over each
    baseline, verdict. Fairest first: sorted by the gain over the strongest baseline for methods, with
    the baselines after them, then by F1."""
    strongest = metrics.get("strongest_baseline")
    rows = []
    for r in metrics.get("leaderboard", []):
        row = {"name": r["name"], "kind": r["kind"], "macro F1": round(r["f1_macro"], 4),
               "± std": round(r.get("f1_std", 0.0), 4),
               "95% CI": f"{r['f1_ci'][0]:.3f}-{r['f1_ci'][1]:.3f}" if r.get("f1_ci") else "",
               "precision": round(r["precision_macro"], 4), "recall": round(r["recall_macro"], 4),
               "accuracy": round(r["accuracy"], 4)}
        for b, g in (r.get("gain") or {}).items():
            row[f"gain vs {b}"] = round(g, 4)
        row["verdict"] = r.get("verdict", "")
        rows.append(row)
    key = f"gain vs {strongest}" if strongest else None

    def order(row: dict) -> tuple:
        is_method = row["kind"] == "method"
        gain = row.get(key, 0.0) if key else 0.0
        return (0 if is_method else 1, -(gain or 0.0), -row["macro F1"])
    return sorted(rows, key=order)


def verdict_lines(metrics: dict) -> list[str]:
    """The plain-language verdict of each method, plus failures and fallbacks, for the UI and report."""
    out = [m["verdict"]["text"] for m in metrics.get("methods", {}).values()
           if isinstance(m.get("verdict"), dict) and m["verdict"].get("text")]
    for name, why in (metrics.get("failed") or {}).items():
        out.append(f"{name} failed and is not compared: {why}")
    return out
