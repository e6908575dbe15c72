"""K-fold runs: every real image in exactly one fold's test part, no synthetic image in any test part, each
fold a run folder of its own, and the run's metrics pooled over the folds."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import fold_split
from core.errors import ParamError
from core.experiment import ExperimentConfig, plan, run
from core.imageset import ImageSet
from core.rundir import RunDir


def _toy(counts):
    labels = np.concatenate([np.full(n, i) for i, n in enumerate(counts.values())]).astype(np.int64)
    return ImageSet(np.zeros((len(labels), 8, 8, 1), np.uint8), labels, list(counts),
                    [f"{list(counts)[lab]}/{i}.png" for i, lab in enumerate(labels)])


@settings(max_examples=40, deadline=None)
@given(counts=st.dictionaries(st.sampled_from(["normal", "crack", "dent", "spot"]), st.integers(0, 30), min_size=2),
       folds=st.integers(2, 6), seed=st.integers(0, 99))
def test_folds_partition_every_image_into_exactly_one_test_part(counts, folds, seed):
    ds = _toy(counts)
    parts = fold_split(ds, folds, seed)
    tested = [s for _, test in parts for s in test.sources]
    assert sorted(tested) == sorted(ds.sources)                       # each image tested exactly once
    for pool, test in parts:
        assert not set(pool.sources) & set(test.sources) and len(pool) + len(test) == len(ds)
        for c in ds.classes:                                           # stratified: sizes differ by at most one
            sizes = [t.counts()[c] for _, t in parts]
            assert max(sizes) - min(sizes) <= 1
    assert [t.sources for _, t in fold_split(ds, folds, seed)] == [t.sources for _, t in parts]


def test_bad_fold_counts_are_refused():
    with pytest.raises(ParamError, match="folds must be a whole number"):
        fold_split(_toy({"a": 4, "b": 4}), 1)
    with pytest.raises(ParamError, match="folds must be a whole number from 1"):
        ExperimentConfig.from_dict({"data": "x", "folds": 0})
    with pytest.raises(ParamError, match="folds must be a whole number from 1"):
        ExperimentConfig.from_dict({"data": "x", "folds": 2.5})


def test_a_k_fold_run_tests_every_real_image_once_and_pools_the_folds(tmp_path, make_dataset):
    data = make_dataset(tmp_path, {"normal": 24, "crack": 9, "dent": 6}, size=16)
    config = dict(data=str(data), methods=["smote"], seeds=[0, 1], ratio=0.3, image_size=16, folds=3,
                  overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu", num_threads=1)
    ids = [t.id for t in plan(ExperimentConfig.from_dict(config))]
    assert ids[:2] == ["prepare:f0", "train:baseline_paper_f0_s0"] and "quality:smote_f2_s1" in ids
    m = run(config, tmp_path / "run")
    rd = RunDir(tmp_path / "run")
    folds = rd.folds()
    assert [f.root.name for f in folds] == ["f0", "f1", "f2"]
    tests = [f.load_split("test").sources for f in folds]
    everything = sorted(str(p.relative_to(data)) for p in data.rglob("*.png"))
    assert sorted(s for t in tests for s in t) == everything            # every real image tested once
    for f in folds:
        synth = f.load_synthetic("smote", 0)
        assert all(s.startswith("synthetic:") for s in synth.sources)
        assert not set(synth.sources) & set(f.load_split("test").sources)
        assert f.metrics()["fold"] in (0, 1, 2)                          # each fold's own metrics
    assert m["protocol"]["folds"] == 3 and sum(m["protocol"]["test_counts"].values()) == 39
    # pooled: each seed's confusion matrix counts every real image once
    assert np.sum(m["methods"]["smote"]["seeds"]["0"]["confusion_matrix"]) == 39
    assert len(rd.predictions("smote_s1")) == 39 and sorted(r["file"] for r in rd.predictions("smote_s1")) == everything
    v = m["methods"]["smote"]["verdict"]
    assert v["folds"] == 3 and v["replicates"] == 6 and "3 folds x 2 seeds" in v["text"]
    pooled = m["methods"]["smote"]["f1_macro"] - m["baselines"][m["strongest_baseline"]]["f1_macro"]
    assert v["gain"] == pytest.approx(pooled, abs=1e-3)                 # the gain is the quoted F1s' difference
    # defect of any class against normal, from every fold's predictions pooled, the mean over seeds
    from sklearn.metrics import roc_auc_score
    aucs = [roc_auc_score([r["true"] != "normal" for r in rows], [1 - r["probs"]["normal"] for r in rows])
            for rows in (rd.predictions(f"smote_s{s}") for s in (0, 1))]
    det = m["methods"]["smote"]["detection"]
    assert det["auroc"] == pytest.approx(np.mean(aucs), abs=1e-4) and det["defects"] + det["normals"] == 39
    assert "detection" in m["baselines"]["paper"]
    again = run(config, tmp_path / "run", resume=True)                   # resume: nothing trained again
    assert again["methods"]["smote"]["f1_macro"] == m["methods"]["smote"]["f1_macro"]
