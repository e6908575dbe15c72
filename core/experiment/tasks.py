"""What each task of the plan does (prepare, fit, train, aggregate), reading and writing only the run folder.

Fair comparison: each seed trains up to six baselines on the imbalanced set (the run's `baselines`), the CNNs
from the same initial weights as the augmented runs of that seed:
  paper           same epochs as the augmented runs (the papers' protocol; fewer gradient steps)
  equal_steps     as many gradient steps as an augmented run
  class_weighted  equal steps, loss weighted by inverse class frequency
  logit_adjusted  equal steps, logit-adjusted loss (tau = 1: logits + log prior in the loss; Menon et al. 2021)
  drw             equal steps, plain loss, class-balanced weights (beta 0.9999) for the last 25% of the epochs
  linear          class-balanced logistic regression on the standardised pixels (core.linear; no seed)
A method's verdict is taken against the strongest of them (highest mean macro F1). The real test split never
sees synthetic data.

A task is finished when its output is in the run folder with the key of the settings it was made with
(`is_done`): resuming skips exactly those, and any process can take the others.
"""
from __future__ import annotations

import platform
import time
from functools import partial
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from .. import classifier as clf
from ..errors import Cancelled, DefectAugError, ParamError, RunError
from ..events import Reporter
from ..imageset import ImageSet, synthetic_source
from ..metrics import classification_metrics
from ..methods import Context, get_method
from ..rundir import RunDir
from .config import ExperimentConfig, steps_of
from .plan import Task

if TYPE_CHECKING:
    from ..data.groups import Grouping

# What a method may raise that means "this method failed on this data", not "the run is broken": the
# other methods and the baselines go on.
METHOD_FAILURES = (DefectAugError, RuntimeError, ValueError, MemoryError)


@dataclass
class TaskContext:
    """What the tasks of one process share: the run, its reporter and device, the images once loaded."""
    cfg: ExperimentConfig
    rd: RunDir                        # the fold's run folder (the run's own with a single split)
    reporter: Reporter
    device: torch.device
    progress: Callable[[float], float] = lambda fraction: 0.0    # a task's fraction done -> the run's
    fold: int | None = None
    top: RunDir | None = None         # the run folder itself (config.json, events, pooled metrics)
    _sets: dict[str, ImageSet] = field(default_factory=dict)

    def stage(self, kind: str, name: str, seed: int) -> str:
        """The task's id as its events name it (`fit:smote_s0`, with folds `fit:smote_f2_s0`)."""
        return f"{kind}:{name}" + (f"_f{self.fold}" if self.fold is not None else "") + f"_s{seed}"

    def where(self, seed: int) -> str:
        return f"seed {seed}" + (f", fold {self.fold + 1} of {self.cfg.folds}" if self.fold is not None else "")

    def images(self, name: str) -> ImageSet:
        if name not in self._sets:
            self._sets[name] = self.rd.require_split(name)
        return self._sets[name]

    def split(self) -> dict:
        split = self.rd.split()
        if not split:
            raise RunError(f"{self.rd.root} has no split.json: its data was not prepared")
        return split


