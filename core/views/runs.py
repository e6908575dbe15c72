"""What the pages and the CLI show about one run or a workspace's runs, never how it is made. Each function takes
a run folder (a `RunDir`, or its path); every file is read through `RunDir`, which the pages also call directly
for a file as it is (`RunDir(run).read_metrics()`, `.gallery(method)`, `.predictions(model)`, `.log_tail()`).

    p = progress(run)               # stage, overall fraction, elapsed, remaining time, last error
    loss_rows(run)                  # generative monitors (d_loss, g_loss, ...) as long-form rows
    epoch_rows(run)                 # classifier curves (loss, test F1 per epoch)
    placements(run)                 # where each task of the plan ran: runner, node, host, process, device
    cell(run, "baseline_paper_s0", "crack", "normal")   # test images in one confusion cell
    leaderboard_rows(metrics)       # flat rows for a table, fairest first
    list_runs(workspace.runs)       # summaries of every run of a workspace

Everything here tolerates a run that is still being written (half a line at the end of
events.jsonl, metrics.json not there yet) and a run that failed half way.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..estimate import fmt as format_seconds   # '42 s', '3 min 05 s', '1 h 02 min'; '-' when unknown
from ..rundir import RERUN_HINT, GalleryItem, RunDir

__all__ = ["GALLERY_SORTS", "GATE_FILTERS", "GalleryItem", "Progress", "QUALITY_HELP",
           "provenance_rows", "sort_and_filter", "progress", "RERUN_HINT", "cell", "confusion_from_predictions", "epoch_rows",
           "estimate_note", "finished_metrics", "format_seconds", "is_translation", "largest_mistake", "latent_map",
           "leaderboard_rows", "leakage_text", "list_runs", "loss_rows", "model_id", "model_metrics",
           "placement_summary", "placements", "quality_of", "quality_rows", "real_images", "run_label", "run_status",
           "run_summary", "sample_grids", "seed_confusion", "seeds_of", "synthetic_image", "to_display",
           "transplant_views", "verdict_lines"]

MONITOR_SKIP = {"t", "kind", "method", "class", "seed", "step", "total"}


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
    remaining: float | None = None  # seconds: core.estimate.remaining for an experiment once it is split
    finished: bool = False
    error: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def stage_fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


def progress(run_dir: RunDir | str | Path, active: bool | None = None, now: float | None = None) -> Progress:
    """Where the run stands. `active` (job still running) decides whether elapsed time runs on;
    by default a run is active until it wrote `done` or `error`."""
    evs = RunDir(run_dir).events()
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
    if active and not p.finished:
        _follow_estimate(p, evs, end)
    return p


def _follow_estimate(p: Progress, evs: list[dict], now: float) -> None:
    """The fraction and time left of a running run by core.views.progress (the runner's `estimate` and `pace` events
    against its step counts); before the estimate (or for a job that is not an experiment) from the fraction
    reported so far."""
    from .progress import follow
    followed = follow(evs, now)
    if followed is not None:
        p.fraction, p.remaining = followed.fraction, followed.remaining
    elif p.elapsed and 0.02 <= p.fraction < 1:
        p.remaining = p.elapsed * (1 - p.fraction) / p.fraction


def estimate_note(est: dict) -> str:
    """The range of a preflight estimate and what it rests on, in a sentence."""
    text = (f"Likely {format_seconds(est.get('seconds_low'))} to {format_seconds(est.get('seconds_high'))}")
    n = est.get("calibrated_runs") or 0
    text += (f", calibrated on the stage times of this machine's {n} newest finished run{'s' if n != 1 else ''}"
             if n else ", from this project's measurements (no run has finished on this machine yet)")
    if (est.get("slowdown") or 1) >= 1.5:
        text += f"; the machine is busy now, {est['slowdown']:.1f}x slower than idle"
    if est.get("uncalibrated"):
        text += f"; never timed here yet: {', '.join(est['uncalibrated'])}"
    return text + "."


# ---------------------------------------------------------------------------------------------
# Curves and log
# ---------------------------------------------------------------------------------------------
def loss_rows(run_dir: RunDir | str | Path) -> list[dict]:
    """Generative training monitors as rows {method, class, seed, step, series, value}."""
    rows = []
    for ev in RunDir(run_dir).events():
        if ev.get("kind") != "monitor":
            continue
        for key, value in ev.items():
            if key in MONITOR_SKIP or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            rows.append({"method": ev.get("method", ""), "class": ev.get("class") or "all",
                         "seed": ev.get("seed", 0), "step": ev.get("step", 0), "series": key,
                         "value": float(value)})
    return rows


def epoch_rows(run_dir: RunDir | str | Path) -> list[dict]:
    """Classifier curves: {model, epoch, series (loss, test_f1, ...), value}."""
    rows = []
    for ev in RunDir(run_dir).events():
        if ev.get("kind") != "epoch":
            continue
        for key, value in ev.items():
            if key in ("t", "kind", "model", "epoch", "epochs", "step", "steps") or isinstance(value, bool) \
                    or not isinstance(value, (int, float)):
                continue
            rows.append({"model": ev.get("model", ""), "epoch": ev.get("epoch", 0), "series": key,
                         "value": float(value)})
    return rows


def placements(run_dir: RunDir | str | Path) -> list[dict]:
    """One row per time a task of the plan started (a `task` event), in order: task, runner, node, host, pid,
    device, and `attempt` (2 and more: it ran again, e.g. after its process or node was lost)."""
    seen: dict[str, int] = {}
    rows = []
    for e in RunDir(run_dir).events():
        if e.get("kind") != "task" or not e.get("task"):
            continue
        seen[e["task"]] = seen.get(e["task"], 0) + 1
        rows.append({"task": e["task"], "runner": e.get("runner", "local"), "node": e.get("node", ""),
                     "host": e.get("host", ""), "pid": e.get("pid"), "device": e.get("device", ""),
                     "attempt": seen[e["task"]], "started": e.get("t")})
    return rows


def placement_summary(rows: list[dict]) -> str:
    """One sentence on where a run's tasks ran, e.g. '16 tasks on 2 nodes (ray): ...; 1 ran again ...'."""
    if not rows:
        return "No task has started yet."
    tasks = {r["task"] for r in rows}
    nodes = sorted({r["node"] for r in rows})
    runners = sorted({r["runner"] for r in rows})
    devices = sorted({r["device"] for r in rows})
    again = sorted({r["task"] for r in rows if r["attempt"] > 1})
    text = (f"{len(tasks)} task{'s' * (len(tasks) != 1)} on {len(nodes)} node{'s' * (len(nodes) != 1)} "
            f"({', '.join(runners)} runner): {', '.join(nodes)}; devices: {', '.join(devices)}.")
    if again:
        text += (f" {len(again)} ran again after its process or node was lost (or the run was resumed): "
                 f"{', '.join(again)}.")
    return text


