"""The gain interval (a bootstrap over test images plus a Student-t term for the seeds' spread) and Holm's
correction."""
from __future__ import annotations

import numpy as np
import pytest

from core.metrics.intervals import holm, paired_gain


def _replicates(n=120, k=3, folds=1, seeds=3, flip=0.0, seed=0):
    """Test labels per fold, baseline predictions right 70% of the time, and a method that also fixes a share
    `flip` of the baseline's mistakes (a planted gain)."""
    rng = np.random.default_rng(seed)
    ys, base, meth = [], [], []
    for f in range(folds):
        y = rng.integers(0, k, n)
        ys.append(y)
        bf, mf = [], []
        for s in range(seeds):
            b = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
            fix = (b != y) & (rng.random(n) < flip)
            bf.append(b)
            mf.append(np.where(fix, y, b))
        base.append(bf)
        meth.append(mf)
    return ys, base, meth


def test_a_method_identical_to_the_baseline_gains_exactly_nothing():
    ys, base, _ = _replicates()
    g, draws = paired_gain(ys, base, base, 3)
    assert g.gain == 0.0 and g.ci == (0.0, 0.0) and g.p == 1.0 and (draws == 0).all()


def test_a_planted_gain_is_inside_its_interval_and_told_from_zero():
    ys, base, meth = _replicates(n=300, folds=3, seeds=3, flip=0.5)
    g, _ = paired_gain(ys, base, meth, 3)
    from sklearn.metrics import f1_score
    y = np.concatenate(ys)           # each seed scored over the test images of every fold together
    truth = np.mean([f1_score(y, np.concatenate([m[s] for m in meth]), average="macro")
                     - f1_score(y, np.concatenate([b[s] for b in base]), average="macro") for s in range(3)])
    assert g.gain == pytest.approx(truth, abs=1e-9) and g.ci[0] < truth < g.ci[1]
    assert g.ci[0] > 0 and g.p < 0.01 and g.replicates == 9
    assert 0 < g.half_width < g.gain


def test_the_interval_covers_the_true_gain_in_most_repetitions():
    """Coverage: over 40 independent constructed runs with the same planted effect, the 90% interval holds
    the expected gain in about 90% of them (a bootstrap is approximate: at least 75% here)."""
    big_ys, big_b, big_m = _replicates(n=20000, seeds=1, flip=0.3, seed=99)
    expected, _ = paired_gain(big_ys, big_b, big_m, 3, n_boot=10)
    hits = 0
    for r in range(40):
        ys, base, meth = _replicates(n=150, seeds=3, flip=0.3, seed=r)
        g, _ = paired_gain(ys, base, meth, 3, level=0.90, n_boot=400, seed=r)
        hits += g.ci[0] <= expected.gain <= g.ci[1]
    assert hits >= 30, hits


def test_recall_of_one_class_has_its_own_interval():
    ys, base, _ = _replicates(n=200, seeds=2)
    better = [[np.where(ys[0] == 1, 1, b) for b in base[0]]]        # class 1 always found
    g, _ = paired_gain(ys, base, better, 3, score="recall", cls=1)
    assert g.gain > 0.2 and g.ci[0] > 0
    other, _ = paired_gain(ys, base, better, 3, score="recall", cls=0)
    assert other.gain <= 0


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.010 <= 0.05/4 = 0.0125 rejected; 0.015 <= 0.05/3 = 0.0167 rejected; 0.030 > 0.05/2 = 0.025:
    # stop, so 0.030 and 0.040 (held to 0.05/1) are not rejected
    rejected, levels = holm([0.030, 0.010, 0.040, 0.015])
    assert rejected == [False, True, False, True]
    assert levels == pytest.approx([0.025, 0.0125, 0.05, 0.05 / 3])
    assert holm([0.001, 0.2, 0.003])[0] == [True, False, True]
    assert holm([0.04])[0] == [True] and holm([0.06])[0] == [False]
    assert holm([0.02, 0.02])[0] == [True, True]        # 0.02 <= 0.025, then 0.02 <= 0.05


