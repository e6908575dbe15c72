"""The experiment pipeline: data -> split -> imbalance -> baselines -> methods -> metrics.

    from core.experiment import run
    metrics = run({"data": "path/or.zip", "methods": ["smote"], "seeds": [0]}, "runs/x")

Everything lands in the run directory (see ARCHITECTURE.md): config.json, events.jsonl, log.txt,
data_report.json, split.json, data/{train,test}.npz, synthetic/<method>/<class>/s<seed>_<i>.png with
synthetic/<method>/provenance.csv, predictions/<model>.csv, checkpoints/<method>/seed<k>/, and at
the end metrics.json.

Fair comparison: each seed trains three baselines on the imbalanced set, all from the same
initial weights as the augmented runs of that seed:
  paper           same epochs as the augmented runs (the papers' protocol; fewer gradient steps)
  equal_steps     as many gradient steps as an augmented run
  class_weighted  equal steps, loss weighted by inverse class frequency
A method's verdict is taken against the strongest of them (highest mean macro F1).
The real test split never sees synthetic data.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import resource
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import classifier as clf
from .errors import Cancelled, DefectAugError, ParamError
from .events import Reporter
from .imageset import ImageSet, synthetic_source
from .metrics import (aggregate, bootstrap_f1_ci, classification_metrics, paired_bootstrap_gain,
                      seed_gain)
from .methods.base import Context, build_params, get_method, pick_device

BASELINES = ("paper", "equal_steps", "class_weighted")
SUPPORTED_SIZES = (16, 32, 64, 128, 256)


# Numeric settings: what each must be, for the message when a value is not a number at all.
_NUMBERS = {"ratio": (float, "a number in (0, 1], e.g. 0.1"),
            "target_ratio": (float, "a number in (0, 1], e.g. 1.0"),
            "image_size": (int, "a whole number of pixels, e.g. 64"),
            "test_per_class": (float, "a whole number of images (e.g. 20) or a fraction in (0, 1)"),
            "split_seed": (int, "a whole number, e.g. 0"),
            "num_threads": (int, "a whole number of CPU threads of at least 1, e.g. 2"),
            "max_synthetic_mb": (float, "a number of megabytes, e.g. 4096")}


def _check_number(key: str, value: Any) -> None:
    kind, what = _NUMBERS[key]
    try:
        if isinstance(value, (bool, list, dict)):
            raise TypeError
        number = kind(value)
        if key == "num_threads" and number < 1:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ParamError(f"{key} must be {what}; got {value!r}") from None


@dataclass
class ExperimentConfig:
    data: str
    methods: list[str] = field(default_factory=lambda: ["smote"])
    seeds: list[int] = field(default_factory=lambda: [0])
    ratio: float | None = 0.1           # simulate imbalance (None: keep the data's own)
    target_ratio: float = 1.0           # balance each class up to target_ratio x majority
    image_size: int = 64
    channels: str = "auto"              # auto | 1 | 3
    test_per_class: float = 20          # int: images per class; float < 1: fraction per class
    split_seed: int = 0                 # fixes the test split and the imbalance subset
    preset: str = "quick"               # quick (CPU) | paper (GPU)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"smote": {...}, "classifier": {...}}
    device: str = "auto"
    num_threads: int | None = None
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    max_synthetic_mb: int = 4096        # refuse before starting when synthetic images would not fit
    save_images: bool = True

    @classmethod
    def from_dict(cls, d: dict | "ExperimentConfig") -> "ExperimentConfig":
        if isinstance(d, ExperimentConfig):
            cfg = d
        else:
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = set(d) - names
            if unknown:
                raise ParamError(f"unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
            if "data" not in d:
                raise ParamError("no dataset given: set data to a folder or a .zip of class folders")
            cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        for key in _NUMBERS:
            value = getattr(self, key)
            if value is not None or key not in ("ratio", "num_threads"):   # None: the data's own / torch's
                _check_number(key, value)
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        given_seeds = self.seeds
        if isinstance(self.seeds, (int, str)):
            self.seeds = [s for s in str(self.seeds).split(",") if s.strip()]
        if not self.methods:
            raise ParamError("choose at least one method")
        for m in self.methods:
            get_method(m)   # raises ParamError naming the available ones
        if len(set(self.methods)) != len(self.methods):
            raise ParamError("a method is listed twice")
        try:
            self.seeds = [int(s) for s in self.seeds]
        except (TypeError, ValueError):
            raise ParamError(f"seeds must be whole numbers, e.g. 0,1,2; got {given_seeds!r}") from None
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ParamError("give one or more distinct seeds, e.g. 0,1,2")
        if self.ratio is not None and not (0 < float(self.ratio) <= 1):
            raise ParamError(f"imbalance ratio must be in (0, 1], got {self.ratio}; e.g. 0.1 keeps at most "
                             "10% of the majority count per minority class")
        if not (0 < float(self.target_ratio) <= 1):
            raise ParamError(f"target ratio must be in (0, 1], got {self.target_ratio}; 1.0 balances every "
                             "class up to the majority count")
        if int(self.image_size) not in SUPPORTED_SIZES:
            raise ParamError(f"image size {self.image_size} is not supported; choose one of {SUPPORTED_SIZES}")
        self.image_size = int(self.image_size)
        if str(self.channels) not in ("auto", "1", "3"):
            raise ParamError("channels must be auto, 1 or 3")
        if self.preset not in ("quick", "paper"):
            raise ParamError(f"unknown preset {self.preset!r}; use quick (CPU) or paper (GPU)")
        t = float(self.test_per_class)
        if t <= 0 or (t < 1 and t != float(self.test_per_class)) or (t >= 1 and not float(t).is_integer()):
            raise ParamError("test_per_class must be a whole number of images (e.g. 20) or a fraction in (0, 1)")
        for b in self.baselines:
            if b not in BASELINES:
                raise ParamError(f"unknown baseline {b!r}; use {', '.join(BASELINES)}")
        if not self.baselines:
            raise ParamError("keep at least one baseline: a method can only be judged against one")
        for key in self.overrides:
            if key != "classifier" and key not in self.methods:
                raise ParamError(f"settings given for {key!r}, which is not among the chosen methods "
                                 f"({', '.join(self.methods)})")
        self.classifier_params()
        for m in self.methods:
            self.method_params(m)

    def classifier_params(self) -> clf.ClassifierParams:
        values = dict(clf.PRESETS[self.preset])
        values.update(self.overrides.get("classifier", {}))
        return build_params(clf.ClassifierParams, values, "classifier")

    def method_params(self, name: str) -> Any:
        return get_method(name).make_params(self.preset, self.overrides.get(name, {}))

    def resolved(self) -> dict:
        """The full configuration, with every parameter value, as written to config.json."""
        d = dataclasses.asdict(self)
        d["classifier_params"] = dataclasses.asdict(self.classifier_params())
        d["method_params"] = {m: dataclasses.asdict(self.method_params(m)) for m in self.methods}
        return d


# ------------------------------------------------------------------------------------------------
def estimate(config: dict | ExperimentConfig, counts: dict[str, int] | None = None) -> dict:
    """What a run will do: number of classifier trainings and a rough duration (CPU small CNN)."""
    cfg = ExperimentConfig.from_dict(config)
    trained_methods = [m for m in cfg.methods if m != "none"]
    n_train = len(cfg.seeds) * (len(cfg.baselines) + len(trained_methods))
    out = {"trainings": n_train, "methods": trained_methods, "seeds": cfg.seeds, "baselines": cfg.baselines}
    if counts:
        from .data import balance_targets
        needed = balance_targets(counts, cfg.target_ratio)
        n_bal = sum(counts.values()) + sum(needed.values())
        cp = cfg.classifier_params()
        px = (cfg.image_size / 64) ** 2
        img_per_s = (5000 if pick_device(cfg.device).type == "cpu" else 50000) / px
        images = cp.epochs * n_bal * n_train
        out.update(synthetic_per_method=int(sum(needed.values())), balanced_size=int(n_bal),
                   seconds=round(images / img_per_s, 1),
                   synthetic_mb=round(sum(needed.values()) * cfg.image_size ** 2 * 3 / 2**20, 1))
    return out


# ------------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _save_npz(path: Path, ds: ImageSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=ds.images, labels=ds.labels, classes=np.array(ds.classes),
                        sources=np.array(ds.sources))


def load_npz(path: str | Path) -> ImageSet:
    z = np.load(path, allow_pickle=False)
    return ImageSet(z["images"], z["labels"], [str(c) for c in z["classes"]], [str(s) for s in z["sources"]])


def _write_predictions(path: Path, test: ImageSet, probs: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "true", "pred"] + [f"p_{c}" for c in test.classes])
        for src, t, pr in zip(test.sources, test.labels, probs):
            w.writerow([src, test.classes[t], test.classes[int(pr.argmax())]] + [f"{v:.5f}" for v in pr])


def _save_synthetic(run_dir: Path, method: str, seed: int, synth: ImageSet, parents: list[list[str]]) -> None:
    from PIL import Image
    base = run_dir / "synthetic" / method
    prov = base / "provenance.csv"
    base.mkdir(parents=True, exist_ok=True)
    if prov.exists():  # a resumed run writes this seed again: drop its earlier (partial) rows
        with open(prov, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        kept = [r for r in rows[1:] if len(r) > 2 and r[2] != str(seed)]
        if len(kept) != len(rows) - 1:
            with open(prov, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows(rows[:1] + kept)
    new = not prov.exists()
    with open(prov, "a", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["file", "class", "seed", "parents"])
        counters: dict[int, int] = {}
        for img, lab, par in zip(synth.images, synth.labels, parents):
            cls = synth.classes[lab]
            i = counters.get(lab, 0)
            counters[lab] = i + 1
            rel = f"{cls}/s{seed}_{i:05d}.png"
            (base / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(base / rel)
            w.writerow([rel, cls, seed, "|".join(par)])


class _Progress:
    """Overall fraction of the run from the classifier steps and method fits done so far."""

    def __init__(self, reporter: Reporter, total_units: float) -> None:
        self.reporter, self.total, self.done = reporter, max(total_units, 1.0), 0.0

    def add(self, units: float) -> None:
        self.done = min(self.total, self.done + units)

    def overall(self, extra: float = 0.0) -> float:
        return round(min(1.0, (self.done + extra) / self.total), 4)


def run(config: dict | ExperimentConfig, run_dir: str | Path,
        callback: Callable[[dict], None] | None = None, resume: bool = False) -> dict:
    """Run the whole experiment; returns metrics (also written to run_dir/metrics.json).

    Each trained model leaves results/<model>.json. With resume=True, a model whose result is there
    and was made with the same data, split, classifier and method settings is not trained again:
    an interrupted run (killed worker, closed laptop) goes on where it stopped.
    """
    run_dir = Path(run_dir)
    reporter = Reporter(run_dir, callback)
    try:
        cfg = ExperimentConfig.from_dict(config)
        return _run(cfg, run_dir, reporter, resume=resume)
    except Cancelled as err:
        reporter.emit("error", message=str(err), cancelled=True)
        raise
    except DefectAugError as err:
        reporter.emit("error", message=str(err))
        raise
    except Exception as err:  # a bug or the machine (e.g. disk full): keep what was written, say why
        reporter.log(traceback.format_exc())
        reporter.emit("error", message=f"{type(err).__name__}: {err}")
        raise


def _result_key(cfg: ExperimentConfig, method: str | None) -> str:
    """What a model's result depends on; a resumed run reuses a result only when this matches."""
    import hashlib
    d = {f: getattr(cfg, f) for f in ("data", "ratio", "target_ratio", "image_size", "channels",
                                      "test_per_class", "split_seed")}
    d["data"] = str(Path(str(cfg.data)).resolve())
    d["classifier"] = dataclasses.asdict(cfg.classifier_params())
    if method is not None:
        d["method"] = [method, dataclasses.asdict(cfg.method_params(method))]
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _load_result(run_dir: Path, model_id: str, key: str) -> dict | None:
    path = run_dir / "results" / f"{model_id}.json"
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return r if isinstance(r, dict) and r.get("key") == key and "metrics" in r and "pred" in r else None


