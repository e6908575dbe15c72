"""`ImageSet`: the one in-memory form of a labelled image collection, real or synthetic.

images  uint8 [N, H, W, C] (C = 1 for grayscale, 3 for RGB)
labels  int64 [N], indexes into `classes`
classes list[str], the class names in a fixed order (sorted folder names)
sources list[str], one per image: the original relative path of a real image, or
        `synthetic:<method>:<seed>:<parent ids joined by '|'>` for a generated one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def synthetic_source(method: str, seed: int, parents: list[str] | tuple[str, ...] = ()) -> str:
    """Provenance string of one synthetic image."""
    return f"synthetic:{method}:{seed}:{'|'.join(parents)}"


@dataclass
class ImageSet:
    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 [N,H,W,C], got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")
        if not self.sources:
            self.sources = [f"#{i}" for i in range(len(self.images))]
        if len(self.sources) != len(self.images):
            raise ValueError("sources and images differ in length")
        self.classes = list(self.classes)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        binc = np.bincount(self.labels, minlength=len(self.classes))
        return {c: int(binc[i]) for i, c in enumerate(self.classes)}

    def class_index(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            raise KeyError(f"unknown class {name!r}; classes are {self.classes}") from None

    def subset(self, idx) -> "ImageSet":
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(self.images[idx], self.labels[idx], self.classes, [self.sources[i] for i in idx])

    def of_class(self, name: str) -> "ImageSet":
        return self.subset(np.flatnonzero(self.labels == self.class_index(name)))

    @staticmethod
    def concat(sets: list["ImageSet"]) -> "ImageSet":
        sets = [s for s in sets if s is not None]
        if not sets:
            raise ValueError("nothing to concatenate")
        classes = sets[0].classes
        for s in sets[1:]:
            if s.classes != classes:
                raise ValueError("cannot concatenate image sets with different classes")
        nonempty = [s for s in sets if len(s)]
        if not nonempty:
            return sets[0]
        return ImageSet(np.concatenate([s.images for s in nonempty]),
                        np.concatenate([s.labels for s in nonempty]), classes,
                        [src for s in nonempty for src in s.sources])

    @staticmethod
    def empty(classes: list[str], shape: tuple[int, int, int]) -> "ImageSet":
        return ImageSet(np.zeros((0, *shape), np.uint8), np.zeros(0, np.int64), classes, [])