def test_judge_calls_a_copy_of_the_baseline_no_clear_difference_and_a_clear_gain_helps():
    from core.metrics import aggregate, classification_metrics, judge
    ys, base, meth = _replicates(n=400, seeds=3, flip=0.6)
    classes = ["normal", "crack", "dent"]

    def summary(preds):
        return aggregate({s: classification_metrics(ys[0], p, classes) for s, p in enumerate(preds)}, classes)

    methods = {"copy": base, "better": meth}
    v = judge(methods, base, ys, classes, {n: summary(p[0]) for n, p in methods.items()}, summary(base[0]),
              "class_weighted", normal_class="normal")
    assert v["copy"]["label"] == "no clear difference" and v["copy"]["gain"] == 0.0 and v["copy"]["p"] == 1.0
    assert v["better"]["label"] == "helps" and v["better"]["ci"][0] > 0
    assert v["better"]["family"] == 2 and {v["copy"]["level"], v["better"]["level"]} == {0.975, 0.95}
    assert set(v["better"]["per_class"]) == {"crack", "dent"}                  # defect classes only
    assert "The level accounts for the 2 methods compared (Holm)." in v["better"]["text"]


def _clustered(groups=30, size=8, seeds=3, seed=0):
    """Test images in groups (a part photographed `size` times): within a group the two models are right or wrong
    together, so the images of a group carry one observation, not `size`."""
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.integers(0, 2, groups), size)
    gid = np.repeat(np.arange(groups), size)
    base, meth = [], []
    for _ in range(seeds):
        ok_b = np.repeat(rng.random(groups) < 0.7, size)
        ok_m = np.repeat(rng.random(groups) < 0.7, size)
        base.append(np.where(ok_b, y, 1 - y))
        meth.append(np.where(ok_m, y, 1 - y))
    return [y], [base], [meth], gid


def test_the_cluster_bootstrap_widens_the_interval_when_images_of_a_group_are_correlated():
    ys, base, meth, gid = _clustered(seeds=1)      # one seed: the test images are the only source of spread
    by_image, _ = paired_gain(ys, base, meth, 2)
    by_group, _ = paired_gain(ys, base, meth, 2, groups_by_fold=[gid])
    assert by_group.gain == by_image.gain                      # the same point estimate
    assert by_group.half_width > 1.8 * by_image.half_width      # 8 correlated images are worth about one
    # every image its own group: the image bootstrap, draw for draw
    singles, _ = paired_gain(ys, base, meth, 2, groups_by_fold=[np.arange(len(ys[0]))])
    assert singles.ci == by_image.ci


def test_judge_says_it_resampled_groups():
    from core.metrics.verdict import judge
    ys, base, meth, gid = _clustered()
    summary = {"f1_macro": 0.7, "per_class": {"a": {"recall": 0.7}, "b": {"recall": 0.7}}}
    v = judge({"m": meth}, base, ys, ["a", "b"], {"m": summary}, summary, "equal_steps", "a", groups_by_fold=[gid])
    assert v["m"]["resampled"] == "groups" and "cluster bootstrap" in v["m"]["rule"]


def test_a_loss_against_the_strongest_of_several_baselines_is_held_to_alpha_over_their_number():
    """The strongest baseline is the largest of several noisy means, so a "hurts" against it is held to
    alpha / (baselines picked from); a gain is judged as before (above the largest is above every one)."""
    from core.metrics import aggregate, classification_metrics, judge
    ys, base, meth = _replicates(n=400, seeds=5, flip=0.06)
    classes = ["normal", "crack", "dent"]

    def summary(preds):
        return aggregate({s: classification_metrics(ys[0], p, classes) for s, p in enumerate(preds)}, classes)

    strong = meth                                                     # the baseline fixes 6% of the method's errors
    methods = {"worse": base}
    one = judge(methods, strong, ys, classes, {"worse": summary(base[0])}, summary(strong[0]), "drw", "normal")
    six = judge(methods, strong, ys, classes, {"worse": summary(base[0])}, summary(strong[0]), "drw", "normal",
                picked_from=6)
    assert 0.05 / 6 < one["worse"]["p"] < 0.05 and one["worse"]["label"] == "hurts" and one["worse"]["ci"][1] < 0
    assert six["worse"]["label"] == "no clear difference" and six["worse"]["level"] == round(1 - 0.05 / 6, 4)
    assert six["worse"]["ci"][0] < one["worse"]["ci"][0] and six["worse"]["ci"][1] > one["worse"]["ci"][1]   # wider
    gains = {"better": meth}
    a = judge(gains, base, ys, classes, {"better": summary(meth[0])}, summary(base[0]), "drw", "normal")
    b = judge(gains, base, ys, classes, {"better": summary(meth[0])}, summary(base[0]), "drw", "normal", picked_from=6)
    assert a["better"]["label"] == b["better"]["label"] == "helps" and a["better"]["ci"] == b["better"]["ci"]