def sample_grids(run_dir: RunDir | str | Path) -> list[dict]:
    """GAN sample grids written during training: {method, class, seed, step, path}, in order."""
    out = []
    rd = RunDir(run_dir)
    for ev in rd.events():
        if ev.get("kind") == "image" and ev.get("path"):
            p = rd.resolve(ev["path"])
            if p.exists():
                out.append({"method": ev.get("method", ""), "class": ev.get("class") or "all",
                            "seed": int(ev.get("seed", 0)), "step": ev.get("step", 0), "path": str(p),
                            "rows": [str(r) for r in ev.get("rows") or []]})
    return out


def latent_map(run_dir: RunDir | str | Path, method: str, seed: int) -> list[dict]:
    """The 2-D t-SNE points {class, x, y} of one generator's latent codes; computed once, then read."""
    rd = RunDir(run_dir)
    cached = rd.latent_map(method, seed)
    if cached is not None:
        return cached
    got = rd.latent_codes(method, seed)
    if got is None:
        return []
    from ..metrics.generative import latent_embedding
    points = latent_embedding(*got, seed=seed)
    rd.write_latent_map(method, seed, points)
    return points


# ---------------------------------------------------------------------------------------------
# Files of a run
# ---------------------------------------------------------------------------------------------
def run_status(run_dir: RunDir | str | Path) -> str:
    """done | failed | cancelled | interrupted | queued | running | unknown, from the run folder alone."""
    rd = RunDir(run_dir)
    info = rd.job_info()
    if info.get("status"):
        return str(info["status"])
    if rd.has_metrics():
        return "done"
    p = progress(run_dir)
    return "failed" if p.error else ("running" if p.started else "unknown")


