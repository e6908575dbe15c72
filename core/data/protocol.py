"""The evaluation protocol: the test split, K folds, the simulated imbalance, balance targets and the normal class.
"""
from __future__ import annotations

import math
import numbers
import re
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, ParamError
from ..imageset import ImageSet

# --------------------------------------------------------------------------------------------------
# split, imbalance, targets
# --------------------------------------------------------------------------------------------------
def _class_rng(seed: int, name: str) -> np.random.Generator:
    # Seeded per class by name, so one class's draw does not change when another class is added.
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def _test_count(n: int, test_per_class: int | float) -> int:
    """Test images a class of `n` images gives: int k -> min(k, n // 2); fraction f -> min(round(f n), n // 2)."""
    k = int(test_per_class) if isinstance(test_per_class, numbers.Integral) else int(round(float(test_per_class) * n))
    return min(k, n // 2)


def _check_test_per_class(test_per_class) -> None:
    if isinstance(test_per_class, bool) or not isinstance(test_per_class, numbers.Real):
        raise ParamError(f"test_per_class must be a count (e.g. 20) or a fraction in (0, 1), got {test_per_class!r}")
    if isinstance(test_per_class, numbers.Integral) and test_per_class <= 0:
        raise ParamError(f"test_per_class must be at least 1 image per class, got {test_per_class}")
    if not isinstance(test_per_class, numbers.Integral) and not (0 < float(test_per_class) < 1):
        raise ParamError(f"a fractional test_per_class must be between 0 and 1 (exclusive), got {test_per_class}; "
                         "use a whole number for a count per class")


def _all_single(groups) -> bool:
    return groups is None or len(set(np.asarray(groups).tolist())) == len(groups)


def _check_groups(ds: ImageSet, groups) -> np.ndarray | None:
    """Group ids as an int array (None when every image is its own group: the per-image draws of old)."""
    if groups is None:
        return None
    if len(groups) != len(ds):
        raise ValueError(f"groups must name one group per image ({len(ds)}), got {len(groups)}")
    if _all_single(groups):
        return None
    _, ids = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)
    return ids.astype(np.int64)


def _class_groups(idx: np.ndarray, gid: np.ndarray) -> list[np.ndarray]:
    """The images `idx` (of one class) by group, groups in order of first image."""
    order: dict[int, list[int]] = {}
    for i in idx:
        order.setdefault(int(gid[i]), []).append(int(i))
    return [np.asarray(v, np.int64) for v in order.values()]


def _take_groups(parts: list[np.ndarray], k: int, rng: np.random.Generator, taken: set[int] | None = None,
                 gid: np.ndarray | None = None, already: int = 0, keep_one: bool = True) -> list[np.ndarray]:
    """Whole groups (`parts`, each the images of one class in one group), in a random order fixed by `rng`,
    taken while they bring the count closer to `k` (starting from `already`); with `keep_one` at least one
    group is left out. Groups in `taken` (by id) are skipped."""
    chosen: list[np.ndarray] = []
    have = already
    left = len(parts)
    for p in (parts[i] for i in rng.permutation(len(parts))):
        if have >= k:
            break
        if taken is not None and gid is not None and int(gid[p[0]]) in taken:
            continue
        if keep_one and left <= 1:
            break
        if abs(have + len(p) - k) < abs(have - k) or have + len(p) <= k:
            chosen.append(p)
            have += len(p)
            left -= 1
    return chosen


def split(ds: ImageSet, test_per_class: int | float = 20, seed: int = 0,
          groups=None) -> tuple[ImageSet, ImageSet]:
    """(train_pool, test), stratified and fixed by `seed`; both keep the original image order.

    int k: min(k, n // 2) test images per class; float f in (0, 1): round(f * n), capped at n // 2.
    A class of one image keeps it in train (0 test images).
    `groups` (one name per image, `core.data.groups`): whole groups go to one side; per class, groups in a
    random order are taken while they bring the class's test count closer to k (at least one group stays in
    training), so the count is as close to k as the groups allow. A group holding images of several classes
    goes to test with all of them. Without groups (or all single images) it is the per-image draw.
    """
    _check_test_per_class(test_per_class)
    gid = _check_groups(ds, groups)
    test_idx: list[np.ndarray] = []
    taken: set[int] = set()
    for ci, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.labels == ci)
        k = _test_count(len(idx), test_per_class)
        if not k:
            continue
        rng = _class_rng(seed, name)
        if gid is None:
            test_idx.append(idx[rng.permutation(len(idx))[:k]])
            continue
        in_test = np.flatnonzero(np.isin(gid[idx], list(taken))) if taken else np.zeros(0, np.int64)
        parts = [p for p in _class_groups(idx, gid) if int(gid[p[0]]) not in taken]
        for p in _take_groups(parts, k, rng, already=len(in_test), keep_one=True):
            taken.add(int(gid[p[0]]))
    if gid is not None and taken:
        test_idx.append(np.flatnonzero(np.isin(gid, list(taken))))
    chosen = np.unique(np.concatenate(test_idx)) if test_idx else np.zeros(0, np.int64)
    mask = np.zeros(len(ds), bool)
    mask[chosen] = True
    return ds.subset(np.flatnonzero(~mask)), ds.subset(np.flatnonzero(mask))


