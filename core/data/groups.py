"""Groups: which images show the same physical part, so that no part is on both sides of a split.

A group is a set of images that must stay together (in training, or in the test part): the same part under
other lighting, exposure, a small shift or re-encoding, or the same file uploaded twice. Every split of the
protocol (`protocol.split`, `protocol.fold_split`, `protocol.simulate_imbalance`) takes whole groups.

    grouping = find_groups(ds, "auto")             # or "none", "regex:part(\\d+)_", "csv:groups.csv", "frames:200"
    grouping.groups                                         # one group name per image of ds
    grouping.summary()                                      # images, groups, the largest groups, conflicts
    leakage(grouping, train.sources, test.sources)          # test images with a near-duplicate in training

Modes (`spec`):
  auto            near-duplicates found from the pixels alone (never the file names), within each class:
                  1. every image is read at 64 x 64 in gray;
                  2. candidates: its 3 nearest images of its class by an 8 x 8 thumbnail standardised to mean 0
                     and norm 1 (the correlation of small thumbnails: blind to brightness and contrast);
                  3. a candidate is a near-duplicate when the images' gradient orientations agree: each pixel's
                     gradient (after a Gaussian of sigma 1) as its doubled angle (cos 2a, sin 2a), weighted by its
                     magnitude over the local mean magnitude (a Gaussian of sigma 4); the cosine of two such fields
                     is 0.675 or more at the best of the shifts of up to 2 px either way. Blind to the light's
                     brightness, gradient and direction (shading that flips sign keeps its orientation) and, being
                     local, to an outline or background that every image shares;
                  3b. turned and flipped copies (an upload with the augmentation already applied): its 3 nearest
                     images by the thumbnail compared as they are and under the 7 turns and flips of a square; those
                     nearest under a turn are verified as in 3 against the candidate turned the same way;
                  4. near-duplicates are joined with union-find (a chain of exposures becomes one group).
                  Calibrated on magnetic_tile (`benchmarks/grouping_calibration.py`, benchmarks/RESULTS.md).
  regex:PATTERN   the first capture group (the whole match when it has none) of PATTERN searched in each
                  image's path in the upload (e.g. `regex:part(\\d+)_cam\\d`); images it does not match are their
                  own group; a pattern that matches no image is an error.
  csv:FILE        a table `file,group` (a header row with those names is optional); `file` is the path in the
                  upload (`crack/a.png`); images it does not name are their own group; a file it names that is
                  not in the dataset is an error.
  frames:GAP      numbered shots: within each class, images whose file names' last numbers (`exp3_num_4727.jpg`:
                  4727) lie within GAP of the previous one in order are one part (a burst of shots of one part,
                  e.g. magnetic_tile's frame numbers with `frames:200`); images with no number in their name are
                  their own group; a dataset with no numbered file name is an error.
  none            every image its own group (the split draws single images).
Whatever the mode, images with identical pixels are one group; identical pixels under two classes are listed
as label conflicts.
"""
from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, ParamError
from ..imageset import ImageSet

GROUP_SIZE = 64          # side in pixels at which `auto` compares images
COARSE_SIDE = 8          # the candidate thumbnail's side
NEIGHBOURS = 3           # candidates per image (its nearest of its class by the thumbnail)
THRESHOLD = 0.675        # orientation similarity from which a candidate is a near-duplicate
SHIFT = 2                # px either way the orientation fields may be shifted against each other
SIGMA_SMOOTH, SIGMA_LOCAL = 1.0, 4.0     # the blur before the gradient; the scale of the local mean magnitude
MODES = ("auto", "none", "regex", "csv", "frames")
METHOD = (f"auto: candidates = the {NEIGHBOURS} nearest images of the class by a {COARSE_SIDE}x{COARSE_SIDE} "
          f"standardised thumbnail; near-duplicate when their gradient orientations ({GROUP_SIZE} px, doubled angle, "
          f"magnitude over its local mean at sigma {SIGMA_LOCAL:g}) agree with a cosine >= {THRESHOLD:.3f} at the "
          f"best shift of up to {SHIFT} px (a candidate nearest when turned or flipped is verified turned); joined with "
          f"union-find")