def run_summary(run_dir: RunDir | str | Path) -> dict:
    """{id, label, status, created, methods, seeds, data, has_metrics, results_problem, has_synthetic}.
    `has_metrics`: metrics.json is there; `results_problem`: why it cannot be read (None when it can)."""
    rd = RunDir(run_dir)
    info, cfg = rd.job_info(), rd.config()
    methods = cfg.get("methods") or []
    created = info.get("created") or (rd.root.stat().st_mtime if rd.exists() else 0)
    has_metrics = rd.has_metrics()
    return {"id": rd.id, "label": info.get("label") or ", ".join(methods) or rd.id,
            "status": run_status(run_dir), "created": created, "methods": methods,
            "seeds": cfg.get("seeds") or [], "data": cfg.get("data", ""),
            "has_metrics": has_metrics,
            "results_problem": rd.metrics_problem() if has_metrics else None,
            "has_synthetic": bool(rd.synthetic_methods() or any(f.synthetic_methods() for f in rd.folds()[:1]))}


def list_runs(runs_root: str | Path) -> list[dict]:
    """Summaries of the runs under a `runs/` folder, newest first."""
    out = [run_summary(rd) for rd in RunDir.under(runs_root)]
    return sorted(out, key=lambda r: -float(r["created"] or 0))


_METRICS: dict[str, tuple[float, int, dict]] = {}   # metrics.json by path: (mtime, size, content)


def finished_metrics(runs_root: str | Path, limit: int = 50) -> list[dict]:
    """metrics.json of the `limit` newest finished runs under a runs/ folder whose results can be read (what the
    Synthesize page's suggestion weighs). A file is read again only when it changed, not at every rerun."""
    out = []
    for r in list_runs(runs_root):
        if not (r["has_metrics"] and not r["results_problem"]):
            continue
        path = RunDir(Path(runs_root) / r["id"]).metrics_path
        try:
            st = path.stat()
        except OSError:
            continue
        cached = _METRICS.get(str(path))
        if cached is None or cached[:2] != (st.st_mtime, st.st_size):
            cached = (st.st_mtime, st.st_size, RunDir(path.parent).metrics() or {})
            _METRICS[str(path)] = cached
        out.append(cached[2])
        if len(out) >= limit:
            break
    return out


def run_label(summary: dict) -> str:
    when = time.strftime("%m-%d %H:%M", time.localtime(summary["created"])) if summary.get("created") else ""
    status = summary["status"] + (" (results unreadable)" if summary.get("results_problem") else "")
    return f"{summary['label']} · {status} · {when} · {summary['id'][:8]}"


# ---------------------------------------------------------------------------------------------
# Synthetic images and provenance
# ---------------------------------------------------------------------------------------------
def is_translation(item: GalleryItem) -> bool:
    """Whether a synthetic image was translated from one real image of another class (cyclegan)."""
    return len(item.parents) == 1 and not item.parents[0].startswith(f"{item.cls}/")


def real_images(run_dir: RunDir | str | Path, cls: str, split: str = "train") -> tuple[np.ndarray, list[str]]:
    """The real images of a class the run used (train split by default): (uint8 [n,H,W,C], sources)."""
    ds = RunDir(run_dir).load_split(split)
    if ds is None or cls not in ds.classes:
        return np.zeros((0, 1, 1, 1), np.uint8), []
    sub = ds.of_class(cls)
    return sub.images, sub.sources


