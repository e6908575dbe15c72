import json

import numpy as np
import pytest

from core.errors import Cancelled
from core.events import Reporter
from core.imageset import ImageSet, synthetic_source
from core.rundir import RunDir


def _set(n=4, c=1):
    return ImageSet(np.zeros((n, 8, 8, c), np.uint8), np.arange(n) % 2, ["a", "b"], [f"x/{i}.png" for i in range(n)])


def test_imageset_basics():
    s = _set()
    assert s.counts() == {"a": 2, "b": 2}
    assert s.shape == (8, 8, 1) and s.channels == 1
    assert s.of_class("b").sources == ["x/1.png", "x/3.png"]
    both = ImageSet.concat([s, s.subset([0])])
    assert len(both) == 5 and both.sources[-1] == "x/0.png"
    with pytest.raises(KeyError, match="unknown class"):
        s.class_index("zzz")


def test_imageset_rejects_wrong_dtype_and_lengths():
    with pytest.raises(ValueError):
        ImageSet(np.zeros((2, 8, 8, 1), np.float32), [0, 1], ["a", "b"])
    with pytest.raises(ValueError):
        ImageSet(np.zeros((2, 8, 8, 1), np.uint8), [0], ["a", "b"])
    with pytest.raises(ValueError, match="different classes"):
        ImageSet.concat([_set(), ImageSet(np.zeros((1, 8, 8, 1), np.uint8), [0], ["z", "b"])])


def test_source_round_trip_keeps_unicode_and_colons():
    src = synthetic_source("smote", 3, ["crack/fissure é.png", "crack/a:b.png"])
    _, method, seed, parents = src.split(":", 3)          # synthetic:<method>:<seed>:<parent>|<parent>
    assert (method, seed, parents.split("|")) == ("smote", "3", ["crack/fissure é.png", "crack/a:b.png"])


def test_reporter_writes_jsonl_log_and_cancels(tmp_path):
    seen = []
    rep = Reporter(tmp_path, callback=seen.append)
    rep.stage("load", "loading")
    rep.progress("train", 3, 10, loss=float("nan"), value=np.float32(1.5))
    rep.warn("careful")
    events = RunDir(tmp_path).events()
    assert [e["kind"] for e in events] == ["stage", "progress", "warning"]
    assert events[1]["loss"] == "nan" and events[1]["value"] == 1.5
    assert seen == events
    assert "careful" in (tmp_path / "log.txt").read_text()
    (tmp_path / "CANCEL").touch()
    with pytest.raises(Cancelled):
        rep.progress("train", 4, 10)


def test_read_events_skips_a_half_written_line(tmp_path):
    (tmp_path / "events.jsonl").write_text(json.dumps({"kind": "stage"}) + "\n" + '{"kind": "prog')
    assert [e["kind"] for e in RunDir(tmp_path).events()] == ["stage"]