def _run(cfg: ExperimentConfig, run_dir: Path, reporter: Reporter, resume: bool = False) -> dict:
    from .data import balance_targets, load_dataset, simulate_imbalance, split

    t_start = time.time()
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    device = pick_device(cfg.device)
    resolved = cfg.resolved()
    resolved["environment"] = {"torch": torch.__version__, "device": str(device), "python": platform.python_version(),
                               "threads": torch.get_num_threads(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    _write_json(run_dir / "config.json", resolved)

    reporter.stage("load", f"loading {cfg.data}")
    channels = cfg.channels if cfg.channels == "auto" else int(cfg.channels)
    full, report = load_dataset(cfg.data, image_size=cfg.image_size, channels=channels)
    _write_json(run_dir / "data_report.json", report.to_dict())
    tp = float(cfg.test_per_class)
    pool, test = split(full, int(tp) if tp >= 1 else tp, seed=cfg.split_seed)
    train = simulate_imbalance(pool, cfg.ratio, seed=cfg.split_seed) if cfg.ratio else pool
    classes = full.classes
    k = len(classes)
    if len(test) == 0:
        raise ParamError("the test split is empty: every class needs at least 2 images")
    for c, n in test.counts().items():
        if n == 0:
            reporter.warn(f"class {c!r} has no test image (too few images); its recall cannot be measured")
    needed = balance_targets(train.counts(), cfg.target_ratio)
    _write_json(run_dir / "split.json", {"train": train.sources, "test": test.sources,
                                         "train_counts": train.counts(), "test_counts": test.counts(),
                                         "pool_counts": pool.counts(), "needed": needed})
    _save_npz(run_dir / "data" / "train.npz", train)
    _save_npz(run_dir / "data" / "test.npz", test)
    reporter.emit("stage", stage="split", message="train / test split done", train_counts=train.counts(),
                  test_counts=test.counts(), needed=needed)

    synth_mb = sum(needed.values()) * int(np.prod(train.shape)) / 2**20
    if synth_mb > cfg.max_synthetic_mb:
        raise ParamError(f"the synthetic images would need {synth_mb:.0f} MB, over the limit of "
                         f"{cfg.max_synthetic_mb} MB; lower the target ratio or the image size")

    cp = cfg.classifier_params()
    n_bal = len(train) + sum(needed.values())
    steps_bal = clf.steps_for(n_bal, cp)
    steps_paper = clf.steps_for(len(train), cp)
    methods = [m for m in cfg.methods if m != "none"]
    units_per = {"paper": steps_paper, "equal_steps": steps_bal, "class_weighted": steps_bal}
    total_units = len(cfg.seeds) * (sum(units_per[b] for b in cfg.baselines) + len(methods) * 2 * steps_bal)
    prog = _Progress(reporter, total_units)

    per_seed: dict[str, dict[int, dict]] = {}
    preds: dict[str, dict[int, np.ndarray]] = {}
    timings: dict[str, dict] = {}
    failures: dict[str, str] = {}
    fallbacks: list[dict] = []

    def reuse(name: str, seed: int, method: str | None) -> dict | None:
        """The stored result of this model when resuming (and it still matches the settings)."""
        if not resume:
            return None
        r = _load_result(run_dir, f"{name}_s{seed}", _result_key(cfg, method))
        if r is None:
            return None
        per_seed.setdefault(name, {})[seed] = r["metrics"]
        preds.setdefault(name, {})[seed] = np.asarray(r["pred"], dtype=np.int64)
        reporter.emit("result", model=f"{name}_s{seed}", f1_macro=r["metrics"]["f1_macro"],
                      recall_macro=r["metrics"]["recall_macro"], resumed=True)
        reporter.log(f"resumed: {name}_s{seed} reused from results/{name}_s{seed}.json")
        return r

    def fit_classifier(name: str, data: ImageSet, seed: int, steps: int | None = None,
                       weights: np.ndarray | None = None, method: str | None = None,
                       extra: dict | None = None) -> None:
        model_id = f"{name}_s{seed}"
        total = steps if steps is not None else clf.steps_for(len(data), cp)
        if reuse(name, seed, method) is not None:
            prog.add(total)
            return
        reporter.stage(f"train:{model_id}", f"training the classifier for {name}, seed {seed}")
        start_units = prog.done

        def on_epoch(point: dict) -> None:
            prog.done = start_units + point["step"]
            reporter.emit("epoch", **point)
            reporter.progress(f"train:{model_id}", point["step"], total, overall=prog.overall())

        res = clf.train(data, cp, seed, steps=steps, class_weights=weights, device=device, eval_set=test,
                        name=model_id, on_epoch=on_epoch, check_cancel=reporter.check_cancel)
        prog.done = start_units + total
        probs = clf.predict(res.model, test)
        _write_predictions(run_dir / "predictions" / f"{model_id}.csv", test, probs)
        pred = probs.argmax(1)
        m = classification_metrics(test.labels, pred, classes)
        m.update(seconds=round(res.seconds, 2), steps=res.steps,
                 seconds_per_step=round(res.seconds / max(res.steps, 1), 5), train_size=len(data))
        per_seed.setdefault(name, {})[seed] = m
        preds.setdefault(name, {})[seed] = pred
        _write_json(run_dir / "results" / f"{model_id}.json",
                    {"key": _result_key(cfg, method), "metrics": m, "pred": pred.tolist(), **(extra or {})})
        reporter.emit("result", model=model_id, f1_macro=m["f1_macro"], recall_macro=m["recall_macro"])

    for seed in cfg.seeds:
        # --- baselines -------------------------------------------------------------------------
        for b in cfg.baselines:
            if b == "paper":
                fit_classifier("baseline_paper", train, seed)
            elif b == "equal_steps":
                fit_classifier("baseline_equal_steps", train, seed, steps=steps_bal)
            else:
                fit_classifier("baseline_class_weighted", train, seed, steps=steps_bal,
                               weights=clf.inverse_frequency_weights(train.labels, k))
        # --- methods -----------------------------------------------------------------------------
        for name in methods:
            if name in failures:
                continue
            done = reuse(name, seed, name)
            if done is not None:
                prog.add(2 * steps_bal)
                timings.setdefault(name, {}).setdefault("fit_seconds", []).append(done.get("fit_seconds"))
                fallbacks.extend(done.get("fallbacks", []))
                continue
            n_fallbacks = len(fallbacks)
            try:
                synth, parents, fit_s = _synthesize(cfg, name, seed, train, needed, run_dir, reporter, device,
                                                    fallbacks)
            except (Cancelled, KeyboardInterrupt):
                raise
            except (DefectAugError, RuntimeError, ValueError, MemoryError) as err:
                # one method failing must not lose the others (nor the baselines already trained)
                failures[name] = f"{type(err).__name__}: {err}"
                reporter.log(traceback.format_exc())
                reporter.warn(f"method {name} failed and is left out of the results: {err}")
                prog.add(2 * steps_bal * (len(cfg.seeds) - cfg.seeds.index(seed)))
                continue
            prog.add(steps_bal)
            if cfg.save_images:
                _save_synthetic(run_dir, name, seed, synth, parents)
            timings.setdefault(name, {}).setdefault("fit_seconds", []).append(round(fit_s, 2))
            augmented = ImageSet.concat([train, synth])
            fit_classifier(name, augmented, seed, method=name,
                           extra={"fit_seconds": round(fit_s, 2), "fallbacks": fallbacks[n_fallbacks:]})

    # --- metrics -------------------------------------------------------------------------------
    reporter.stage("metrics", "computing metrics and the leaderboard")
    y = test.labels
    out: dict = {"classes": classes, "baselines": {}, "methods": {}, "failed": failures,
                 "fallbacks": fallbacks, "warnings": list(reporter.warnings),
                 "protocol": {"train_counts": train.counts(), "test_counts": test.counts(), "needed": needed,
                              "ratio": cfg.ratio, "target_ratio": cfg.target_ratio, "seeds": cfg.seeds,
                              "steps_balanced": steps_bal, "steps_paper": steps_paper,
                              "epochs": cp.epochs, "image_size": cfg.image_size}}

    def summarise(name: str) -> dict:
        agg = aggregate(per_seed[name], classes)
        agg["f1_ci"] = bootstrap_f1_ci(y, [preds[name][s] for s in sorted(preds[name])], k)
        agg["seconds"] = float(np.mean([r["seconds"] for r in per_seed[name].values()]))
        agg["seconds_per_step"] = float(np.mean([r["seconds_per_step"] for r in per_seed[name].values()]))
        return agg

    for b in cfg.baselines:
        out["baselines"][b] = summarise(f"baseline_{b}")
    strongest = max(cfg.baselines, key=lambda b: out["baselines"][b]["f1_macro"])
    out["strongest_baseline"] = strongest
    if "none" in cfg.methods and "paper" in cfg.baselines:
        out["methods"]["none"] = dict(out["baselines"]["paper"], note="the imbalanced set as it is: the "
                                      "paper baseline")
    for name in methods:
        if name not in per_seed:
            continue
        agg = summarise(name)
        agg["timing"] = timings.get(name, {})
        agg["gain"] = {b: seed_gain([per_seed[f"baseline_{b}"][s]["f1_macro"] for s in cfg.seeds],
                                    [per_seed[name][s]["f1_macro"] for s in cfg.seeds]) for b in cfg.baselines}
        agg["verdict"] = _verdict(name, agg, out["baselines"], strongest, y,
                                  [preds[f"baseline_{strongest}"][s] for s in cfg.seeds],
                                  [preds[name][s] for s in cfg.seeds], classes)
        out["methods"][name] = agg
    out["leaderboard"] = _leaderboard(out, cfg.baselines)
    out["seconds_total"] = round(time.time() - t_start, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    _write_json(run_dir / "metrics.json", out)
    reporter.emit("done", message=f"finished in {out['seconds_total']:.0f} s", overall=1.0)
    return out


def _synthesize(cfg: ExperimentConfig, name: str, seed: int, train: ImageSet, needed: dict[str, int],
                run_dir: Path, reporter: Reporter, device: torch.device,
                fallbacks: list[dict]) -> tuple[ImageSet, list[list[str]], float]:
    spec = get_method(name)
    params = cfg.method_params(name)
    ckpt = run_dir / "checkpoints" / name / f"seed{seed}"
    ctx = Context(reporter=reporter, device=device, seed=seed, method=name, work_dir=ckpt / "training",
                  num_threads=cfg.num_threads)
    reporter.stage(f"fit:{name}_s{seed}", f"fitting {name}, seed {seed}")
    t0 = time.time()
    torch.manual_seed(seed)
    sampler = spec.sampler_cls(params, ctx)
    sampler.fit(train, needed)
    sampler.save(ckpt)
    imgs, labels, parents = [], [], []
    todo = [(c, n) for c, n in needed.items() if n > 0]
    for i, (c, n) in enumerate(todo):
        reporter.progress(f"sample:{name}_s{seed}", i, len(todo), cls=c)
        batch = sampler.sample(c, n, seed=seed * 1000 + train.class_index(c))
        if batch.images.shape != (n, *train.shape) or batch.images.dtype != np.uint8:
            raise RuntimeError(f"{name} returned images of shape {batch.images.shape} {batch.images.dtype} "
                               f"for class {c}, expected {(n, *train.shape)} uint8")
        imgs.append(batch.images)
        labels.append(np.full(n, train.class_index(c)))
        parents.extend(batch.parents if len(batch.parents) == n else [[] for _ in range(n)])
    for fb in getattr(sampler, "fallbacks_", []):
        fallbacks.append(dict(fb, seed=seed))
    if not imgs:
        return ImageSet.empty(train.classes, train.shape), [], time.time() - t0
    images = np.concatenate(imgs)
    sources = [synthetic_source(name, seed, p) for p in parents]
    return (ImageSet(images, np.concatenate(labels), train.classes, sources), parents, time.time() - t0)


def _verdict(name: str, agg: dict, baselines: dict, strongest: str, y: np.ndarray, base_preds: list,
             method_preds: list, classes: list[str]) -> dict:
    """Plain-language verdict against the strongest baseline: the gain must clear both the test-set
    uncertainty (paired bootstrap interval) and the seed-to-seed spread."""
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
            + (f", seed-to-seed SD {spread:.3f}, better in {g['positive_seeds']}/{g['n_seeds']} seeds" if g["n_seeds"] > 1 else "")
            + f"). Verdict: {label}."
            + (f" Recall up for {', '.join(better)}" if better else "")
            + (f"; down for {', '.join(worse)}." if worse else ("." if better else "")))
    return {"against": strongest, "label": label, "gain": round(g["mean"], 4), "ci": [round(lo, 4), round(hi, 4)],
            "seed_std": round(spread, 4), "positive_seeds": g["positive_seeds"], "n_seeds": g["n_seeds"],
            "recall_change": per_class, "text": text}


def _leaderboard(out: dict, baselines: list[str]) -> list[dict]:
    rows = []
    for kind, table in (("method", out["methods"]), ("baseline", out["baselines"])):
        for name, m in table.items():
            if kind == "method" and name == "none":
                continue
            row = {"name": name if kind == "method" else f"baseline:{name}", "kind": kind,
                   "f1_macro": m["f1_macro"], "f1_std": m["std"]["f1_macro"], "f1_ci": m["f1_ci"],
                   "precision_macro": m["precision_macro"], "recall_macro": m["recall_macro"],
                   "accuracy": m["accuracy"]}
            if kind == "method":
                row["gain"] = {b: m["gain"][b]["mean"] for b in baselines}
                row["verdict"] = m["verdict"]["label"]
            rows.append(row)
    return sorted(rows, key=lambda r: -r["f1_macro"])
