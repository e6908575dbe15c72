"""Reading run directories: progress from events, curves, gallery with provenance, predictions."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import RunError
from core.events import Reporter
from core.rundir import RunDir
from core.views import runs


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
    assert s["status"] == "done" and s["methods"] == ["smote", "mixup"] and s["has_metrics"] and s["has_synthetic"]
    assert [r["id"] for r in runs.list_runs(finished_run.parent)] == ["run"]
    p = runs.progress(finished_run)
    assert p.finished and p.fraction == 1.0 and p.remaining is None
    assert "done" in RunDir(finished_run).log_tail() or RunDir(finished_run).log_tail()


def test_gallery_lists_images_with_their_real_parents(finished_run):
    assert RunDir(finished_run).synthetic_methods() == ["mixup", "smote"]
    items = RunDir(finished_run).gallery("smote", "crack")
    assert items and all(it.cls == "crack" and it.path.exists() for it in items)
    assert {it.seed for it in items} == {0, 1}
    assert len(RunDir(finished_run).gallery("smote", "crack", seed=1)) < len(items)
    parents = items[0].parents
    assert len(parents) == 2 and all(p.startswith("crack/") for p in parents)
    found = RunDir(finished_run).images_by_source(parents)
    assert set(found) == set(parents) and found[parents[0]].dtype == np.uint8
    real, sources = runs.real_images(finished_run, "crack")
    assert len(real) == len(sources) > 0
    with pytest.raises(RunError, match="no synthetic images"):
        RunDir(finished_run).gallery("dcgan")


def test_predictions_cells_and_confusion_agree_with_metrics(finished_run):
    metrics = RunDir(finished_run).metrics()
    classes = metrics["classes"]
    assert "baseline_paper_s0" in RunDir(finished_run).prediction_models()
    rows = RunDir(finished_run).predictions(runs.model_id("paper", 0))
    assert rows and set(rows[0]["probs"]) == set(classes)
    cm = runs.confusion_from_predictions(rows, classes)
    assert cm == runs.seed_confusion(metrics, "paper", 0)
    total = runs.seed_confusion(metrics, "smote", None)
    assert np.sum(total) == 2 * len(rows)             # summed over the two seeds: whole test images
    t, p = classes[0], classes[1]
    assert len(runs.cell(finished_run, "smote_s0", t, p)) == runs.seed_confusion(metrics, "smote", 0)[0][1]
    assert runs.model_id("baseline:class_weighted", 1) == "baseline_class_weighted_s1"
    with pytest.raises(RunError):
        RunDir(finished_run).predictions("nothing_s0")


def test_leaderboard_rows_put_methods_first_and_verdicts_read_plainly(finished_run):
    metrics = RunDir(finished_run).metrics()
    rows = runs.leaderboard_rows(metrics)
    strongest = metrics["strongest_baseline"]
    assert [r["kind"] for r in rows] == ["method"] * 2 + ["baseline"] * len(metrics["baselines"])
    gains = [metrics["methods"][r["name"]]["gain"][strongest]["mean"] for r in rows[:2]]
    assert gains == sorted(gains, reverse=True)                     # the fairest gain first
    assert {"macro F1", "± std", "95% CI", f"gain vs {strongest}"} <= set(rows[0])
    # what a user reads: 3 decimals everywhere, the spread over the two seeds, no "None" in a baseline's gains
    for r in rows:
        assert all(len(r[k].split(".")[1]) == 3 for k in ("macro F1", "precision", "recall", "accuracy"))
        assert r["± std"].startswith("± ") and r["95% CI"].count(" to ") == 1
        assert "None" not in map(str, r.values())
    assert all(r[f"gain vs {b}"] == "" for r in rows[2:] for b in metrics["baselines"])
    assert rows[0][f"gain vs {strongest}"] == f"{gains[0]:+.3f}"
    lines = runs.verdict_lines(metrics)
    assert lines and lines[0].startswith("smote: macro F1")


def test_detection_rows_read_each_model_as_a_defect_detector(finished_run):
    metrics = RunDir(finished_run).metrics()
    rows = runs.detection_rows(metrics)
    assert {r["name"] for r in rows} == set(metrics["methods"]) | {f"baseline:{b}" for b in metrics["baselines"]}
    aucs = [float(r["AUROC"]) for r in rows]
    assert aucs == sorted(aucs, reverse=True) and all(0 <= a <= 1 for a in aucs)
    smote = next(r for r in rows if r["name"] == "smote")
    d = metrics["methods"]["smote"]["detection"]
    assert smote["AUROC"] == f"{d['auroc']:.3f}" and smote["false alarms"] == f"{d['false_alarm_rate']:.3f}"
    assert "recall at 10% false alarms" in smote and "10% of the normal images" in runs.detection_help()
    # defect images caught at the classifier's own decision: what its pooled confusion matrices say
    cm = np.array(runs.seed_confusion(metrics, "smote", None))
    k = metrics["classes"].index("normal")
    defects = np.delete(cm, k, axis=0)
    assert d["flagged"] == pytest.approx(1 - defects[:, k].sum() / defects.sum())
    assert runs.detection_rows({"methods": {"smote": {}}, "baselines": {}}) == []      # a run before detection


def test_leaderboard_rows_of_one_seed_say_so():
    one = {"strongest_baseline": "paper", "protocol": {"seeds": [0]}, "baselines": {"paper": {}},
           "leaderboard": [{"name": "smote", "kind": "method", "f1_macro": 0.51234, "f1_std": 0.0,
                            "f1_ci": [0.4, 0.6], "precision_macro": 0.5, "recall_macro": 0.5, "accuracy": 0.5,
                            "gain": {"paper": 0.01}, "verdict": "no clear difference"}]}
    row = runs.leaderboard_rows(one)[0]
    assert row["± std"] == "1 seed" and row["macro F1"] == "0.512" and row["gain vs paper"] == "+0.010"


def test_run_status_from_job_file_or_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "job.json").write_text(json.dumps({"status": "cancelled"}))
    assert runs.run_status(tmp_path / "a") == "cancelled"
    Reporter(tmp_path / "b").emit("error", message="x")
    assert runs.run_status(tmp_path / "b") == "failed"
    (tmp_path / "c").mkdir()
    assert runs.run_status(tmp_path / "c") == "unknown"


def _copy(run_dir: Path, dest: Path) -> Path:
    import shutil
    return Path(shutil.copytree(run_dir, dest))


def test_read_metrics_of_a_finished_run_and_its_summary(finished_run):
    assert RunDir(finished_run).metrics_problem() is None
    assert RunDir(finished_run).read_metrics() == RunDir(finished_run).metrics()
    s = runs.run_summary(finished_run)
    assert s["results_problem"] is None and "unreadable" not in runs.run_label(s)


@pytest.mark.parametrize("content, why", [
    (None, "metrics.json is missing"),
    (b"", "metrics.json is empty"),
    (b"\xff\xfe\x00garbage", "metrics.json is not text"),
    ("cut", "metrics.json is not valid JSON at line"),
    ("[1, 2]", "metrics.json does not hold an object"),
    ({"classes": []}, "metrics.json has no list of classes"),
    ({"baselines": {}}, "metrics.json has no baseline results"),
    ({"methods": None}, "metrics.json has no 'methods' results"),
    ({"strongest_baseline": "nope"}, "names 'nope' as the strongest baseline"),
    ({"leaderboard": [{"name": "smote"}]}, "a leaderboard row lacks its name, kind or scores"),
    ("matrix", "the confusion matrix is not a 3x3 matrix of counts"),
])
def test_unreadable_metrics_say_why_and_to_rerun(finished_run, tmp_path, content, why):
    run_dir = _copy(finished_run, tmp_path / "run")
    path = run_dir / "metrics.json"
    good = json.loads(path.read_text())
    if content is None:
        path.unlink()
    elif content == "cut":
        path.write_text(path.read_text()[:200])            # a write cut short
    elif content == "matrix":
        good["baselines"]["paper"]["seeds"]["0"]["confusion_matrix"] = [[1, 2], [3, 4]]
        path.write_text(json.dumps(good))
    elif isinstance(content, dict):
        path.write_text(json.dumps({**good, **content}))
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert why in RunDir(run_dir).metrics_problem()
    with pytest.raises(RunError) as err:
        RunDir(run_dir).read_metrics()
    assert str(err.value).startswith("This run's results are unreadable (") and why in str(err.value)
    assert str(err.value).endswith("; re-run it from the Jobs page.")
    if content is not None:
        s = runs.run_summary(run_dir)
        assert s["has_metrics"] and why in s["results_problem"]
        assert "done (results unreadable)" in runs.run_label(s)


def test_metrics_problem_follows_the_file_when_it_is_rewritten(finished_run, tmp_path):
    run_dir = _copy(finished_run, tmp_path / "run")
    good = (run_dir / "metrics.json").read_text()
    (run_dir / "metrics.json").write_text("{")
    assert RunDir(run_dir).metrics_problem()
    (run_dir / "metrics.json").write_text(good)           # a re-written, whole file is readable again
    assert RunDir(run_dir).metrics_problem() is None


@pytest.mark.parametrize("content, why", [
    (None, "synthetic/smote has no provenance file"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\n", "is not text"),
    ("hello,world\n1,2\n", "lacks the columns file, class, seed"),
    ("file,class,seed,parents\ncrack/s0_00000.png,crack\n", "has 2 fields instead of 4 at line 2"),
    ("file,class,seed,parents\n../../../../etc/passwd,crack,0,\n", "names an image outside its folder at line 2"),
    ("file,class,seed,parents\n/etc/passwd,crack,0,\n", "names an image outside its folder"),
    ("file,class,seed,parents\ncrack/s0_00000.png,crack,zero,\n", "has the seed 'zero' (not a number) at line 2"),
    ("file,class,seed,parents\ncrack/s0_00000.png,,0,\n", "has no class at line 2"),
    ("", "is empty although the folder holds images"),
])
def test_gallery_with_a_corrupt_provenance_says_so(finished_run, tmp_path, content, why):
    run_dir = _copy(finished_run, tmp_path / "run")
    prov = run_dir / "synthetic" / "smote" / "provenance_s0.csv"
    if content is None:
        for p in prov.parent.glob("provenance*.csv"):
            p.unlink()
    else:
        prov.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RunError) as err:
        RunDir(run_dir).gallery("smote")
    msg = str(err.value)
    where = "synthetic/smote has" if content is None else "synthetic/smote/provenance_s0.csv "
    assert msg.startswith(f"This run's synthetic images of smote are unreadable ({where}")
    assert why in msg and msg.endswith("; re-run it from the Jobs page.")


def test_gallery_of_a_run_still_writing_its_provenance(finished_run, tmp_path):
    run_dir = _copy(finished_run, tmp_path / "run")
    (run_dir / "synthetic" / "smote" / "provenance_s1.csv").unlink()   # seed 1 not written yet
    prov = run_dir / "synthetic" / "smote" / "provenance_s0.csv"
    text = prov.read_text()
    whole = RunDir(run_dir).gallery("smote")
    prov.write_text(text + "crack/s0_9")                  # half a row not flushed yet: waits for the next read
    assert [it.file for it in RunDir(run_dir).gallery("smote")] == [it.file for it in whole]
    lines = text.splitlines(keepends=True)
    prov.write_text("".join(lines[:3]) + lines[3][:5])
    assert len(RunDir(run_dir).gallery("smote")) == 2
    (run_dir / "job.json").write_text(json.dumps({"status": "running"}))
    prov.write_text("")                                   # opened, no row flushed yet
    assert RunDir(run_dir).gallery("smote") == []


def test_quality_rows_show_counts_as_counts_and_seed_means_with_one_decimal():
    from core.views.runs import quality_rows
    block = {"fd_cls": 12.3456, "precision": 0.5, "ssim_synthetic": float("nan")}
    metrics = {"methods": {
        "smote": {"quality": {"per_class": {"crack": dict(block)}, "overall": dict(block, gate_dropped=5 / 3),
                              "gate": {"dropped": {"crack": 2.0}}, "cas": {"f1_macro": 0.61234}}},
        "smote+gate": {"gated_from": "smote", "quality": {"per_class": {}, "overall": {}}},
        "mixup": {"verdict": {"label": "helps"}}}}
    rows = quality_rows(metrics)
    assert [(r["method"], r["class"]) for r in rows] == [("smote", "crack"), ("smote", "all")]   # gated and
    crack, overall = rows                                                                         # unmeasured left out
    assert crack["gate dropped"] == "2" and overall["gate dropped"] == "1.7"
    assert overall["train-on-synthetic F1"] == "0.612" and crack["train-on-synthetic F1"] == ""
    assert "12.346" in crack.values() and "" in crack.values()          # 3 decimals; NaN shown empty


def test_a_real_run_writes_its_estimate_and_pace_and_its_progress_only_rises(finished_run):
    evs = RunDir(finished_run).events()
    est = next(e for e in evs if e["kind"] == "estimate")
    assert "fit:smote_s0" in est["tasks"] and est["seconds"] > 0 and est["low"] <= est["seconds"] <= est["high"]
    paced = {e["task"] for e in evs if e["kind"] == "pace"}
    assert "train:smote_s1" in paced and evs[-1]["kind"] == "done"     # done stays last: the calibration reads it
    # replayed event by event as the Jobs page saw it: the fraction never goes back, the time left is known
    from core.views.progress import follow
    start = evs.index(est)
    seen = [follow(evs[:i + 1], e["t"]) for i, e in enumerate(evs) if i >= start and e["kind"] != "done"]
    fractions = [f.fraction for f in seen]
    assert fractions == sorted(fractions) and 0 <= fractions[0] < fractions[-1] <= 1
    assert all(f.remaining >= 0 for f in seen)


def test_provenance_rows_sort_and_filter_by_distance_confidence_and_gate(finished_run):
    items = RunDir(finished_run).gallery("smote", "crack")
    rows = runs.provenance_rows(finished_run, "smote", items)
    assert len(rows) == len(items) and all(r["made"].startswith("from ") and r["parents"] for r in rows)
    assert all(r["nearest real"].startswith("crack/") and r["gate"] in ("keeps", "drops") for r in rows)
    assert all(v is not None for r in rows for v in r.values())          # nothing shows as "None"
    close = runs.sort_and_filter(rows, "nearest real: closest first")
    assert [r["distance"] for r in close] == sorted(r["distance"] for r in rows)
    low = runs.sort_and_filter(rows, "classifier confidence: lowest first")
    assert [r["confidence"] for r in low] == sorted(r["confidence"] for r in rows)
    kept = runs.sort_and_filter(rows, show="kept by the gate")
    dropped = runs.sort_and_filter(rows, show="dropped by the gate")
    assert len(kept) + len(dropped) == len(rows) and all(r["gate"] == "keeps" for r in kept)
    assert all(r["near-copy"] for r in runs.sort_and_filter(rows, show="near-copies only"))
    sure = runs.sort_and_filter(rows, min_confidence=0.5)
    assert all(r["confidence"] >= 0.5 for r in sure)


@pytest.mark.parametrize("spec, said, not_said", [
    ("auto", ["cluster bootstrap", "regex: or csv:"], ["drew single images"]),
    ("regex:part(\\d+)", ["cluster bootstrap"], ["regex: or csv:", "drew single images"]),
    ("none", ["drew single images", "run with groups auto"], ["cluster bootstrap", "regex: or csv:"]),
])
def test_leakage_text_says_what_each_grouping_can_and_cannot_see(spec, said, not_said):
    leaking = 30 if spec == "none" else 0
    metrics = {"leakage": {"test_images": 100, "leaking": leaking, "share": leaking / 100, "groups": spec},
               "grouping": {"spec": spec, "images": 100, "groups": 40}}
    text = runs.leakage_text(metrics)
    assert text.startswith(f"Leakage: {leaking} of 100 test images")
    assert all(s in text for s in said) and not any(s in text for s in not_said), text
    assert runs.leakage_text({}) == ""
