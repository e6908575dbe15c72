"""The tables and sentences of a run's results, from its metrics.json (a dict): the leaderboard, the quality table,
the verdicts, the leakage paragraph, one model's metrics and confusion matrix, the Compare page's default cell.
Pure functions of the metrics; `core.views.runs` re-exports them."""
from __future__ import annotations

import math

import numpy as np

from ..errors import RunError


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


def largest_mistake(cm: list[list[int]]) -> tuple[int, int]:
    """The (true row, predicted column) of a confusion matrix's largest off-diagonal cell, the first cell when it
    has none: the cell the Compare page opens on."""
    best, cell = 0, (0, 0)
    for i, row in enumerate(cm):
        for j, v in enumerate(row):
            if i != j and v > best:
                best, cell = v, (i, j)
    return cell


def seeds_of(metrics: dict) -> list[int]:
    return list((metrics.get("protocol") or {}).get("seeds") or [])


def leaderboard_rows(metrics: dict) -> list[dict]:
    """Rows for a table, as the user reads them: name, kind, macro F1, its spread over seeds ("1 seed" when
    there is one), 95% CI, P, R, accuracy, the gain over each baseline (empty for a baseline), verdict. Every
    number with 3 decimals. Fairest first: methods by their gain over the strongest baseline, then the
    baselines, each by F1."""
    strongest = metrics.get("strongest_baseline")
    board = list(metrics.get("leaderboard", []))
    baselines = list(metrics.get("baselines") or {})

    def order(r: dict) -> tuple:
        gain = (r.get("gain") or {}).get(strongest, 0.0) if strongest else 0.0
        return (0 if r["kind"] == "method" else 1, -(gain or 0.0), -r["f1_macro"])

    from .headline import collapse_note, collapsed
    found = collapsed(metrics)
    rows = []
    for r in sorted(board, key=order):
        n_seeds = r.get("n_seeds") or len(seeds_of(metrics)) or 1
        row = {"name": r["name"], "kind": r["kind"], "macro F1": f"{r['f1_macro']:.3f}",
               "± std": "1 seed" if n_seeds == 1 else f"± {r.get('f1_std', 0.0):.3f}",
               "95% CI": f"{r['f1_ci'][0]:.3f} to {r['f1_ci'][1]:.3f}" if r.get("f1_ci") else "",
               "precision": f"{r['precision_macro']:.3f}", "recall": f"{r['recall_macro']:.3f}",
               "accuracy": f"{r['accuracy']:.3f}"}
        gains = r.get("gain") or {}
        for b in baselines:
            row[f"gain vs {b}"] = f"{gains[b]:+.3f}" if gains.get(b) is not None else ""
        row["verdict"] = r.get("verdict") or ""
        row["note"] = collapse_note(r["name"], metrics, found)     # a classifier that put ~all in one class
        rows.append(row)
    return rows


QUALITY_COLUMNS = (("fd_cls", "FD-cls"), ("kd_cls", "KD-cls"), ("precision", "precision"), ("recall", "recall"),
                   ("density", "density"), ("coverage", "coverage"), ("ssim_real", "SSIM real"),
                   ("ssim_synthetic", "SSIM synthetic"), ("near_copies", "near-copies"),
                   ("wrong_class", "wrong class"))


QUALITY_HELP = {   # every quality column: what it measures, in one line, and which way is better
    "FD-cls": ("Fréchet distance between real and synthetic images' features (the run's classifier)", "lower"),
    "KD-cls": ("Kernel distance on the same features; unbiased, so it can dip below 0 when the sets match",
               "lower (0 = indistinguishable)"),
    "precision": ("Share of synthetic images that fall among the real images of their class (realism)", "higher"),
    "recall": ("Share of real images with a synthetic image near them (coverage of the real variety)", "higher"),
    "density": ("How many real neighbourhoods each synthetic image falls in, on average (1 = as real ones)",
                "near 1"),
    "coverage": ("Share of real images whose neighbourhood holds a synthetic image", "higher"),
    "SSIM real": ("Mean structural similarity between pairs of real images (their own diversity)", "reference"),
    "SSIM synthetic": ("The same among synthetic images; far above SSIM real means mode collapse",
                       "near SSIM real"),
    "near-copies": ("Synthetic images closer to one real image than a quarter of the real spacing", "lower"),
    "wrong class": ("Synthetic images the real-data classifier puts in another class with confidence 0.9+",
                    "lower"),
    "gate dropped": ("Images the quality gate removed (wrong class, a generator's near-copies)", "lower"),
    "train-on-synthetic F1": ("Macro F1 on the real test images of a classifier trained on the synthetic "
                              "defects and real normal images", "higher"),
}