def _unconverged(rng, y, k, acc=None):
    """One training far from converged: right on a share of the test images that differs a lot from seed to seed
    (0.35 to 0.85), wrong at random elsewhere: the seed-to-seed spread dominates the test images'."""
    acc = rng.uniform(0.35, 0.85) if acc is None else acc
    return np.where(rng.random(len(y)) < acc, y, rng.integers(0, k, len(y)))


def test_a_copy_of_the_baseline_with_a_large_seed_spread_is_rarely_called_different():
    """A/A with 3 seeds whose scores disagree a lot: a bootstrap over the 3 seeds under-states their spread (it
    called 18% of such runs on magnetic_tile different); the Student-t seed level holds the false rate near 5%."""
    rng = np.random.default_rng(7)
    k, n, runs, false = 3, 150, 120, 0
    for r in range(runs):
        y = rng.integers(0, k, n)
        base = [[_unconverged(rng, y, k) for _ in range(3)]]
        meth = [[_unconverged(rng, y, k) for _ in range(3)]]
        g, _ = paired_gain([y], base, meth, k, n_boot=1000, seed=r)
        false += g.p < 0.05
    assert false / runs <= 0.08, f"{false} of {runs} A/A runs called different"


def test_k_fold_a_a_runs_with_a_large_seed_spread_are_rarely_called_different():
    """A/A of a 5-fold x 3-seed run whose trainings disagree a lot: the seed term read within the folds (10 degrees
    of freedom, not 2) must still hold the false rate near 5%."""
    rng = np.random.default_rng(11)
    k, n, runs, false = 3, 40, 120, 0
    for r in range(runs):
        ys = [rng.integers(0, k, n) for _ in range(5)]
        base = [[_unconverged(rng, y, k) for _ in range(3)] for y in ys]
        meth = [[_unconverged(rng, y, k) for _ in range(3)] for y in ys]
        g, _ = paired_gain(ys, base, meth, k, n_boot=1000, seed=r)
        false += g.p < 0.05
    assert false / runs <= 0.08, f"{false} of {runs} A/A runs called different"


def test_k_fold_runs_read_the_seed_spread_within_the_folds():
    """5 folds x 3 seeds: each fold's trainings are its own, so the spread between them has 5 x 2 degrees of
    freedom. A gain every one of the 15 trainings shows is called at the 99.9% a family of many methods asks, and
    the interval is narrower than the 3 seed indices' pooled gains alone (t with 2 degrees of freedom) make it."""
    from core.metrics.intervals import _seed_spread, _counts
    rng = np.random.default_rng(5)
    k, n = 3, 120
    ys = [rng.integers(0, k, n) for _ in range(5)]
    base = [[_unconverged(rng, y, k, acc) for acc in (0.45, 0.55, 0.65)] for y in ys]
    meth = [[_unconverged(rng, y, k, acc + 0.12) for acc in (0.45, 0.55, 0.65)] for y in ys]
    g, draws = paired_gain(ys, base, meth, k, level=0.999)
    assert g.ci[0] > 0, g
    fb = np.array([[_counts(y[None], b[None], k)[0] for b in bs] for y, bs in zip(ys, base)])
    fm = np.array([[_counts(y[None], m[None], k)[0] for m in ms] for y, ms in zip(ys, meth)])
    var, df = _seed_spread(fb, fm, "f1", None)
    assert 4 < df <= 10 and var > 0                           # 5 folds' parts, not the 2 of 3 pooled seeds
    one_fold = _seed_spread(fb[:1], fm[:1], "f1", None)
    assert one_fold[1] == 2                                   # a single split: the seeds' own n - 1
    by_index = np.var(np.array(g.per_seed), ddof=1)
    from scipy.stats import t as student_t
    assert student_t.ppf(0.9995, df) * np.sqrt(var) < student_t.ppf(0.9995, 2) * np.sqrt(by_index)


