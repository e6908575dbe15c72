"""Groups of images of one part (core.data.groups) and the splits that keep them whole (core.data.protocol)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from core.cli import main as cli
from core.data import find_groups, fold_split, leakage, pairwise_agreement, simulate_imbalance, split
from core.data.groups import Grouping, check_on_files, parse_spec
from core.errors import DataError, ParamError
from core.imageset import ImageSet
from tests.support.parts import parts as _parts
from tests.support.parts import relit as _relit
from tests.support.parts import texture as _texture


def _distinct(n: int, seed: int = 1) -> ImageSet:
    rng = np.random.default_rng(seed)
    ims = np.stack([_relit(_texture(rng), rng) for _ in range(n)])[..., None]
    return ImageSet(ims, np.arange(n) % 2, ["a", "b"], [f"{'ab'[i % 2]}/img{i}.png" for i in range(n)])


# ------------------------------------------------------------------------------------------------
# the modes
# ------------------------------------------------------------------------------------------------
def test_auto_finds_the_parts_under_other_lights_from_the_pixels_alone():
    ds, truth = _parts({"normal": 12, "crack": 6})
    # the file names say nothing: shuffle them, so only pixels can group
    ds.sources = [f"{s.split('/')[0]}/{i}.png" for i, s in enumerate(np.random.default_rng(3).permutation(ds.sources))]
    g = find_groups(ds, "auto")
    ag = pairwise_agreement(g.groups, truth, ds.labels)
    assert ag["precision"] >= 0.95 and ag["recall"] >= 0.95, ag
    assert g.mode == "auto" and len(g.edges) > 0


def test_auto_merges_no_distinct_images():
    ds = _distinct(120)
    g = find_groups(ds, "auto")
    assert len(set(g.groups)) == len(ds)        # nothing merged
    assert g.to_dict()["merged_images"] == 0


def test_auto_merges_no_distinct_parts_that_share_an_outline():
    # distinct parts on one fixture: every image has the same dark surround and the same round edge; that shared
    # edge must not make them near-duplicates (the rule before 2026-12-07, a high-pass correlation, merged them)
    ds = _distinct(120)
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 < 26 ** 2
    ds = ImageSet(np.where(disc[None, :, :, None], ds.images, 20).astype(np.uint8), ds.labels, ds.classes, ds.sources)
    g = find_groups(ds, "auto")
    assert len(set(g.groups)) == len(ds), g.summary()


def test_auto_joins_a_part_whose_shading_the_light_reverses():
    # light from the other side: the part's grooves and pits shade the other way (the pixels' pattern inverted,
    # other gain and offset); the part is the same, so it is one group, and two other parts stay apart
    rng = np.random.default_rng(5)
    parts = [_texture(rng) for _ in range(3)]
    ims = [np.clip(120 + 20 * p, 0, 255) for p in parts] + [np.clip(140 - 25 * parts[0], 0, 255)]
    ds = ImageSet(np.stack(ims).astype(np.uint8)[..., None], np.zeros(4, np.int64), ["a"],
                  [f"a/{i}.png" for i in range(4)])
    g = find_groups(ds, "auto")
    assert g.groups[0] == g.groups[3]
    assert len({g.groups[0], g.groups[1], g.groups[2]}) == 3


def test_auto_joins_turned_and_flipped_copies_of_a_part():
    # an "augmentation already applied" upload: each part as its 8 turns and flips, each under another light
    from core.data.groups import turn
    rng = np.random.default_rng(2)
    ims, truth = [], []
    for p in range(8):
        base = _texture(rng)
        for t in range(8):
            ims.append(turn(_relit(base, rng), t))
            truth.append(p)
    ds = ImageSet(np.stack(ims)[..., None], np.arange(len(ims)) // 32, ["a", "b"],
                  [f"{'ab'[i // 32]}/{i}.png" for i in range(len(ims))])
    ag = pairwise_agreement(find_groups(ds, "auto").groups, truth, ds.labels)
    assert ag["precision"] >= 0.95 and ag["recall"] >= 0.85, ag


def test_identical_pixels_are_one_group_in_every_mode_and_a_conflict_across_classes():
    ds = _distinct(10)
    ims = ds.images.copy()
    ims[3] = ims[1]                       # same class (1 and 3 are both "b")
    ims[4] = ims[1]                       # another class ("a"): a label conflict
    ds = ImageSet(ims, ds.labels, ds.classes, ds.sources)
    for spec in ("auto", "none"):
        g = find_groups(ds, spec)
        assert g.groups[1] == g.groups[3] == g.groups[4], spec
        assert len(set(g.groups)) == 8
        assert len(g.conflicts) == 1 and any("img4.png" in f for f in g.conflicts[0])
    assert "Label conflicts" in find_groups(ds, "none").summary()


def test_none_keeps_every_image_its_own_group():
    ds, _ = _parts({"normal": 3, "crack": 2})
    g = find_groups(ds, "none")
    assert len(set(g.groups)) == len(ds)


def test_regex_names_groups_by_its_first_capture_group():
    ds, truth = _parts({"normal": 3, "crack": 2}, shots=3)
    ds.sources[0] = "normal/odd_name.png"        # not matched: its own group
    g = find_groups(ds, r"regex:part(\d+)_light")
    assert g.groups[1] == g.groups[2] == "regex:000"
    assert g.groups[0] == "normal/odd_name.png" and g.unassigned == 1
    # the same part number in two classes is one group (one physical part)
    assert g.groups[ds.sources.index("crack/part000_light0.png")] == "regex:000"


def test_a_pattern_that_matches_nothing_or_does_not_compile_is_a_clear_error():
    ds, _ = _parts({"normal": 2, "crack": 2}, shots=2)
    with pytest.raises(ParamError, match="matches none of the 8 image paths"):
        find_groups(ds, r"regex:tile(\d+)")
    with pytest.raises(ParamError, match="not a valid regular expression"):
        find_groups(ds, "regex:part(")
    with pytest.raises(ParamError, match="groups must be auto, none, regex:PATTERN, csv:FILE or frames:GAP"):
        parse_spec("bursts")


def test_frames_joins_numbered_shots_within_the_gap_in_each_class():
    ds = _distinct(9)
    ds.labels[:] = [0, 0, 0, 0, 0, 0, 1, 1, 1]
    ds.sources[:] = ["a/exp1_num_100.png", "a/exp2_num_180.png", "a/exp3_num_390.png",   # 100-180-390: gaps 80, 210
                     "a/exp1_num_395.jpg", "a/shot.png", "a/x9_last_12.png",
                     "b/exp1_num_150.png", "b/exp2_num_160.png", "b/exp3_num_900.png"]
    g = find_groups(ds, "frames:200")
    assert g.groups[0] == g.groups[1] != g.groups[2] == g.groups[3]
    assert g.groups[5] == g.groups[0]                      # its last number, 12, is within 200 of 100
    assert g.groups[4] == "a/shot.png" and g.unassigned == 1          # no number: its own group
    assert g.groups[6] == g.groups[7] != g.groups[8]
    assert g.groups[6] != g.groups[0]                      # 150 in class b is not class a's part
    assert "1 images with no number in their file name are each their own group" in g.summary()
    assert len(set(find_groups(ds, "frames:0").groups)) == 9
    assert len(set(find_groups(ds, "frames:1000").groups)) == 3


def test_frames_with_no_number_or_gap_is_a_clear_error():
    ds = _distinct(4)
    with pytest.raises(ParamError, match="needs a whole number of frames"):
        parse_spec("frames:wide")
    with pytest.raises(ParamError, match="groups must be"):
        parse_spec("frames")
    unnumbered = ImageSet(ds.images, ds.labels, ds.classes, ["a/p.png", "b/q.png", "a/r.png", "b/s.png"])
    with pytest.raises(ParamError, match="none of the 4 image files has a number in its name"):
        find_groups(unnumbered, "frames:200")


def test_csv_groups_and_a_table_naming_missing_files(tmp_path):
    ds, _ = _parts({"normal": 2, "crack": 2}, shots=2)
    table = tmp_path / "groups.csv"
    table.write_text("file,group\nnormal/part000_light0.png,A\nnormal/part000_light1.png,A\n"
                     "crack/part001_light0.png,B\n")
    g = find_groups(ds, f"csv:{table}")
    assert g.groups[0] == g.groups[1] == "csv:A" and g.unassigned == len(ds) - 3
    table.write_text("file,group\nnormal/part000_light0.png,A\nnormal/nope.png,A\n")
    with pytest.raises(DataError, match="names 1 file\\(s\\) not in the dataset: normal/nope.png"):
        find_groups(ds, f"csv:{table}")
    table.write_text("just one column\n")
    with pytest.raises(DataError, match="is not 'file,group'"):
        find_groups(ds, f"csv:{table}")


def _write(ds: ImageSet, root) -> None:
    for img, src in zip(ds.images, ds.sources):
        (root / src).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0]).save(root / src)


@pytest.mark.parametrize("spec, message", [(r"regex:tile(\d+)", "matches none"), ("csv:{table}", "not in the dataset")])
def test_the_cli_refuses_a_bad_pattern_or_table_before_writing_anything(tmp_path, capsys, spec, message):
    ds, _ = _parts({"normal": 3, "crack": 3}, shots=2)
    _write(ds, tmp_path / "data")
    table = tmp_path / "g.csv"
    table.write_text("file,group\nnormal/missing.png,1\n")
    out = tmp_path / "run"
    code = cli(["run", "--data", str(tmp_path / "data"), "--out", str(out), "--groups", spec.format(table=table),
                "--image-size", "16", "--set", "classifier.epochs=1"])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ParamError):
        check_on_files(r"regex:tile(\d+)", tmp_path / "data")


def test_the_cli_refuses_frames_on_unnumbered_files_before_writing_anything(tmp_path, capsys):
    ds, _ = _parts({"normal": 3, "crack": 3}, shots=2)
    ds.sources[:] = [f"{s.split('/')[0]}/shot_{'abcdefghijkl'[k]}.png" for k, s in enumerate(ds.sources)]
    _write(ds, tmp_path / "data")
    out = tmp_path / "run"
    code = cli(["run", "--data", str(tmp_path / "data"), "--out", str(out), "--groups", "frames:200",
                "--image-size", "16", "--set", "classifier.epochs=1"])
    assert code == 2 and "none of the 12 image files has a number in its name" in capsys.readouterr().err
    assert not out.exists()


def test_inspect_reads_auto_against_a_reference_table_and_on_the_images_it_names(tmp_path, capsys):
    ds, truth = _parts({"normal": 4, "crack": 4}, shots=3)
    _write(ds, tmp_path / "data")
    table = tmp_path / "parts.csv"
    named = [i for i in range(len(ds)) if truth[i] not in ("normal:0", "crack:0")]     # two parts left out
    table.write_text("file,group\n" + "".join(f"{ds.sources[i]},{truth[i]}\n" for i in named))
    code = cli(["inspect", str(tmp_path / "data"), "--image-size", "64", "--groups", "auto",
                "--check-groups", f"csv:{table}"])
    out = capsys.readouterr().out
    assert code == 0
    whole = re.search(r"Agreement with csv:\S+ \((\d+) groups\).*precision ([\d.]+), recall ([\d.]+)", out)
    part = re.search(r"On the (\d+) images csv:\S+ names \((\d+) it leaves out\): precision ([\d.]+), recall "
                     r"([\d.]+)", out)
    assert whole and part, out
    assert int(whole.group(1)) == 6 + 6          # 6 named parts, 6 images left to themselves
    assert float(whole.group(2)) < 1.0           # auto pairs the left-out parts' images, the table does not
    assert (int(part.group(1)), int(part.group(2))) == (len(named), len(ds) - len(named))
    assert float(part.group(3)) == 1.0 and float(part.group(4)) == 1.0


def test_inspect_reads_auto_against_numbered_shots(tmp_path, capsys):
    ds, truth = _parts({"normal": 4, "crack": 3}, shots=3)
    ds.sources[:] = [f"{s.split('/')[0]}/exp{k % 3 + 1}_num_{1000 * int(t.split(':')[1]) + 10 * (k % 3)}.png"
                     for k, (s, t) in enumerate(zip(ds.sources, truth))]     # a burst of 3 shots per part
    _write(ds, tmp_path / "data")
    code = cli(["inspect", str(tmp_path / "data"), "--groups", "auto", "--check-groups", "frames:200"])
    out = capsys.readouterr().out
    found = re.search(r"Agreement with frames:200 \((\d+) groups\).*precision ([\d.]+), recall ([\d.]+)", out)
    assert code == 0 and found, out
    assert (int(found.group(1)), float(found.group(2)), float(found.group(3))) == (7, 1.0, 1.0)
    code = cli(["inspect", str(tmp_path / "data"), "--groups", "auto", "--check-groups", "frames:5"])
    found = re.search(r"Agreement with frames:5 \((\d+) groups\).*precision ([\d.]+)", capsys.readouterr().out)
    assert int(found.group(1)) == 21 and float(found.group(2)) == 0.0   # shots 10 apart: each its own part


def test_record_round_trips():
    ds, _ = _parts({"normal": 3, "crack": 2}, shots=3)
    g = find_groups(ds, "auto")
    back = Grouping.from_record(json.loads(json.dumps(g.record())))
    assert back.groups == g.groups and back.edges == g.edges and back.to_dict() == g.to_dict()


# ------------------------------------------------------------------------------------------------
# splits by whole groups
# ------------------------------------------------------------------------------------------------
def _group_toy(sizes: dict[str, list[int]]) -> tuple[ImageSet, list[str]]:
    labels, sources, groups = [], [], []
    for ci, (c, gs) in enumerate(sizes.items()):
        for gi, n in enumerate(gs):
            for k in range(n):
                labels.append(ci)
                sources.append(f"{c}/g{gi}_{k}.png")
                groups.append(f"{c}:{gi}")
    return ImageSet(np.zeros((len(labels), 4, 4, 1), np.uint8), np.array(labels), list(sizes), sources), groups


def test_split_takes_whole_groups_as_close_to_the_asked_count_as_they_allow():
    ds, groups = _group_toy({"normal": [6] * 20, "crack": [6, 6, 6, 6, 1, 1], "dent": [30, 2, 2]})
    g = dict(zip(ds.sources, groups))
    for seed in range(10):
        pool, test = split(ds, 12, seed, groups=groups)
        assert not {g[s] for s in pool.sources} & {g[s] for s in test.sources}
        tc = test.counts()
        assert tc["normal"] == 12                       # two groups of 6
        assert abs(tc["crack"] - 12) < 6                # groups drawn in turn while they bring it closer
        assert tc["dent"] == 4                          # the 30-image group never goes: it would overshoot
        assert pool.counts()["crack"] > 0               # at least one group stays in training


def test_split_without_groups_is_the_per_image_draw_of_before():
    ds, _ = _group_toy({"normal": [1] * 40, "crack": [1] * 15})
    singles = [f"x{i}" for i in range(len(ds))]
    assert split(ds, 5, 3)[1].sources == split(ds, 5, 3, groups=singles)[1].sources
    assert [t.sources for _, t in fold_split(ds, 4, 1)] == [t.sources for _, t in fold_split(ds, 4, 1, groups=singles)]


def test_folds_never_split_a_group_and_stay_stratified():
    ds, groups = _group_toy({"normal": [5] * 30, "crack": [4] * 10, "dent": [3] * 10})
    g = dict(zip(ds.sources, groups))
    parts = fold_split(ds, 5, 0, groups=groups)
    assert sorted(s for _, t in parts for s in t.sources) == sorted(ds.sources)
    seen: dict[str, int] = {}
    for k, (pool, test) in enumerate(parts):
        assert not {g[s] for s in pool.sources} & {g[s] for s in test.sources}
        for s in test.sources:
            assert seen.setdefault(g[s], k) == k           # no group in two folds
        assert all(n > 0 for n in test.counts().values())  # every class in every fold
    with pytest.raises(ParamError, match="5 folds need at least 5 groups"):
        ds, groups = _group_toy({"normal": [10, 10], "crack": [5, 5]})
        fold_split(ds, 5, 0, groups=groups)


def test_the_imbalance_cuts_a_defect_class_by_whole_groups():
    ds, groups = _group_toy({"normal": [10] * 10, "crack": [6] * 10})
    g = dict(zip(ds.sources, groups))
    train = simulate_imbalance(ds, 0.2, 0, "normal", groups=groups)       # cap 20 crack images
    kept = [s for s in train.sources if s.startswith("crack")]
    assert len(kept) == 18                                              # three whole groups (24 would overshoot)
    by_group: dict[str, int] = {}
    for s in kept:
        by_group[g[s]] = by_group.get(g[s], 0) + 1
    assert set(by_group.values()) == {6}
    assert train.counts()["normal"] == 100


def test_leakage_is_zero_with_groups_and_shows_what_leaks_without():
    ds, truth = _parts({"normal": 10, "crack": 6}, shots=4)
    auto = find_groups(ds, "auto")
    pool, test = split(ds, 8, 0, groups=auto.groups)
    assert leakage(auto, pool.sources, test.sources)["share"] == 0.0
    pool, test = split(ds, 8, 0)                                    # single images: siblings on both sides
    leak = leakage(auto, pool.sources, test.sources)
    assert leak["share"] > 0.5 and leak["leaking"] == round(leak["share"] * leak["test_images"])