def quality_of(run_dir: RunDir | str | Path, method: str, item: GalleryItem) -> dict | None:
    """The per-image quality row of a synthetic image (nearest real image, copy, predicted class, kept), or None
    when the run did not measure it."""
    return RunDir(run_dir).quality_table(method, item.seed).get(item.file)


def synthetic_image(item: GalleryItem) -> np.ndarray:
    """The pixels of one synthetic image of the gallery (its PNG), uint8 [H,W] or [H,W,C]."""
    from PIL import Image
    with Image.open(item.path) as im:
        return np.asarray(im)


def transplant_views(run_dir: str | Path, item: GalleryItem) -> dict | None:
    """A transplanted defect's images (cmo, defect_paste), or None for other images: {"defect": its real defect
    image with the mask outlined (red), "background": the real normal image it went onto, "result": the synthetic
    image with the pasted region outlined, "details": the provenance columns}; an image a run no longer holds
    is None in its place."""
    d = item.details
    if not d or not d.get("defect_source"):
        return None
    found = RunDir(run_dir).images_by_source([d["defect_source"], d.get("background", "")])
    result = _read_png(item.path)
    mask = _read_png(item.path.parent.parent / d["mask"]) if d.get("mask") else None
    defect = found.get(d["defect_source"])
    out = {"details": d, "background": found.get(d.get("background", "")), "defect": defect,
           "result": _outlined(result, mask) if result is not None else None}
    if defect is not None and mask is not None:
        out["defect"] = _outlined(defect, _source_mask(mask, d, defect.shape[:2]))
    return out


def _read_png(path: Path) -> np.ndarray | None:
    from PIL import Image
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, ValueError):
        return None
    return arr[..., None] if arr.ndim == 2 else arr


def _boxes(text: str) -> tuple[int, int, int, int] | None:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except (ValueError, AttributeError):
        return None
    return x, y, w, h