def test_the_seed_level_widens_the_interval_by_the_seeds_spread_and_not_with_one_seed():
    rng = np.random.default_rng(3)
    k, n = 3, 400
    y = rng.integers(0, k, n)
    base = [[np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n)) for _ in range(3)]]
    agree = [[np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n)) for _ in range(3)]]
    disagree = [[_unconverged(rng, y, k, acc) for acc in (0.55, 0.7, 0.85)]]
    narrow, _ = paired_gain([y], base, agree, k)
    wide, _ = paired_gain([y], base, disagree, k)
    assert wide.half_width > 1.5 * narrow.half_width
    one, _ = paired_gain([y], [base[0][:1]], [disagree[0][:1]], k)     # one seed: the test images' only
    assert one.half_width < wide.half_width


def test_no_clear_difference_names_each_seeds_own_gain():
    """Where seeds disagree the text shows why the interval is wide: each seed's gain on the full test set."""
    from sklearn.metrics import f1_score
    from core.metrics import aggregate, classification_metrics, judge
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 200)
    base = [[_unconverged(rng, y, 3, acc) for acc in (0.6, 0.6, 0.6)]]
    meth = [[_unconverged(rng, y, 3, acc) for acc in (0.4, 0.6, 0.8)]]
    classes = ["normal", "crack", "dent"]

    def summary(preds):
        return aggregate({s: classification_metrics(y, p, classes) for s, p in enumerate(preds)}, classes)

    v = judge({"m": meth}, base, [y], classes, {"m": summary(meth[0])}, summary(base[0]), "drw", "normal")["m"]
    gains = [f1_score(y, m, average="macro") - f1_score(y, b, average="macro") for b, m in zip(base[0], meth[0])]
    own = sorted(gains)
    assert v["label"] == "no clear difference"
    assert v["seed_gains"] == [round(x, 4) for x in gains]
    assert f"The seeds' own gains: {own[0]:+.3f}, {own[1]:+.3f} and {own[2]:+.3f}." in v["text"]


def test_the_p_value_and_the_interval_agree_at_every_level():
    """A verdict is read from the p-value, the user reads the interval: at any level, the interval excludes zero
    exactly when p is below 1 - level. Counting draws gave p >= 0.001 whenever one of 2,000 draws crossed zero,
    so at the 99.91% of a 9-method run's first "hurts" an interval of -0.297 to -0.010 was "no clear difference"."""
    rng = np.random.default_rng(8)
    k, n = 3, 60
    checked = 0
    for r in range(40):
        y = rng.integers(0, k, n)
        base = [[_unconverged(rng, y, k, acc) for acc in (0.6, 0.65, 0.7)]]
        shift = rng.uniform(-0.5, 0.0)
        meth = [[_unconverged(rng, y, k, acc + shift) for acc in (0.6, 0.65, 0.7)]]
        g, draws = paired_gain([y], base, meth, k, seed=r)
        for level in (0.95, 0.99, 0.999, 1 - 0.05 / 9 / 6):
            ci = g.at(level, draws).ci
            assert (ci[0] > 0 or ci[1] < 0) == (g.p < 1 - level), (r, level, g.p, ci)
        checked += g.p < 0.002              # the tail where counting draws could not resolve p
    assert checked >= 2


@pytest.mark.parametrize("draws", [[-1.0, -0.5, 0.0, 0.0], [-1.0, -0.5, -0.2, 0.0], [0.0, 0.0, 0.3, 1.0],
                                   [-2.0, -1.0, 0.0, 0.0, 0.5], [0.0, 0.0], [0.2, 0.4], [-0.3, -0.1]])
def test_draws_that_end_exactly_at_zero_give_a_p_value_that_agrees_with_the_interval(draws):
    """Identical predictions at the edges make draws of exactly zero (a K-fold run on tiny data did)."""
    from core.metrics.intervals import _p_value
    p = _p_value(np.array(draws))
    for level in (0.5, 0.8, 0.95):
        lo, hi = np.quantile(draws, (1 - level) / 2), np.quantile(draws, 1 - (1 - level) / 2)
        assert (lo > 0 or hi < 0) == (p < 1 - level), (draws, level, p, lo, hi)