# What `auto` cannot see (benchmarks/RESULTS.md, grouping_calibration: folds drawn by auto on magnetic_tile, read
# against the tiles named by its file names: 168 of 1,344 test images, 12.5%, kept an image of their own tile in
# training).
AUTO_LIMIT = ("Auto joins images that look alike; images of one part that look unlike each other (another side, or "
              "a light that changes the texture) can fall in two groups, and this count does not see them: on "
              "magnetic_tile 12.5% of the test images still had an image of their own tile in training. Where file "
              "names or a table say which part an image shows, groups regex: or csv: split more strictly.")


@dataclass
class Grouping:
    """The groups of a dataset's images (in `ImageSet` order) and how they were found."""
    spec: str
    sources: list[str]
    labels: list[int]
    classes: list[str]
    groups: list[str]
    edges: list[tuple[int, int]] = field(default_factory=list)   # near-duplicate pairs the detector found
    exact: list[list[int]] = field(default_factory=list)          # sets of images with identical pixels
    conflicts: list[list[str]] = field(default_factory=list)      # identical pixels under two classes (files)
    unassigned: int = 0          # regex / csv / frames: images the pattern, table or numbering left to themselves
    seconds: float = 0.0

    @property
    def mode(self) -> str:
        return parse_spec(self.spec)[0]

    @property
    def unassigned_why(self) -> str:
        """Which images the mode left to their own group, in words ("images {this} are each their own group")."""
        return {"regex": "that the pattern does not match", "csv": "that the table does not name",
                "frames": "with no number in their file name"}.get(self.mode, "not named")

    def ids(self) -> np.ndarray:
        """The groups as integers (0..G-1, numbered in order of first image)."""
        index: dict[str, int] = {}
        return np.array([index.setdefault(g, len(index)) for g in self.groups], dtype=np.int64)

    def sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for g in self.groups:
            out[g] = out.get(g, 0) + 1
        return out

    def by_source(self) -> dict[str, str]:
        return dict(zip(self.sources, self.groups))

    def largest(self, n: int = 5) -> list[dict]:
        """The n largest groups (more than one image): name, size, classes, files."""
        members: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups):
            members.setdefault(g, []).append(i)
        big = sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))[:n]
        return [{"group": self.groups[m[0]], "size": len(m), "files": [self.sources[i] for i in m],
                 "classes": sorted({self.classes[self.labels[i]] for i in m})} for m in big]

    def record(self) -> dict:
        """Everything, JSON-able (a run keeps it as groups.json); `Grouping.from_record` reads it back."""
        return {"spec": self.spec, "sources": self.sources, "labels": self.labels, "classes": self.classes,
                "groups": self.groups, "edges": [list(e) for e in self.edges], "exact": self.exact,
                "conflicts": self.conflicts, "unassigned": self.unassigned, "seconds": round(self.seconds, 3)}

    @staticmethod
    def from_record(d: dict) -> "Grouping":
        return Grouping(spec=d["spec"], sources=list(d["sources"]), labels=[int(x) for x in d["labels"]],
                        classes=list(d["classes"]), groups=list(d["groups"]),
                        edges=[(int(a), int(b)) for a, b in d.get("edges", [])], exact=d.get("exact", []),
                        conflicts=d.get("conflicts", []), unassigned=int(d.get("unassigned", 0)),
                        seconds=float(d.get("seconds", 0.0)))

    def to_dict(self) -> dict:
        sizes = self.sizes()
        merged = sum(s for s in sizes.values() if s > 1)
        return {"spec": self.spec, "mode": self.mode, "images": len(self.groups), "groups": len(sizes),
                "merged_images": merged, "largest": self.largest(), "exact_duplicates": sum(len(e) for e in self.exact),
                "conflicts": self.conflicts, "unassigned": self.unassigned, "seconds": round(self.seconds, 2),
                "method": METHOD if self.mode == "auto" else self.spec,
                "per_class": {c: len({g for g, l in zip(self.groups, self.labels) if l == ci})
                              for ci, c in enumerate(self.classes)}}

    def summary(self) -> str:
        d = self.to_dict()
        lines = [f"Groups ({self.spec}): {d['images']} images in {d['groups']} groups; {d['merged_images']} images "
                 f"share a group with another ({d['seconds']:.1f} s)"]
        if self.mode == "auto":
            lines.append(f"  method: {METHOD}")
        lines.append("  groups per class: " + ", ".join(f"{c} {n}" for c, n in d["per_class"].items()))
        if self.unassigned:
            lines.append(f"  {self.unassigned} images {self.unassigned_why} are each their own group")
        if d["exact_duplicates"]:
            lines.append(f"  {d['exact_duplicates']} images have identical pixels to another (always one group)")
        for g in d["largest"]:
            more = f", ... ({g['size'] - 4} more)" if g["size"] > 4 else ""
            lines.append(f"  largest: {g['size']} images ({', '.join(g['classes'])}): "
                         f"{', '.join(g['files'][:4])}{more}")
        if self.conflicts:
            lines.append(f"Label conflicts: identical pixels under two classes ({len(self.conflicts)}), "
                         "check their labels:")
            lines += [f"  {' == '.join(c)}" for c in self.conflicts]
        return "\n".join(lines)


