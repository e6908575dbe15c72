"""`ImageSet`: the one in-memory form of a labelled image collection, real or synthetic.

images  uint8 [N, H, W, C] (C = 1 for grayscale, 3 for RGB)
labels  int64 [N], indexes into `classes`
classes list[str], the class names in a fixed order (sorted folder names)
sources list[str], one per image: the original relative path of a real image, or
        `synthetic:<method>:<seed>:<parent ids joined by '|'>` for a generated one.
targets float32 [N, K] or None: each image's share of each class, for images that mix classes (`cmo` pastes
        a defect box onto a normal image and labels it by area); rows sum to 1. None: every image is wholly
        its label's class. `labels` stays the class the image counts for (what balancing and files use).
masks   uint8 [N, H, W] or None: the dataset's own defect masks (0/255; all zero for an image without one),
        read from the upload (core.data.folder) and used by defect_paste instead of finding the defect itself.
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
    targets: np.ndarray | None = None
    masks: np.ndarray | None = None

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
        if self.targets is not None:
            self.targets = np.asarray(self.targets, dtype=np.float32)
            if self.targets.shape != (len(self.images), len(self.classes)):
                raise ValueError(f"targets must be [N, K] = {(len(self.images), len(self.classes))}, "
                                 f"got {self.targets.shape}")
            if len(self.targets) and not np.allclose(self.targets.sum(1), 1.0, atol=1e-3):
                raise ValueError("each row of targets must sum to 1 (class shares of one image)")

    def has_masks(self) -> int:
        """How many images carry a mask of their own."""
        return 0 if self.masks is None else int(self.masks.reshape(len(self.masks), -1).any(axis=1).sum())

    def soft_targets(self) -> np.ndarray:
        """[N, K] class shares of every image: `targets`, or one-hot rows of `labels`."""
        if self.targets is not None:
            return self.targets
        return np.eye(len(self.classes), dtype=np.float32)[self.labels] if len(self.labels) else \
            np.zeros((0, len(self.classes)), np.float32)

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
        return ImageSet(self.images[idx], self.labels[idx], self.classes, [self.sources[i] for i in idx],
                        None if self.targets is None else self.targets[idx],
                        None if self.masks is None else self.masks[idx])

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
        # one set with class shares gives the whole result shares (one-hot rows for the others)
        targets = (np.concatenate([s.soft_targets() for s in nonempty])
                   if any(s.targets is not None for s in nonempty) else None)
        masks = (np.concatenate([s.masks if s.masks is not None else np.zeros(s.images.shape[:3], np.uint8)
                                 for s in nonempty]) if any(s.masks is not None for s in nonempty) else None)
        return ImageSet(np.concatenate([s.images for s in nonempty]),
                        np.concatenate([s.labels for s in nonempty]), classes,
                        [src for s in nonempty for src in s.sources], targets, masks)

    @staticmethod
    def empty(classes: list[str], shape: tuple[int, int, int]) -> "ImageSet":
        return ImageSet(np.zeros((0, *shape), np.uint8), np.zeros(0, np.int64), classes, [])
