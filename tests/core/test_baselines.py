"""The long-tail baselines of core/classifier.py and core/linear.py: logit adjustment, deferred re-weighting and
the class-balanced linear model, on tiny generated images with the real torch and scikit-learn."""
import numpy as np
import pytest
import torch
from torch import nn

from core import classifier as clf
from core import linear
from core.errors import ParamError
from core.imageset import ImageSet

P = clf.ClassifierParams(epochs=4, batch_size=8, width=4, label_smoothing=0.1)


def noisy(counts: dict[int, int], means: dict[int, float], size=16, spread=30.0, seed=0) -> ImageSet:
    """Grey images whose brightness is drawn around a class mean: overlapping classes, so the prior matters."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, c) for c, n in counts.items()])
    imgs = np.stack([rng.normal(means[c], spread, (size, size, 1)) + rng.normal(0, spread) for c in labels])
    classes = [f"c{c}" for c in range(max(counts) + 1)]
    return ImageSet(imgs.clip(0, 255).astype(np.uint8), labels, classes, [f"{i}.png" for i in range(len(labels))])


def test_logit_adjusted_loss_is_cross_entropy_on_balanced_classes():
    labels = np.repeat(np.arange(3), 5)
    offsets = clf.logit_adjustment(labels, 3)
    np.testing.assert_allclose(offsets, np.log(1 / 3), rtol=1e-6)        # the same shift for every class
    logits, y = torch.randn(16, 3, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 3
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    assert float(ce(logits + torch.as_tensor(offsets), y)) == pytest.approx(float(ce(logits, y)), abs=1e-6)
    # and training with it on a balanced set gives the plain model
    data = noisy({0: 12, 1: 12}, {0: 100, 1: 150})
    plain = clf.train(data, P, seed=0, device="cpu")
    adjusted = clf.train(data, P, seed=0, device="cpu", logit_offsets=clf.logit_adjustment(data.labels, 2))
    np.testing.assert_allclose(clf.predict(adjusted.model, data), clf.predict(plain.model, data), atol=1e-4)


def test_logit_adjustment_shifts_decisions_toward_the_rare_class():
    train = noisy({0: 60, 1: 6}, {0: 100, 1: 135}, seed=0)
    test = noisy({0: 40, 1: 40}, {0: 100, 1: 135}, seed=1)
    offsets = clf.logit_adjustment(train.labels, 2)
    assert offsets[1] - offsets[0] == pytest.approx(np.log(6 / 60), rel=1e-5)
    steps = 60
    plain = clf.predict(clf.train(train, P, seed=0, steps=steps, device="cpu").model, test)
    adjusted = clf.predict(clf.train(train, P, seed=0, steps=steps, device="cpu", logit_offsets=offsets).model, test)
    assert (adjusted.argmax(1) == 1).sum() > (plain.argmax(1) == 1).sum()
    assert adjusted[:, 1].mean() > plain[:, 1].mean() + 0.1
    rare = test.labels == 1
    assert (adjusted.argmax(1)[rare] == 1).mean() > (plain.argmax(1)[rare] == 1).mean()   # rare recall up


def test_class_balanced_weights_and_the_deferred_epoch():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    w = clf.class_balanced_weights(labels, 4, beta=0.9999)
    assert w.sum() == pytest.approx(4, rel=1e-6)
    expected = np.array([(1 - 0.9999) / (1 - 0.9999 ** n) for n in (90, 9, 1)])
    np.testing.assert_allclose(w[:3], expected * 4 / expected.sum(), rtol=1e-5)   # normalised to sum to K
    assert w[3] == 0 and w[2] > w[1] > w[0]
    assert [clf.drw_start_epoch(e) for e in (35, 4, 2, 1)] == [27, 4, 2, 1]     # the last 25% (at least one)


def test_drw_weights_switch_at_the_right_epoch():
    data = noisy({0: 30, 1: 6}, {0: 100, 1: 135})
    weights = clf.class_balanced_weights(data.labels, 2)
    start = clf.drw_start_epoch(P.epochs)
    assert start == 4
    plain = clf.train(data, P, seed=0, steps=40, device="cpu")
    drw = clf.train(data, P, seed=0, steps=40, device="cpu", class_weights=weights, weights_from_epoch=start)
    always = clf.train(data, P, seed=0, steps=40, device="cpu", class_weights=weights)
    assert [p["class_weighted"] for p in drw.curve] == [False, False, False, True]
    assert all(p["class_weighted"] for p in always.curve)
    # before the switch DRW is the plain training step for step; from it on, it is not
    assert [p["loss"] for p in drw.curve[:3]] == [p["loss"] for p in plain.curve[:3]]
    assert drw.curve[3]["loss"] != plain.curve[3]["loss"]
    assert always.curve[0]["loss"] != plain.curve[0]["loss"]


def test_linear_baseline_is_class_balanced_and_rebuilds_from_its_tensors():
    train = noisy({0: 60, 1: 6, 2: 6}, {0: 80, 1: 130, 2: 180}, spread=20, seed=0)
    test = noisy({0: 20, 1: 20, 2: 20}, {0: 80, 1: 130, 2: 180}, spread=20, seed=1)
    res = linear.train(train)
    probs = clf.predict(res.model, test)
    assert probs.shape == (60, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    x, xt = linear.features(train), linear.features(test)
    sc = StandardScaler().fit(x)
    ref = LogisticRegression(C=linear.C, class_weight="balanced", max_iter=linear.MAX_ITER).fit(sc.transform(x),
                                                                                              train.labels)
    np.testing.assert_allclose(probs, ref.predict_proba(sc.transform(xt)), atol=1e-4)   # sklearn's own model
    tensors, meta = linear.saved_form(res.model, train.classes, 1, 16)
    assert meta["arch"] == "linear" and set(tensors) == {"mean", "scale", "linear.weight", "linear.bias"}
    np.testing.assert_array_equal(clf.predict(clf.rebuild(tensors, meta), test), probs)


def test_linear_baseline_with_two_classes_and_with_one():
    train = noisy({0: 30, 1: 5}, {0: 80, 1: 160}, spread=20)
    res = linear.train(train)
    probs = clf.predict(res.model, train)
    assert probs.shape == (35, 2) and (probs.argmax(1) == train.labels).mean() > 0.9
    with pytest.raises(ParamError, match="at least two classes"):
        linear.train(train.subset(np.flatnonzero(train.labels == 0)))
