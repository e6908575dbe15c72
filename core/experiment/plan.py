"""The experiment as a plan of tasks, each of which reads and writes only the run folder.

    prepare                  split + imbalance, once: split.json, data/train.npz, data/test.npz (with K folds
                             one prepare per fold, and every other task per fold too: `fit:smote_f2_s0`)
    fit:<method>_s<seed>     the method fitted on the training set: its sampler, synthetic images, provenance
    quality:<method>_s<seed> how good its synthetic images are (core.metrics.generative), on the features of the
                             seed's class-weighted baseline; which images the quality gate keeps
    train:<model>_s<seed>    one classifier (a baseline, a method's augmented set, or with quality_gate the gated
                             set `<method>+gate`): results/, predictions/, classifiers/
    aggregate                metrics.json: every model over seeds, gains, verdicts, leaderboard, quality

    tasks = plan(cfg)        # in order; each task names the tasks it needs
    run(cfg, run_dir)        # the local runner: the plan in order, skipping finished tasks on resume

Because a task only reads what the tasks it needs wrote to the run folder, any process can run it: the
local runner runs them one after another, `benchmarks/seed_protocol.py` spreads them over processes, a
cluster runner over machines.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import ExperimentConfig


@dataclass(frozen=True)
class Task:
    kind: str                   # prepare | fit | quality | train | aggregate
    name: str = ""              # fit: the method; train: the model (baseline_<kind> or a method)
    seed: int | None = None
    method: str | None = None   # fit, quality, train: the method whose synthetic images it works on
    gated: bool = False         # train: only the images the quality gate keeps
    baseline: str | None = None  # train of a baseline: one of config.BASELINES
    fold: int | None = None     # with K folds: which (its files are in folds/f<k>/); None: the single split
    needs: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        f = f"_f{self.fold}" if self.fold is not None else ""
        if self.kind == "aggregate":
            return self.kind
        if self.kind == "prepare":
            return self.kind + (f":f{self.fold}" if self.fold is not None else "")
        return f"{self.kind}:{self.name}{f}_s{self.seed}"

    @property
    def model_id(self) -> str:
        """The file stem of a train task's results and predictions (`smote_s0`)."""
        return f"{self.name}_s{self.seed}"


def plan(cfg: ExperimentConfig) -> list[Task]:
    """The tasks of a run in the order the local runner takes them: per seed the baselines, then each
    method's fit, quality and training (and gated training)."""
    tasks, ends = [], []
    for fold in ([None] if cfg.folds == 1 else range(cfg.folds)):
        prepare = Task("prepare", fold=fold)
        tasks.append(prepare)
        for seed in cfg.seeds:
            feature = None
            for b in cfg.baselines:
                ends.append(Task("train", f"baseline_{b}", seed, baseline=b, fold=fold, needs=(prepare.id,)))
                tasks.append(ends[-1])
                feature = ends[-1] if b == cfg.feature_baseline else feature
            for m in cfg.methods:
                fit = Task("fit", m, seed, method=m, fold=fold, needs=(prepare.id,))
                train = Task("train", m, seed, method=m, fold=fold, needs=(fit.id,))
                tasks += [fit]
                if cfg.quality:
                    quality = Task("quality", m, seed, method=m, fold=fold, needs=(fit.id, feature.id))
                    tasks.append(quality)
                    ends.append(quality)
                tasks.append(train)
                ends.append(train)
                if cfg.quality_gate:
                    ends.append(Task("train", f"{m}+gate", seed, method=m, gated=True, fold=fold,
                                     needs=(quality.id,)))
                    tasks.append(ends[-1])
    tasks.append(Task("aggregate", needs=tuple(t.id for t in ends)))
    return tasks


def chains(tasks: list[Task]) -> list[list[Task]]:
    """The plan between prepare and aggregate as chains a pool of processes can take in any order: first each
    baseline's training, then per method and seed its fit, quality and trainings (a quality task needs the
    seed's baseline classifier, which the first chains make)."""
    out = [[t] for t in tasks if t.kind == "train" and t.baseline]
    for fit in (t for t in tasks if t.kind == "fit"):
        out.append([fit] + [t for t in tasks if t.kind in ("quality", "train") and t.method == fit.method
                            and t.seed == fit.seed and t.fold == fit.fold])
    return out
