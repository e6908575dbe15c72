"""Measures on the synthetic images themselves (pixels, not features):

    ssim_diversity(images)             # mean pairwise SSIM within a set: 1 = every image the same
    nearest_real(synth, real)          # each synthetic image's nearest real training image and distance
    near_copies(synth, real)           # which synthetic images are (near) copies of a real one

Mode collapse shows as a synthetic class whose SSIM diversity is near 1 while the real class's is lower
(BAGAN reports SSIM this way); memorisation as synthetic images much closer to one real image than real
images are to each other.
"""
from __future__ import annotations

import numpy as np
import torch

COPY_FRACTION = 0.25   # closer to a real image than a quarter of the real images' typical spacing: a near-copy


def ssim_diversity(images: np.ndarray, max_pairs: int = 150, seed: int = 0) -> float:
    """Mean SSIM over (up to `max_pairs` random) pairs of distinct images of uint8 [N,H,W,C]."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim
    n = len(images)
    if n < 2:
        return float("nan")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if len(pairs) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False)
        pairs = [pairs[p] for p in sorted(pick)]
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    a = x[[i for i, _ in pairs]]
    b = x[[j for _, j in pairs]]
    side = min(x.shape[-2:])
    kernel = min(11, side - (1 - side % 2))           # an odd window no larger than the image
    values = ssim(a, b, data_range=255.0, kernel_size=kernel, reduction="none")
    return float(values.mean())


def _flat(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, np.float32).reshape(len(images), -1) / 255.0


def nearest_real(synth: np.ndarray, real: np.ndarray, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest real image, RMS pixel distance in [0, 1] units) for each synthetic image."""
    s, r = torch.from_numpy(_flat(synth)), torch.from_numpy(_flat(real))
    idx, dist = [], []
    for i in range(0, len(s), chunk):
        d = torch.cdist(s[i:i + chunk], r)
        m, j = d.min(dim=1)
        idx.append(j.numpy())
        dist.append(m.numpy() / np.sqrt(s.shape[1]))
    if not idx:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(idx), np.concatenate(dist)


def real_spacing(real: np.ndarray) -> float:
    """Median RMS distance from each real image to its nearest other real image (the class's spacing)."""
    if len(real) < 2:
        return float("nan")
    r = torch.from_numpy(_flat(real))
    d = torch.cdist(r, r)
    d.fill_diagonal_(float("inf"))
    return float(d.min(dim=1).values.median() / np.sqrt(r.shape[1]))


def near_copies(synth: np.ndarray, real: np.ndarray, fraction: float = COPY_FRACTION) -> dict:
    """Which synthetic images lie within `fraction` x the real spacing of a real image: {copy mask, nearest
    index, distance, threshold}. A class of one real image has no spacing: only exact copies count then."""
    idx, dist = nearest_real(synth, real)
    spacing = real_spacing(real)
    threshold = fraction * spacing if np.isfinite(spacing) else 0.5 / 255
    return {"copy": dist < threshold, "nearest": idx, "distance": dist, "threshold": float(threshold)}
