"""The pipeline end to end on tiny generated class folders (16 px, one or two epochs)."""
import csv
import json

import numpy as np
import pytest

from core.errors import Cancelled, ParamError
from core.experiment import ExperimentConfig, estimate, plan, run
from core.rundir import RunDir

FAST = {"classifier": {"epochs": 1, "batch_size": 8, "width": 4}}


@pytest.fixture
def data(tmp_path, make_dataset):
    return make_dataset(tmp_path, {"normal": 30, "crack": 12, "spot": 9}, size=16)


def cfg(data, **kw):
    base = dict(data=str(data) if data is not None else None, methods=["smote", "random_oversample"], seeds=[0], ratio=0.2, image_size=16,
                test_per_class=4, overrides=FAST, device="cpu")
    base.update(kw)
    return base


def test_run_writes_the_run_directory_and_metrics(tmp_path, data):
    out = tmp_path / "run"
    m = run(cfg(data), out)
    for f in ("config.json", "events.jsonl", "log.txt", "metrics.json", "data_report.json", "split.json",
              "data/train.npz", "data/test.npz", "synthetic/smote/provenance_s0.csv", "synthetic/smote/s0.npz",
              "fits/smote_s0.json", "checkpoints/smote/seed0/meta.json"):
        assert (out / f).exists(), f
    # metrics.json is what the results say: each model's seed-0 block is its results file
    rd = RunDir(out)
    for model, block in [(f"baseline_{b}", m["baselines"][b]) for b in m["baselines"]] + list(m["methods"].items()):
        assert block["seeds"]["0"] == rd.result(model, 0)["metrics"], model
    # imbalance then balance: 26 normal train images, minorities cut to floor(0.2*26)=5, topped up to 26
    split = json.loads((out / "split.json").read_text())
    assert split["train_counts"] == {"crack": 5, "normal": 26, "spot": 5}
    assert split["test_counts"] == {"crack": 4, "normal": 4, "spot": 4}
    assert split["needed"] == {"crack": 21, "normal": 0, "spot": 21}
    assert not set(split["train"]) & set(split["test"]), "a test image leaked into training"
    assert set(m["baselines"]) == {"paper", "equal_steps", "class_weighted", "logit_adjusted", "drw", "linear"}
    for kind in m["baselines"]:
        b = m["baselines"][kind]
        for key in ("f1_macro", "precision_macro", "recall_macro", "accuracy", "per_class", "confusion_matrix",
                    "classes", "mean", "std", "f1_ci"):
            assert key in b
        assert np.asarray(b["confusion_matrix"]).sum() == 12
    assert m["baselines"]["equal_steps"]["seeds"]["0"]["steps"] == m["methods"]["smote"]["seeds"]["0"]["steps"]
    assert m["baselines"]["paper"]["seeds"]["0"]["steps"] < m["baselines"]["equal_steps"]["seeds"]["0"]["steps"]
    for name in ("smote", "random_oversample"):
        mm = m["methods"][name]
        assert set(mm["gain"]) == set(m["baselines"])
        assert mm["verdict"]["against"] == m["strongest_baseline"]
        assert mm["verdict"]["label"] in ("helps", "hurts", "no clear difference")
        assert mm["seeds"]["0"]["train_size"] == 78
    assert [r["f1_macro"] for r in m["leaderboard"]] == sorted((r["f1_macro"] for r in m["leaderboard"]), reverse=True)
    # synthetic images on disk, with provenance naming real training images
    with open(out / "synthetic/smote/provenance_s0.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 42
    train_sources = set(split["train"])
    assert all(set(r["parents"].split("|")) <= train_sources for r in rows)
    assert len(list((out / "synthetic/smote/crack").glob("*.png"))) == 21
    # predictions: every test image traced with a probability per class
    with open(out / "predictions/smote_s0.csv", encoding="utf-8") as fh:
        preds = list(csv.DictReader(fh))
    assert [p["file"] for p in preds] == split["test"]
    assert abs(sum(float(preds[0][f"p_{c}"]) for c in ("crack", "normal", "spot")) - 1) < 1e-3
    kinds = {e["kind"] for e in rd.events()}
    assert {"stage", "progress", "epoch", "done"} <= kinds
    assert rd.load_split("test").sources == split["test"]
    # the normal class is recorded where the run and the user read it
    assert split["normal_class"] == m["protocol"]["normal_class"] == rd.config()["normal_class"] == "normal"


def test_seeds_give_mean_std_and_paired_gains(tmp_path, data):
    m = run(cfg(data, methods=["mixup"], seeds=[0, 1]), tmp_path / "r")
    mm = m["methods"]["mixup"]
    assert set(mm["seeds"]) == {"0", "1"}
    f1s = [mm["seeds"][s]["f1_macro"] for s in ("0", "1")]
    assert mm["f1_macro"] == pytest.approx(np.mean(f1s))
    assert mm["std"]["f1_macro"] == pytest.approx(np.std(f1s, ddof=1))
    assert mm["gain"]["paper"]["n_seeds"] == 2


def test_same_config_same_results(tmp_path, data):
    a = run(cfg(data, methods=["smote"]), tmp_path / "a")
    b = run(cfg(data, methods=["smote"]), tmp_path / "b")
    assert a["methods"]["smote"]["f1_macro"] == b["methods"]["smote"]["f1_macro"]
    assert a["baselines"]["paper"]["confusion_matrix"] == b["baselines"]["paper"]["confusion_matrix"]


def test_a_failing_method_does_not_lose_the_others(tmp_path, data, monkeypatch):
    from core.methods import get_method
    spec = get_method("mixup")

    def broken(self, train, needed):
        raise RuntimeError("out of ideas")
    monkeypatch.setattr(spec.sampler_cls, "fit", broken)
    m = run(cfg(data, methods=["mixup", "smote"]), tmp_path / "r")
    assert "out of ideas" in m["failed"]["mixup"]
    assert "smote" in m["methods"] and "mixup" not in m["methods"]
    assert any("mixup failed" in w for w in m["warnings"])


def test_cancel_stops_and_keeps_what_was_written(tmp_path, data):
    out = tmp_path / "r"

    def cancel_after_first_model(ev):
        if ev["kind"] == "result":
            (out / "CANCEL").touch()
    with pytest.raises(Cancelled):
        run(cfg(data), out, callback=cancel_after_first_model)
    assert (out / "predictions/baseline_paper_s0.csv").exists()
    assert not (out / "metrics.json").exists()
    assert RunDir(out).events()[-1]["kind"] == "error"


def test_resume_goes_on_where_an_interrupted_run_stopped(tmp_path, data):
    out = tmp_path / "r"

    def cancel_after_smote(ev):
        if ev["kind"] == "result" and ev["model"] == "smote_s0":
            (out / "CANCEL").touch()
    with pytest.raises(Cancelled):
        run(cfg(data), out, callback=cancel_after_smote)
    (out / "CANCEL").unlink()
    assert sorted(p.name for p in (out / "results").iterdir()) == [
        "baseline_class_weighted_s0.json", "baseline_drw_s0.json", "baseline_equal_steps_s0.json",
        "baseline_linear_s0.json", "baseline_logit_adjusted_s0.json", "baseline_paper_s0.json", "smote_s0.json"]
    trained = []
    m = run(cfg(data), out, callback=lambda ev: ev["kind"] == "stage" and trained.append(ev["stage"]),
            resume=True)
    # only the model that was missing is fitted and trained again
    assert [s for s in trained if s.startswith(("train:", "fit:"))] == ["fit:random_oversample_s0",
                                                                         "train:random_oversample_s0"]
    fresh = run(cfg(data), tmp_path / "fresh")
    for name in ("smote", "random_oversample"):
        assert m["methods"][name]["f1_macro"] == fresh["methods"][name]["f1_macro"]
        assert m["methods"][name]["gain"] == fresh["methods"][name]["gain"]
    assert m["methods"]["smote"]["timing"]["fit_seconds"][0] is not None
    rows = list(csv.reader(open(out / "synthetic/smote/provenance_s0.csv", encoding="utf-8")))
    assert len(rows) - 1 == sum(1 for _ in (out / "synthetic/smote").rglob("*.png"))


def test_resume_retrains_what_other_settings_would_change(tmp_path, data):
    out = tmp_path / "r"
    run(cfg(data, methods=["smote"]), out)
    trained = []
    changed = {**FAST, "smote": {"k_neighbors": 2}}
    run(cfg(data, methods=["smote"], overrides=changed), out,
        callback=lambda ev: ev["kind"] == "stage" and trained.append(ev["stage"]), resume=True)
    # the baselines still match (same classifier and data); smote's parameters changed, so it is redone
    assert [s for s in trained if s.startswith(("train:", "fit:"))] == ["fit:smote_s0", "train:smote_s0"]
    trained.clear()
    run(cfg(data, methods=["smote"], overrides={"classifier": {**FAST["classifier"], "epochs": 2}}), out,
        callback=lambda ev: ev["kind"] == "stage" and trained.append(ev["stage"]), resume=True)
    assert len([s for s in trained if s.startswith("train:")]) == 7     # the six baselines and smote


@pytest.mark.parametrize("bad, message", [
    ({"ratio": 0}, "imbalance ratio must be in"),
    ({"ratio": 1.5}, "imbalance ratio must be in"),
    ({"target_ratio": 2}, "target ratio"),
    ({"image_size": 50}, "image size 50 is not supported"),
    ({"methods": ["nope"]}, "unknown method 'nope'"),
    ({"data": ""}, "no dataset given"),
    ({"data": None}, "no dataset given"),
    ({"normal_class": 3}, "normal_class must be a class name"),
    ({"seeds": []}, "distinct seeds"),
    ({"preset": "huge"}, "unknown preset"),
    ({"test_per_class": 0}, "test_per_class"),
    ({"overrides": {"smote": {"k_neighbors": 0}}}, "at least 1"),
    ({"overrides": {"smote": {"zzz": 1}}}, "has no parameter zzz"),
    ({"overrides": {"classifier": {"epochs": 0}}}, "classifier.epochs must be at least 1"),
    ({"overrides": {"adasyn": {}}}, "not among the chosen methods"),
    ({"baselines": ["magic"]}, "unknown baseline"),
    ({"colour": "red"}, "unknown setting"),
    ({"ratio": "abc"}, r"ratio must be a number in \(0, 1\], e.g. 0.1; got 'abc'"),
    ({"image_size": None}, "image_size must be a whole number of pixels, e.g. 64; got None"),
    ({"seeds": "a,b"}, "seeds must be whole numbers, e.g. 0,1,2; got 'a,b'"),
    ({"num_threads": 0}, "num_threads must be a whole number of CPU threads of at least 1"),
    ({"max_synthetic_mb": "lots"}, "max_synthetic_mb must be a number of megabytes"),
])
def test_config_errors_are_clear(data, bad, message):
    with pytest.raises(ParamError, match=message):
        ExperimentConfig.from_dict({**cfg(data), **bad})


def test_synthetic_memory_bound_is_checked_before_training(tmp_path, data):
    with pytest.raises(ParamError, match="MB"):
        run(cfg(data, max_synthetic_mb=0), tmp_path / "r")
    assert not (tmp_path / "r" / "predictions").exists()


def test_a_run_of_baselines_only_and_none_is_no_method(tmp_path, data):
    """'none' (the imbalanced set as it is) is the paper baseline every run trains, not a method: a
    config that still lists it gets the baselines, and the registry says what it is."""
    from core.methods import get_method
    m = run(cfg(data, methods=["none"]), tmp_path / "r")
    assert m["methods"] == {} and list(m["baselines"]) == ["paper", "equal_steps", "class_weighted", "logit_adjusted",
                                                           "drw", "linear"]
    assert [t.id for t in plan(ExperimentConfig.from_dict(cfg(data, methods=[])))][1:4] == [
        "train:baseline_paper_s0", "train:baseline_equal_steps_s0", "train:baseline_class_weighted_s0"]
    with pytest.raises(ParamError, match="not a method"):
        get_method("none")


def test_estimate_counts_trainings(data):
    e = estimate(cfg(data, seeds=[0, 1, 2]), counts={"normal": 26, "crack": 5, "spot": 5})
    assert e["trainings"] == 3 * (6 + 2)
    assert estimate(cfg(data, seeds=[0, 1, 2], baselines=["equal_steps", "linear"]),
                    counts={"normal": 26, "crack": 5, "spot": 5})["trainings"] == 3 * (2 + 2)
    assert e["synthetic_per_method"] == 42 and e["balanced_size"] == 78
    counts = {"normal": 260, "crack": 50, "spot": 50}
    from core.estimate import task_units       # how long a run takes is core.estimate's: its classifier work

    def train_units(overrides: dict) -> float:
        config = ExperimentConfig.from_dict(dict(cfg(data), overrides=overrides))
        return sum(u for _, key, u in task_units(config, counts) if key == "train")
    small, big = train_units({}), train_units({"classifier": {"arch": "resnet50"}})
    assert small > 0 and big == pytest.approx(130 * small, rel=0.01)   # resnet50's measured cost per step


def test_part_of_the_plan_reports_progress_of_the_whole_run_and_where_each_task_ran(tmp_path, data):
    """Another process (the pool, a Ray task) running the rest of a plan: its overall progress counts what the
    run folder already holds, and every task it starts is a `task` event naming the runner, host and device."""
    from core.views.runs import placements
    c = cfg(data, seeds=[0], baselines=["paper", "equal_steps", "class_weighted"])
    run(c, tmp_path / "r", tasks=["prepare", "train:baseline_paper_s0", "train:baseline_equal_steps_s0",
                                  "train:baseline_class_weighted_s0"])
    before = len(RunDir(tmp_path / "r").events())
    run(c, tmp_path / "r", tasks=["fit:smote_s0", "train:smote_s0"], where={"runner": "pool", "node": "n1"})
    later = RunDir(tmp_path / "r").events()[before:]
    overall = [e["overall"] for e in later if "overall" in e]
    assert overall and min(overall) >= 0.5          # three of the four trainings were done before it began
    rows = placements(tmp_path / "r")
    assert [r["task"] for r in rows][-2:] == ["fit:smote_s0", "train:smote_s0"]
    assert {(r["runner"], r["node"]) for r in rows[-2:]} == {("pool", "n1")}
    assert {r["runner"] for r in rows[:-2]} == {"local"} and all(r["device"].startswith("cpu") for r in rows)
