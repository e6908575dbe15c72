"""Common checks run over every registered method (as imbalanced-learn checks every sampler).

A new method gets these tests by being registered (built-in, or from a DEFECTAUG_PLUGINS module). Tiny
images (16 px) and each method's `tiny` preset (a couple of training steps): count, shape, dtype, seed
determinism, ratio honoured, provenance as the spec declares it, checkpoint round trip, a class of one image,
presets and parameter docs. Methods this server cannot run (spec.unavailable_reason()) are skipped with
the reason.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from core.data import balance_targets
from core.events import Reporter
from core.imageset import ImageSet
from core.methods import Context, all_methods, get_method

SPECS = all_methods()
RUNNABLE = [pytest.param(m.name, marks=pytest.mark.skipif(not m.available, reason=str(m.unavailable_reason())))
            for m in SPECS]


def tiny_set(channels: int = 1, counts=(12, 5, 3), size: int = 16, seed: int = 0) -> ImageSet:
    """Three classes with distinct textures so neighbours and borders exist."""
    rng = np.random.default_rng(seed)
    imgs, labels, sources = [], [], []
    classes = ["normal", "crack", "spot"][: len(counts)]
    for c, n in enumerate(counts):
        for i in range(n):
            base = rng.normal(120 + 40 * c, 25, (size, size, channels))
            base[:, (i + c) % size] += 60 * c  # a class-dependent stripe
            imgs.append(np.clip(base, 0, 255).astype(np.uint8))
            labels.append(c)
            sources.append(f"{classes[c]}/img_{i}.png")
    return ImageSet(np.stack(imgs), np.array(labels), classes, sources)


def make(name: str, seed: int = 0, reporter: Reporter | None = None, work_dir=None):
    spec = get_method(name)
    params = spec.make_params("tiny")
    ctx = Context(reporter=reporter or Reporter(), device=torch.device("cpu"), seed=seed, method=name,
                  work_dir=work_dir, normal_class="normal")
    return spec, spec.sampler_cls(params, ctx)


def fit_sample(name: str, train: ImageSet, seed: int = 0, **kw):
    spec, sampler = make(name, seed, **kw)
    needed = balance_targets(train.counts(), 1.0)
    sampler.fit(train, needed)
    return sampler, needed


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", RUNNABLE)
def test_count_shape_dtype_and_ratio(name, channels):
    train = tiny_set(channels)
    sampler, needed = fit_sample(name, train)
    assert needed == {"normal": 0, "crack": 7, "spot": 9}
    total = dict(train.counts())
    for cls, n in needed.items():
        batch = sampler.sample(cls, n, seed=1)
        assert batch.images.shape == (n, 16, 16, channels)
        assert batch.images.dtype == np.uint8
        assert len(batch.parents) == n
        total[cls] += n
    assert set(total.values()) == {12}     # target ratio 1.0: every class reaches the majority count


@pytest.mark.parametrize("name", RUNNABLE)
def test_same_seed_same_images(name):
    train = tiny_set()
    a, _ = fit_sample(name, train, seed=3)
    b, _ = fit_sample(name, train, seed=3)
    x1, x2 = a.sample("crack", 6, seed=5).images, b.sample("crack", 6, seed=5).images
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(x1, a.sample("crack", 6, seed=5).images)


@pytest.mark.parametrize("name", RUNNABLE)
def test_images_are_not_all_copies_of_one(name):
    train = tiny_set()
    sampler, _ = fit_sample(name, train)
    imgs = sampler.sample("crack", 7, seed=2).images
    assert len({im.tobytes() for im in imgs}) > 1, "every synthetic image is the same"


@pytest.mark.parametrize("name", RUNNABLE)
def test_checkpoint_round_trip(name, tmp_path):
    train = tiny_set()
    sampler, _ = fit_sample(name, train)
    folder = sampler.save(tmp_path / name)
    spec = get_method(name)
    loaded = spec.load_sampler(folder, Context(device=torch.device("cpu"), method=name))
    assert loaded.classes_ == train.classes
    assert dataclasses.asdict(loaded.params) == dataclasses.asdict(sampler.params)
    np.testing.assert_array_equal(sampler.sample("spot", 5, seed=9).images, loaded.sample("spot", 5, seed=9).images)


@pytest.mark.parametrize("name", RUNNABLE)
def test_class_of_one_image_never_crashes_and_says_what_it_did(name):
    train = tiny_set(counts=(12, 1, 4))
    rep = Reporter()
    sampler, needed = fit_sample(name, train, reporter=rep)
    batch = sampler.sample("crack", needed["crack"], seed=0)
    assert batch.images.shape == (11, 16, 16, 1)
    family = get_method(name).family
    if family == "classic":            # copies and flips of the one image: nothing to warn about
        assert not [w for w in rep.warnings if "crack" in w]
    else:                              # interpolation, mixing and generators need more: the user is told
        assert any("'crack'" in w or " crack " in w for w in rep.warnings), rep.warnings


@pytest.mark.parametrize("name", RUNNABLE)
def test_provenance_is_what_the_spec_declares(name):
    """Parents name real training images of the class (interpolation, mixing, copies), one normal image
    (translation), a defect image of the class and its normal background (transplant: with where the defect
    lies in each image), or nothing (a generator from noise): never an image of another class or from elsewhere."""
    train = tiny_set()
    sampler, _ = fit_sample(name, train)
    batch = sampler.sample("spot", 4, seed=0)
    kind = get_method(name).provenance
    real = {c: {s for s, lab in zip(train.sources, train.labels) if train.classes[lab] == c} for c in train.classes}
    assert len(batch.parents) == 4 and all(isinstance(p, list) for p in batch.parents)
    if kind == "parents":
        assert all(p and set(p) <= real["spot"] for p in batch.parents), batch.parents
    elif kind == "source":
        assert all(len(p) == 1 and p[0] in real["normal"] for p in batch.parents), batch.parents
    elif kind == "transplant":         # the defect image of the class, then the normal background
        assert all(len(p) == 2 and p[0] in real["spot"] and p[1] in real["normal"] for p in batch.parents), \
            batch.parents
        assert batch.details and [d["defect_source"] for d in batch.details] == [p[0] for p in batch.parents]
        assert [d["background"] for d in batch.details] == [p[1] for p in batch.parents]
        assert batch.masks is not None and batch.masks.shape == (4, 16, 16)
        if batch.targets is not None:  # labelled by area: the defect's share is the share its mask covers
            np.testing.assert_allclose(batch.targets[:, 2], (batch.masks > 0).mean(axis=(1, 2)), atol=1e-6)
            np.testing.assert_allclose(batch.targets.sum(1), 1.0, atol=1e-6)
        else:
            assert all(m.any() for m in batch.masks)
    else:
        assert all(p == [] for p in batch.parents), f"{name} generates from noise but names parents"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_presets_build_and_every_param_is_documented(spec):
    for preset in ("quick", "paper", "tiny"):
        spec.make_params(preset)
    for f in dataclasses.fields(spec.params_cls):
        assert f.metadata.get("help"), f"{spec.name}.{f.name} has no help text for the UI"
    assert spec.summary and spec.paper and spec.family
    assert spec.provenance in ("parents", "source", "transplant", "none")


def test_the_registry_lists_every_method_once_and_no_baseline():
    names = [m.name for m in SPECS]
    assert len(names) == len(set(names)) and "none" not in names
    assert {"smote", "random_oversample", "dcgan", "acgan"} <= set(names)
