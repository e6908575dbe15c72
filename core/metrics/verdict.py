"""The verdict on a method, and the leaderboard of a run.

A method's verdict is taken against the strongest of the fair baselines (highest mean macro F1): the gain must
clear both the test-set uncertainty (the paired bootstrap interval over test images is above zero) and the
seed-to-seed spread (the mean gain over seeds is larger than its standard deviation); "hurts" symmetrically;
otherwise "no clear difference".
"""
from __future__ import annotations

import numpy as np

from .classification import paired_bootstrap_gain


def verdict(name: str, agg: dict, baselines: dict, strongest: str, y: np.ndarray, base_preds: list,
            method_preds: list, classes: list[str]) -> dict:
    """Plain-language verdict of `name` against the strongest baseline (see the module docstring)."""
    k = len(classes)
    boot = paired_bootstrap_gain(y, base_preds, method_preds, k)
    g = agg["gain"][strongest]
    lo, hi = boot["ci"]
    spread = g["std"]
    if lo > 0 and g["mean"] > spread:
        label = "helps"
    elif hi < 0 and g["mean"] < -spread:
        label = "hurts"
    else:
        label = "no clear difference"
    b = baselines[strongest]
    per_class = {c: round(agg["per_class"][c]["recall"] - b["per_class"][c]["recall"], 4) for c in classes}
    better = [c for c, d in per_class.items() if d > 0]
    worse = [c for c, d in per_class.items() if d < 0]
    text = (f"{name}: macro F1 {agg['f1_macro']:.3f} vs {b['f1_macro']:.3f} for the strongest baseline "
            f"({strongest}); gain {g['mean']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}"
            + (f", seed-to-seed SD {spread:.3f}, better in {g['positive_seeds']}/{g['n_seeds']} seeds"
               if g["n_seeds"] > 1 else "")
            + f"). Verdict: {label}."
            + (f" Recall up for {', '.join(better)}" if better else "")
            + (f"; down for {', '.join(worse)}." if worse else ("." if better else "")))
    return {"against": strongest, "label": label, "gain": round(g["mean"], 4), "ci": [round(lo, 4), round(hi, 4)],
            "seed_std": round(spread, 4), "positive_seeds": g["positive_seeds"], "n_seeds": g["n_seeds"],
            "recall_change": per_class, "text": text}


def leaderboard(out: dict, baselines: list[str]) -> list[dict]:
    """Every method and baseline of a run's metrics, by macro F1 (highest first)."""
    rows = []
    for kind, table in (("method", out["methods"]), ("baseline", out["baselines"])):
        for name, m in table.items():
            row = {"name": name if kind == "method" else f"baseline:{name}", "kind": kind,
                   "f1_macro": m["f1_macro"], "f1_std": m["std"]["f1_macro"], "f1_ci": m["f1_ci"],
                   "precision_macro": m["precision_macro"], "recall_macro": m["recall_macro"],
                   "accuracy": m["accuracy"], "n_seeds": len(m.get("seeds") or {}) or 1}
            if kind == "method":
                row["gain"] = {b: m["gain"][b]["mean"] for b in baselines}
                row["verdict"] = m["verdict"]["label"]
            rows.append(row)
    return sorted(rows, key=lambda r: -r["f1_macro"])