def _source_mask(mask: np.ndarray, d: dict, shape: tuple[int, int]) -> np.ndarray | None:
    """The pasted mask brought back to where it lay in the defect image: its box cut out, the flips and turn
    undone (they map a box's content as they map the whole image), put at `source_box`."""
    pos, src = _boxes(d.get("position", "")), _boxes(d.get("source_box", ""))
    if pos is None or src is None:
        return None
    m = mask[..., 0] if mask.ndim == 3 else mask
    x, y, w, h = pos
    crop = m[y:y + h, x:x + w]
    for op in reversed([t for t in d.get("transform", "").split("+") if t]):
        if op.startswith("rot"):
            crop = np.rot90(crop, -int(op[3:]) // 90)
        elif op == "vflip":
            crop = crop[::-1]
        elif op == "hflip":
            crop = crop[:, ::-1]
    sx, sy, sw, sh = src
    if crop.shape != (sh, sw) or sy + sh > shape[0] or sx + sw > shape[1]:
        return None
    out = np.zeros(shape, np.uint8)
    out[sy:sy + sh, sx:sx + sw] = crop
    return out


def _outlined(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """RGB copy of an image with the edge of `mask` drawn in red."""
    rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3].copy()
    if mask is None:
        return rgb
    m = (mask[..., 0] if mask.ndim == 3 else mask) > 0
    pad = np.pad(m, 1)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    rgb[m & ~inner] = (255, 0, 0)
    return rgb


GALLERY_SORTS = ("made first", "nearest real: closest first", "nearest real: farthest first",
                 "classifier confidence: lowest first", "classifier confidence: highest first", "gate: dropped first")
GATE_FILTERS = ("all", "kept by the gate", "dropped by the gate", "near-copies only")


def _number(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def provenance_rows(run_dir: str | Path, method: str, items: list[GalleryItem]) -> list[dict]:
    """One row per synthetic image, as the Gallery's table, sorting and filters read it: file, seed, how it was
    made (source / parents / background), its nearest real training image and the distance to it, whether that is
    a near-copy, the real-data classifier's reading and confidence, and the quality gate's decision. Text cells
    are "" where the run measured nothing (never None)."""
    rd = RunDir(run_dir)
    tables: dict[int, dict] = {}
    rows = []
    for it in items:
        if it.seed not in tables:
            tables[it.seed] = rd.quality_table(method, it.seed)
        q = tables[it.seed].get(it.file) or {}
        if not it.parents:
            made = "from noise (a trained model)"
        elif is_translation(it):
            made = f"translated from {it.parents[0]}"
        elif len(it.parents) == 2 and it.parents[1].split("/")[0] != it.cls:
            made = f"{it.parents[0]} on the background {it.parents[1]}"
        else:
            made = f"from {len(it.parents)} real image{'s' * (len(it.parents) != 1)}"
        gate = {"True": "keeps", "False": "drops"}.get(str(q.get("kept", "")), "")
        rows.append({"file": it.file, "seed": it.seed, "index": it.index, "made": made,
                     "parents": ", ".join(it.parents), "nearest real": str(q.get("nearest") or ""),
                     "distance": _number(q.get("distance")), "near-copy": str(q.get("copy")) == "True",
                     "classifier reads": str(q.get("predicted") or ""), "confidence": _number(q.get("confidence")),
                     "gate": gate})
    return rows


def sort_and_filter(rows: list[dict], sort: str = GALLERY_SORTS[0], show: str = GATE_FILTERS[0],
                    min_confidence: float = 0.0) -> list[dict]:
    """The Gallery's rows in `sort` order (one of `GALLERY_SORTS`; images without the measure last), those `show`
    keeps (one of `GATE_FILTERS`) with a classifier confidence of at least `min_confidence`."""
    keep = {"kept by the gate": lambda r: r["gate"] == "keeps", "dropped by the gate": lambda r: r["gate"] == "drops",
            "near-copies only": lambda r: r["near-copy"]}.get(show, lambda r: True)
    out = [r for r in rows if keep(r) and (min_confidence <= 0 or (r["confidence"] or 0.0) >= min_confidence)]
    big = float("inf")
    key = {"nearest real: closest first": lambda r: r["distance"] if r["distance"] is not None else big,
           "nearest real: farthest first": lambda r: -r["distance"] if r["distance"] is not None else big,
           "classifier confidence: lowest first": lambda r: r["confidence"] if r["confidence"] is not None else big,
           "classifier confidence: highest first": lambda r: -r["confidence"] if r["confidence"] is not None else big,
           "gate: dropped first": lambda r: {"drops": 0, "keeps": 1}.get(r["gate"], 2)}.get(sort)
    return sorted(out, key=key) if key else out


def to_display(img: np.ndarray) -> np.ndarray:
    """[H,W,1] -> [H,W] for st.image / PIL."""
    return img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img


# ---------------------------------------------------------------------------------------------
# Predictions and comparison
# ---------------------------------------------------------------------------------------------
def model_id(name: str, seed: int) -> str:
    """Prediction file id: baselines are named 'paper' etc. in metrics.json, 'baseline_paper_s0' on disk."""
    if name.startswith("baseline:"):
        name = name.split(":", 1)[1]
    from ..experiment.config import BASELINES
    if name in BASELINES:
        name = f"baseline_{name}"
    return RunDir.model_id(name, seed)


def cell(run_dir: RunDir | str | Path, model: str, true_cls: str, pred_cls: str) -> list[dict]:
    """Test images with this true class that `model` predicted as `pred_cls`."""
    return [r for r in RunDir(run_dir).predictions(model) if r["true"] == true_cls and r["pred"] == pred_cls]


def confusion_from_predictions(rows: list[dict], classes: list[str]) -> list[list[int]]:
    cm = [[0] * len(classes) for _ in classes]
    pos = {c: i for i, c in enumerate(classes)}
    for r in rows:
        if r["true"] in pos and r["pred"] in pos:
            cm[pos[r["true"]]][pos[r["pred"]]] += 1
    return cm


from .results import (  # noqa: E402,F401  (re-exported: the pages and the report read them as runs.X)
    model_metrics, seed_confusion, largest_mistake, seeds_of, leaderboard_rows, quality_rows, leakage_text, verdict_lines, QUALITY_COLUMNS, QUALITY_HELP,
    detection_rows, detection_help)