# ---------------------------------------------------------------------------------------------
# Finished?
# ---------------------------------------------------------------------------------------------
def is_done(task: Task, cfg: ExperimentConfig, rd: RunDir) -> bool:
    """Whether the task's output is in the run folder, made with the current settings."""
    if task.kind == "prepare":
        split = rd.split()
        return (split.get("key") == cfg.key(classifier=False) and rd.split_images_path("train").exists()
                and rd.split_images_path("test").exists())
    if task.kind == "fit":
        rec = rd.fit(task.name, task.seed)
        return bool(rec and rec.get("key") == cfg.key(task.name, classifier=False) and not rec.get("failed")
                    and rd.synthetic_npz(task.name, task.seed).exists())
    if task.kind == "quality":
        rec = rd.quality(task.name, task.seed)
        return bool(rec and rec.get("key") == quality_key(cfg, task.name))
    if task.kind == "train":
        rec = rd.result(task.name, task.seed)
        key = quality_key(cfg, task.method) if task.gated else cfg.key(task.method)
        return bool(rec and rec.get("key") == key and result_is_whole(rec))
    return False   # aggregate: cheap, always run


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def result_is_whole(rec: dict) -> bool:
    """Whether a results/<model>.json holds what the aggregate reads, with the types it reads (a damaged or
    edited file, e.g. a score written as text, is trained again on resume instead of crashing the run)."""
    m, pred = rec.get("metrics"), rec.get("pred")
    if not isinstance(m, dict) or not isinstance(pred, list) or not all(isinstance(p, int) and not isinstance(p, bool)
                                                                          for p in pred):
        return False
    if not all(_number(m.get(k)) for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro")):
        return False
    per_class, cm = m.get("per_class"), m.get("confusion_matrix")
    if not isinstance(per_class, dict) or not all(
            isinstance(v, dict) and all(_number(v.get(k)) for k in ("precision", "recall", "f1", "support"))
            for v in per_class.values()):
        return False
    return isinstance(cm, list) and all(isinstance(r, list) and all(_number(x) for x in r) for r in cm)


def quality_key(cfg: ExperimentConfig, method: str) -> str:
    """What a quality report (and a gated training) depends on: the method's images and the classifier."""
    return cfg.key(method) + ":quality2"


# ---------------------------------------------------------------------------------------------
# prepare
# ---------------------------------------------------------------------------------------------
def write_config(ctx: TaskContext, normal_class: str | None) -> None:
    """config.json: the resolved settings of this session (every parameter value), the normal class the
    run uses (once known) and where it runs; in the run folder and (with folds) the fold's."""
    resolved = ctx.cfg.resolved()
    if normal_class is not None:
        resolved["normal_class"] = normal_class
        resolved["normal_class_detected"] = ctx.cfg.normal_class is None
    resolved["environment"] = {"torch": torch.__version__, "device": str(ctx.device),
                               "python": platform.python_version(), "threads": torch.get_num_threads(),
                               "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for rd in {ctx.rd.root: ctx.rd, (ctx.top or ctx.rd).root: ctx.top or ctx.rd}.values():
        rd.write_config(resolved if rd is ctx.rd else dict(resolved, fold=ctx.fold))


def prepare(ctx: TaskContext) -> dict:
    """Load the data, split off the real test set (this fold's part with K folds), simulate the imbalance on
    the rest (the normal class kept whole), and work out how many synthetic images each class needs."""
    from ..data import (balance_targets, fold_split, load_dataset, normal_class_note, resolve_normal_class,
                        simulate_imbalance, split)
    from ..data.groups import leakage

    cfg, rd, reporter = ctx.cfg, ctx.rd, ctx.reporter
    write_config(ctx, None)
    reporter.stage("load", f"loading {Path(str(cfg.data)).name}")   # the name only: the log is shown to users
    warnings_before = len(reporter.warnings)
    channels = cfg.channels if cfg.channels == "auto" else int(cfg.channels)
    full, report = load_dataset(cfg.data, image_size=cfg.image_size, channels=channels)
    rd.write_data_report(report.to_dict())
    normal = resolve_normal_class(full.counts(), cfg.normal_class)
    note = normal_class_note(full.counts(), cfg.normal_class)
    if note:
        reporter.warn(note)       # a guess: the run log, the Jobs page and metrics.json say so
    write_config(ctx, normal)
    grouping = run_grouping(ctx, full)
    gmap = grouping.by_source()
    if ctx.fold is None:
        pool, test = split(full, cfg.test_split, seed=cfg.split_seed, groups=grouping.groups)
    else:
        pool, test = fold_split(full, cfg.folds, seed=cfg.split_seed, groups=grouping.groups)[ctx.fold]
    train = (simulate_imbalance(pool, cfg.ratio, seed=cfg.split_seed, normal_class=normal,
                                groups=[gmap[s] for s in pool.sources]) if cfg.ratio else pool)
    if len(test) == 0:
        raise ParamError("the test split is empty: every class needs at least 2 images"
                         + ("" if cfg.groups == "none" else " (or 2 groups: fewer images share a part)"))
    for c, n in test.counts().items():
        if n == 0:
            reporter.warn(f"class {c!r} has no test image (too few images"
                          + ("" if cfg.groups == "none" else " or groups") + "); its recall cannot be measured")
    leak = leakage(grouping, train.sources, test.sources)
    needed = balance_targets(train.counts(), cfg.target_ratio)
    rd.save_split("train", train)
    rd.save_split("test", test)
    ctx._sets.update(train=train, test=test)
    held_back = sorted(set(pool.sources) - set(train.sources))      # what the export gives back to the user
    record = {"key": cfg.key(classifier=False), "normal_class": normal, "fold": ctx.fold, "train": train.sources,
              "test": test.sources, "held_back": held_back, "train_counts": train.counts(),
              "test_counts": test.counts(), "pool_counts": pool.counts(), "needed": needed,
              "groups": {src: gmap[src] for src in pool.sources + test.sources}, "group_spec": grouping.spec,
              "leakage": leak, "warnings": reporter.warnings[warnings_before:]}
    rd.write_split(record)
    reporter.emit("stage", stage="split", message="train / test split done" + (
                  f" (fold {ctx.fold + 1} of {cfg.folds})" if ctx.fold is not None else ""),
                  train_counts=train.counts(), test_counts=test.counts(), needed=needed, normal_class=normal)
    synth_mb = sum(needed.values()) * int(np.prod(train.shape)) / 2**20
    if synth_mb > cfg.max_synthetic_mb:
        raise ParamError(f"the synthetic images would need {synth_mb:.0f} MB, over the limit of "
                         f"{cfg.max_synthetic_mb} MB; lower the target ratio or the image size")
    return record


def run_grouping(ctx: TaskContext, full: ImageSet) -> "Grouping":
    """The run's groups (`cfg.groups`), found once and kept in the run folder's groups.json (the folds share
    it). `auto` and the leakage report compare images at 64 px: loaded again at that size when the run's
    differs."""
    from ..data import load_dataset
    from ..data.groups import GROUP_SIZE, Grouping, find_groups
    cfg, top, reporter = ctx.cfg, ctx.top or ctx.rd, ctx.reporter
    key = cfg.key(classifier=False)
    rec = top.groups()
    if rec.get("key") == key and rec.get("sources") == full.sources:
        return Grouping.from_record(rec)
    reporter.log(f"finding the images of one part (groups {cfg.groups})")
    t0 = time.time()
    small = None
    if cfg.image_size != GROUP_SIZE:
        at64, _ = load_dataset(cfg.data, image_size=GROUP_SIZE, channels=1)     # gray: what groups compare
        small = at64.images if at64.sources == full.sources else None
    grouping = find_groups(full, cfg.groups, images64=small)
    grouping.seconds = time.time() - t0
    top.write_groups(dict(grouping.record(), key=key, summary=grouping.to_dict()))
    reporter.log(grouping.summary())
    return grouping


# ---------------------------------------------------------------------------------------------
# fit(method, seed)
# ---------------------------------------------------------------------------------------------
def fit(ctx: TaskContext, method: str, seed: int) -> dict:
    """Fit `method` on the training set for `seed`, sample what each class needs, and keep the sampler, the
    synthetic images and their provenance. A method that fails on this data is recorded as failed (the run
    goes on without it); a cancel or a bug is raised."""
    cfg, rd, reporter = ctx.cfg, ctx.rd, ctx.reporter
    train, needed = ctx.images("train"), ctx.split()["needed"]
    warnings_before = len(reporter.warnings)
    record: dict = {"key": cfg.key(method, classifier=False), "method": method, "seed": seed}
    try:
        synth, parents, seconds, fallbacks, extra = _synthesize(ctx, method, seed, train, needed)
    except (Cancelled, KeyboardInterrupt):
        raise
    except METHOD_FAILURES as err:
        # one method failing must not lose the others (nor the baselines already trained)
        reporter.log(traceback.format_exc())
        reporter.warn(f"method {method} failed and is left out of the results: {err}")
        record.update(failed=f"{type(err).__name__}: {err}", warnings=reporter.warnings[warnings_before:])
        rd.write_fit(method, seed, record)
        return record
    rd.save_synthetic(method, seed, synth, parents, png=cfg.save_images, **extra)
    if extra.get("details"):           # transplant: how many masks were the user's own
        record["user_masks"] = sum(d.get("mask_from") == "user" for d in extra["details"])
    record.update(fit_seconds=round(seconds, 2), fallbacks=fallbacks, counts=synth.counts(),
                  warnings=reporter.warnings[warnings_before:])
    rd.write_fit(method, seed, record)
    return record


def _synthesize(ctx: TaskContext, name: str, seed: int, train: ImageSet,
                needed: dict[str, int]) -> tuple[ImageSet, list[list[str]], float, list[dict], dict]:
    """(synthetic set, parents, seconds, fallbacks, extra): extra holds the transplant methods' `masks` and
    `details` for `RunDir.save_synthetic` (empty for other methods)."""
    cfg, rd, reporter = ctx.cfg, ctx.rd, ctx.reporter
    spec = get_method(name)
    params = cfg.method_params(name)
    folder = rd.checkpoint_dir(name, seed)
    sampler_ctx = Context(reporter=reporter, device=ctx.device, seed=seed, method=name,
                          work_dir=rd.training_dir(name, seed), num_threads=cfg.num_threads,
                          shared_dir=rd.shared_training_dir(seed),
                          normal_class=ctx.split().get("normal_class"),
                          user_masks={s: m for s, m in zip(train.sources, train.masks) if m.any()}
                          if train.masks is not None else None)
    reporter.stage(ctx.stage("fit", name, seed), f"fitting {name}, {ctx.where(seed)}")
    t0 = time.time()
    torch.manual_seed(seed)
    sampler = spec.sampler_cls(params, sampler_ctx)
    sampler.fit(train, needed)
    sampler.save(folder)
    imgs, labels, parents, targets, masks, details, soft = [], [], [], [], [], [], False
    todo = [(c, n) for c, n in needed.items() if n > 0]
    total, made = sum(n for _, n in todo), 0
    for c, n in todo:              # counted in images: a class of 300 weighs 10 of 30
        reporter.progress(f"sample:{name}_s{seed}", made, total, cls=c)
        sampler_ctx.sampled = partial(_sampled, reporter, f"sample:{name}_s{seed}", made, total, c)
        made += n
        batch = sampler.sample(c, n, seed=seed * 1000 + train.class_index(c))
        if batch.images.shape != (n, *train.shape) or batch.images.dtype != np.uint8:
            raise RuntimeError(f"{name} returned images of shape {batch.images.shape} {batch.images.dtype} "
                               f"for class {c}, expected {(n, *train.shape)} uint8")
        imgs.append(batch.images)
        labels.append(np.full(n, train.class_index(c)))
        parents.extend(batch.parents if len(batch.parents) == n else [[] for _ in range(n)])
        hard = np.eye(len(train.classes), dtype=np.float32)[np.full(n, train.class_index(c))]
        targets.append(batch.targets if batch.targets is not None else hard)
        soft = soft or batch.targets is not None
        masks.append(batch.masks if batch.masks is not None else np.zeros((n, *train.shape[:2]), np.uint8))
        details.extend(batch.details if batch.details is not None else [{} for _ in range(n)])
    fallbacks = [dict(fb, seed=seed) for fb in getattr(sampler, "fallbacks_", [])]
    if not imgs:
        return ImageSet.empty(train.classes, train.shape), [], time.time() - t0, fallbacks, {}
    sources = [synthetic_source(name, seed, p) for p in parents]
    synth = ImageSet(np.concatenate(imgs), np.concatenate(labels), train.classes, sources,
                     np.concatenate(targets) if soft else None)
    extra = {"masks": np.concatenate(masks), "details": details} if any(details) else {}
    return synth, parents, time.time() - t0, fallbacks, extra


def _sampled(reporter: Reporter, stage: str, before: int, total: int, cls: str, drawn: int) -> None:
    reporter.progress(stage, before + drawn, total, cls=cls)


# ---------------------------------------------------------------------------------------------
# quality(method, seed)
# ---------------------------------------------------------------------------------------------
CAS_EPOCH_SHARE = 0.06    # the train-on-synthetic classifier gets this share of a full training's epochs


def quality(ctx: TaskContext, method: str, seed: int) -> dict | None:
    """How good the method's synthetic images of this seed are (core.metrics.generative), on the features of
    the seed's classifier trained on the real images only; which images the quality gate keeps. None when the
    method's fit failed."""
    from ..metrics.generative import assess
    from ..metrics.generative.features import InceptionFeatures, inception_path
    cfg, rd, reporter = ctx.cfg, ctx.rd, ctx.reporter
    rec = rd.fit(method, seed)
    if rec is None or rec.get("failed"):
        return None
    reporter.stage(ctx.stage("quality", method, seed), f"measuring the synthetic images of {method}, {ctx.where(seed)}")
    feature_id = RunDir.model_id(f"baseline_{cfg.feature_baseline}", seed)
    saved = rd.classifier(feature_id)
    if saved is None:
        raise RunError(f"the quality of {method} needs the classifier {feature_id}, which this run did not keep; "
                       f"run train:{feature_id} first")
    model = clf.rebuild(*saved, device=ctx.device)
    train_set, test = ctx.images("train"), ctx.images("test")
    synth = rd.load_synthetic(method, seed)
    inception = InceptionFeatures(inception_path()) if inception_path() is not None else None
    cp = cfg.classifier_params()
    cas_params = type(cp)(**{**cp.__dict__, "epochs": max(1, round(cp.epochs * CAS_EPOCH_SHARE))})

    def cas(data: ImageSet) -> dict:
        res = clf.train(data, cas_params, seed, device=ctx.device, check_cancel=reporter.check_cancel)
        pred = clf.predict(res.model, test).argmax(1)
        m = classification_metrics(test.labels, pred, test.classes)
        return {"f1_macro": round(m["f1_macro"], 4), "accuracy": round(m["accuracy"], 4),
                "recall": {c: round(v["recall"], 4) for c, v in m["per_class"].items()},
                "epochs": cas_params.epochs, "train_size": len(data)}

    copies_by_design = get_method(method).provenance == "parents"    # copies, flips, interpolation
    report, rows = assess(train_set, synth, model, test, ctx.split().get("normal_class"), seed=seed,
                          inception=inception, cas=cas, embed=seed == cfg.seeds[0] and ctx.fold in (None, 0),
                          gate_copies=not copies_by_design)
    for row, file in zip(rows, RunDir.synthetic_files(synth, seed)):
        row["file"] = file
    report.update(key=quality_key(cfg, method), method=method, seed=seed, feature_model=feature_id)
    rd.write_quality(method, seed, report, rows)
    reporter.emit("quality", method=method, seed=seed, gate_dropped=report["overall"].get("gate_dropped"),
                  near_copies=report["overall"].get("near_copies"), seconds=report["seconds"])
    return report


def _gate_mask(rd: RunDir, method: str, seed: int, synth: ImageSet) -> np.ndarray:
    table = rd.quality_table(method, seed)
    if not table:
        raise RunError(f"{method} has no quality table for seed {seed}; run quality:{method}_s{seed} first")
    return np.array([table.get(f, {}).get("kept", "True") == "True" for f in RunDir.synthetic_files(synth, seed)])


# ---------------------------------------------------------------------------------------------
# train(model, seed)
# ---------------------------------------------------------------------------------------------
def train(ctx: TaskContext, task: Task) -> dict | None:
    """Train and score one classifier: a baseline on the imbalanced set, or the classifier on a method's
    augmented set. Same architecture, initial weights and data order for every model of a seed. Returns
    None (and trains nothing) when the method's fit failed."""
    cfg, rd, reporter = ctx.cfg, ctx.rd, ctx.reporter
    seed, cp = task.seed, cfg.classifier_params()
    train_set, test = ctx.images("train"), ctx.images("test")
    split = ctx.split()
    steps_bal, _ = steps_of(cfg, split["train_counts"], split["needed"])
    if task.baseline == "linear":
        return _train_linear(ctx, task)
    steps, weights, data, extra = None, None, train_set, {}
    if task.baseline in ("equal_steps", "class_weighted", "logit_adjusted", "drw"):
        steps = steps_bal
    k = len(train_set.classes)
    if task.baseline == "class_weighted":
        weights = clf.inverse_frequency_weights(train_set.labels, k)
    elif task.baseline == "drw":
        weights = clf.class_balanced_weights(train_set.labels, k)
        extra["weights_from_epoch"] = clf.drw_start_epoch(cp.epochs)
    elif task.baseline == "logit_adjusted":
        extra["logit_offsets"] = clf.logit_adjustment(train_set.labels, k)
    if task.method is not None:
        rec = rd.fit(task.method, seed)
        if rec is None or rec.get("failed"):
            return None
        synth = rd.load_synthetic(task.method, seed)
        if task.gated:                      # only the images the quality gate keeps
            kept = _gate_mask(rd, task.method, seed, synth)
            synth = synth.subset(np.flatnonzero(kept))
        data = ImageSet.concat([train_set, synth])
    total = steps if steps is not None else clf.steps_for(len(data), cp)
    stage = ctx.stage("train", task.name, seed)
    reporter.stage(stage, f"training the classifier for {task.name}, {ctx.where(seed)}")

    def on_epoch(point: dict) -> None:
        reporter.emit("epoch", **point)
        reporter.progress(stage, point["step"], total, overall=ctx.progress(point["step"] / total))

    res = clf.train(data, cp, seed, steps=steps, class_weights=weights, device=ctx.device, eval_set=test,
                    name=stage.split(":", 1)[1], on_epoch=on_epoch, check_cancel=reporter.check_cancel, **extra)
    saved = clf.saved_form(res.model, cp, test.classes, test.channels, test.shape[0], seed)
    return _score(ctx, task, res, saved, len(data))


def _score(ctx: TaskContext, task: Task, res: clf.TrainResult, saved: tuple, train_size: int) -> dict:
    """Predict the test images with a trained classifier; keep the predictions, the classifier and the result."""
    cfg, rd, test = ctx.cfg, ctx.rd, ctx.images("test")
    probs = clf.predict(res.model, test)
    rd.write_predictions(task.model_id, test, probs)
    rd.save_classifier(task.model_id, *saved)
    pred = probs.argmax(1)
    m = classification_metrics(test.labels, pred, test.classes)
    m.update(seconds=round(res.seconds, 2), steps=res.steps,
             seconds_per_step=round(res.seconds / max(res.steps, 1), 5), train_size=train_size)
    key = quality_key(cfg, task.method) if task.gated else cfg.key(task.method)
    record = {"key": key, "metrics": m, "pred": pred.tolist()}
    rd.write_result(task.name, task.seed, record)
    ctx.reporter.emit("result", model=ctx.stage("train", task.name, task.seed).split(":", 1)[1],
                      f1_macro=m["f1_macro"], recall_macro=m["recall_macro"])
    return record


def _train_linear(ctx: TaskContext, task: Task) -> dict:
    """The linear baseline: fitted once per fold (it has no seed), its classifier reused by the other seeds when
    one of them already made it with these settings (a seed whose process got here first fits it too: same model)."""
    from .. import linear
    rd, seed = ctx.rd, task.seed
    train_set, test = ctx.images("train"), ctx.images("test")
    stage = ctx.stage("train", task.name, seed)
    ctx.reporter.stage(stage, f"fitting the linear baseline, {ctx.where(seed)}")
    for other in ctx.cfg.seeds:
        rec = rd.result(task.name, other) if other != seed else None
        saved = rd.classifier(RunDir.model_id(task.name, other)) if rec and rec.get("key") == ctx.cfg.key(None) else None
        if saved is not None and saved[1].get("arch") == linear.ARCH:
            res = clf.TrainResult(clf.rebuild(*saved), rec["metrics"]["steps"], rec["metrics"]["seconds"], [])
            return _score(ctx, task, res, saved, len(train_set))
    res = linear.train(train_set)
    ctx.reporter.progress(stage, 1, 1, overall=ctx.progress(1.0))
    return _score(ctx, task, res, linear.saved_form(res.model, test.classes, test.channels, test.shape[0]),
                  len(train_set))
