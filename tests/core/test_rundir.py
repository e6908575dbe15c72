"""RunDir, the one owner of a run folder: atomic writes, the images of a run, synthetic images with their
provenance per seed, and the incremental events reader."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from core.errors import RunError
from core.imageset import ImageSet
from core.rundir import RunDir, atomic_path, atomic_write, read_json


def _set(n=6, classes=("normal", "crack"), size=8) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % len(classes)
    return ImageSet(rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8), labels, list(classes),
                    [f"{classes[lab]}/img_{i}.png" for i, lab in enumerate(labels)])


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "a" / "metrics.json"
    atomic_write(path, '{"x": 1}')
    with pytest.raises(ZeroDivisionError):
        with atomic_path(path) as tmp:
            tmp.write_text('{"x": 2, "cut', encoding="utf-8")
            1 / 0                                    # the writer dies half way
    assert read_json(path) == {"x": 1} and [p.name for p in path.parent.iterdir()] == ["metrics.json"]
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "list.json").write_text("[1]")
    assert read_json(tmp_path / "list.json") is None                 # not an object


def test_split_images_round_trip_with_sources(tmp_path):
    rd = RunDir(tmp_path / "run")
    ds = _set()
    rd.save_split("train", ds)
    back = rd.load_split("train")
    np.testing.assert_array_equal(back.images, ds.images)
    assert back.sources == ds.sources and back.classes == ds.classes and list(back.labels) == list(ds.labels)
    assert rd.load_split("test") is None
    with pytest.raises(RunError, match="no data/test.npz"):
        rd.require_split("test")
    rd.split_images_path("test").write_bytes(b"not an npz")
    with pytest.raises(RunError, match="unreadable"):
        rd.load_split("test")


def test_synthetic_images_per_seed_with_provenance(tmp_path):
    rd = RunDir(tmp_path / "run")
    s0, s1 = _set(4), _set(2)
    rd.save_synthetic("smote", 0, s0, [["normal/a.png"], ["crack/b.png", "crack/c.png"], [], ["normal/d.png"]])
    rd.save_synthetic("smote", 1, s1, [["normal/e.png"], ["crack/f.png"]])
    rd.save_synthetic("dcgan", 0, s1, [[], []], png=False)            # kept for training, not shown
    assert rd.synthetic_methods() == ["smote"]
    items = rd.gallery("smote")
    assert [(it.seed, it.cls, it.index) for it in items] == [(0, "normal", 0), (0, "crack", 0), (0, "normal", 1),
                                                             (0, "crack", 1), (1, "normal", 0), (1, "crack", 0)]
    assert items[1].parents == ["crack/b.png", "crack/c.png"] and items[2].parents == []
    assert [it.file for it in rd.gallery("smote", cls="crack", seed=1)] == ["crack/s1_00000.png"]
    np.testing.assert_array_equal(rd.load_synthetic("dcgan", 0).images, s1.images)
    # writing seed 0 again replaces what seed 0 wrote, and only that
    rd.save_synthetic("smote", 0, _set(2), [["normal/x.png"], ["crack/y.png"]])
    assert sorted(p.name for p in (rd.synthetic_dir("smote") / "crack").iterdir()) == ["s0_00000.png", "s1_00000.png"]
    with open(rd.provenance_path("smote", 0), newline="", encoding="utf-8") as fh:
        assert [r["file"] for r in csv.DictReader(fh)] == ["normal/s0_00000.png", "crack/s0_00000.png"]
    with pytest.raises(RunError, match="fit it first"):
        rd.load_synthetic("smote", 5)


def test_events_are_read_incrementally_and_start_over_when_replaced(tmp_path):
    rd = RunDir(tmp_path)
    with open(rd.events_path, "w") as fh:
        fh.write(json.dumps({"kind": "a"}) + "\n" + '{"kind": "b"')
    assert [e["kind"] for e in rd.events()] == ["a"]
    with open(rd.events_path, "a") as fh:
        fh.write("}\n")
    assert [e["kind"] for e in rd.events()] == ["a", "b"]
    atomic_write(rd.events_path, json.dumps({"kind": "c"}) + "\n")       # a new file in its place
    assert [e["kind"] for e in rd.events()] == ["c"]


def test_model_ids_and_result_files(tmp_path):
    rd = RunDir(tmp_path)
    assert RunDir.model_id("baseline_paper", 2) == "baseline_paper_s2"
    rd.write_result("smote", 0, {"key": "k", "metrics": {}, "pred": [1]})
    assert rd.result("smote", 0)["pred"] == [1] and rd.result("smote", 1) is None
    assert rd.result_path("smote", 0) == tmp_path / "results" / "smote_s0.json"


def test_real_images_gives_each_real_image_its_role(tmp_path):
    rd = RunDir(tmp_path / "r")
    with pytest.raises(RunError, match="not a finished run directory"):
        rd.real_images()
    rd.mkdir().write_split({"train": ["a/1.png"], "test": ["a/2.png"], "held_back": ["a/3.png"]})
    assert rd.real_images() == ([("a/1.png", "train"), ("a/2.png", "test"), ("a/3.png", "held_back")], True)
    rd.write_split({"train": ["a/1.png"], "test": ["a/2.png"]})          # prepared before held_back was recorded
    assert rd.real_images() == ([("a/1.png", "train"), ("a/2.png", "test")], False)
