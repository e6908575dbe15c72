"""Mixup and CutMix inside one class (lambda 0.6 by default, as in the diffusion paper's baselines), and CMO.

Mixup and CutMix take both parents from the same class, so the label of a mixed image stays hard and the
classifier is trained exactly as with real images. A class of a single image has nothing to mix
with: its images are copies (random oversampling), with a warning and a record in `fallbacks_`.

CMO (Park et al., CVPR 2022, "The Majority Can Help the Minority: Context-rich Minority Oversampling"):
a CutMix box of a defect image pasted onto a random normal image, the box's area drawn from Beta(1, 1).
The box may miss the defect, so the image is labelled by area: `SampleBatch.targets` holds its class shares
(box area on the defect class, the rest on the normal class) and the classifier trains on them
(`ImageSet.targets`). It counts as an image of the defect class (balancing, files).
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


# --- CMO: a defect box on a normal background, labelled by area --------------------------------------
@dataclass
class CMOParams:
    alpha: float = param(1.0, "Beta(alpha, alpha) draws the share of the image the defect box covers (1: uniform, "
                              "as in CMO and CutMix).", min=0.05, max=10.0)


def normal_pool(labels: np.ndarray, classes: list[str], normal_class: str | None) -> tuple[int, np.ndarray]:
    """(class index, image indexes) of the backgrounds: the run's normal class, else the largest class."""
    counts = np.bincount(labels, minlength=len(classes))
    k = classes.index(normal_class) if normal_class in classes else int(counts.argmax())
    return k, np.flatnonzero(labels == k)


def cutmix_box(h: int, w: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """CutMix's box (Yun et al. 2019, rand_bbox): side ratio sqrt(1 - lam), centre uniform, clipped to the image.
    Returns (y0, y1, x0, x1)."""
    cut = np.sqrt(1.0 - lam)
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    return (int(np.clip(cy - bh // 2, 0, h)), int(np.clip(cy + bh // 2, 0, h)),
            int(np.clip(cx - bw // 2, 0, w)), int(np.clip(cx + bw // 2, 0, w)))


class CMOSampler(_RecordsFallbacks):
    method_name = "cmo"

    @classmethod
    def check_data(cls, params, counts, normal_class, needed=None):
        if len([c for c, n in counts.items() if n > 0]) < 2:
            return "pastes defect boxes onto normal images, and this training set has a single class"
        return None

    def fit(self, train, needed):
        super().fit(train, needed)
        self.normal_, _ = normal_pool(self.labels_, self.classes_, self.ctx.normal_class)
        return self

    def set_state(self, tensors, meta):
        super().set_state(tensors, meta)
        self.normal_ = int(meta["normal"])

    def get_state(self):
        tensors, meta = super().get_state()
        return tensors, {**meta, "normal": self.normal_}

    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        if n <= 0:
            return self._empty()
        pool = self._pool(class_name)
        backgrounds = np.flatnonzero(self.labels_ == self.normal_)
        if len(pool) < 2:
            self.ctx.reporter.warn(f"cmo on class {class_name!r}: only {len(pool)} training image; every one of its "
                                   f"{n} boxes comes from it")
        rng = np.random.default_rng(seed)
        a = rng.choice(pool, size=n, replace=True)
        b = rng.choice(backgrounds, size=n, replace=True)
        h, w = self.images_.shape[1:3]
        imgs = self.images_[b].copy()
        masks = np.zeros((n, h, w), np.uint8)
        targets = np.zeros((n, len(self.classes_)), np.float32)
        k_defect = self.classes_.index(class_name)
        details = []
        for k in range(n):
            y0, y1, x0, x1 = cutmix_box(h, w, float(rng.beta(self.params.alpha, self.params.alpha)), rng)
            imgs[k, y0:y1, x0:x1] = self.images_[a[k], y0:y1, x0:x1]
            masks[k, y0:y1, x0:x1] = 255
            share = (y1 - y0) * (x1 - x0) / (h * w)          # the label follows the area actually pasted
            targets[k, self.normal_] += 1.0 - share
            targets[k, k_defect] += share
            details.append({"defect_source": self.sources_[a[k]], "background": self.sources_[b[k]],
                            "position": f"{x0},{y0},{x1 - x0},{y1 - y0}", "transform": "", "mask_from": "box",
                            "source_box": f"{x0},{y0},{x1 - x0},{y1 - y0}"})
        return SampleBatch(imgs, [[self.sources_[i], self.sources_[j]] for i, j in zip(a, b)], targets, masks,
                           details)


register(MethodSpec(
    name="cmo", family="mixing", provenance="transplant",
    paper="Park et al. CVPR 2022, CMO: context-rich minority oversampling (CutMix box, lambda ~ Beta(1, 1))",
    summary="A box of a real defect image pasted onto a random real normal image, labelled by area (soft "
            "targets): the defect seen on many surfaces. Seconds; no training. On magnetic_tile, whose defects "
            "cover 0.2-2% of a tile, it fell behind the strongest baseline (-0.110 with whole tiles held out, "
            "5 folds x 3 seeds).",
    params_cls=CMOParams, sampler_cls=CMOSampler))
