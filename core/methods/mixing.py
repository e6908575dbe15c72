"""Mixup and CutMix inside one class (lambda 0.6 by default, as in the diffusion paper's baselines).

Both parents come from the same class, so the label of a mixed image stays hard and the
classifier is trained exactly as with real images. A class of a single image has nothing to mix
with: its images are copies (random oversampling), with a warning and a record in `fallbacks_`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import param
from .base import MethodSpec, SampleBatch
from .classic import _RecordsFallbacks
from .registry import register


@dataclass
class MixParams:
    lam: float = param(0.6, "Share of the first parent (Mixup: pixel weight; CutMix: area kept).",
                       min=0.0, max=1.0)


def _pairs(pool: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two different parents per image; a pool of at least two images (`_MixSampler._single` handles one)."""
    a = rng.choice(pool, size=n, replace=True)
    # a different second parent: shift by a random non-zero offset inside the pool
    pos = np.searchsorted(pool, a)
    b = pool[(pos + rng.integers(1, len(pool), size=n)) % len(pool)]
    return a, b


class _MixSampler(_RecordsFallbacks):
    method_name = ""   # each sampler names itself (in warnings and fallbacks_)

    def _single(self, class_name: str, pool: np.ndarray, n: int) -> SampleBatch:
        """A class of one image: mixing it with itself would silently copy it; copy it and say so."""
        why = f"only {len(pool)} image(s), nothing to mix with"
        self.fallbacks_.append({"method": self.method_name, "class": class_name, "requested": n,
                                "achieved_by_method": 0, "fallback": "random_oversample", "reason": why})
        self.ctx.reporter.warn(f"{self.method_name} on class {class_name!r}: {why}; random_oversample made the "
                               f"remaining {n} of {n} images")
        pick = np.repeat(pool, n)
        return SampleBatch(self.images_[pick].copy(), [[self.sources_[i]] for i in pick])


class MixupSampler(_MixSampler):
    method_name = "mixup"

    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        if n <= 0:
            return self._empty()
        pool = self._pool(class_name)
        if len(pool) < 2:
            return self._single(class_name, pool, n)
        rng = np.random.default_rng(seed)
        a, b = _pairs(pool, n, rng)
        lam = self.params.lam
        mixed = lam * self.images_[a].astype(np.float32) + (1 - lam) * self.images_[b].astype(np.float32)
        imgs = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        return SampleBatch(imgs, [[self.sources_[i], self.sources_[j]] for i, j in zip(a, b)])


class CutMixSampler(_MixSampler):
    method_name = "cutmix"

    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        if n <= 0:
            return self._empty()
        pool = self._pool(class_name)
        if len(pool) < 2:
            return self._single(class_name, pool, n)
        rng = np.random.default_rng(seed)
        a, b = _pairs(pool, n, rng)
        imgs = self.images_[a].copy()
        h, w = imgs.shape[1:3]
        cut = np.sqrt(1.0 - self.params.lam)          # box side ratio: box area = (1 - lam)
        bh, bw = int(round(h * cut)), int(round(w * cut))
        for k in range(n):
            y = int(rng.integers(0, h - bh + 1))
            x = int(rng.integers(0, w - bw + 1))
            imgs[k, y:y + bh, x:x + bw] = self.images_[b[k], y:y + bh, x:x + bw]
        return SampleBatch(imgs, [[self.sources_[i], self.sources_[j]] for i, j in zip(a, b)])


register(MethodSpec(
    name="mixup", family="mixing", paper="Zhang et al. 2018, Mixup (within-class, lambda 0.6)",
    summary="Pixel-wise blend of two real images of the same class.",
    params_cls=MixParams, sampler_cls=MixupSampler))
register(MethodSpec(
    name="cutmix", family="mixing", paper="Yun et al. 2019, CutMix (within-class, lambda 0.6)",
    summary="A box of one real image pasted into another of the same class.",
    params_cls=MixParams, sampler_cls=CutMixSampler))
