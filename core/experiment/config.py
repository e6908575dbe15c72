"""The settings of one experiment (`ExperimentConfig`), what a run will cost (`estimate`), and the keys
that say whether a stored result still matches the settings (resume reuses only what matches)."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import classifier as clf
from ..errors import ParamError
from ..methods import get_method
from ..params import build_params
from ..runtime import training_threads

BASELINES = ("paper", "equal_steps", "class_weighted", "logit_adjusted", "drw", "linear")
SUPPORTED_SIZES = (16, 32, 64, 128, 256)
# What each baseline is, in one line (the Compare page and the report say it beside its name).
BASELINE_HELP = {
    "paper": "same epochs as an augmented run, so fewer gradient steps on the smaller set (the papers' "
             "protocol; why it usually scores lowest)",
    "equal_steps": "as many gradient steps as an augmented run",
    "class_weighted": "as many steps, with the loss weighted by inverse class frequency",
    "logit_adjusted": "as many steps, with the logit-adjusted loss (tau = 1: each logit shifted by the log of its "
                      "class's share while training, so rare classes must win by a margin; Menon et al. 2021)",
    "drw": "as many steps, plain loss, then class-balanced weights for the last 25% of the epochs (deferred "
           "re-weighting; Cao et al. 2019)",
    "linear": "no network: class-balanced logistic regression on the standardised pixels (scikit-learn; the same "
              "model for every seed)",
}

# Numeric settings: what each must be, for the message when a value is not a number at all.
_NUMBERS = {"ratio": (float, "a number in (0, 1], e.g. 0.1"),
            "target_ratio": (float, "a number in (0, 1], e.g. 1.0"),
            "image_size": (int, "a whole number of pixels, e.g. 64"),
            "test_per_class": (float, "a whole number of images (e.g. 20) or a fraction in (0, 1)"),
            "split_seed": (int, "a whole number, e.g. 0"),
            "folds": (int, "a whole number of folds from 1 (one split) to 20, e.g. 5"),
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


def parse_seeds(value: Any) -> list[int]:
    """Seeds from a list, a number or text ("0,1,2", "0 1 2"): distinct whole numbers, at least one."""
    given = value
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [s for s in str(value).replace(" ", ",").split(",") if s.strip()]
    try:
        seeds = [int(s) for s in value]
    except (TypeError, ValueError):
        raise ParamError(f"seeds must be whole numbers, e.g. 0,1,2; got {given!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ParamError("give one or more distinct seeds, e.g. 0,1,2 (several seeds measure the spread)")
    return seeds


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
    folds: int = 1                      # 1: one split (test_per_class); K: stratified K-fold, every image tested once
    normal_class: str | None = None     # the defect-free class (None: detected from the names, else the largest)
    groups: str = "auto"                # one part's images: auto | none | regex:P | csv:F | frames:GAP (data.groups)
    preset: str = "quick"               # quick (CPU) | paper (GPU)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"smote": {...}, "classifier": {...}}
    device: str = "auto"
    num_threads: int | None = None      # torch threads of each training (None: runtime.TRAINING_THREADS, 1)
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    max_synthetic_mb: int = 4096        # refuse before starting when synthetic images would not fit
    save_images: bool = True
    quality: bool = True                # measure the synthetic images (core.metrics.generative)
    quality_gate: bool = False          # also train each method on its gated set (wrong-class and copied images out)

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
        if not isinstance(self.data, (str, Path)) or not str(self.data).strip():
            raise ParamError("no dataset given: set data to a folder or a .zip of class folders")
        for key in _NUMBERS:
            value = getattr(self, key)
            if value is not None or key not in ("ratio", "num_threads"):   # None: the data's own / torch's
                _check_number(key, value)
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        # "none" (the imbalanced set as it is) was once listed as a method: it is the paper baseline
        self.methods = [m for m in self.methods if m != "none"]
        for m in self.methods:
            reason = get_method(m).unavailable_reason()   # get_method raises ParamError naming the known ones
            if reason:
                raise ParamError(f"{m} cannot run on this server: {reason}")
        if len(set(self.methods)) != len(self.methods):
            raise ParamError("a method is listed twice")
        self.seeds = parse_seeds(self.seeds)
        self.num_threads = training_threads(self.num_threads)   # fixed, never the load's: part of every key
        if self.ratio is not None and not (0 < float(self.ratio) <= 1):
            raise ParamError(f"imbalance ratio must be in (0, 1], got {self.ratio}; e.g. 0.1 keeps at most "
                             "10% of the normal class's count per defect class")
        if not (0 < float(self.target_ratio) <= 1):
            raise ParamError(f"target ratio must be in (0, 1], got {self.target_ratio}; 1.0 balances every "
                             "class up to the majority count")
        if isinstance(self.folds, bool) or int(self.folds) != float(self.folds) or not 1 <= int(self.folds) <= 20:
            raise ParamError(f"folds must be a whole number from 1 (one split) to 20, got {self.folds!r}")
        self.folds = int(self.folds)
        if int(self.image_size) not in SUPPORTED_SIZES:
            raise ParamError(f"image size {self.image_size} is not supported; choose one of {SUPPORTED_SIZES}")
        self.image_size = int(self.image_size)
        if str(self.channels) not in ("auto", "1", "3"):
            raise ParamError("channels must be auto, 1 or 3")
        if self.normal_class in ("", "auto"):
            self.normal_class = None
        if self.normal_class is not None and not isinstance(self.normal_class, str):
            raise ParamError(f"normal_class must be a class name, got {self.normal_class!r}")
        from ..data.groups import check_spec
        self.groups = check_spec(self.groups)
        if self.preset not in ("quick", "paper"):
            raise ParamError(f"unknown preset {self.preset!r}; use quick (CPU) or paper (GPU)")
        t = float(self.test_per_class)
        if t <= 0 or (t < 1 and t != float(self.test_per_class)) or (t >= 1 and not float(t).is_integer()):
            raise ParamError("test_per_class must be a whole number of images (e.g. 20) or a fraction in (0, 1)")
        if isinstance(self.baselines, str):
            self.baselines = [b.strip() for b in self.baselines.split(",") if b.strip()]
        self.baselines = list(self.baselines)
        for b in self.baselines:
            if b not in BASELINES:
                raise ParamError(f"unknown baseline {b!r}; use {', '.join(BASELINES)}")
        if not self.baselines:
            raise ParamError("keep at least one baseline: a method can only be judged against one")
        if len(set(self.baselines)) != len(self.baselines):
            raise ParamError("a baseline is listed twice")
        if self.quality and self.methods and self.baselines == ["linear"]:
            raise ParamError("the quality measures read the features of a CNN baseline: add one to the baselines "
                             "(e.g. class_weighted), or turn quality off")
        for key in ("quality", "quality_gate", "save_images"):
            if not isinstance(getattr(self, key), bool):
                raise ParamError(f"{key} must be true or false, got {getattr(self, key)!r}")
        if self.quality_gate and not self.quality:
            raise ParamError("quality_gate needs quality: the gate drops images the quality measures find")
        for key in self.overrides:
            if key != "classifier" and key not in self.methods:
                raise ParamError(f"settings given for {key!r}, which is not among the chosen methods "
                                 f"({', '.join(self.methods) or 'none'})")
        self.classifier_params()
        for m in self.methods:
            self.method_params(m)

    @property
    def feature_baseline(self) -> str:
        """The baseline whose classifier (trained on the real images only) gives the quality features."""
        cnns = [b for b in self.baselines if b != "linear"]
        return "class_weighted" if "class_weighted" in cnns else (cnns or self.baselines)[0]

    @property
    def test_split(self) -> int | float:
        """`test_per_class` as `core.data.split` takes it: a count, or a fraction below 1."""
        t = float(self.test_per_class)
        return int(t) if t >= 1 else t

    def classifier_params(self) -> clf.ClassifierParams:
        values = clf.params_values(self.preset, self.overrides.get("classifier", {}))
        return build_params(clf.ClassifierParams, values, "classifier")

    def method_params(self, name: str) -> Any:
        return get_method(name).make_params(self.preset, self.overrides.get(name, {}))

    def resolved(self) -> dict:
        """The full configuration, with every parameter value, as written to config.json."""
        d = dataclasses.asdict(self)
        d["classifier_params"] = dataclasses.asdict(self.classifier_params())
        d["method_params"] = {m: dataclasses.asdict(self.method_params(m)) for m in self.methods}
        return d

    # -- what a stored result depends on (resume reuses a result only when its key matches) ----------
    def data_key(self) -> dict:
        d = {f: getattr(self, f) for f in ("ratio", "target_ratio", "image_size", "channels", "test_per_class",
                                           "split_seed")}
        if self.folds > 1:                     # absent with one split: keys of earlier runs stay valid
            d["folds"] = self.folds
        d["data"] = str(Path(str(self.data)).resolve())
        if self.normal_class is not None:      # absent when detected: keys of earlier runs stay valid
            d["normal_class"] = self.normal_class
        if self.groups != "none":              # absent without groups: keys of earlier (ungrouped) runs stay valid
            d["groups"] = self.groups
            if self.groups.startswith("csv:"):
                with contextlib.suppress(OSError):
                    d["groups_table"] = hashlib.sha256(Path(self.groups[4:]).read_bytes()).hexdigest()[:16]
        return d

    def key(self, method: str | None = None, classifier: bool = True) -> str:
        d = self.data_key()
        if classifier:
            d["classifier"] = {k: v for k, v in dataclasses.asdict(self.classifier_params()).items()
                               if not (k in clf.NEW_FIELDS and v == clf.NEW_FIELDS[k])}   # earlier keys stay valid
        if method is not None:
            d["method"] = [method, dataclasses.asdict(self.method_params(method))]
        if classifier or method is not None:   # what trains: its numbers depend on the thread count (runtime)
            d["threads"] = self.num_threads
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
def estimate(config: dict | ExperimentConfig, counts: dict[str, int] | None = None) -> dict:
    """What a run will do: number of classifier trainings, synthetic images, the balanced set's size. How long
    it takes is `core.estimate`'s (`core.jobs.preflight` adds it, calibrated on the machine's finished runs).
    `counts`: training images per class after the simulated imbalance (`core.data.protocol_counts`)."""
    from ..data import balance_targets
    cfg = ExperimentConfig.from_dict(config)
    n_train = len(cfg.seeds) * cfg.folds * (len(cfg.baselines) + len(cfg.methods))
    n_train += len(cfg.seeds) * cfg.folds * len(cfg.methods) * int(cfg.quality_gate)   # each gated set too
    out = {"trainings": n_train, "methods": list(cfg.methods), "seeds": cfg.seeds, "baselines": cfg.baselines,
           "folds": cfg.folds}
    if counts:
        needed = balance_targets(counts, cfg.target_ratio)
        n_bal = sum(counts.values()) + sum(needed.values())
        out.update(synthetic_per_method=int(sum(needed.values())), balanced_size=int(n_bal),
                   synthetic_mb=round(sum(needed.values()) * cfg.image_size ** 2 * 3 / 2**20, 1))
    return out


def steps_of(cfg: ExperimentConfig, train_counts: dict[str, int], needed: dict[str, int]) -> tuple[int, int]:
    """(classifier steps of a balanced run, of the paper baseline) for these training counts."""
    cp = cfg.classifier_params()
    n_train = sum(train_counts.values())
    return clf.steps_for(n_train + sum(needed.values()), cp), clf.steps_for(n_train, cp)


__all__ = ["BASELINES", "BASELINE_HELP", "ExperimentConfig", "SUPPORTED_SIZES", "estimate", "parse_seeds", "steps_of"]
