"""Generated-image measures on constructed cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from core.metrics.generative.distribution import frechet_distance, kernel_distance, prdc
from core.metrics.generative.images import near_copies, nearest_real, ssim_diversity


def test_identical_feature_sets_have_fd_zero_and_full_precision_recall():
    x = np.random.default_rng(0).normal(size=(200, 8))
    assert abs(frechet_distance(x, x)) < 1e-6
    m = prdc(x, x, k=5)
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["coverage"] == 1.0
    assert m["density"] >= 1.0
    same, _ = kernel_distance(x, np.random.default_rng(9).normal(size=(200, 8)))   # another draw, same law
    shifted, _ = kernel_distance(x, np.random.default_rng(9).normal(size=(200, 8)) + 1)
    assert abs(same) < 0.01 * shifted


def test_shifted_gaussians_give_the_analytic_frechet_distance():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20000, 4))
    b = rng.normal(size=(20000, 4)) * 2.0 + np.array([3.0, 0, 0, 0])
    # ||mu||^2 + Tr(I + 4I - 2 (4I)^1/2) = 9 + 4 * (1 + 4 - 4) = 13
    assert frechet_distance(a, b) == pytest.approx(13.0, rel=0.03)


def test_far_apart_sets_have_no_precision_recall_and_a_positive_kid():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(100, 6)), rng.normal(size=(80, 6)) + 50
    m = prdc(real, fake)
    assert m["precision"] == m["recall"] == m["coverage"] == m["density"] == 0.0
    kd, _ = kernel_distance(real, fake)
    assert kd > 1.0
    half = prdc(real, np.concatenate([real[:40] + 1e-3, fake[:40]]), k=3)
    assert 0.4 < half["precision"] < 0.6        # half the fakes sit on real points


def test_one_image_repeated_has_diversity_one_and_noise_far_less():
    rng = np.random.default_rng(3)
    one = np.repeat(rng.integers(0, 256, (1, 16, 16, 1), dtype=np.uint8), 10, axis=0)
    assert ssim_diversity(one) == pytest.approx(1.0)
    noise = rng.integers(0, 256, (10, 16, 16, 1), dtype=np.uint8)
    assert ssim_diversity(noise) < 0.2
    assert np.isnan(ssim_diversity(noise[:1]))


def test_a_copied_image_is_flagged_as_memorised_and_new_ones_are_not():
    rng = np.random.default_rng(4)
    real = rng.integers(0, 256, (20, 16, 16, 1), dtype=np.uint8)
    copy = real[7:8].copy()
    copy[0, 0, 0, 0] ^= 1                                   # one grey level off in one pixel
    fresh = rng.integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    out = near_copies(np.concatenate([copy, fresh]), real)
    assert out["copy"].tolist() == [True, False, False, False]
    assert out["nearest"][0] == 7 and out["distance"][0] < 1e-3
    idx, dist = nearest_real(real[3:5], real)
    assert idx.tolist() == [3, 4] and dist.tolist() == [0.0, 0.0]
