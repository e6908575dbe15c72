"""The `aggregate` task: metrics.json from what the run's tasks stored (every model over seeds, the gains and
verdicts against the strongest baseline, the leaderboard, quality, leakage, failures), and with K folds each
fold's own metrics.json and the pooled one (every real image tested once)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import RunError
from ..imageset import ImageSet
from ..metrics import aggregate as aggregate_seeds
from ..metrics import bootstrap_f1_ci, classification_metrics, detection, judge, leaderboard, seed_gain
from ..metrics.generative import collapse_note, summarise_quality
from ..rundir import RunDir
from .config import ExperimentConfig, steps_of
from .plan import plan
from .tasks import TaskContext, quality_key, result_is_whole


# ---------------------------------------------------------------------------------------------
# aggregate
# ---------------------------------------------------------------------------------------------
@dataclass
class _Collected:
    """What the stored files of one fold (or the single split) say, read once."""
    split: dict
    test: ImageSet
    per_seed: dict[str, dict[int, dict]] = field(default_factory=dict)
    preds: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    rows: dict[str, dict[int, list[dict]]] = field(default_factory=dict)   # predictions/ rows, test order
    timings: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    fallbacks: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    qualities: dict[str, dict[int, dict]] = field(default_factory=dict)


def _collect(ctx: TaskContext) -> _Collected:
    cfg, rd = ctx.cfg, ctx.rd
    got = _Collected(ctx.split(), ctx.images("test"))
    got.warnings = list(got.split.get("warnings") or [])
    for task in plan(cfg):
        if task.fold != ctx.fold:
            continue
        if task.kind == "quality":
            rec = rd.quality(task.name, task.seed)
            if rec is not None and rec.get("key") == quality_key(cfg, task.name):
                got.qualities.setdefault(task.name, {})[task.seed] = rec
            elif task.name not in got.failures:
                raise RunError(f"the quality of {task.name} has no report of these settings yet; run the task "
                               f"{task.id} first")
        elif task.kind == "fit":
            rec = rd.fit(task.name, task.seed) or {}
            got.warnings += rec.get("warnings") or []
            if rec.get("failed"):
                got.failures.setdefault(task.name, rec["failed"])
            elif rec:
                got.fallbacks += rec.get("fallbacks") or []
                got.timings.setdefault(task.name, {}).setdefault("fit_seconds", []).append(rec.get("fit_seconds"))
        elif task.kind == "train":
            rec = rd.result(task.name, task.seed)
            if rec is None or rec.get("key") != (quality_key(cfg, task.method) if task.gated else cfg.key(task.method)) \
                    or not result_is_whole(rec):
                if task.method is not None and task.method in got.failures:
                    continue
                raise RunError(f"the classifier {task.model_id} has no result of these settings yet; "
                               f"run the task {task.id} first")
            got.per_seed.setdefault(task.name, {})[task.seed] = rec["metrics"]
            got.preds.setdefault(task.name, {})[task.seed] = np.asarray(rec["pred"], dtype=np.int64)
            if rd.predictions_path(task.model_id).exists():   # read once: detection and the folds' pool
                rows = rd.predictions(task.model_id)
                if [r["file"] for r in rows] == list(got.test.sources):
                    got.rows.setdefault(task.name, {})[task.seed] = rows
    return got


def _pooled_seed(folds: list[_Collected], name: str, seed: int) -> dict:
    """One model's metrics for one seed over every fold's test images (each real image once)."""
    y = np.concatenate([f.test.labels for f in folds])
    pred = np.concatenate([f.preds[name][seed] for f in folds])
    m = classification_metrics(y, pred, folds[0].test.classes)
    runs = [f.per_seed[name][seed] for f in folds]
    m.update(seconds=round(float(np.mean([r["seconds"] for r in runs])), 2),
             steps=int(np.mean([r["steps"] for r in runs])),
             seconds_per_step=round(float(np.mean([r["seconds_per_step"] for r in runs])), 5),
             train_size=int(np.mean([r["train_size"] for r in runs])))
    return m


def _build(cfg: ExperimentConfig, folds: list[_Collected], normal_class: str | None) -> dict:
    """metrics.json's content from one fold (the single split, or one fold's own) or from K folds pooled."""
    from ..data.groups import leakage_summary
    one = len(folds) == 1
    test = folds[0].test
    classes, k = test.classes, len(test.classes)
    y_all = np.concatenate([f.test.labels for f in folds])
    names = set.intersection(*(set(f.per_seed) for f in folds))
    per_seed = {n: (folds[0].per_seed[n] if one else {s: _pooled_seed(folds, n, s) for s in cfg.seeds}) for n in names}
    pooled = {n: {s: np.concatenate([f.preds[n][s] for f in folds]) for s in cfg.seeds} for n in names}
    failures = {m: why for f in folds for m, why in f.failures.items()}
    steps = [steps_of(cfg, f.split["train_counts"], f.split["needed"]) for f in folds]
    cp = cfg.classifier_params()
    protocol = {"train_counts": folds[0].split["train_counts"],
                "test_counts": _sum_counts(f.test.counts() for f in folds),
                "needed": folds[0].split["needed"], "normal_class": normal_class, "ratio": cfg.ratio,
                "target_ratio": cfg.target_ratio, "seeds": cfg.seeds, "steps_balanced": steps[0][0],
                "steps_paper": steps[0][1], "epochs": cp.epochs, "image_size": cfg.image_size, "folds": len(folds)}
    if not one:
        protocol["per_fold"] = [{"train_counts": f.split["train_counts"], "test_counts": f.test.counts(),
                                 "needed": f.split["needed"]} for f in folds]
    out: dict = {"classes": classes, "baselines": {}, "methods": {}, "failed": failures,
                 "leakage": leakage_summary([f.split for f in folds]),
                 "fallbacks": [fb for f in folds for fb in f.fallbacks],
                 "warnings": [w for f in folds for w in f.warnings],
                 "protocol": protocol}

    def summarise(name: str) -> dict:
        agg = aggregate_seeds(per_seed[name], classes)
        agg["f1_ci"] = bootstrap_f1_ci(y_all, [pooled[name][s] for s in sorted(pooled[name])], k)
        agg["seconds"] = float(np.mean([r["seconds"] for r in per_seed[name].values()]))
        agg["seconds_per_step"] = float(np.mean([r["seconds_per_step"] for r in per_seed[name].values()]))
        if normal_class in classes and all(s in f.rows.get(name, {}) for f in folds for s in cfg.seeds):
            p_normal = [np.array([r["probs"].get(normal_class, 0.0) for f in folds for r in f.rows[name][s]])
                        for s in cfg.seeds]
            det = detection(y_all, p_normal, [pooled[name][s] for s in cfg.seeds], classes.index(normal_class))
            if det is not None:
                agg["detection"] = det
        return agg

    for b in cfg.baselines:
        out["baselines"][b] = summarise(f"baseline_{b}")
    strongest = max(cfg.baselines, key=lambda b: out["baselines"][b]["f1_macro"])
    out["strongest_baseline"] = strongest
    models = [(m, m, False) for m in cfg.methods] + ([(f"{m}+gate", m, True) for m in cfg.methods]
                                                     if cfg.quality_gate else [])
    for name, method, gated in models:
        if method in failures or name not in per_seed:
            continue
        agg = summarise(name)
        agg["timing"] = {"fit_seconds": [t for f in folds for t in f.timings.get(method, {}).get("fit_seconds", [])]}
        reports = [f.qualities[method][s] for f in folds if method in f.qualities for s in sorted(f.qualities[method])]
        if reports:
            agg["quality"] = summarise_quality(dict(enumerate(reports)))
        if gated:
            agg["gated_from"] = method
        agg["gain"] = {b: seed_gain([per_seed[f"baseline_{b}"][s]["f1_macro"] for s in cfg.seeds],
                                    [per_seed[name][s]["f1_macro"] for s in cfg.seeds]) for b in cfg.baselines}
        out["methods"][name] = agg
    verdicts = judge({n: [[f.preds[n][s] for s in cfg.seeds] for f in folds] for n in out["methods"]},
                     [[f.preds[f"baseline_{strongest}"][s] for s in cfg.seeds] for f in folds],
                     [f.test.labels for f in folds], classes, out["methods"], out["baselines"][strongest], strongest,
                     normal_class, groups_by_fold=_test_groups(cfg, folds), picked_from=len(cfg.baselines))
    for name, agg in out["methods"].items():
        g = agg["gain"][strongest]
        agg["verdict"] = dict(verdicts[name], seed_std=round(g["std"], 4), positive_seeds=g["positive_seeds"])
        note = collapse_note(agg["quality"]) if "quality" in agg else ""
        if note:                                    # say mode collapse in words, where the verdict is read
            agg["verdict"]["text"] += " " + note
            agg["verdict"]["mode_collapse"] = True
    out["leaderboard"] = leaderboard(out, cfg.baselines)
    return out


def _test_groups(cfg: ExperimentConfig, folds: list[_Collected]) -> list[list[str]] | None:
    """Each fold's test images' groups (from split.json), for the cluster bootstrap; None without groups."""
    if cfg.groups == "none":
        return None
    out = []
    for f in folds:
        names = f.split.get("groups") or {}
        if not all(s in names for s in f.test.sources):
            return None                   # a split prepared before groups: images are drawn
        out.append([names[s] for s in f.test.sources])
    return out


def _sum_counts(counts) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return total


def aggregate(ctxs: list[TaskContext], top: RunDir, seconds_total: float | None = None,
              peak_rss_mb: float | None = None) -> dict:
    """metrics.json from the stored results: every model over seeds, the gains and verdicts against the
    strongest baseline, the leaderboard, quality, failures, fallbacks and warnings. With K folds each fold's
    folder gets its own metrics.json, and the run's pools the folds (every real image tested once), with the
    pooled test images and predictions beside it for the pages."""
    cfg, reporter = ctxs[0].cfg, ctxs[0].reporter
    reporter.stage("metrics", "computing metrics and the leaderboard")
    folds = [_collect(c) for c in ctxs]
    normal = folds[0].split.get("normal_class")
    if len(ctxs) > 1:
        for c, f in zip(ctxs, folds):
            c.rd.write_metrics(dict(_build(cfg, [f], normal), fold=c.fold))
        top.save_split("test", ImageSet.concat([f.test for f in folds]))
        top.save_split("train", ctxs[0].images("train"))
        for name in set.intersection(*(set(f.preds) for f in folds)):
            for s in cfg.seeds:
                probs = [f.rows.get(name, {}).get(s) or c.rd.predictions(RunDir.model_id(name, s))
                         for c, f in zip(ctxs, folds)]
                top.write_prediction_rows(RunDir.model_id(name, s), [r for p in probs for r in p],
                                          folds[0].test.classes)
    out = _build(cfg, folds, normal)
    grouping = top.groups()
    if grouping.get("summary"):
        out["grouping"] = grouping["summary"]
    out["seconds_total"] = seconds_total
    out["peak_rss_mb"] = peak_rss_mb
    top.write_metrics(out)
    reporter.emit("done", message=f"finished in {seconds_total or 0:.0f} s", overall=1.0)
    return out

