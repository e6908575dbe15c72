"""What is checked before a job is queued (issue 35): one `preflight` call per launch, whose `Checked` result the
store queues as it is; and the normal class that is only the largest class's guess, said and guarded."""
from __future__ import annotations

import shutil

import pytest

from core.data import normal_class_guessed, normal_class_note, protocol_counts
from core.errors import DataError, ParamError
from core.experiment import run
from core.jobs import Checked, JobStore, preflight
from core.rundir import RunDir
from core.workspace import Workspace
from tests.conftest import write_dataset


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTAUG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEFECTAUG_SHARED_WORKSPACE", raising=False)
    monkeypatch.delenv("DEFECTAUG_MAX_JOB_MEMORY", raising=False)
    monkeypatch.setenv("DEFECTAUG_AUTOSTART_WORKER", "0")
    return Workspace.create().ensure()


def _config(ws: Workspace, classes: dict[str, int], **extra) -> dict:
    root = ws.uploads / "set"
    if not root.exists():
        write_dataset(ws.uploads, classes, size=16, name="set")
    return {"data": str(root), "methods": ["smote"], "seeds": [0], "ratio": None, "image_size": 16,
            "test_per_class": 2, "overrides": {"classifier": {"epochs": 1}}, "num_threads": 1, **extra}


def test_a_checked_config_is_queued_as_it_was_checked_without_a_second_check(ws):
    config = _config(ws, {"normal": 12, "crack": 6})
    checked = preflight(config, ws)
    assert isinstance(checked, Checked) and checked.config["methods"] == ["smote"]
    assert checked.estimate["trainings"] >= 1 and checked.estimate["memory_bytes"] > 0
    shutil.rmtree(ws.uploads / "set")              # a second check would refuse it now: the data is gone
    with pytest.raises(DataError):
        JobStore(ws).submit(dict(config))
    job_id = JobStore(ws).submit(checked)          # queued as checked; nothing starts it
    job = JobStore(ws).get(job_id)
    assert job.status == "queued" and job.config == checked.config
    assert RunDir(job.run_dir).job_info()["status"] == "queued"


def test_the_largest_class_taken_as_normal_is_said_and_only_then():
    six = {f"defect_{k}": 300 for k in "abcdef"}
    assert normal_class_guessed(six, None) and normal_class_guessed(six, "auto")
    note = normal_class_note(six, None)
    assert note.startswith("No class is named like normal, good, ok, free or pass, so the largest class, "
                           "defect_a (300 images), was taken as the normal")
    assert normal_class_note(six, "defect_c") is None                          # named by the user
    assert normal_class_note({"MT_Free": 900, "MT_Crack": 50}, None) is None   # named like normal
    assert normal_class_note({"good": 10, "scratch": 40}, None) is None
    assert protocol_counts(six, 20, 0.1, None).train == protocol_counts(six, 20, 0.1, "defect_a").train


def test_translation_methods_wait_for_a_named_normal_class_and_the_run_log_says_it_was_guessed(ws):
    config = _config(ws, {"dents": 14, "scratch": 8}, methods=["cyclegan"],
                     overrides={"cyclegan": {"min_images": 3}, "classifier": {"epochs": 1}})
    with pytest.raises(ParamError, match="cyclegan turns images of the normal .* the largest class, dents, was "
                                         "only taken as normal. Name the normal class"):
        preflight(config, ws)
    preflight(dict(config, normal_class="dents"), ws)                         # named: accepted
    plain = dict(config, methods=["smote"], overrides={"classifier": {"epochs": 1}})
    preflight(plain, ws)                                                      # other methods: no guard
    out = RunDir(ws.runs / "guessed")
    run(plain, out.root)
    assert "[warning]  No class is named like normal" in out.log_tail(200)        # the run log says so
    assert "the largest class, dents (" in out.log_tail(200)
