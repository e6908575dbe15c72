"""The built-in sample dataset: deterministic, imbalanced, loadable by core.data like an upload."""
from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

from core.data import load_dataset
from core.errors import ParamError
from core.sample_data import DEFAULT_COUNTS, generate_sample, write_sample_dataset, write_sample_zip


def test_default_counts_are_imbalanced_and_shapes_right():
    ds = generate_sample()
    assert ds.counts() == {c: DEFAULT_COUNTS[c] for c in sorted(DEFAULT_COUNTS)}
    assert ds.images.shape == (sum(DEFAULT_COUNTS.values()), 64, 64, 1) and ds.images.dtype == np.uint8
    counts = sorted(DEFAULT_COUNTS.values(), reverse=True)
    assert counts[0] >= 10 * counts[-1] / 2 and len(set(counts)) == len(counts)   # naturally imbalanced


def test_default_sample_holds_20_real_test_images_per_defect_class():
    from core.data import detect_normal_class, protocol_counts
    ds = generate_sample()                              # about 0.3 s on the project's 2-core machine
    counts = ds.counts()
    plan = protocol_counts(counts, 20, None, detect_normal_class(counts))
    assert detect_normal_class(counts) == "normal"
    assert all(plan.test[c] == 20 for c in counts), plan.test
    assert all(plan.train[c] >= 20 for c in counts), plan.train     # and still 20 or more to train on


def test_deterministic_by_seed_and_stable_when_adding_images():
    a = generate_sample({"crack": 4, "normal": 6}, size=32, seed=3)
    b = generate_sample({"crack": 4, "normal": 6}, size=32, seed=3)
    c = generate_sample({"crack": 4, "normal": 6}, size=32, seed=4)
    more = generate_sample({"crack": 6, "normal": 6}, size=32, seed=3)
    assert np.array_equal(a.images, b.images) and a.sources == b.sources
    assert not np.array_equal(a.images, c.images)
    assert np.array_equal(more.of_class("crack").images[:4], a.of_class("crack").images)


def test_defects_differ_from_normal_surfaces():
    ds = generate_sample({"normal": 20, "spot": 20}, size=64, seed=0)
    # spots are dark blobs: the darkest pixels of a spot image are far darker than the surface around
    dark = lambda imgs: np.percentile(imgs.reshape(len(imgs), -1).astype(float), 1, axis=1).mean()
    assert dark(ds.of_class("spot").images) < dark(ds.of_class("normal").images) - 15
    # every image differs from every other (no accidental duplicates for the loader to report)
    flat = ds.images.reshape(len(ds), -1)
    assert len({row.tobytes() for row in flat}) == len(ds)


def test_rgb_option():
    ds = generate_sample({"scratch": 2}, size=16, channels=3)
    assert ds.images.shape == (2, 16, 16, 3)


def test_folder_and_zip_load_with_core_data(tmp_path):
    counts = {"normal": 12, "scratch": 4, "spot": 3, "crack": 2}
    root = write_sample_dataset(tmp_path / "folder", counts, size=32, seed=1)
    ds, report = load_dataset(root, image_size=32)
    assert report.counts == counts or report.counts == {c: counts[c] for c in sorted(counts)}
    assert not report.skipped and not report.duplicates and report.channels == 1
    assert np.array_equal(ds.images, generate_sample(counts, size=32, seed=1).images)

    zpath = write_sample_zip(tmp_path / "sample.zip", counts, size=32, seed=1)
    with zipfile.ZipFile(zpath) as zf:
        names = zf.namelist()
    assert all(n.startswith("defectaug_sample/") for n in names) and len(names) == sum(counts.values())
    ds2, report2 = load_dataset(zpath, image_size=32)
    assert report2.counts == report.counts
    assert np.array_equal(ds2.images, ds.images)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"counts": {"rust": 3}}, "no class rust"),
    ({"counts": {"crack": -1}}, "0 or more"),
    ({"size": 4}, "between 8 and 512"),
    ({"channels": 2}, "1 (grey) or 3"),
])
def test_bad_settings_say_what_to_do(kwargs, fragment):
    with pytest.raises(ParamError, match=re.escape(fragment)):
        generate_sample(**kwargs)
