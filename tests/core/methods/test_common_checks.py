"""Common checks run over every registered method (as imbalanced-learn checks every sampler).

A new method gets these tests by being registered. Tiny images (16 px), a couple of training steps:
count, shape, dtype, seed determinism, ratio honoured, provenance, checkpoint round trip, a class of
one image, presets and parameter docs.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.data import balance_targets
from core.events import Reporter
from core.imageset import ImageSet
from core.methods import Context, all_methods, get_method

# Parameters that make each method train for a couple of steps on 16 px images.
TINY_OVERRIDES: dict[str, dict] = {
    "gan": {"steps": 2, "batch_size": 4},
    "dcgan": {"steps": 2, "batch_size": 4},
    "cgan": {"steps": 2, "batch_size": 4},
    "wgan_gp": {"steps": 2, "batch_size": 4},
    "acgan": {"steps": 2, "batch_size": 4},
}

ALL = [m.name for m in all_methods()]


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
    params = spec.make_params("quick", TINY_OVERRIDES.get(name, {}))
    ctx = Context(reporter=reporter or Reporter(), device=__import__("torch").device("cpu"), seed=seed,
                  method=name, work_dir=work_dir)
    return spec, spec.sampler_cls(params, ctx)


def fit_sample(name: str, train: ImageSet, seed: int = 0, **kw):
    spec, sampler = make(name, seed, **kw)
    needed = balance_targets(train.counts(), 1.0)
    sampler.fit(train, needed)
    return sampler, needed


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ALL)
def test_count_shape_dtype_and_ratio(name, channels):
    train = tiny_set(channels)
    sampler, needed = fit_sample(name, train)
    assert needed == {"normal": 0, "crack": 7, "spot": 9}
    total = dict(train.counts())
    for cls, n in needed.items():
        batch = sampler.sample(cls, n, seed=1)
        expect = 0 if name == "none" else n
        assert batch.images.shape == (expect, 16, 16, channels)
        assert batch.images.dtype == np.uint8
        assert len(batch.parents) == expect
        total[cls] += expect
    if name != "none":   # target ratio 1.0: every class reaches the majority count
        assert set(total.values()) == {12}


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_images(name):
    train = tiny_set()
    a, _ = fit_sample(name, train, seed=3)
    b, _ = fit_sample(name, train, seed=3)
    x1, x2 = a.sample("crack", 6, seed=5).images, b.sample("crack", 6, seed=5).images
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(x1, a.sample("crack", 6, seed=5).images)


@pytest.mark.parametrize("name", [n for n in ALL if n != "none"])
def test_images_are_not_all_copies_of_one(name):
    train = tiny_set()
    sampler, _ = fit_sample(name, train)
    imgs = sampler.sample("crack", 7, seed=2).images
    assert len({im.tobytes() for im in imgs}) > 1, "every synthetic image is the same"


@pytest.mark.parametrize("name", ALL)
def test_checkpoint_round_trip(name, tmp_path):
    train = tiny_set()
    sampler, _ = fit_sample(name, train)
    folder = sampler.save(tmp_path / name)
    spec = get_method(name)
    loaded = spec.load_sampler(folder, Context(device=__import__("torch").device("cpu"), method=name))
    assert loaded.classes_ == train.classes
    assert dataclasses.asdict(loaded.params) == dataclasses.asdict(sampler.params)
    np.testing.assert_array_equal(sampler.sample("spot", 5, seed=9).images, loaded.sample("spot", 5, seed=9).images)


@pytest.mark.parametrize("name", [n for n in ALL if n != "none"])
def test_class_of_one_image_never_crashes(name):
    train = tiny_set(counts=(12, 1, 4))
    rep = Reporter()
    sampler, needed = fit_sample(name, train, reporter=rep)
    batch = sampler.sample("crack", needed["crack"], seed=0)
    assert batch.images.shape == (11, 16, 16, 1)


@pytest.mark.parametrize("name", [n for n in ALL if n != "none"])
def test_provenance_names_real_images_of_the_class(name):
    train = tiny_set()
    sampler, _ = fit_sample(name, train)
    batch = sampler.sample("spot", 4, seed=0)
    real_spot = {s for s in train.sources if s.startswith("spot/")}
    for parents in batch.parents:
        assert set(parents) <= real_spot
    if get_method(name).family in ("classic", "interpolation", "mixing"):
        assert all(parents for parents in batch.parents), "interpolation and copies always have parents"


@pytest.mark.parametrize("spec", all_methods(), ids=lambda s: s.name)
def test_presets_build_and_every_param_is_documented(spec):
    for preset in ("quick", "paper"):
        spec.make_params(preset)
    for f in dataclasses.fields(spec.params_cls):
        assert f.metadata.get("help"), f"{spec.name}.{f.name} has no help text for the UI"
    assert spec.summary and spec.paper and spec.family
