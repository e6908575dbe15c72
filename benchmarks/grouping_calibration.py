"""How well `auto` grouping (core.data.groups) finds the parts of magnetic_tile, and what it merges on distinct images.

    .venv/bin/python benchmarks/grouping_calibration.py            # prints; --write puts it in RESULTS.md
    .venv/bin/python benchmarks/grouping_calibration.py --bursts-csv /tmp/bursts.csv   # also writes the check table
    .venv/bin/python benchmarks/grouping_calibration.py --csv-only --unambiguous-csv /tmp/parts.csv   # the parts that
                                                                                # photograph no lighting twice; then
    .venv/bin/python -m core inspect ../shared/datasets/magnetic_tile --groups auto --check-groups csv:/tmp/parts.csv
    .venv/bin/python -m core inspect ../shared/datasets/magnetic_tile --groups auto --check-groups frames:200
                                                                                # all 222 parts (the 200-rule)

Reference (for checking only; the product never reads file names in `auto`): magnetic_tile photographs each tile in a
burst, `exp1_num_N` ... `exp6_num_N`; within a class, files whose frame numbers N lie within 200 of the previous one
are one part (222 parts: Blowhole 19, Break 16, Crack 11, Fray 8, Free 150, Uneven 18). Also against one burst
(a gap of 80: 252 parts), since some 200-parts hold two or three bursts that look like different tiles; and against
`tiles`: each tile is photographed once under each lighting (`exp1` ... `exp6`), so bursts closer than 200 frames are
joined only while they add lightings the part has not had (a part that repeats a lighting holds a second tile).
Distinct images: the built-in sample dataset and 400 crops of one texture (no two overlapping).
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.data.groups import (METHOD, _blur, _components, _frames_groups, _gray64,  # noqa: E402
                               aligned_correlation, candidate_pairs, descriptors, find_groups, pairwise_agreement)
from core.imageset import ImageSet  # noqa: E402

FRAME = re.compile(r"num_(\d+)")
LIGHT = re.compile(r"exp(\d+)_")


def bursts(sources: list[str], gap: int = 200) -> list[str]:
    """The check-only reference: within a class, sorted frame numbers closer than `gap` to the previous are one part
    (the product's `frames:GAP` groups, core.data.groups)."""
    return _frames_groups(sources, [s.split("/")[0] for s in sources], gap)[0]


def tiles(sources: list[str], gap: int = 80, join: int = 200) -> list[str]:
    """The lighting-aware reference: bursts (`gap`) closer than `join` frames to the previous one are one tile as long
    as no lighting (`expK`) repeats; a repeated lighting starts the next tile."""
    burst, part = bursts(sources, gap), bursts(sources, join)
    members: dict[str, list[int]] = {}
    for i, b in enumerate(burst):
        members.setdefault(b, []).append(i)
    frame = [int(FRAME.search(s).group(1)) for s in sources]
    light = [(LIGHT.search(s.split("/")[-1]) or [None, s])[1] for s in sources]
    out = list(burst)
    current: dict[str, tuple[str, set]] = {}                 # 200-part -> (its tile's name, the lightings it has)
    for b in sorted(members, key=lambda b: (part[members[b][0]], min(frame[i] for i in members[b]))):
        p, lights = part[members[b][0]], {light[i] for i in members[b]}
        name, seen = current.get(p, (b, set()))
        if seen & lights:
            name, seen = b, set()
        current[p] = (name, seen | lights)
        for i in members[b]:
            out[i] = name
    return out


def joined(*groupings: list[str]) -> list[str]:
    """The groups that put two images together when any of `groupings` does (their union-find components)."""
    edges = []
    for g in groupings:
        first: dict[str, int] = {}
        edges += [(first.setdefault(name, i), i) for i, name in enumerate(g)]
    return [f"j{c}" for c in _components(len(groupings[0]), edges)]


def residual_leak(ds: ImageSet, groups: list[str], reference: list[str], folds: int = 5, ratio: float = 0.1,
                  seed: int = 0) -> dict:
    """Folds drawn with `groups` (the imbalance simulated on each training part by them), read against `reference`:
    test images whose reference part has an image in the fold's training part (all, and the defect classes')."""
    from core.data import fold_split, simulate_imbalance
    gm, ref = dict(zip(ds.sources, groups)), dict(zip(ds.sources, reference))
    normal = ds.classes.index("MT_Free") if "MT_Free" in ds.classes else -1
    n = hit = nd = hit_d = 0
    for pool, test in fold_split(ds, folds, seed, groups=groups):
        train = simulate_imbalance(pool, ratio, seed, groups=[gm[s] for s in pool.sources])
        seen = {ref[s] for s in train.sources}
        for s, y in zip(test.sources, test.labels):
            n, hit = n + 1, hit + (ref[s] in seen)
            if y != normal:
                nd, hit_d = nd + 1, hit_d + (ref[s] in seen)
    return {"test": n, "leaking": hit, "defect_test": nd, "defect_leaking": hit_d}


def highpass(small: np.ndarray) -> np.ndarray:
    """The verifier's images of `auto` before 2026-12-07: a Gaussian of sigma 2 minus one of sigma 8 (64 px)."""
    return _blur(small, 2.0) - _blur(small, 8.0)


HIGHPASS_THRESHOLD = 0.90     # the old rule: near-duplicate when the high-pass images correlate at 0.90 or more


def highpass_groups(ds: ImageSet) -> list[str]:
    """`auto`'s groups by its rule before 2026-12-07 (the same candidates; high-pass correlation >= 0.90)."""
    small = _gray64(ds.images)
    coarse, _ = descriptors(small)
    pairs = candidate_pairs(coarse, ds.labels)
    keep = aligned_correlation(highpass(small), pairs, centre=True) >= HIGHPASS_THRESHOLD
    return [f"hp:{c}" for c in _components(len(ds), [tuple(p) for p in pairs[keep]])]


def outlined(ds: ImageSet, shape: str) -> ImageSet:
    """`ds`'s images inside one outline every image shares (distinct parts on one fixture): a disc, or a frame 7 px
    wide, dark outside."""
    yy, xx = np.mgrid[:64, :64]
    inside = ((yy - 32) ** 2 + (xx - 32) ** 2 < 26 ** 2) if shape == "disc" else (
        (yy > 6) & (yy < 58) & (xx > 6) & (xx < 58))
    ims = np.where(inside[None, :, :, None], ds.images, 20).astype(np.uint8)
    return ImageSet(ims, ds.labels, ds.classes, ds.sources)


def sweep(ds: ImageSet, ref200: list[str], reft: list[str], unambiguous: list[int]) -> list[str]:
    """`auto`'s two knobs (candidates per image, threshold) with its verifier (gradient orientation), the high-pass
    verifier it had before, and either of the two: for each, the setting with the highest recall against the
    200-rule among those with precision >= 0.95 there, on all images and on the `unambiguous` ones (where the tiles
    reference is the 200-rule). Markdown rows."""
    small = _gray64(ds.images)
    coarse, fields = descriptors(small)
    hpi = highpass(small)
    n, labels = len(ds), ds.labels
    sub = np.asarray(unambiguous)
    rows = ["| verifier | candidates per image | all images: best threshold with precision >= 0.95 vs 200-rule, P / R "
            "| its P / R vs tiles | parts that photograph no lighting twice: best threshold, P / R vs 200-rule (= "
            "tiles there) |", "|---|---|---|---|---|"]
    for k in (3, 6, 10):
        pairs = candidate_pairs(coarse, labels, k=k)
        hp, ori = aligned_correlation(hpi, pairs, centre=True), aligned_correlation(fields, pairs)
        verifiers = {"gradient orientation (auto's)": lambda t: ori >= t,
                     "high-pass correlation (auto's before)": lambda t: hp >= t,
                     f"high-pass >= {HIGHPASS_THRESHOLD:.2f} or orientation": lambda t: (hp >= HIGHPASS_THRESHOLD)
                     | (ori >= t)}
        for name, keep in verifiers.items():
            best: dict[str, tuple] = {}
            for t in np.round(np.arange(0.50, 0.991, 0.025), 3):
                groups = _components(n, [tuple(p) for p in pairs[keep(t)]])
                for part, idx in (("all", np.arange(n)), ("unambiguous", sub)):
                    g = [groups[i] for i in idx]
                    a = pairwise_agreement(g, [ref200[i] for i in idx], labels[idx])
                    if a["precision"] >= 0.95 and (part not in best or a["recall"] > best[part][1]["recall"]):
                        best[part] = (t, a, pairwise_agreement(g, [reft[i] for i in idx], labels[idx]))
            cells = []
            for part in ("all", "unambiguous"):
                t, a, b = best.get(part, (None, None, None))
                cells.append("none" if t is None else f"{t:.3f}: {a['precision']:.3f} / {a['recall']:.3f}")
                if part == "all":
                    cells.append("-" if t is None else f"{b['precision']:.3f} / {b['recall']:.3f}")
            rows.append(f"| {name} | {k} | " + " | ".join(cells) + " |")
    return rows


def unambiguous_parts(sources: list[str], reference: list[str]) -> list[int]:
    """The images whose reference part photographs no lighting twice (where the file names do not contradict the
    reference: a part with two `exp1` images holds two tiles, or two series of one)."""
    members: dict[str, list[int]] = {}
    for i, r in enumerate(reference):
        members.setdefault(r, []).append(i)
    light = [(LIGHT.search(s.split("/")[-1]) or [None, s])[1] for s in sources]
    return sorted(i for m in members.values() if len({light[j] for j in m}) == len(m) for i in m)


def texture_tiles(n: int = 400, side: int = 96, seed: int = 0) -> ImageSet:
    """n non-overlapping crops of one synthetic texture (smoothed noise plus vertical stripes of the same power),
    two classes."""
    rng = np.random.default_rng(seed)
    cols = 20
    rows = -(-n // cols)
    big = rng.normal(0, 1, (rows * side, cols * side)).astype(np.float32)
    from core.data.groups import _blur
    big = _blur(big[None], 1.5)[0]
    big = big / big.std() + np.sqrt(2) * np.sin(np.arange(cols * side) / 3.0)[None]
    big = np.clip(128 + 40 * big / big.std(), 0, 255).astype(np.uint8)
    crops = [big[r * side:(r + 1) * side, c * side:(c + 1) * side] for r in range(rows) for c in range(cols)][:n]
    from PIL import Image
    ims = np.stack([np.asarray(Image.fromarray(x).resize((64, 64), Image.LANCZOS)) for x in crops])[..., None]
    return ImageSet(ims, np.arange(n) % 2, ["a", "b"], [f"{'ab'[i % 2]}/tile{i}.png" for i in range(n)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--bursts-csv", default=None, help="write the 200-rule reference as a file,group CSV here")
    ap.add_argument("--unambiguous-csv", default=None, help="write the 200-rule reference of the parts that "
                    "photograph no lighting twice here (core inspect --check-groups reads it on the images it names)")
    ap.add_argument("--linear", action="store_true", help="also the linear model (32 px, 5 folds, ratio 0.1) with "
                    "folds drawn by auto, by auto's high-pass rule before, by the tiles reference and by auto and the tiles joined "
                    "(minutes per grouping)")
    ap.add_argument("--sweep", action="store_true", help="also sweep auto's candidates and threshold, with its "
                    "verifier (gradient orientation), the high-pass one it had before, and either (minutes)")
    ap.add_argument("--csv-only", action="store_true", help="write the tables asked for and stop")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    ds, _ = load_dataset(a.data, image_size=64)
    t_load = time.time() - t0
    ref200, ref80, reft = bursts(ds.sources, 200), bursts(ds.sources, 80), tiles(ds.sources)
    for path, rows in ((a.bursts_csv, zip(ds.sources, ref200)),
                       (a.unambiguous_csv, ((ds.sources[i], ref200[i]) for i in unambiguous_parts(ds.sources, ref200)))):
        if path:
            with open(path, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["file", "group"])
                w.writerows(rows)
    if a.csv_only:
        return
    g = find_groups(ds, "auto")
    lines = ["## Grouping calibration: `auto` near-duplicate groups (`benchmarks/grouping_calibration.py`, issue 32)",
             "",
             f"Machine: {machine()}.", f"Method: {METHOD}.", "",
             "| data | rule | images | groups found | reference parts | pairwise precision | pairwise recall | ARI | "
             "images merged | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    t1 = time.time()
    old = highpass_groups(ds)
    t_old = time.time() - t1
    u200, ut = unambiguous_parts(ds.sources, ref200), unambiguous_parts(ds.sources, reft)
    refs = (("magnetic_tile vs 200-rule parts", ref200, None),
            (f"magnetic_tile vs 200-rule parts that photograph no lighting twice ({len(u200)} images)", ref200, u200),
            ("magnetic_tile vs single bursts (gap 80)", ref80, None),
            ("magnetic_tile vs tiles (no lighting twice)", reft, None),
            (f"magnetic_tile vs tiles, those whose 80-gap bursts photograph no lighting twice ({len(ut)} images)",
             reft, ut))

    def merged_images(groups: list[str]) -> int:
        return sum(v for v in Counter(groups).values() if v > 1)
    for rule, groups, secs in (("auto", g.groups, f"{g.seconds:.1f} (+{t_load:.1f} load at 64 px)"),
                               ("auto before (high-pass >= 0.90)", old, f"{t_old:.1f}")):
        for name, ref, idx in refs:
            idx = list(range(len(ds))) if idx is None else idx
            ag = pairwise_agreement([groups[i] for i in idx], [ref[i] for i in idx], ds.labels[idx])
            lines.append(f"| {name} | {rule} | {len(idx)} | {len({groups[i] for i in idx})} | "
                         f"{len({ref[i] for i in idx})} | {ag['precision']:.3f} | {ag['recall']:.3f} | "
                         f"{ag['ari']:.3f} | {merged_images(groups)} | {secs} |")
    from core.sample_data import generate_sample
    sample, crops = generate_sample(), texture_tiles()
    for name, d in (("sample dataset (distinct images)", sample), ("400 crops of one texture", crops),
                    ("the 400 crops inside one disc (dark outside)", outlined(crops, "disc")),
                    ("the 400 crops inside one dark frame, 7 px", outlined(crops, "frame"))):
        gg = find_groups(d, "auto")
        for rule, groups, secs in (("auto", gg.groups, f"{gg.seconds:.1f}"), ("auto before", highpass_groups(d), "")):
            m = merged_images(groups)
            lines.append(f"| {name} | {rule} | {len(d)} | {len(set(groups))} | {len(d)} | - | - | - | {m} "
                         f"({100 * m / len(d):.1f}%) | {secs} |")
    from core.data.groups import turn
    from tests.support.parts import relit, texture
    rng, ims, truth = np.random.default_rng(0), [], []
    for p in range(30):                      # an upload with the augmentation applied: 30 parts x 8 turns and flips
        base = texture(rng)
        for t in range(8):
            ims.append(turn(relit(base, rng), t))
            truth.append(p)
    aug = ImageSet(np.stack(ims)[..., None], np.zeros(len(ims), np.int64), ["a"], [f"a/{i}.png" for i in range(len(ims))])
    ga = find_groups(aug, "auto")
    for rule, groups, secs in (("auto", ga.groups, f"{ga.seconds:.1f}"), ("auto before", highpass_groups(aug), "")):
        ag = pairwise_agreement(groups, truth, aug.labels)
        lines.append(f"| 30 parts, each as its 8 turns and flips under other lights | {rule} | {len(aug)} | "
                     f"{len(set(groups))} | 30 | {ag['precision']:.3f} | {ag['recall']:.3f} | {ag['ari']:.3f} | "
                     f"{merged_images(groups)} | {secs} |")
    both = joined(g.groups, reft)
    lines += ["", "| folds drawn by (5 folds, ratio 0.1) | groups | test images with an image of their own tile "
              "(tiles reference) in training | of the defect test images |", "|---|---|---|---|"]
    for name, groups in (("none (single images)", list(ds.sources)), ("auto", g.groups), ("auto before", old),
                         ("tiles reference", reft), ("auto and tiles joined", both)):
        r = residual_leak(ds, groups, reft)
        lines.append(f"| {name} | {len(set(groups))} | {r['leaking']} of {r['test']} "
                     f"({100 * r['leaking'] / r['test']:.1f}%) | {r['defect_leaking']} of {r['defect_test']} "
                     f"({100 * r['defect_leaking'] / r['defect_test']:.1f}%) |")
    if a.linear:
        from benchmarks.grouped_vs_ungrouped import linear_scores
        full, _ = load_dataset(a.data, image_size=32)
        assert list(full.sources) == list(ds.sources)
        t1 = time.time()
        lin = linear_scores(full, {"auto": g.groups, "auto before": old, "tiles reference": reft,
                                   "auto and tiles joined": both}, 5, 0.1)
        lines += ["", f"Linear model on the pixels (32 px, class-balanced logistic regression, as in "
                  f"grouped_vs_ungrouped), folds drawn by each grouping ({time.time() - t1:.0f} s):", "",
                  "| folds drawn by | macro F1 | " + " | ".join(f"recall {c}" for c in full.classes) + " |",
                  "|---|---|" + "---|" * len(full.classes)]
        for name, r in lin.items():
            lines.append(f"| {name} | {r['f1']:.3f} | " + " | ".join(f"{r['recall'][c]:.3f}" for c in full.classes)
                         + " |")
    if a.sweep:
        t1 = time.time()
        rows = sweep(ds, ref200, reft, u200)
        lines += ["", f"Every setting of auto's candidates and threshold ({time.time() - t1:.0f} s; thresholds 0.50-0.99 "
                  "by 0.025, the groups joined with union-find as in auto), on all images and on the 200-rule parts "
                  "that photograph no lighting twice:", ""]
        lines += rows
    body = "\n".join(lines)
    print(body)
    print(g.summary())
    if a.write:
        write_section("grouping_calibration", body)


if __name__ == "__main__":
    main()