def fold_split(ds: ImageSet, folds: int, seed: int = 0, groups=None) -> list[tuple[ImageSet, ImageSet]]:
    """Stratified K-fold: [(train_pool, test)] per fold, every image in exactly one fold's test part. Each
    class's images are shuffled (fixed by `seed`, per class by name) and dealt into `folds` parts of sizes
    that differ by at most one; a class with fewer images than folds is missing from some test parts.
    With `groups` (not all single images): scikit-learn's StratifiedGroupKFold (shuffled by `seed`): no group
    in two folds, each fold's class shares as close to the whole's as the groups allow."""
    if isinstance(folds, bool) or not isinstance(folds, numbers.Integral) or folds < 2:
        raise ParamError(f"folds must be a whole number of at least 2, got {folds!r}")
    gid = _check_groups(ds, groups)
    parts: list[list[np.ndarray]] = [[] for _ in range(folds)]
    if gid is None:
        for ci, name in enumerate(ds.classes):
            idx = np.flatnonzero(ds.labels == ci)
            for k, chunk in enumerate(np.array_split(idx[_class_rng(seed, name).permutation(len(idx))], folds)):
                parts[k].append(chunk)
    else:
        from sklearn.model_selection import StratifiedGroupKFold
        n_groups = len(np.unique(gid))
        if n_groups < folds:
            raise ParamError(f"{folds} folds need at least {folds} groups of images; the data has {n_groups} "
                             "(use fewer folds, or --groups none to split single images)")
        import warnings
        with warnings.catch_warnings():      # "The least populated class has fewer members than n_splits"
            warnings.simplefilter("ignore", UserWarning)
            cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=int(seed) & 0xFFFFFFFF)
            for k, (_, test) in enumerate(cv.split(np.zeros(len(ds)), ds.labels, gid)):
                parts[k].append(np.asarray(test, np.int64))
    out = []
    for k in range(folds):
        test = np.sort(np.concatenate(parts[k])) if parts[k] else np.zeros(0, np.int64)
        mask = np.zeros(len(ds), bool)
        mask[test] = True
        out.append((ds.subset(np.flatnonzero(~mask)), ds.subset(test)))
    return out


def _check_ratio(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < float(value) <= 1):
        raise ParamError(f"{what} must be in (0, 1], e.g. 0.1 for one minority image per ten majority images; "
                         f"got {value!r}")
    return float(value)


# Words of a class name that say "no defect" (MT_Free, good, OK, pass, defect_free, no_defect), unless the
# name also says the opposite (not_ok, no_good, fail).
NORMAL_WORDS = frozenset({"normal", "good", "ok", "okay", "free", "success", "successful", "pass", "passed",
                          "clean", "intact", "nominal", "nodefect", "defectfree", "nodefects"})
NEGATIONS = frozenset({"not", "no", "non", "bad", "ng", "nok", "fail", "failed", "failure"})
_WORD = re.compile(r"[a-z]+")


def _says_normal(name: str) -> bool:
    words = set(_WORD.findall(name.lower()))
    return "".join(_WORD.findall(name.lower())) in NORMAL_WORDS or (bool(words & NORMAL_WORDS)
                                                                    and not words & NEGATIONS)


def detect_normal_class(counts: dict[str, int]) -> str:
    """The class that holds the normal (defect-free) images: one named like normal / good / ok / free /
    success / pass (the largest of them if several are), else the largest class."""
    if not counts:
        raise DataError("the dataset has no classes")
    pool = [c for c in counts if _says_normal(c)] or list(counts)
    return max(pool, key=lambda c: counts[c])      # first in class order on ties


def resolve_normal_class(counts: dict[str, int], requested: str | None) -> str:
    """`requested` when it is one of the classes (ParamError otherwise), else `detect_normal_class`."""
    if requested in (None, "", "auto"):
        return detect_normal_class(counts)
    if requested not in counts:
        raise ParamError(f"unknown normal class {requested!r}; the classes are {', '.join(counts)}")
    return requested


def normal_class_guessed(counts: dict[str, int], requested: str | None) -> bool:
    """Whether the normal class is a guess: none was named (`requested` empty or "auto") and no class is named
    like normal / good / ok / free / pass, so the largest class was taken."""
    return requested in (None, "", "auto") and bool(counts) and not any(_says_normal(c) for c in counts)


