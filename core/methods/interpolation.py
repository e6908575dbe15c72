"""SMOTE, Borderline-SMOTE and ADASYN from imbalanced-learn, on flattened pixels (as the paper does).

Each call to `sample(class, n, seed)` runs the imblearn sampler with `sampling_strategy={class:
count + n}` over the whole training set (Borderline-SMOTE and ADASYN need the other classes to find
the border), then keeps the `n` new rows. `k_neighbors` is clamped to the class size. Known library
failures fall back for that class only, with a warning and a record in `fallbacks_`:
  ADASYN "no samples will be generated" / fewer than asked  -> SMOTE tops up the rest
  Borderline-SMOTE with no border ("danger") sample          -> SMOTE tops up the rest
  SMOTE on a class of 1-2 images                             -> random oversampling
Parents: a SMOTE-family image lies on the segment between two real images of its class; we find
that pair (the nearest segment among the nearest real images) so every image keeps its provenance.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..params import param
from .base import MethodSpec, SampleBatch
from .classic import _RecordsFallbacks
from .registry import register

MIN_SMOTE_CLASS = 3  # below this, interpolation has nothing meaningful to interpolate


@dataclass
class SmoteParams:
    k_neighbors: int = param(5, "Neighbours of the same class to interpolate towards "
                                "(clamped to class size - 1).", min=1, max=100)


@dataclass
class BorderlineParams:
    k_neighbors: int = param(5, "Neighbours of the same class to interpolate towards.", min=1, max=100)
    m_neighbors: int = param(10, "Neighbours (all classes) that decide whether an image is on the border.",
                             min=1, max=100)
    kind: str = param("borderline-1", "borderline-1 interpolates within the class; borderline-2 also "
                                      "towards other classes.", choices=["borderline-1", "borderline-2"])


@dataclass
class AdasynParams:
    n_neighbors: int = param(5, "Neighbours used to weight hard examples and to interpolate.",
                             min=1, max=100)


def _segment_parents(synth: np.ndarray, real: np.ndarray, sources: list[str], top: int = 8) -> list[list[str]]:
    """For each synthetic row, the two real rows whose segment passes closest to it."""
    out: list[list[str]] = []
    real = real.astype(np.float32)
    for s in synth.astype(np.float32):
        d = np.linalg.norm(real - s, axis=1)
        cand = np.argsort(d)[: min(top, len(real))]
        if len(cand) == 1:
            out.append([sources[cand[0]]])
            continue
        best, best_pair = np.inf, (cand[0], cand[1])
        for i, j in combinations(cand, 2):
            seg = real[j] - real[i]
            denom = float(seg @ seg)
            t = 0.0 if denom == 0 else float(np.clip((s - real[i]) @ seg / denom, 0.0, 1.0))
            dist = float(np.linalg.norm(real[i] + t * seg - s))
            if dist < best:
                best, best_pair = dist, (i, j)
        out.append([sources[best_pair[0]], sources[best_pair[1]]])
    return out


class _ImblearnSampler(_RecordsFallbacks):
    """Common part: run one imblearn over-sampler for one class, fall back when it cannot."""

    method_name = "smote"

    def _run(self, maker, c: int, n: int, X: np.ndarray) -> np.ndarray:
        counts = np.bincount(self.labels_, minlength=len(self.classes_))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Xr, _ = maker(c, {c: int(counts[c]) + n}).fit_resample(X, self.labels_)
        return Xr[len(X):]

    def _smote(self, c: int, n: int, X: np.ndarray, seed: int) -> np.ndarray:
        from imblearn.over_sampling import SMOTE
        k = max(1, min(self.params.k_neighbors if hasattr(self.params, "k_neighbors") else 5,
                       int((self.labels_ == c).sum()) - 1))
        return self._run(lambda c_, strat: SMOTE(sampling_strategy=strat, k_neighbors=k,
                                                 random_state=seed), c, n, X)

    def _note(self, class_name: str, requested: int, achieved: int, fallback: str, why: str) -> None:
        msg = (f"{self.method_name} on class {class_name!r}: {why}; {fallback} made the remaining "
               f"{requested - achieved} of {requested} images")
        self.fallbacks_.append({"method": self.method_name, "class": class_name, "requested": requested,
                                "achieved_by_method": achieved, "fallback": fallback, "reason": why})
        self.ctx.reporter.warn(msg)

    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        if n <= 0:
            return self._empty()
        c = self.classes_.index(class_name)
        idx = self._pool(class_name)
        shape = self.images_.shape[1:]
        X = self.images_.reshape(len(self.images_), -1).astype(np.float32)
        rng_seed = int(seed) * 1009 + c
        rows = np.zeros((0, X.shape[1]), np.float32)
        if len(idx) < MIN_SMOTE_CLASS:
            self._note(class_name, n, 0, "random_oversample",
                       f"only {len(idx)} image(s), too few to interpolate")
            rng = np.random.default_rng(rng_seed)
            pick = rng.choice(idx, size=n, replace=True)
            return SampleBatch(self.images_[pick].copy(), [[self.sources_[i]] for i in pick])
        try:
            rows = self._own(c, n, X, rng_seed)
            why = "the library generated fewer images than asked"
        except (RuntimeError, ValueError) as err:   # e.g. ADASYN: "No samples will be generated"
            rows, why = rows[:0], f"the library refused ({str(err).splitlines()[0][:160]})"
        rows = rows[:n]
        if len(rows) < n:
            extra = self._smote(c, n - len(rows), X, rng_seed + 7)
            self._note(class_name, n, len(rows), "smote", why)
            rows = np.concatenate([rows, extra[: n - len(rows)]])
        imgs = np.clip(np.rint(rows), 0, 255).astype(np.uint8).reshape(n, *shape)
        parents = _segment_parents(rows, X[idx], [self.sources_[i] for i in idx])
        return SampleBatch(imgs, parents)

    def _own(self, c: int, n: int, X: np.ndarray, seed: int) -> np.ndarray:
        return self._smote(c, n, X, seed)


class SmoteSampler(_ImblearnSampler):
    method_name = "smote"


class BorderlineSmoteSampler(_ImblearnSampler):
    method_name = "borderline_smote"

    def _own(self, c, n, X, seed):
        from imblearn.over_sampling import BorderlineSMOTE
        n_c = int((self.labels_ == c).sum())
        k = max(1, min(self.params.k_neighbors, n_c - 1))
        m = max(1, min(self.params.m_neighbors, len(X) - 1))
        return self._run(lambda c_, strat: BorderlineSMOTE(
            sampling_strategy=strat, k_neighbors=k, m_neighbors=m, kind=self.params.kind,
            random_state=seed), c, n, X)


class AdasynSampler(_ImblearnSampler):
    method_name = "adasyn"

    def _smote(self, c, n, X, seed):
        from imblearn.over_sampling import SMOTE
        k = max(1, min(self.params.n_neighbors, int((self.labels_ == c).sum()) - 1))
        return self._run(lambda c_, strat: SMOTE(sampling_strategy=strat, k_neighbors=k,
                                                 random_state=seed), c, n, X)

    def _own(self, c, n, X, seed):
        from imblearn.over_sampling import ADASYN
        k = max(1, min(self.params.n_neighbors, int((self.labels_ == c).sum()) - 1))
        return self._run(lambda c_, strat: ADASYN(sampling_strategy=strat, n_neighbors=k,
                                                  random_state=seed), c, n, X)


register(MethodSpec(
    name="smote", family="interpolation", paper="Chawla et al. 2002, SMOTE (imbalanced-learn)",
    summary="New images on the line between a real minority image and one of its k nearest "
            "neighbours of the same class, on raw pixels. Safer than GANs below ~10 images per class.",
    params_cls=SmoteParams, sampler_cls=SmoteSampler))
register(MethodSpec(
    name="borderline_smote", family="interpolation",
    paper="Han et al. 2005, Borderline-SMOTE (imbalanced-learn)",
    summary="SMOTE only from minority images near the class border (their neighbours are mostly of "
            "other classes).",
    params_cls=BorderlineParams, sampler_cls=BorderlineSmoteSampler))
register(MethodSpec(
    name="adasyn", family="interpolation", paper="He et al. 2008, ADASYN (imbalanced-learn)",
    summary="SMOTE weighted towards minority images that are hard to learn (many neighbours of "
            "other classes).",
    params_cls=AdasynParams, sampler_cls=AdasynSampler))
