"""A run's numbers do not depend on the machine's load or on the runner (issue 37, item 14): the same settings
run from the command line, as a job of the worker on a machine at load 9, and spread over two processes give the
same metrics.json (timings aside) and bit-identical classifiers. The thread count of every training is fixed
(1 unless the config names another) and part of every result's key."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.experiment import ExperimentConfig, run_in_processes
from core.jobs import ensure_worker, wait_for
from core.rundir import RunDir
from tests.conftest import REPO, write_dataset
from tests.core.test_jobs import home, store  # noqa: F401  (fixtures)

TIMING = {"seconds", "seconds_total", "peak_rss_mb", "peak_memory_mb", "started", "seconds_per_step", "timing"}


def numbers(value):
    """metrics.json without what the clock and the memory of the machine decide."""
    if isinstance(value, dict):
        return {k: numbers(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [numbers(v) for v in value]
    return value


def differences(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ (the paths), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}/{i}")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def weights(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((Path(run_dir) / "classifiers").glob("*.safetensors"))}


def test_a_run_gives_the_same_numbers_under_load_and_on_every_runner(tmp_path, store, monkeypatch):  # noqa: F811
    data = write_dataset(store.workspace.uploads, {"normal": 24, "crack": 10, "spot": 10}, size=32, name="tiny")
    settings = {"data": str(data), "methods": ["smote"], "seeds": [0], "ratio": 0.4, "image_size": 32,
                "test_per_class": 3, "quality": False, "baselines": ["equal_steps"],
                "overrides": {"classifier": {"epochs": 3, "width": 8}}}
    # 1. the command line, on an idle machine, with torch's default thread count for it
    cli = subprocess.run([sys.executable, "-m", "core", "run", "--data", str(data), "--methods", "smote",
                          "--seeds", "0", "--ratio", "0.4", "--image-size", "32", "--test-per-class", "3",
                          "--no-quality", "--baselines", "equal_steps", "--set", "classifier.epochs=3",
                          "--set", "classifier.width=8",
                          "--device", "cpu", "--out", str(tmp_path / "cli")],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert cli.returncode == 0, cli.stderr
    # 2. a job of the worker (two cores for it) on a machine that reads as busy (load 9)
    monkeypatch.setenv("DEFECTAUG_PLUGINS", os.environ["DEFECTAUG_PLUGINS"] + ",tests.support.busy_machine")
    monkeypatch.setenv("DEFECTAUG_TEST_LOAD", "9")
    job_id = store.submit({**settings, "device": "cpu"})
    ensure_worker(store)
    job = wait_for(store, job_id, 600)
    assert job.status == "done", job.reason
    # 3. the pool runner: the plan's chains in two processes
    run_in_processes({**settings, "device": "cpu"}, tmp_path / "pool", processes=2)

    runs = {"cli": tmp_path / "cli", "job": Path(job.run_dir), "pool": tmp_path / "pool"}
    metrics = {name: numbers(json.loads((d / "metrics.json").read_text())) for name, d in runs.items()}
    assert not differences(metrics["job"], metrics["cli"]) and not differences(metrics["pool"], metrics["cli"]), (
        differences(metrics["job"], metrics["cli"])[:10], differences(metrics["pool"], metrics["cli"])[:10])
    assert weights(runs["job"]) == weights(runs["cli"]) == weights(runs["pool"]) and weights(runs["cli"])
    # the fixed thread count is what each run recorded and part of every result's key
    cfg = ExperimentConfig.from_dict(settings)
    for d in runs.values():
        assert RunDir(d).config()["num_threads"] == 1
        assert RunDir(d).result("smote", 0)["key"] == cfg.key("smote")
    assert cfg.key("smote") != ExperimentConfig.from_dict({**settings, "num_threads": 2}).key("smote")