def parse_spec(spec: str | None) -> tuple[str, str]:
    """("auto" | "none" | "regex" | "csv" | "frames", its argument); ParamError for anything else."""
    text = "auto" if spec in (None, "") else str(spec)
    mode, sep, arg = text.partition(":")
    mode = mode.strip().lower()
    if mode in ("auto", "none") and not arg:
        return mode, ""
    if mode in ("regex", "csv") and sep and arg:
        return mode, arg
    if mode == "frames" and sep:
        if not arg.strip().isdigit():
            raise ParamError(f"frames:GAP needs a whole number of frames, got {spec!r}; e.g. frames:200 (shots whose "
                             "numbers lie within 200 of the previous one are one part)")
        return mode, str(int(arg))
    raise ParamError(f"groups must be auto, none, regex:PATTERN, csv:FILE or frames:GAP, got {spec!r}; e.g. "
                     "regex:part(\\d+)_cam (the first capture group names the part), csv:groups.csv "
                     "(columns file,group) or frames:200 (numbered shots within 200 of each other)")


def check_spec(spec: str | None) -> str:
    """The spec, checked without any image: the mode is known, a regex compiles, a CSV file exists."""
    mode, arg = parse_spec(spec)
    if mode == "regex":
        _compile(arg)
    if mode == "csv" and not Path(arg).is_file():
        raise ParamError(f"groups table not found: {arg}; give a CSV file with columns file,group")
    return "auto" if spec in (None, "") else str(spec)


def check_on_files(spec: str | None, data) -> None:
    """Before anything is written: a `regex:` that matches none of the dataset's image files, a `csv:` that names a
    file not among them, or `frames:` where no file name holds a number, raises (ParamError / DataError). `data`: the
    dataset folder or zip."""
    mode, arg = parse_spec(check_spec(spec))
    if mode not in ("regex", "csv", "frames"):
        return
    from .sources import DatasetFiles
    with DatasetFiles(data) as files:
        sources = files.sources()
    if not sources:
        return                                    # the loader says what is wrong with the data itself
    if mode == "regex":
        _regex_groups(sources, arg)
    elif mode == "frames":
        _frames_groups(sources, [""] * len(sources), int(arg))     # here only: does any file name hold a number
    else:
        _csv_groups(sources, arg)


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ParamError(f"the groups pattern {pattern!r} is not a valid regular expression: {err}") from None


