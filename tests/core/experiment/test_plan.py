"""The experiment as a plan of tasks: any process can run any task whose inputs are in the run folder, so a
plan split between two processes gives the same metrics.json as one process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import RunError
from core.experiment import ExperimentConfig, chains, plan, run
from core.rundir import RunDir

REPO = Path(__file__).resolve().parents[3]
TIMING = {"seconds", "seconds_per_step", "seconds_total", "peak_rss_mb", "timing"}


def cfg(data) -> dict:
    return dict(data=str(data), methods=["smote", "mixup"], seeds=[0, 1], ratio=0.2, image_size=16,
                test_per_class=4, overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu", num_threads=1)


def _without_timing(x):
    if isinstance(x, dict):
        return {k: _without_timing(v) for k, v in x.items() if k not in TIMING}
    if isinstance(x, list):
        return [_without_timing(v) for v in x]
    return x


def test_the_plan_prepares_once_then_fits_and_trains_then_aggregates(tmp_path):
    default = [t.id for t in plan(ExperimentConfig.from_dict(cfg(tmp_path)))]
    assert [i for i in default if i.startswith("train:baseline_") and i.endswith("_s0")] == [
        f"train:baseline_{b}_s0" for b in ("paper", "equal_steps", "class_weighted", "logit_adjusted", "drw", "linear")]
    three = ["paper", "equal_steps", "class_weighted"]            # the structure below, with the first three
    tasks = plan(ExperimentConfig.from_dict({**cfg(tmp_path), "baselines": three}))
    ids = [t.id for t in tasks]
    assert ids[0] == "prepare" and ids[-1] == "aggregate"
    assert ids[1:10] == ["train:baseline_paper_s0", "train:baseline_equal_steps_s0",
                         "train:baseline_class_weighted_s0", "fit:smote_s0", "quality:smote_s0", "train:smote_s0",
                         "fit:mixup_s0", "quality:mixup_s0", "train:mixup_s0"]
    assert len(ids) == 2 + 2 * (3 + 2 * 3)
    by_id = {t.id: t for t in tasks}
    assert by_id["train:smote_s1"].needs == ("fit:smote_s1",) and by_id["fit:smote_s1"].needs == ("prepare",)
    # the quality of a method's images is read on the seed's classifier of the real images only
    assert by_id["quality:smote_s1"].needs == ("fit:smote_s1", "train:baseline_class_weighted_s1")
    assert set(by_id["aggregate"].needs) == {i for i in ids if i.startswith(("train:", "quality:"))}
    for t in tasks:                                  # the order respects every dependency
        assert all(ids.index(n) < ids.index(t.id) for n in t.needs)
    assert [[t.id for t in c] for c in chains(tasks)][:4] == [
        ["train:baseline_paper_s0"], ["train:baseline_equal_steps_s0"], ["train:baseline_class_weighted_s0"],
        ["train:baseline_paper_s1"]]
    assert [t.id for t in chains(tasks)[6]] == ["fit:smote_s0", "quality:smote_s0", "train:smote_s0"]
    gated = {t.id: t for t in plan(ExperimentConfig.from_dict({**cfg(tmp_path), "quality_gate": True,
                                                                "baselines": three}))}
    assert gated["train:smote+gate_s0"].needs == ("quality:smote_s0",) and gated["train:smote+gate_s0"].gated
    assert [t.id for t in plan(ExperimentConfig.from_dict({**cfg(tmp_path), "quality": False,
                                                           "baselines": three}))][4:6] == [
        "fit:smote_s0", "train:smote_s0"]


def test_a_task_whose_inputs_are_missing_names_the_task_to_run_first(tmp_path, make_dataset):
    data = make_dataset(tmp_path, {"normal": 30, "crack": 12}, size=16)
    with pytest.raises(RunError, match="the task train:smote_s0 needs fit:smote_s0, which has not run yet"):
        run(cfg(data), tmp_path / "r", tasks=["prepare", "train:smote_s0"])
    with pytest.raises(RunError, match="no task fit:dcgan_s0"):
        run(cfg(data), tmp_path / "r", tasks=["fit:dcgan_s0"])


_WORKER = """
import json, sys
from core.experiment import run
config, run_dir, tasks = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
run(config, run_dir, tasks=tasks)
"""


def test_the_plan_split_between_two_processes_gives_the_metrics_of_one(tmp_path, make_dataset):
    """Two processes at once on one run folder, each with half the chains. Without quality tasks every chain
    stands alone (a quality task reads another chain's baseline classifier: the pool runner's waves, below)."""
    data = make_dataset(tmp_path, {"normal": 30, "crack": 12, "spot": 9}, size=16)
    config = dict(cfg(data), quality=False)
    one = run(config, tmp_path / "one")

    shared = tmp_path / "two"
    run(config, shared, tasks=["prepare"])
    tasks = plan(ExperimentConfig.from_dict(config))
    groups = chains(tasks)
    halves = [[t.id for g in groups[0::2] for t in g], [t.id for g in groups[1::2] for t in g]]
    assert set(halves[0]) & set(halves[1]) == set() and len(halves[0]) + len(halves[1]) == len(tasks) - 2
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps(config), str(shared), ",".join(h)],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for h in halves]
    for p in procs:                                  # both at once, on the same run folder
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    two = run(config, shared, tasks=["aggregate"])

    assert two == json.loads(RunDir(shared).metrics_path.read_text())
    assert _without_timing(two) == _without_timing(one)
    assert two["methods"]["smote"]["verdict"] == one["methods"]["smote"]["verdict"]
    assert RunDir(shared).prediction_models() == RunDir(tmp_path / "one").prediction_models()
    results = [e["model"] for e in RunDir(shared).events() if e["kind"] == "result"]
    assert sorted(results) == sorted(t.model_id for t in tasks if t.kind == "train")   # each model once


def test_the_process_pool_runner_gives_the_metrics_of_one_process(tmp_path, make_dataset):
    from core.experiment import run_in_processes
    data = make_dataset(tmp_path, {"normal": 30, "crack": 12}, size=16)
    config = dict(cfg(data), methods=["random_oversample"], seeds=[0])
    one = run(config, tmp_path / "one")
    done = []
    pooled = run_in_processes(config, tmp_path / "pool", processes=2, threads=1, on_chain=done.append)
    assert _without_timing(pooled) == _without_timing(one)
    assert sorted(map(tuple, done)) == sorted(tuple(t.id for t in c) for c in chains(plan(
        ExperimentConfig.from_dict(config))))
    assert pooled["seconds_total"] >= max(r["seconds"] for r in pooled["baselines"].values())
