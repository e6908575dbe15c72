"""Reading run directories: progress from events, curves, gallery with provenance, predictions."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from core import runs
from core.errors import RunError
from core.events import Reporter
from core.sample_data import write_sample_dataset


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real run: sample data, smote, 2 seeds, one epoch (a few seconds on a CPU)."""
    from core.experiment import run
    base = tmp_path_factory.mktemp("runs")
    data = write_sample_dataset(base / "data", {"normal": 16, "scratch": 6, "crack": 6}, size=32, seed=0)
    run_dir = base / "run"
    run({"data": str(data), "methods": ["smote"], "seeds": [0, 1], "ratio": None, "image_size": 32,
         "test_per_class": 2, "overrides": {"classifier": {"epochs": 1}}, "num_threads": 1}, run_dir)
    return run_dir


def test_progress_of_a_running_job_with_eta(tmp_path):
    rep = Reporter(tmp_path)
    rep.stage("load", "loading")
    rep.emit("progress", stage="train", step=5, total=20, overall=0.25)
    p = runs.progress(tmp_path, now=time.time() + 30)
    assert p.stage == "train" and p.step == 5 and p.total == 20 and p.stage_fraction == 0.25
    assert p.fraction == 0.25 and not p.finished and not p.error
    assert p.elapsed >= 29.9 and p.remaining == pytest.approx(p.elapsed * 3, rel=1e-6)


def test_progress_tolerates_a_half_written_line_and_picks_it_up_later(tmp_path):
    rep = Reporter(tmp_path)
    rep.emit("progress", stage="a", step=1, total=4, overall=0.1)
    with open(tmp_path / "events.jsonl", "a") as fh:
        fh.write('{"t": 1, "kind": "progress", "stage": "a", "step": 2, "tot')
    assert runs.progress(tmp_path).step == 1
    with open(tmp_path / "events.jsonl", "a") as fh:
        fh.write('al": 4, "overall": 0.2}\n')
    p = runs.progress(tmp_path)
    assert p.step == 2 and p.fraction == 0.2


def test_progress_reports_the_error_and_stops_the_clock(tmp_path):
    rep = Reporter(tmp_path)
    rep.stage("fit", "fitting")
    rep.warn("class crack: only 2 images")
    rep.emit("error", message="out of memory")
    p = runs.progress(tmp_path, now=time.time() + 1000)
    assert p.error == "out of memory" and p.warnings == ["class crack: only 2 images"]
    assert p.elapsed < 5 and p.remaining is None
    assert runs.progress(tmp_path / "nothing").started is None


def test_loss_and_epoch_rows(tmp_path):
    rep = Reporter(tmp_path)
    for step in (1, 2):
        rep.emit("monitor", method="dcgan", **{"class": "crack"}, seed=0, step=step, total=2,
                 d_loss=1.0 / step, g_loss=2.0, diversity=0.3)
    rep.emit("epoch", model="smote_s0", epoch=1, epochs=2, loss=0.9, test_f1=0.4)
    rows = runs.loss_rows(tmp_path)
    assert {r["series"] for r in rows} == {"d_loss", "g_loss", "diversity"}
    assert [r["value"] for r in rows if r["series"] == "d_loss"] == [1.0, 0.5]
    assert {(r["series"], r["value"]) for r in runs.epoch_rows(tmp_path)} == {("loss", 0.9), ("test_f1", 0.4)}


def test_format_seconds():
    assert runs.format_seconds(None) == "-"
    assert runs.format_seconds(42) == "42 s"
    assert runs.format_seconds(185) == "3 min 05 s"
    assert runs.format_seconds(3720) == "1 h 02 min"


def test_finished_run_summary_and_listing(finished_run):
    s = runs.run_summary(finished_run)
    assert s["status"] == "done" and s["methods"] == ["smote"] and s["has_metrics"] and s["has_synthetic"]
    assert [r["id"] for r in runs.list_runs(finished_run.parent)] == ["run"]
    p = runs.progress(finished_run)
    assert p.finished and p.fraction == 1.0 and p.remaining is None
    assert "done" in runs.log_tail(finished_run) or runs.log_tail(finished_run)


def test_gallery_lists_images_with_their_real_parents(finished_run):
    assert runs.synthetic_methods(finished_run) == ["smote"]
    items = runs.gallery(finished_run, "smote", "crack")
    assert items and all(it.cls == "crack" and it.path.exists() for it in items)
    assert {it.seed for it in items} == {0, 1}
    assert len(runs.gallery(finished_run, "smote", "crack", seed=1)) < len(items)
    parents = items[0].parents
    assert len(parents) == 2 and all(p.startswith("crack/") for p in parents)
    found = runs.images_by_source(finished_run, parents)
    assert set(found) == set(parents) and found[parents[0]].dtype == np.uint8
    real, sources = runs.real_images(finished_run, "crack")
    assert len(real) == len(sources) > 0
    with pytest.raises(RunError, match="no synthetic images"):
        runs.gallery(finished_run, "dcgan")


def test_predictions_cells_and_confusion_agree_with_metrics(finished_run):
    metrics = runs.load_metrics(finished_run)
    classes = metrics["classes"]
    assert "baseline_paper_s0" in runs.prediction_models(finished_run)
    rows = runs.predictions(finished_run, runs.model_id("paper", 0))
    assert rows and set(rows[0]["probs"]) == set(classes)
    cm = runs.confusion_from_predictions(rows, classes)
    assert cm == runs.seed_confusion(metrics, "paper", 0)
    total = runs.seed_confusion(metrics, "smote", None)
    assert np.sum(total) == 2 * len(rows)             # summed over the two seeds: whole test images
    t, p = classes[0], classes[1]
    assert len(runs.cell(finished_run, "smote_s0", t, p)) == runs.seed_confusion(metrics, "smote", 0)[0][1]
    assert runs.model_id("baseline:class_weighted", 1) == "baseline_class_weighted_s1"
    with pytest.raises(RunError):
        runs.predictions(finished_run, "nothing_s0")


def test_leaderboard_rows_put_methods_first_and_verdicts_read_plainly(finished_run):
    metrics = runs.load_metrics(finished_run)
    rows = runs.leaderboard_rows(metrics)
    assert rows[0]["kind"] == "method" and rows[0]["name"] == "smote"
    assert {"macro F1", "± std", "95% CI", f"gain vs {metrics['strongest_baseline']}"} <= set(rows[0])
    assert all(r["kind"] == "baseline" for r in rows[1:])
    lines = runs.verdict_lines(metrics)
    assert lines and lines[0].startswith("smote: macro F1")


def test_run_status_from_job_file_or_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "job.json").write_text(json.dumps({"status": "cancelled"}))
    assert runs.run_status(tmp_path / "a") == "cancelled"
    Reporter(tmp_path / "b").emit("error", message="x")
    assert runs.run_status(tmp_path / "b") == "failed"
    (tmp_path / "c").mkdir()
    assert runs.run_status(tmp_path / "c") == "unknown"