_DETECTION_HELP = ("Is something wrong with the part? Each classifier read as a defect detector: a defect image "
                   "called a defect of any class was caught (a Break called Crack too). AUROC: how well 1 - p(normal) "
                   "ranks the defect images above the normal ones (0.5 = chance, 1 = perfect), at any threshold; "
                   "recall at {fa:.0%} false alarms: the defect images found when the threshold lets {fa:.0%} of the "
                   "normal images through; caught / false alarms: at the classifier's own decision. Means over seeds; "
                   "figures to read beside the verdict, which is on macro F1 over every class.")


def detection_help() -> str:
    from ..metrics.classification import FALSE_ALARMS
    return _DETECTION_HELP.format(fa=FALSE_ALARMS)


def detection_rows(metrics: dict) -> list[dict]:
    """Rows for the defect-against-normal table (every model with a `detection` block), best AUROC first; empty
    when the run has no normal class or no such block (runs before it)."""
    found = [(name if kind == "methods" else f"baseline:{name}", label, m["detection"])
             for kind, label in (("methods", "method"), ("baselines", "baseline"))
             for name, m in (metrics.get(kind) or {}).items() if m.get("detection")]
    return [{"name": name, "kind": label, "AUROC": f"{d['auroc']:.3f}",
             f"recall at {d['false_alarms']:.0%} false alarms": f"{d['recall_at_false_alarms']:.3f}",
             "defects caught": f"{d['flagged']:.3f}", "false alarms": f"{d['false_alarm_rate']:.3f}"}
            for name, label, d in sorted(found, key=lambda x: -x[2]["auroc"])]


def _count(v) -> str:
    """An image count as shown: whole numbers as they are, a mean over seeds with one decimal."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def quality_rows(metrics: dict) -> list[dict]:
    """One row per method and class (and one 'all' row per method) of the synthetic images' quality, as the
    user reads it: 3 decimals, empty where a number is missing, KD-cls with its spread over subsets, the gate's
    dropped count, and the train-on-synthetic macro F1 on the 'all' row."""
    def fmt(v) -> str:
        return f"{v:.3f}" if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else ""

    rows = []
    for name, m in (metrics.get("methods") or {}).items():
        q = m.get("quality") if isinstance(m, dict) else None
        if not q or m.get("gated_from"):
            continue
        blocks = [(c, b) for c, b in q.get("per_class", {}).items()] + [("all", q.get("overall", {}))]
        for cls, b in blocks:
            row = {"method": name, "class": cls}
            for key, label in QUALITY_COLUMNS:
                row[label] = fmt(b.get(key))
                if key == "kd_cls" and row[label] and b.get("kd_cls_std") is not None:
                    row[label] += f" ± {b['kd_cls_std']:.3f}"
                if key == "fd_cls" and row[label] and b.get("fd_cls_reliable") is False:
                    row[label] += " (few images)"
            dropped = q.get("gate", {}).get("dropped", {}).get(cls) if cls != "all" else b.get("gate_dropped")
            row["gate dropped"] = _count(dropped)
            row["train-on-synthetic F1"] = fmt((q.get("cas") or {}).get("f1_macro")) if cls == "all" else ""
            rows.append(row)
    return rows


def leakage_text(metrics: dict) -> str:
    """The run's leakage report in one paragraph (Compare beside the verdict, the HTML report); "" for a run made
    before groups."""
    lk, grouping = metrics.get("leakage") or {}, metrics.get("grouping") or {}
    if not lk:
        return ""
    spec = lk.get("groups") or grouping.get("spec") or "none"
    share = f"{100 * lk['share']:.1f}%"
    text = (f"Leakage: {lk['leaking']:,} of {lk['test_images']:,} test images ({share}) have a near-duplicate among "
            f"the training images (groups: {spec}")
    if grouping:
        text += f"; {grouping.get('images', 0):,} images in {grouping.get('groups', 0):,} groups"
    text += ")."
    if spec == "none":
        text += (" The split drew single images, so the verdict partly measures recognising parts the classifier "
                 "has seen under another light or frame" + (" - run with groups auto to judge on new parts."
                                                             if lk["leaking"] else "."))
    else:
        text += (" Each group of images of one part stays on one side of the split, and the verdict's interval "
                 "resamples whole groups of test images (a cluster bootstrap).")
        if str(spec).startswith("auto"):
            from ..data.groups import AUTO_LIMIT
            text += " " + AUTO_LIMIT
    return text


def verdict_lines(metrics: dict) -> list[str]:
    """The plain-language verdict of each method, plus failures and fallbacks, for the UI and report."""
    out = [m["verdict"]["text"] for m in metrics.get("methods", {}).values()
           if isinstance(m.get("verdict"), dict) and m["verdict"].get("text")]
    for name, why in (metrics.get("failed") or {}).items():
        out.append(f"{name} failed and is not compared: {why}")
    return out