# --------------------------------------------------------------------------------------------------
# the modes
# --------------------------------------------------------------------------------------------------
def find_groups(ds: ImageSet, spec: str | None = "auto", images64: np.ndarray | None = None) -> Grouping:
    """The groups of `ds`'s images by `spec` (module docstring). `images64`: the same images at 64 x 64 (as
    `load_dataset(..., image_size=64)` gives them); made from `ds` when not given (a resize of the loaded
    images: the same groups when ds is 64 px)."""
    t0 = time.time()
    mode, arg = parse_spec(spec)
    n = len(ds)
    small = _gray64(ds.images if images64 is None else images64)
    if len(small) != n:
        raise ValueError("images64 must hold the same images as ds")
    edges = near_duplicate_edges(small, ds.labels)
    unassigned = 0
    if mode == "auto":
        names = [f"auto:{r}" for r in _components(n, edges)]
    elif mode == "none":
        names = list(ds.sources)
    elif mode == "regex":
        names, unassigned = _regex_groups(ds.sources, arg)
    elif mode == "frames":
        names, unassigned = _frames_groups(ds.sources, [ds.classes[y] for y in ds.labels], int(arg))
    else:
        names, unassigned = _csv_groups(ds.sources, arg)
    exact, conflicts = _exact_duplicates(ds, small)
    if exact:                                        # identical pixels: always one group
        parent = list(range(n))
        by_name: dict[str, int] = {}
        for i in range(n):                           # the groups as they are ...
            _union(parent, by_name.setdefault(names[i], i), i)
        for members in exact:                        # ... joined through identical images
            for i in members[1:]:
                _union(parent, members[0], i)
        first: dict[int, str] = {}                   # a joined group takes its first image's name
        for i in range(n):
            first.setdefault(_find(parent, i), names[i])
        names = [first[_find(parent, i)] for i in range(n)]
    return Grouping(spec=mode if not arg else f"{mode}:{arg}", sources=list(ds.sources), labels=ds.labels.tolist(),
                    classes=list(ds.classes), groups=names, edges=edges, exact=exact, conflicts=conflicts,
                    unassigned=unassigned, seconds=time.time() - t0)


def _regex_groups(sources: list[str], pattern: str) -> tuple[list[str], int]:
    rx = _compile(pattern)
    names, missed = [], 0
    for s in sources:
        m = rx.search(s)
        if m is None:
            names.append(s)
            missed += 1
        else:
            names.append("regex:" + (m.group(1) if rx.groups and m.group(1) is not None else m.group(0)))
    if missed == len(sources):
        raise ParamError(f"the groups pattern {pattern!r} matches none of the {len(sources)} image paths (e.g. "
                         f"{sources[0]!r}); the first capture group of the pattern should name the part")
    return names, missed


_NUMBER = re.compile(r"(\d+)\D*$")


def _frames_groups(sources: list[str], classes: list[str], gap: int) -> tuple[list[str], int]:
    """Within each class, the images in order of their file name's last number; one whose number is within `gap`
    of the previous image's joins its part."""
    numbers = [_NUMBER.search(Path(s).stem) for s in sources]
    if not any(numbers):
        raise ParamError(f"frames:{gap} needs numbered file names (e.g. shot_0412.png), and none of the "
                         f"{len(sources)} image files has a number in its name (e.g. {sources[0]!r})")
    names = list(sources)
    by_class: dict[str, list[tuple[int, int]]] = {}
    for i, (m, c) in enumerate(zip(numbers, classes)):
        if m is not None:
            by_class.setdefault(c, []).append((int(m.group(1)), i))
    for c, items in by_class.items():
        part, last = 0, None
        for n, i in sorted(items):
            if last is not None and n - last > gap:
                part += 1
            last = n
            names[i] = f"frames:{c}:{part}"
    return names, sum(m is None for m in numbers)


