"""The verdicts of a run's methods, and its leaderboard.

Each method is judged against the strongest fair baseline (highest mean macro F1) by one interval,
`intervals.paired_gain`'s: the test images (folds, then each fold's images, paired by image) by a bootstrap, the
seed-to-seed spread by a Student-t term with n_seeds - 1 degrees of freedom. The methods of a run are one family:
Holm's step-down holds the smallest p-value to alpha / m, the next to alpha / (m - 1), ... so that a run comparing
13 methods has a 5% chance, not 13 chances, of calling noise a gain. Each interval is shown at the level its
method was held to.

  helps                the interval (at that level) is above zero
  hurts                it is below zero
  no clear difference  otherwise, with the smallest gain this run could have seen (half the interval's
                       width): "no gain larger than 0.04 (this run could not see smaller ones)"

Per defect class the same machinery judges the change in recall, the family being every (method, class).
"""
from __future__ import annotations

import numpy as np

from .intervals import holm, paired_gain

ALPHA = 0.05
RULE = ("bootstrap over the test images, a Student-t term for the seeds' spread, and Holm's correction over the "
        "run's methods")
RULE_GROUPS = ("bootstrap over groups of test images (a cluster bootstrap), a Student-t term for the seeds' spread, "
               "and Holm's correction over the run's methods")