def normal_class_note(counts: dict[str, int], requested: str | None) -> str | None:
    """What to tell the user when the normal class is a guess (`normal_class_guessed`), else None."""
    if not normal_class_guessed(counts, requested):
        return None
    normal = detect_normal_class(counts)
    return (f"No class is named like normal, good, ok, free or pass, so the largest class, {normal} "
            f"({counts[normal]:,} images), was taken as the normal (defect-free) class: it is kept whole when the "
            "imbalance is simulated, and translation methods (cyclegan, ddpm_translate) would turn its images "
            "into defects. Name the normal class if it is another one, or confirm it.")


def imbalance_cap(counts: dict[str, int], ratio: float, normal_class: str) -> int:
    """Most images a defect class keeps: max(1, floor(ratio x normal count))."""
    # The epsilon keeps 0.29 * 100 (= 28.999999999999996 in floating point) at 29.
    return max(1, math.floor(_check_ratio(ratio, "ratio") * counts[normal_class] + 1e-9))


def simulate_imbalance(ds: ImageSet, ratio: float, seed: int = 0, normal_class: str | None = None,
                       groups=None) -> ImageSet:
    """Keep the normal class whole; cut every defect class to at most max(1, floor(ratio x normal count)).

    The normal class is the one named (else `detect_normal_class`): it is kept whole even when it is not
    the largest class, so a set with more defect than normal images still gets rare defects. Which images
    are kept is a random subset fixed by `seed`; the result keeps the original image order.
    `groups` (one name per image of ds): a defect class is cut by whole groups (few defective parts, each
    photographed several times): groups in a random order are kept while they bring the count closer to the
    cap, at least one.
    """
    counts = ds.counts()
    if not ds.classes:
        return ds
    normal = resolve_normal_class(counts, normal_class)
    cap = imbalance_cap(counts, ratio, normal)
    gid = _check_groups(ds, groups)
    keep: list[np.ndarray] = []
    for ci, name in enumerate(ds.classes):
        idx = np.flatnonzero(ds.labels == ci)
        if name != normal and len(idx) > cap:
            if gid is None:
                idx = _class_rng(seed, name).choice(idx, size=cap, replace=False)
            else:
                parts = _class_groups(idx, gid)
                rng = _class_rng(seed, name)
                chosen = _take_groups(parts, cap, rng, keep_one=False)
                if not chosen:                # every group is larger than twice the cap: keep the smallest
                    chosen = [min(parts, key=len)]
                idx = np.concatenate(chosen)
        keep.append(idx)
    return ds.subset(np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64))


def balance_targets(counts: dict[str, int], target_ratio: float = 1.0) -> dict[str, int]:
    """Synthetic images each class needs to reach ceil(target_ratio * largest count); 0 when already there."""
    target_ratio = _check_ratio(target_ratio, "target_ratio")
    for name, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ParamError(f"class counts must be whole numbers >= 0, got {n!r} for {name!r}")
    if not counts:
        return {}
    # The epsilon keeps 0.7 * 10 (= 7.000000000000001) at 7 instead of 8.
    target = math.ceil(target_ratio * max(counts.values()) - 1e-9)
    return {name: max(0, target - int(n)) for name, n in counts.items()}


@dataclass
class ProtocolCounts:
    """What a run's protocol does to each class, from the class counts alone (no image is read):
    the real test images held out, the training pool, what the simulated imbalance keeps, and the
    synthetic images each class then needs. `split` + `simulate_imbalance` + `balance_targets` give
    exactly these counts, so a preview (the Data and Synthesize pages, the memory check) is the run."""
    normal_class: str
    images: dict[str, int]
    test: dict[str, int]
    pool: dict[str, int]
    train: dict[str, int]
    needed: dict[str, int]

    def rows(self) -> list[dict]:
        return [{"class": c, "normal": c == self.normal_class, "images": self.images[c], "test": self.test[c],
                 "train": self.train[c], "synthetic": self.needed[c]} for c in self.images]


def protocol_counts(counts: dict[str, int], test_per_class: int | float = 20, ratio: float | None = None,
                    normal_class: str | None = None, target_ratio: float = 1.0) -> ProtocolCounts:
    """Per class: test images, training pool, after the imbalance (ratio None: none), synthetic needed."""
    _check_test_per_class(test_per_class)
    normal = resolve_normal_class(counts, normal_class)
    test = {c: _test_count(n, test_per_class) for c, n in counts.items()}
    pool = {c: n - test[c] for c, n in counts.items()}
    train = dict(pool)
    if ratio is not None:
        cap = imbalance_cap(pool, ratio, normal)
        train = {c: (n if c == normal else min(n, cap)) for c, n in pool.items()}
    return ProtocolCounts(normal, dict(counts), test, pool, train, balance_targets(train, target_ratio))