def read_groups_csv(path: str | Path) -> dict[str, str]:
    """{file: group} from a `file,group` table (header optional); DataError when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ParamError(f"groups table not found: {path}; give a CSV file with columns file,group") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"the groups table {path} cannot be read ({err}); save it as UTF-8 CSV, columns file,group") \
            from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["file", "group"]:
        rows = rows[1:]
    out: dict[str, str] = {}
    for k, r in enumerate(rows, 1):
        if len(r) < 2 or not r[0].strip() or not r[1].strip():
            raise DataError(f"the groups table {path.name}, row {k}: {r!r} is not 'file,group'")
        out[r[0].strip().replace("\\", "/")] = r[1].strip()
    if not out:
        raise DataError(f"the groups table {path.name} is empty; it needs rows file,group")
    return out


def _csv_groups(sources: list[str], path: str) -> tuple[list[str], int]:
    table = read_groups_csv(path)
    known = set(sources)
    missing = [f for f in table if f not in known]
    if missing:
        raise DataError(f"the groups table {Path(path).name} names {len(missing)} file(s) not in the dataset: "
                        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; files are paths in the "
                        f"upload such as {sources[0]!r}")
    names = [("csv:" + table[s]) if s in table else s for s in sources]
    return names, sum(s not in table for s in sources)


# --------------------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------------------
def _gray64(images: np.ndarray) -> np.ndarray:
    """[N, 64, 64] float32 gray (the mean of the channels) at 64 px (area average or nearest-repeat)."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 4:
        a = a.mean(axis=3)
    n, h, w = a.shape
    if (h, w) != (GROUP_SIZE, GROUP_SIZE):
        from PIL import Image
        a = np.stack([np.asarray(Image.fromarray(x).resize((GROUP_SIZE, GROUP_SIZE), Image.BILINEAR))
                      for x in a]).astype(np.float32) if n else np.zeros((0, GROUP_SIZE, GROUP_SIZE), np.float32)
    return a


def _gauss_kernel(sigma: float) -> np.ndarray:
    r = int(4 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of [N, H, W] with reflected borders."""
    k = _gauss_kernel(sigma)
    r = len(k) // 2
    out = a
    for axis in (1, 2):
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        p = np.pad(out, pad, mode="symmetric")
        acc = np.zeros_like(out)
        for j, w in enumerate(k):
            sl = [slice(None)] * 3
            sl[axis] = slice(j, j + out.shape[axis])
            acc += w * p[tuple(sl)]
        out = acc
    return out


def _standardise(v: np.ndarray) -> np.ndarray:
    v = v.reshape(len(v), -1).astype(np.float32)
    v = v - v.mean(axis=1, keepdims=True)
    return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-6)


def orientation_fields(small: np.ndarray) -> np.ndarray:
    """[N, 2, H, W] of [N, H, W] gray: each pixel's gradient as its doubled angle (cos 2a, sin 2a), weighted by the
    gradient's magnitude over its local mean. Blind to a change of brightness, contrast or the light's smooth
    gradient, and to the sign of shading (a groove lit from the left or the right keeps its orientation); every
    region counts alike, so a strong edge every image shares (an outline, a fixture) does not swamp the texture."""
    sm = _blur(small.astype(np.float32), SIGMA_SMOOTH)
    gy, gx = np.gradient(sm, axis=(1, 2))
    mag = np.sqrt(gx ** 2 + gy ** 2) + 1e-6
    local = np.sqrt(_blur(mag ** 2, SIGMA_LOCAL)) + 1e-3
    return np.stack([(gx ** 2 - gy ** 2) / mag / local, 2 * gx * gy / mag / local], axis=1)


def descriptors(small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coarse [N, 64] standardised 8 x 8 thumbnails, fields [N, 2, 64, 64] gradient orientations) of [N, 64, 64]."""
    n = len(small)
    f = GROUP_SIZE // COARSE_SIDE
    coarse = _standardise(small.reshape(n, COARSE_SIDE, f, COARSE_SIDE, f).mean(axis=(2, 4)))
    fields = np.zeros((n, 2) + small.shape[1:], np.float32)
    for lo in range(0, n, 2048):                     # in chunks: the gradient's temporaries stay small
        fields[lo:lo + 2048] = orientation_fields(small[lo:lo + 2048])
    return coarse, fields


def aligned_correlation(fields: np.ndarray, pairs: np.ndarray, shift: int = SHIFT, centre: bool = False,
                        chunk: int = 2048) -> np.ndarray:
    """For each pair (i, j): the best cosine of i's field ([N, C, H, W] or [N, H, W]; its centre) with j's, shifted
    by up to `shift` px either way (`centre`: each window's mean taken off first, a correlation)."""
    if fields.ndim == 3:
        fields = fields[:, None]
    out = np.full(len(pairs), -1.0, np.float32)
    h = fields.shape[2]
    s = shift

    def unit(x: np.ndarray) -> np.ndarray:
        x = x.reshape(len(x), -1).astype(np.float32)
        if centre:
            x = x - x.mean(axis=1, keepdims=True)
        return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)
    for lo in range(0, len(pairs), chunk):
        p = pairs[lo:lo + chunk]
        a = unit(fields[p[:, 0], :, s:h - s, s:h - s])
        best = np.full(len(p), -1.0, np.float32)
        for dy in range(-s, s + 1):
            for dx in range(-s, s + 1):
                b = unit(fields[p[:, 1], :, s + dy:h - s + dy, s + dx:h - s + dx])
                best = np.maximum(best, (a * b).sum(axis=1))
        out[lo:lo + chunk] = best
    return out


