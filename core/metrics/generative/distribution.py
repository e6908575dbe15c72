"""How close a set of synthetic images is to the real ones, on features (never on a downloaded network):

    frechet_distance(real, fake)       # FD of two feature sets (torchmetrics' FID on given features)
    kernel_distance(real, fake)        # KD (KID) mean and std over subsets, subset size clamped to the counts
    prdc(real, fake, k=5)              # precision / recall (Kynkaanniemi et al. 2019), density / coverage
                                       # (Naeem et al. 2020) of k-nearest-neighbour manifolds

`real` and `fake` are float feature arrays [N, d] of one class (or of all). Which network made them is the
caller's to say (FD-cls for the evaluation classifier's features, FID only for Inception-v3's): these functions
only compare two clouds of points.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn


class _Given(nn.Module):
    """A 'feature extractor' for torchmetrics that hands back the features it is given."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2) of the two feature sets (needs 2+ of each).
    With fewer samples than feature dimensions the covariances are singular and the value unreliable: the
    caller warns (`fd_reliable`)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    metric = FrechetInceptionDistance(feature=_Given(real.shape[1]))
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    return float(metric.compute())


def fd_reliable(n_real: int, n_fake: int, dim: int) -> bool:
    return min(n_real, n_fake) > dim


def kernel_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """KID (polynomial-kernel MMD^2, unbiased): (mean, std) over `subsets` random subsets whose size is the
    smaller set's count (torchmetrics' default of 1000 would refuse a class of 37 images)."""
    from torchmetrics.image.kid import KernelInceptionDistance
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = int(min(len(real), len(fake), 1000))
    if size < 2:
        return float("nan"), float("nan")
    with warnings.catch_warnings():               # "will save all extracted features": a few hundred rows here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    with torch.random.fork_rng():                     # its subsets come from torch's global stream
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each point to its k-th nearest neighbour in the same set (itself excluded)."""
    d = _distances(x, x)
    return np.sort(d, axis=1)[:, k]                   # column 0 is the point itself


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances
    return pairwise_distances(np.asarray(a, np.float64), np.asarray(b, np.float64))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision (share of fakes inside the real manifold), recall (share of reals inside the fake manifold),
    density (how many real neighbourhoods hold each fake, / k) and coverage (share of reals with a fake in
    their neighbourhood); each manifold is the union of balls to the k-th nearest neighbour. k is clamped to
    the smaller set's size - 1."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    k = int(max(1, min(k, len(real) - 1, len(fake) - 1)))
    if len(real) < 2 or len(fake) < 2:
        return {"precision": float("nan"), "recall": float("nan"), "density": float("nan"),
                "coverage": float("nan"), "k": k}
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    d = _distances(real, fake)                        # [n_real, n_fake]
    inside_real = d < r_real[:, None]                 # fake j inside the ball of real i
    return {"precision": float(inside_real.any(axis=0).mean()),
            "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
            "density": float(inside_real.sum(axis=0).mean() / k),
            "coverage": float((d.min(axis=1) < r_real).mean()), "k": k}