def _names(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _hurts_factor(g, picked_from: int) -> int:
    """Bonferroni over the baselines for a loss: the strongest is the largest of `picked_from` means, which noise
    pushes up, so "below the strongest" is held to alpha / picked_from (below the largest implies below one of
    them: at most picked_from x alpha / picked_from = alpha of false "hurts"). A gain needs no correction: above
    the largest is above every one."""
    return max(1, int(picked_from)) if g.gain < 0 else 1


def _adjusted(g, picked_from: int) -> float:
    return min(1.0, g.p * _hurts_factor(g, picked_from))


def judge(preds: dict[str, list[list[np.ndarray]]], base: list[list[np.ndarray]], y_by_fold: list[np.ndarray],
          classes: list[str], summaries: dict[str, dict], baseline: dict, strongest: str,
          normal_class: str | None = None, alpha: float = ALPHA, seed: int = 0,
          groups_by_fold: list | None = None, picked_from: int = 1) -> dict[str, dict]:
    """The verdict of every method in `preds` ({name: predictions[fold][seed]}) against the strongest baseline
    `base` (same layout), with the familywise correction over them. `summaries[name]` and `baseline` are the
    aggregated metrics (macro F1, per-class recall) the texts quote. `groups_by_fold`: each test image's group per
    fold (images of one part), so the bootstrap draws whole groups (a cluster bootstrap). `picked_from`: how many
    baselines the strongest was picked from; a "hurts" is then held to alpha / picked_from (`_hurts_factor`)."""
    names = list(preds)
    if not names:
        return {}
    k = len(classes)
    gains = {n: paired_gain(y_by_fold, base, preds[n], k, seed=seed, groups_by_fold=groups_by_fold) for n in names}
    rejected, levels = holm([_adjusted(gains[n][0], picked_from) for n in names], alpha)
    levels = [lv / _hurts_factor(gains[n][0], picked_from) for n, lv in zip(names, levels)]
    defects = [i for i, c in enumerate(classes) if c != normal_class]
    pairs = [(n, i) for n in names for i in defects]
    cls_gains = {(n, i): paired_gain(y_by_fold, base, preds[n], k, score="recall", cls=i, seed=seed,
                                     groups_by_fold=groups_by_fold) for n, i in pairs}
    cls_rej, cls_levels = holm([_adjusted(cls_gains[p][0], picked_from) for p in pairs], alpha)
    cls_levels = [lv / _hurts_factor(cls_gains[p][0], picked_from) for p, lv in zip(pairs, cls_levels)]
    cls_out = {p: (r, lv) for p, r, lv in zip(pairs, cls_rej, cls_levels)}
    folds, seeds = len(y_by_fold), len(base[0])
    tests = max((int(np.bincount(y, minlength=k).max()) for y in y_by_fold if len(y)), default=0)
    out = {}
    for n, rej, lv in zip(names, rejected, levels):
        g0, draws = gains[n]
        g = g0.at(1 - lv, draws)
        label = ("helps" if g.gain > 0 else "hurts") if rej else "no clear difference"
        per_class = {}
        for i in defects:
            r, clv = cls_out[(n, i)]
            cg0, cdraws = cls_gains[(n, i)]
            cg = cg0.at(1 - clv, cdraws)
            per_class[classes[i]] = {"gain": round(cg.gain, 4), "ci": [round(cg.ci[0], 4), round(cg.ci[1], 4)],
                                     "p": round(cg.p, 4), "label": ("helps" if cg.gain > 0 else "hurts") if r
                                     else "no clear difference"}
        v = {"against": strongest, "label": label, "gain": round(g.gain, 4),
             "ci": [round(g.ci[0], 4), round(g.ci[1], 4)],
             "p": round(g.p, 4), "level": round(1 - lv, 4), "family": len(names), "mdg": round(g.half_width, 4),
             "replicates": g.replicates, "folds": folds, "n_seeds": seeds,
             "seed_gains": [round(x, 4) for x in g.per_seed],
             "rule": RULE if groups_by_fold is None else RULE_GROUPS,
             "resampled": "images" if groups_by_fold is None else "groups", "picked_from": picked_from,
             "recall_change": {c: round(summaries[n]["per_class"][c]["recall"] - baseline["per_class"][c]["recall"], 4)
                               for c in classes},
             "per_class": per_class}
        v["text"] = verdict_text(n, v, summaries[n]["f1_macro"], baseline["f1_macro"], tests, normal_class)
        out[n] = v
    return out


def verdict_text(name: str, v: dict, f1: float, base_f1: float, tests: int, normal_class: str | None = None) -> str:
    """The verdict in plain sentences (no seams whatever the per-class result)."""
    level = f"{round(100 * v['level'], 1):g}%"
    reps = (f"{v['folds']} folds x {v['n_seeds']} seeds" if v["folds"] > 1 else
            f"{v['n_seeds']} seed{'s' if v['n_seeds'] != 1 else ''}")
    text = (f"{name}: macro F1 {f1:.3f} against {base_f1:.3f} for the strongest baseline ({v['against']}), a gain "
            f"of {v['gain']:+.3f} ({level} interval {v['ci'][0]:+.3f} to {v['ci'][1]:+.3f}, over {reps} and the "
            f"test images).")
    if v["label"] == "no clear difference":
        text += (f" Verdict: no clear difference: no gain larger than {v['mdg']:.3f} either way (this run could "
                 f"not see smaller ones with up to {tests} test images per class and {reps}; more seeds, folds or "
                 f"test images would shrink it).")
        gains = sorted(v.get("seed_gains") or [])
        if 1 < len(gains) <= 5:
            text += f" The seeds' own gains: {_names([f'{x:+.3f}' for x in gains])}."
        elif len(gains) > 5:
            text += f" The seeds' own gains run from {gains[0]:+.3f} to {gains[-1]:+.3f}."
    elif v["label"] == "hurts":
        text += (f" Verdict: hurts: macro F1 fell by more than this run's noise. With up to {tests} test images per "
                 f"class and {reps} it could not see changes smaller than {v['mdg']:.3f} (more seeds, folds or test "
                 f"images would); its synthetic images in the Gallery may show why it hurt.")
    else:
        text += f" Verdict: {v['label']}."
    if v["n_seeds"] == 1 and v["label"] != "no clear difference":
        text += (" With one seed this interval holds the test images' uncertainty only, not how another training "
                 "would score: run 3 or more seeds before acting on it.")
    if v["family"] > 1:
        text += f" The level accounts for the {v['family']} methods compared (Holm)."
    if v["gain"] < 0 and v.get("picked_from", 1) > 1:
        text += (f" A loss is held to a {v['picked_from']} times stricter level: the strongest baseline is the "
                 f"largest of {v['picked_from']}, which noise pushes up.")
    up = [f"{c} ({d['gain']:+.3f})" for c, d in v["per_class"].items() if d["label"] == "helps"]
    down = [f"{c} ({d['gain']:+.3f})" for c, d in v["per_class"].items() if d["label"] == "hurts"]
    if up and down:
        text += f" Recall rose clearly for {_names(up)} and fell clearly for {_names(down)}."
    elif up:
        text += f" Recall rose clearly for {_names(up)}; no defect class's recall fell clearly."
    elif down:
        text += f" Recall fell clearly for {_names(down)}; no defect class's recall rose clearly."
    elif v["per_class"]:
        text += " No defect class's recall changed clearly."
    return text


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
