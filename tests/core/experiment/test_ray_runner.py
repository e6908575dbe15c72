"""The Ray runner (core/experiment/cluster.py) on a real local Ray instance: the same run folder, metrics and
events as the local runner, a cancelled job's tasks stop within seconds, a killed task runs again, and the
runner is chosen by configuration."""
from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from core.errors import Cancelled, DataError, ParamError
from core.experiment import run
from core.experiment.cluster import SYSTEM_CONFIG, run_on_ray, runner_settings, task_resources
from core.experiment.config import ExperimentConfig
from core.experiment.plan import plan
from core.jobs import ensure_worker, wait_for
from core.rundir import RunDir
from core.views.runs import placement_summary, placements
from tests.conftest import write_dataset
from tests.core.test_jobs import home, store, tiny_config  # noqa: F401  (fixtures)

ray = pytest.importorskip("ray")      # in requirements.txt: CI always runs these

TIMING = {"seconds", "seconds_total", "peak_rss_mb", "peak_memory_mb", "started", "finished", "t", "duration",
          "wall_seconds", "seconds_per_step", "ms_per_step", "load"}


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=SYSTEM_CONFIG)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def sweep(tmp_path: Path, epochs: int = 2, **extra) -> dict:
    root = write_dataset(tmp_path, {"normal": 30, "crack": 12, "spot": 12}, size=16)
    return {"data": str(root), "methods": ["smote", "random_oversample"], "seeds": [0, 1], "image_size": 16,
            "test_per_class": 4, "quality": False, "num_threads": 1,
            "overrides": {"classifier": {"epochs": epochs}}, **extra}


def shape(value, key: str = ""):
    """The structure of a JSON value: keys and types, timings left out."""
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__ if value is not None else None


def scores(metrics: dict) -> dict:
    return {row["name"]: (row["f1_macro"], row["recall_macro"], row.get("verdict")) for row in metrics["leaderboard"]}


def kinds(run_dir: Path) -> collections.Counter:
    return collections.Counter((e["kind"], e.get("model") or e.get("task") or e.get("stage"))
                               for e in RunDir(run_dir).events() if e["kind"] not in ("progress", "stage"))


def test_a_two_method_two_seed_sweep_on_ray_equals_the_local_run(cluster, tmp_path):
    cfg = sweep(tmp_path)
    local = run(cfg, tmp_path / "local")
    on_ray = run_on_ray(cfg, tmp_path / "ray", address=cluster)
    assert scores(on_ray) == scores(local)                                 # classic methods: the same numbers
    assert shape(on_ray) == shape(local)
    files = [sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
             for d in (tmp_path / "local", tmp_path / "ray")]
    assert files[0] == files[1] and "metrics.json" in files[0]
    assert kinds(tmp_path / "ray") == kinds(tmp_path / "local")           # every result, epoch, task, done
    where = placements(tmp_path / "ray")
    assert {p["task"] for p in where} == {t.id for t in plan(ExperimentConfig.from_dict(cfg))}
    assert {p["runner"] for p in where} == {"ray"} and all(p["device"].startswith("cpu") for p in where)
    assert {p["runner"] for p in placements(tmp_path / "local")} == {"local"}
    assert json.loads((tmp_path / "ray" / "metrics.json").read_text())["leaderboard"] == on_ray["leaderboard"]


def _wait_event(run_dir: Path, pred, timeout: float = 600) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        if run_dir.joinpath("events.jsonl").exists():
            for e in RunDir(run_dir).events():
                if pred(e):
                    return e
        time.sleep(0.05)
    raise AssertionError("the event never came")


def test_killing_the_process_of_a_task_runs_it_again_and_the_run_finishes(cluster, tmp_path):
    cfg = sweep(tmp_path, epochs=80, methods=["smote"], seeds=[0], baselines=["equal_steps"])
    out, result = tmp_path / "ray", {}
    worker = threading.Thread(target=lambda: result.update(m=run_on_ray(cfg, out, address=cluster)))
    worker.start()
    first = _wait_event(out, lambda e: e["kind"] == "task" and e["task"] == "train:smote_s0")
    _wait_event(out, lambda e: e["kind"] == "epoch" and e.get("model") == "smote_s0")   # it is mid-training
    os.kill(first["pid"], signal.SIGKILL)
    worker.join(300)
    assert not worker.is_alive() and "m" in result
    runs = [p for p in placements(out) if p["task"] == "train:smote_s0"]
    assert len(runs) == 2 and runs[0]["pid"] != runs[1]["pid"]             # ran again, in another process
    assert "1 ran again after its process or node was lost" in placement_summary(placements(out))
    assert {r["name"] for r in result["m"]["leaderboard"]} >= {"smote", "baseline:equal_steps"}
    assert RunDir(out).result("smote", 0)["metrics"]["f1_macro"] >= 0


