"""What a plant engineer reads first: each method's verdict as one headline in their words, and the classifiers
that collapsed (put almost every test image in one class), flagged wherever their numbers appear.

    h = headline(metrics, "smote")    # Headline(words="Use it" | "Don't use it" | "Can't tell yet", tone, line, ...)
    collapsed(metrics)                # {model name: the class it predicts for almost everything}
    collapse_note("paper", metrics)   # "collapsed: predicts normal for almost everything" or ""

The detailed verdict (interval, level, Holm, per-class recall) stays in `verdict["text"]`, shown folded away.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLLAPSE_SHARE = 0.9       # a classifier that puts this share of the test images or more in one class collapsed
WORDS = {"helps": "Use it", "hurts": "Don't use it", "no clear difference": "Can't tell yet"}
TONE = {"helps": "success", "hurts": "warning", "no clear difference": "info"}   # hurts: a warning, not an error

__all__ = ["COLLAPSE_SHARE", "Headline", "WORDS", "collapse_note", "collapsed", "collapsed_class", "export_choice",
           "headline", "what_would_tell"]


@dataclass
class Headline:
    method: str
    label: str            # the verdict's label: helps | hurts | no clear difference
    words: str            # Use it | Don't use it | Can't tell yet
    tone: str             # success | warning | info
    line: str             # the one line under the headline
    details: str          # the full verdict text (folded away)
    collapsed_baseline: str = ""   # the baseline the verdict is against collapsed: said so in `line`


def collapsed_class(confusion, classes: list[str], share: float = COLLAPSE_SHARE) -> str | None:
    """The class a confusion matrix (rows = true class) predicts for `share` or more of its images, or None."""
    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.shape[1] != len(classes) or cm.sum() <= 0:
        return None
    cols = cm.sum(axis=0)
    top = int(cols.argmax())
    return classes[top] if cols[top] / cm.sum() >= share else None


def _confusion(block: dict):
    seeds = [s.get("confusion_matrix") for s in (block.get("seeds") or {}).values() if isinstance(s, dict)]
    seeds = [np.asarray(m) for m in seeds if m is not None]
    if seeds and all(m.shape == seeds[0].shape for m in seeds):
        return np.sum(seeds, axis=0)           # whole test images, every seed
    return block.get("confusion_matrix")


def collapsed(metrics: dict) -> dict[str, str]:
    """Every baseline and method of a run's metrics whose predictions (all seeds together) collapsed:
    name -> the class it predicts for almost everything."""
    classes = list(metrics.get("classes") or [])
    out = {}
    for group in ("baselines", "methods"):
        for name, block in (metrics.get(group) or {}).items():
            if isinstance(block, dict):
                cls = collapsed_class(_confusion(block), classes)
                if cls is not None:
                    out[name] = cls
    return out


def collapse_note(name: str, metrics: dict, found: dict[str, str] | None = None) -> str:
    """'collapsed: predicts X for almost everything' for a collapsed model, else ''."""
    if name.startswith("baseline:"):
        name = name.split(":", 1)[1]
    cls = (collapsed(metrics) if found is None else found).get(name)
    return f"collapsed: predicts {cls} for almost everything" if cls else ""


def what_would_tell(v: dict) -> str:
    """What would turn 'Can't tell yet' into an answer, from what this run had."""
    seeds, folds = int(v.get("n_seeds") or 1), int(v.get("folds") or 1)
    asks = [f"more seeds (this run had {seeds})" if seeds < 5 else "more seeds",
            "folds (--folds 5 tests every real image once)" if folds == 1 else f"more folds (this run had {folds})",
            "more real test images"]
    return ", ".join(asks[:-1]) + " or " + asks[-1]


def headline(metrics: dict, method: str) -> Headline:
    """The verdict of `method` as a headline; a method without a verdict reads 'Can't tell yet'."""
    block = (metrics.get("methods") or {}).get(method) or {}
    v = block.get("verdict") if isinstance(block.get("verdict"), dict) else {}
    label = v.get("label") if v.get("label") in WORDS else "no clear difference"
    gain, ci = v.get("gain"), v.get("ci") or []
    against = v.get("against") or metrics.get("strongest_baseline") or "the strongest baseline"
    if isinstance(gain, (int, float)) and len(ci) == 2:
        change = f"macro F1 {gain:+.3f} against {against} (interval {ci[0]:+.3f} to {ci[1]:+.3f})"
    else:
        change = f"no verdict against {against} was computed"
    if label == "helps":
        line = f"It raised {change}."
    elif label == "hurts":
        line = f"It lowered {change}."
    else:
        mdg = v.get("mdg")
        seen = f"no change larger than {mdg:.3f} could be seen; " if isinstance(mdg, (int, float)) else ""
        line = f"{change[0].upper()}{change[1:]}: {seen}{what_would_tell(v)} would tell."
    found = collapsed(metrics)
    base = against if against in (metrics.get("baselines") or {}) else ""
    if base and base in found:
        line += (f" The baseline {base} collapsed (it predicts {found[base]} for almost every test image), so "
                 "this comparison is against a classifier that failed to train.")
    if method in found:
        line += f" This method's classifier collapsed too: it predicts {found[method]} for almost everything."
    return Headline(method=method, label=label, words=WORDS[label], tone=TONE[label], line=line,
                    details=str(v.get("text") or ""), collapsed_baseline=base if base in found else "")


def export_choice(metrics: dict, available: list[str]) -> tuple[str, str]:
    """The method an export should default to: the one that helps most by its verdict (gain over the strongest
    baseline) among those with images to export; else "none" (the real images only) with the reason."""
    methods = metrics.get("methods") or {}
    helping = [(float((methods[m].get("verdict") or {}).get("gain") or 0.0), m) for m in available
               if m in methods and (methods[m].get("verdict") or {}).get("label") == "helps"]
    if helping:
        gain, best = max(helping)
        return best, f"{best}: Use it (its verdict: macro F1 {gain:+.3f} against the strongest baseline)."
    judged = [f"{m}: {headline(metrics, m).words}" for m in available if m in methods]
    why = "; ".join(judged) if judged else "no method made images to export"
    return "none", f"Real images only: no method helped in this run ({why})."
