"""The experiment as a plan of tasks, each of which reads and writes only the run folder.

    prepare                  split + imbalance, once: split.json, data/train.npz, data/test.npz
    fit:<method>_s<seed>     the method fitted on the training set: its sampler, synthetic images, provenance
    train:<model>_s<seed>    one classifier (a baseline, or a method's augmented set): results/, predictions/
    aggregate                metrics.json: every model over seeds, gains, verdicts, leaderboard

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
    kind: str                   # prepare | fit | train | aggregate
    name: str = ""              # fit: the method; train: the model (baseline_<kind> or a method)
    seed: int | None = None
    method: str | None = None   # train: the method whose synthetic images it adds (None for baselines)
    baseline: str | None = None  # train of a baseline: paper | equal_steps | class_weighted
    needs: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        if self.kind in ("prepare", "aggregate"):
            return self.kind
        return f"{self.kind}:{self.name}_s{self.seed}"

    @property
    def model_id(self) -> str:
        """The file stem of a train task's results and predictions (`smote_s0`)."""
        return f"{self.name}_s{self.seed}"


def plan(cfg: ExperimentConfig) -> list[Task]:
    """The tasks of a run in the order the local runner takes them: per seed the baselines, then each
    method's fit and training."""
    tasks = [Task("prepare")]
    trains = []
    for seed in cfg.seeds:
        for b in cfg.baselines:
            trains.append(Task("train", f"baseline_{b}", seed, baseline=b, needs=("prepare",)))
            tasks.append(trains[-1])
        for m in cfg.methods:
            fit = Task("fit", m, seed, method=m, needs=("prepare",))
            trains.append(Task("train", m, seed, method=m, needs=(fit.id,)))
            tasks += [fit, trains[-1]]
    tasks.append(Task("aggregate", needs=tuple(t.id for t in trains)))
    return tasks


def chains(tasks: list[Task]) -> list[list[Task]]:
    """The plan between prepare and aggregate as independent chains (a baseline's training; a method's fit
    and its training, per seed), the units a pool of processes can take in any order."""
    by_id = {t.id: t for t in tasks}
    out = []
    for t in tasks:
        if t.kind == "train":
            fit = [by_id[n] for n in t.needs if by_id[n].kind == "fit"]
            out.append(fit + [t])
    return out