def turn(a: np.ndarray, t: int) -> np.ndarray:
    """The t-th of the 8 turns and flips of the square images `a` ([..., H, W]): t = 0 is `a` itself, 1-3 quarter
    turns, 4-7 the transposed image and its quarter turns."""
    if t >= 4:
        a = np.swapaxes(a, -1, -2)
    return np.ascontiguousarray(np.rot90(a, t % 4, axes=(-2, -1)))


def _nearest(coarse: np.ndarray, labels: np.ndarray, k: int, turns: bool) -> tuple[np.ndarray, np.ndarray]:
    """Within each class, by the thumbnail: (each image with its k nearest as they are, [M, 2]; with `turns`, each
    image with its k nearest when every other image is also compared under the 7 turns and flips and counts at its
    best, kept where that best is a turn, [M', 3] rows (i, j, t): i's thumbnail nearest to j's under turn t)."""
    labels = np.asarray(labels)
    turned = (np.stack([turn(coarse.reshape(len(coarse), COARSE_SIDE, COARSE_SIDE), t).reshape(len(coarse), -1)
                        for t in range(1, 8)]) if turns else None)                          # [7, N, 64]
    pairs, turned_pairs = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            continue
        kk = min(k, len(idx) - 1)
        d = coarse[idx]
        step = max(1, min(1024, 2 ** 22 // ((8 if turns else 1) * len(idx))))   # a block stays ~16 MB
        for lo in range(0, len(idx), step):
            rows = np.arange(len(d[lo:lo + step]))
            i = np.repeat(idx[lo:lo + step], kk)
            s = d[lo:lo + step] @ d.T
            s[rows, lo + rows] = -np.inf
            top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            pairs.append(np.stack([i, idx[top.ravel()]], axis=1))
            if turns:
                st = np.einsum("rd,tnd->rtn", d[lo:lo + step], turned[:, idx])               # [step, 7, n]
                best_t, st = st.argmax(axis=1) + 1, st.max(axis=1)
                st[rows, lo + rows] = -np.inf
                both = np.maximum(s, st)                     # each image at its best, as it is or turned
                top = np.argpartition(-both, kk - 1, axis=1)[:, :kk]
                t = np.where(np.take_along_axis(st > s, top, axis=1), np.take_along_axis(best_t, top, axis=1), 0)
                t = t.ravel()
                turned_pairs.append(np.stack([i, idx[top.ravel()], t], axis=1)[t > 0])
    pairs = np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0) if pairs else np.zeros((0, 2), np.int64)
    return pairs, (np.concatenate(turned_pairs) if turned_pairs else np.zeros((0, 3), np.int64))


def candidate_pairs(coarse: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Each image with its k nearest images of its class by the thumbnail: [M, 2] pairs (i < j), distinct."""
    return _nearest(coarse, labels, k, turns=False)[0]


def near_duplicate_edges(small: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """The near-duplicate pairs of the `auto` detector (module docstring), within each class: each image against its
    nearest images as they are and, for copies turned or flipped (an "augmented" upload), turned."""
    if len(small) < 2:
        return []
    small = _gray64(small) if small.ndim == 4 or small.shape[1:] != (GROUP_SIZE, GROUP_SIZE) else small
    small = small.astype(np.float32)
    coarse, fields = descriptors(small)
    edges: set[tuple[int, int]] = set()
    pairs, turned = _nearest(coarse, labels, NEIGHBOURS, turns=True)
    if len(pairs):
        score = aligned_correlation(fields, pairs)
        edges.update((int(i), int(j)) for (i, j), v in zip(pairs, score) if v >= THRESHOLD)
    for t in range(1, 8):
        p = turned[turned[:, 2] == t]
        for lo in range(0, len(p), 2048):
            q = p[lo:lo + 2048]
            both = np.concatenate([fields[q[:, 0]], orientation_fields(turn(small[q[:, 1]], t))])
            score = aligned_correlation(both, np.stack([np.arange(len(q)), len(q) + np.arange(len(q))], axis=1))
            edges.update((int(min(i, j)), int(max(i, j))) for (i, j, _), v in zip(q, score) if v >= THRESHOLD)
    return sorted(edges)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _union(parent: list[int], i: int, j: int) -> None:
    ri, rj = _find(parent, i), _find(parent, j)
    if ri != rj:
        parent[max(ri, rj)] = min(ri, rj)


def _components(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Union-find: a component number per node, numbered by first member."""
    parent = list(range(n))
    for i, j in edges:
        _union(parent, i, j)
    roots: dict[int, int] = {}
    return [roots.setdefault(_find(parent, i), len(roots)) for i in range(n)]


def _exact_duplicates(ds: ImageSet, small: np.ndarray) -> tuple[list[list[int]], list[list[str]]]:
    """Sets of images with identical pixels (as loaded, and at 64 px), and those that span two classes."""
    seen: dict[bytes, list[int]] = {}
    for i in range(len(ds)):
        seen.setdefault(ds.images[i].tobytes() + small[i].astype(np.uint8).tobytes(), []).append(i)
    sets = [m for m in seen.values() if len(m) > 1]
    conflicts = [[f"{ds.sources[i]} ({ds.classes[ds.labels[i]]})" for i in m] for m in sets
                 if len({int(ds.labels[i]) for i in m}) > 1]
    return sets, conflicts


# --------------------------------------------------------------------------------------------------
# what a split leaks, and how a grouping agrees with another
# --------------------------------------------------------------------------------------------------
def leakage(grouping: Grouping, train_sources: list[str], test_sources: list[str]) -> dict:
    """Test images with a near-duplicate (an edge of the `auto` detector: one of its 3 nearest images of its class,
    verified) among the training images: their number, share, the share per class, and up to 10 examples."""
    where = {s: i for i, s in enumerate(grouping.sources)}
    train = {where[s] for s in train_sources if s in where}
    test = [where[s] for s in test_sources if s in where]
    test_set = set(test)
    partner: dict[int, int] = {}
    for i, j in grouping.edges:
        for a, b in ((i, j), (j, i)):
            if a in test_set and b in train and a not in partner:
                partner[a] = b
    per_class: dict[str, list[int]] = {}
    for i in test:
        per_class.setdefault(grouping.classes[grouping.labels[i]], [0, 0])
        per_class[grouping.classes[grouping.labels[i]]][1] += 1
        if i in partner:
            per_class[grouping.classes[grouping.labels[i]]][0] += 1
    return {"test_images": len(test), "leaking": len(partner),
            "share": round(len(partner) / len(test), 4) if test else 0.0,
            "per_class": {c: {"leaking": a, "test": b, "share": round(a / b, 4) if b else 0.0}
                          for c, (a, b) in per_class.items()},
            "examples": [[grouping.sources[a], grouping.sources[b]] for a, b in list(partner.items())[:10]],
            "rule": f"a test image leaks when one of its {NEIGHBOURS} nearest training images of its class (8x8 "
                    f"thumbnail, as it is or turned or flipped) is a near-duplicate (gradient orientations agree at >= "
                    f"{THRESHOLD:.3f})"}


def split_preview(ds: ImageSet, grouping: Grouping, test_per_class: int | float = 20, ratio: float | None = None,
                  normal_class: str | None = None, seed: int = 0, folds: int = 1) -> dict:
    """What a run's split would leak, before it runs (the Data page): the one split (or the first of K folds) and
    the simulated imbalance made exactly as a run makes them with these groups, then `leakage` on them, and the
    same split drawn by single images (what `none` would leak) beside it."""
    from .protocol import fold_split, simulate_imbalance, split
    gm = grouping.by_source()

    def one(groups) -> dict:
        if folds > 1:
            pool, test = fold_split(ds, folds, seed, groups=groups)[0]
        else:
            pool, test = split(ds, test_per_class, seed, groups=groups)
        train = (simulate_imbalance(pool, ratio, seed, normal_class, groups=[gm[s] for s in pool.sources]
                                    if groups is not None else None) if ratio else pool)
        return dict(leakage(grouping, train.sources, test.sources), test_counts=test.counts(),
                    train_counts=train.counts())

    return {"groups": one(grouping.groups), "single_images": one(None)}


def pairwise_agreement(found: list, reference: list, labels: list | None = None) -> dict:
    """How groups `found` agree with `reference` (one name per image): pairwise precision (of the pairs put in one
    group, the share the reference also pairs), recall (of the reference's pairs, the share found), and the
    adjusted Rand index. With `labels`, only pairs within a class count."""
    from sklearn.metrics import adjusted_rand_score
    f, r = np.asarray(found, dtype=object), np.asarray(reference, dtype=object)
    lab = np.zeros(len(f), np.int64) if labels is None else np.asarray(labels)
    tp = fp = fn = 0
    for c in np.unique(lab):
        m = np.flatnonzero(lab == c)
        a, b = f[m], r[m]
        iu = np.triu_indices(len(m), 1)
        sa = (a[:, None] == a[None])[iu]
        sb = (b[:, None] == b[None])[iu]
        tp += int((sa & sb).sum())
        fp += int((sa & ~sb).sum())
        fn += int((~sa & sb).sum())
    _, fi = np.unique(f.astype(str), return_inverse=True)
    _, ri = np.unique(r.astype(str), return_inverse=True)
    return {"precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
            "ari": round(float(adjusted_rand_score(ri, fi)), 4), "pairs_found": tp + fp, "pairs_reference": tp + fn}


__all__ = ["AUTO_LIMIT", "Grouping", "METHOD", "MODES", "THRESHOLD", "aligned_correlation", "candidate_pairs",
           "check_on_files", "check_spec", "descriptors", "find_groups", "leakage", "near_duplicate_edges",
           "orientation_fields", "pairwise_agreement", "parse_spec", "read_groups_csv", "split_preview", "turn"]


def leakage_summary(folds: list[dict]) -> dict:
    """The run's leakage report from its splits' (`core.data.groups.leakage`, one per fold): test images with a
    near-duplicate in training, pooled over the folds and per class."""
    reps = [f.get("leakage") for f in folds]
    if not reps or any(r is None for r in reps):
        return {}
    per_class: dict[str, dict] = {}
    for r in reps:
        for c, v in r["per_class"].items():
            d = per_class.setdefault(c, {"leaking": 0, "test": 0})
            d["leaking"] += v["leaking"]
            d["test"] += v["test"]
    for d in per_class.values():
        d["share"] = round(d["leaking"] / d["test"], 4) if d["test"] else 0.0
    leaking, tests = sum(r["leaking"] for r in reps), sum(r["test_images"] for r in reps)
    return {"test_images": tests, "leaking": leaking, "share": round(leaking / tests, 4) if tests else 0.0,
            "per_fold": [r["share"] for r in reps], "per_class": per_class, "rule": reps[0]["rule"],
            "examples": [e for r in reps for e in r.get("examples", [])][:10],
            "groups": folds[0].get("group_spec", "none")}
