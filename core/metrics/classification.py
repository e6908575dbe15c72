"""Classification metrics (sklearn.metrics), bootstrap intervals and paired gains."""
from __future__ import annotations

import numpy as np

# sklearn.metrics is imported where it is called: importing it (scipy.stats, pandas) costs about 2 s, which every
# `python -m core` command paid before it could even say that an argument is wrong.


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    from sklearn.metrics import f1_score
    return float(f1_score(y_true, y_pred, labels=list(range(num_classes)), average="macro", zero_division=0))


def _fast_macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Macro F1 of many resamples at once: y_true, y_pred [B, N] -> [B]. Same definition as
    sklearn's f1_score(average="macro", zero_division=0) over all `num_classes` labels (checked in
    the tests); sklearn itself costs ~1 ms a call, too slow for thousands of bootstrap resamples."""
    b = y_true.shape[0]
    offs = (np.arange(b) * num_classes)[:, None]
    tp = np.bincount((offs + y_true)[y_true == y_pred], minlength=b * num_classes).reshape(b, num_classes)
    n_true = np.bincount((offs + y_true).ravel(), minlength=b * num_classes).reshape(b, num_classes)
    n_pred = np.bincount((offs + y_pred).ravel(), minlength=b * num_classes).reshape(b, num_classes)
    denom = n_true + n_pred
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return f1.mean(axis=1)


def classification_metrics(y_true, y_pred, classes: list[str]) -> dict:
    """accuracy, macro P/R/F1, per-class P/R/F1/support and the confusion matrix (rows = true)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    pm, rm, fm, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro",
                                                    zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "precision_macro": float(pm), "recall_macro": float(rm), "f1_macro": float(fm),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classes": list(classes),
    }


FALSE_ALARMS = 0.10     # the false-alarm rate at which `detection` reads defect recall


def recall_at_false_alarms(is_defect: np.ndarray, score: np.ndarray, false_alarms: float = FALSE_ALARMS) -> float:
    """The share of defect images whose score is above the threshold that lets `false_alarms` of the normal images
    through (`is_defect`: bool per image; `score`: higher = more likely a defect)."""
    return float((score[is_defect] > np.quantile(score[~is_defect], 1 - false_alarms)).mean())


def detection(y_true, p_normal: list, preds: list, normal: int, false_alarms: float = FALSE_ALARMS) -> dict | None:
    """Defect of any class against the normal class, the question "is something wrong with this part?" (a part
    called Crack that is a Break was still caught). Per seed, then the mean: the AUROC of 1 - p(normal) (sklearn's
    roc_auc_score), the share of defect images found when the threshold on it lets `false_alarms` of the normal
    images through, and at the classifier's own decision (its argmax) the defect images it flags and the normal
    images it flags (false alarms). `p_normal`, `preds`: one array per seed. None without both kinds in the test."""
    from sklearn.metrics import roc_auc_score
    y = np.asarray(y_true) != normal
    if y.all() or not y.any() or not p_normal:
        return None
    aucs, found, flagged, alarms = [], [], [], []
    for pn, pr in zip(p_normal, preds):
        score, called = 1.0 - np.asarray(pn, dtype=float), np.asarray(pr) != normal
        aucs.append(float(roc_auc_score(y, score)))
        found.append(recall_at_false_alarms(y, score, false_alarms))
        flagged.append(float(called[y].mean()))
        alarms.append(float(called[~y].mean()))
    return {"auroc": float(np.mean(aucs)), "auroc_seeds": aucs, "false_alarms": false_alarms,
            "recall_at_false_alarms": float(np.mean(found)), "flagged": float(np.mean(flagged)),
            "false_alarm_rate": float(np.mean(alarms)), "defects": int(y.sum()), "normals": int((~y).sum())}


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_f1_ci(y_true, y_pred, num_classes: int, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of macro F1 over the test images. `y_pred` may be a list of
    prediction arrays (one per seed): each resample then scores their mean F1."""
    y_true = np.asarray(y_true)
    preds = [np.asarray(p) for p in y_pred] if isinstance(y_pred, list) else [np.asarray(y_pred)]
    if len(y_true) == 0:
        return [0.0, 0.0]
    idx = _resamples(len(y_true), n_boot, seed)
    vals = np.mean([_fast_macro_f1(y_true[idx], p[idx], num_classes) for p in preds], axis=0)
    a = (1 - level) / 2
    return [float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))]


def paired_bootstrap_gain(y_true, pred_a: list, pred_b: list, num_classes: int, n_boot: int = 2000,
                          seed: int = 0, level: float = 0.95) -> dict:
    """Macro-F1 gain of B over A on the same test images, averaged over seeds (one prediction
    array per seed in each list), with a bootstrap interval that resamples test images."""
    y_true = np.asarray(y_true)
    pa, pb = [np.asarray(a) for a in pred_a], [np.asarray(b) for b in pred_b]
    point = float(np.mean([macro_f1(y_true, b, num_classes) - macro_f1(y_true, a, num_classes)
                           for a, b in zip(pa, pb)]))
    if len(y_true) == 0:
        return {"gain": point, "ci": [point, point]}
    idx = _resamples(len(y_true), n_boot, seed)
    yt = y_true[idx]
    diffs = np.mean([_fast_macro_f1(yt, b[idx], num_classes) - _fast_macro_f1(yt, a[idx], num_classes)
                     for a, b in zip(pa, pb)], axis=0)
    al = (1 - level) / 2
    return {"gain": point, "ci": [float(np.quantile(diffs, al)), float(np.quantile(diffs, 1 - al))]}


def seed_gain(values_a: list[float], values_b: list[float]) -> dict:
    """Paired gain across seeds: mean, std (ddof=1 when possible), seeds where B beat A."""
    d = np.asarray(values_b, float) - np.asarray(values_a, float)
    return {"mean": float(d.mean()) if len(d) else 0.0,
            "std": float(d.std(ddof=1)) if len(d) > 1 else 0.0,
            "positive_seeds": int((d > 0).sum()), "n_seeds": int(len(d))}


SCALARS = ("f1_macro", "precision_macro", "recall_macro", "accuracy")


def aggregate(per_seed: dict[int, dict], classes: list[str]) -> dict:
    """Mean over seeds at the top level (with `mean`/`std` dicts and per-seed values kept);
    per-class values averaged, confusion matrices summed over seeds."""
    seeds = sorted(per_seed)
    runs = [per_seed[s] for s in seeds]
    out: dict = {"classes": list(classes), "seeds": {str(s): per_seed[s] for s in seeds}}
    out["mean"] = {k: float(np.mean([r[k] for r in runs])) for k in SCALARS}
    out["std"] = {k: float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0 for k in SCALARS}
    out.update(out["mean"])
    out["per_class"] = {c: {m: float(np.mean([r["per_class"][c][m] for r in runs]))
                            for m in ("precision", "recall", "f1")} | {"support": runs[0]["per_class"][c]["support"]}
                        for c in classes}
    out["confusion_matrix"] = np.sum([np.asarray(r["confusion_matrix"]) for r in runs], axis=0).tolist()
    return out