def test_a_cancelled_ray_job_ends_cancelled_and_stops_its_tasks(cluster, store, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DEFECTAUG_RUNNER", "ray")
    monkeypatch.setenv("DEFECTAUG_RAY_ADDRESS", cluster)
    job_id = store.submit(tiny_config(store.workspace, epochs=400, baselines=["equal_steps", "class_weighted"],
                                      quality=False))
    ensure_worker(store)
    job = wait_for(store, job_id, statuses=("running",))
    run_dir = Path(job.run_dir)
    _wait_event(run_dir, lambda e: e["kind"] == "epoch")                   # tasks are training on the cluster
    store.cancel(job_id)
    job = wait_for(store, job_id)
    assert job.status == "cancelled", (job.status, job.reason)      # never "internal error (SystemExit: 1)"
    assert "kept" in job.reason
    time.sleep(1.0)
    size = run_dir.joinpath("events.jsonl").stat().st_size
    time.sleep(3.0)
    assert run_dir.joinpath("events.jsonl").stat().st_size == size         # no task of it still writes
    assert not RunDir(run_dir).has_metrics()
    assert {p["runner"] for p in placements(run_dir)} == {"ray"}


def test_a_job_on_ray_finishes_through_the_worker_and_says_where_each_task_ran(cluster, store, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DEFECTAUG_RUNNER", "ray")
    monkeypatch.setenv("DEFECTAUG_RAY_ADDRESS", cluster)
    job_id = store.submit(tiny_config(store.workspace, baselines=["equal_steps"]))
    ensure_worker(store)
    job = wait_for(store, job_id)
    assert job.status == "done", job.reason
    where = placements(job.run_dir)
    assert {p["task"] for p in where} >= {"prepare", "fit:smote_s0", "train:smote_s0", "aggregate"}
    assert all(p["runner"] == "ray" and p["node"] and p["host"] for p in where)


def test_the_runner_comes_from_the_configuration(monkeypatch):
    monkeypatch.delenv("DEFECTAUG_RUNNER", raising=False)
    assert runner_settings() == ("local", "auto")
    monkeypatch.setenv("DEFECTAUG_RUNNER", "Ray")
    monkeypatch.setenv("DEFECTAUG_RAY_ADDRESS", "ray://head:10001")
    assert runner_settings() == ("ray", "ray://head:10001")
    monkeypatch.setenv("DEFECTAUG_RUNNER", "slurm")
    with pytest.raises(ParamError, match="DEFECTAUG_RUNNER must be one of local, ray"):
        runner_settings()


def test_generative_fits_ask_for_a_gpu_when_the_cluster_has_one(tmp_path):
    cfg = ExperimentConfig.from_dict({**sweep(tmp_path), "methods": ["smote", "dcgan", "ddpm_cfg"]})
    tasks = {t.id: t for t in plan(cfg)}
    with_gpus = {i: task_resources(t, cfg, 4, 2) for i, t in tasks.items()}
    assert with_gpus["fit:dcgan_s0"] == with_gpus["fit:ddpm_cfg_s1"] == {"num_cpus": 2, "num_gpus": 1}
    assert with_gpus["fit:smote_s0"]["num_gpus"] == 0 and with_gpus["prepare"]["num_gpus"] == 0
    assert 0 < with_gpus["train:dcgan_s0"]["num_gpus"] < 1                # a classifier shares a GPU
    assert all(task_resources(t, cfg, 0, 1) == {"num_cpus": 1, "num_gpus": 0} for t in tasks.values())
    on_cpu = ExperimentConfig.from_dict({**sweep(tmp_path), "methods": ["dcgan"], "device": "cpu"})
    assert all(task_resources(t, on_cpu, 4, 1)["num_gpus"] == 0 for t in plan(on_cpu))


def test_a_job_pointed_at_no_cluster_fails_soon_saying_what_to_do(store, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DEFECTAUG_RUNNER", "ray")
    monkeypatch.setenv("DEFECTAUG_RAY_ADDRESS", "127.0.0.1:1")
    job_id = store.submit(tiny_config(store.workspace))
    ensure_worker(store)
    job = wait_for(store, job_id)
    assert job.status == "failed" and "could not reach the Ray cluster at '127.0.0.1:1'" in job.reason
    assert "ray start --head" in job.reason


def test_a_task_that_raises_fails_the_ray_run_as_the_local_run_fails(cluster, tmp_path):
    cfg = dict(sweep(tmp_path), data=str(tmp_path / "moved_away"))
    with pytest.raises(DataError) as local:
        run(cfg, tmp_path / "local")
    with pytest.raises(DataError) as on_ray:
        run_on_ray(cfg, tmp_path / "ray", address=cluster)
    assert str(on_ray.value) == str(local.value) and "dataset not found" in str(local.value)
    errors = [[e["message"] for e in RunDir(tmp_path / d).events() if e["kind"] == "error"] for d in ("local", "ray")]
    assert errors[0] == errors[1] == [str(local.value)]


def test_cancel_before_any_task_ran_raises_cancelled(cluster, tmp_path):
    cfg = sweep(tmp_path)
    RunDir(tmp_path / "ray").request_cancel()
    with pytest.raises(Cancelled):
        run_on_ray(cfg, tmp_path / "ray", address=cluster)
    assert not RunDir(tmp_path / "ray").has_metrics()
