import numpy as np
import pytest
from sklearn.metrics import f1_score

from core.metrics.classification import (_fast_macro_f1, aggregate, bootstrap_f1_ci, classification_metrics, macro_f1,
                          paired_bootstrap_gain, seed_gain)


def test_fast_macro_f1_matches_sklearn_including_absent_classes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.integers(0, 5, 40)
        p = rng.integers(0, 5, 40)
        p[p == 4] = 3            # a class never predicted
        ref = f1_score(y, p, labels=list(range(6)), average="macro", zero_division=0)
        assert _fast_macro_f1(y[None], p[None], 6)[0] == pytest.approx(ref)


def test_classification_metrics_fields_and_confusion_orientation():
    classes = ["normal", "crack"]
    m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], classes)
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]           # rows are the true class
    assert m["accuracy"] == 0.75
    assert m["per_class"]["normal"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["recall_macro"] == pytest.approx(0.75)
    assert m["classes"] == classes


def test_bootstrap_interval_contains_point_and_shrinks_with_perfect_predictions():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    noisy = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    lo, hi = bootstrap_f1_ci(y, noisy, 3)
    assert lo < macro_f1(y, noisy, 3) < hi
    assert bootstrap_f1_ci(y, y, 3) == [1.0, 1.0]


def test_paired_gain_sign_and_interval():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 150)
    bad = np.where(rng.random(150) < 0.4, y, (y + 1) % 3)
    good = np.where(rng.random(150) < 0.9, y, (y + 1) % 3)
    g = paired_bootstrap_gain(y, [bad], [good], 3)
    assert g["gain"] > 0.3 and g["ci"][0] > 0
    same = paired_bootstrap_gain(y, [bad], [bad], 3)
    assert same["gain"] == 0 and same["ci"] == [0.0, 0.0]


def test_seed_gain_counts_and_spread():
    g = seed_gain([0.5, 0.6, 0.7], [0.6, 0.6, 0.9])
    assert g["mean"] == pytest.approx(0.1)
    assert g["positive_seeds"] == 2 and g["n_seeds"] == 3
    assert g["std"] == pytest.approx(np.std([0.1, 0.0, 0.2], ddof=1))
    assert seed_gain([0.5], [0.4])["std"] == 0.0


def test_aggregate_mean_std_and_summed_confusion():
    classes = ["a", "b"]
    r0 = classification_metrics([0, 1, 1], [0, 1, 0], classes)
    r1 = classification_metrics([0, 1, 1], [0, 1, 1], classes)
    agg = aggregate({0: r0, 1: r1}, classes)
    assert agg["f1_macro"] == pytest.approx((r0["f1_macro"] + r1["f1_macro"]) / 2)
    assert agg["std"]["f1_macro"] == pytest.approx(np.std([r0["f1_macro"], r1["f1_macro"]], ddof=1))
    assert agg["confusion_matrix"] == [[2, 0], [1, 3]]
    assert set(agg["seeds"]) == {"0", "1"}


def test_detection_is_defect_of_any_class_against_normal():
    from sklearn.metrics import roc_auc_score

    from core.metrics import detection
    normal = 1
    y = np.array([1, 1, 1, 1, 1, 0, 0, 2, 2, 2])          # 5 normal, 5 defects of two classes
    p_normal = np.array([.9, .8, .7, .6, .2, .65, .1, .3, .05, .75])
    pred = np.array([1, 1, 1, 1, 0, 2, 0, 0, 2, 1])       # a dent called crack still counts as caught
    d = detection(y, [p_normal], [pred], normal)
    assert d["auroc"] == pytest.approx(roc_auc_score(y != normal, 1 - p_normal))
    assert d["flagged"] == pytest.approx(4 / 5) and d["false_alarm_rate"] == pytest.approx(1 / 5)
    assert (d["defects"], d["normals"]) == (5, 5)
    perfect = detection(y, [np.where(y == normal, 0.9, 0.1)], [y], normal)
    assert perfect["auroc"] == 1.0 and perfect["recall_at_false_alarms"] == 1.0 and perfect["false_alarm_rate"] == 0
    two = detection(y, [p_normal, np.where(y == normal, 0.9, 0.1)], [pred, y], normal)   # seeds: the mean
    assert two["auroc"] == pytest.approx((d["auroc"] + 1) / 2) and len(two["auroc_seeds"]) == 2
    assert detection(np.array([0, 2, 2]), [np.array([.1, .2, .3])], [np.array([0, 2, 2])], normal) is None
