"""RunDir as the one owner of a run folder (issue 35): the job's records (job_end.json, job_process.log, the
traceback, the end's error event), the finished runs under a folder (what core.estimate calibrates on), the fold of
one split, the one predictions writer, and the names of training checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ParamError
from core.events import Reporter
from core.imageset import ImageSet
from core.methods.base import Context
from core.rundir import RunDir


def test_job_end_traceback_and_error_event_are_written_through_rundir(tmp_path):
    rd = RunDir(tmp_path / "run")
    assert rd.job_end() is None
    rd.create()
    rd.write_job_end("failed", "the disk is full")
    assert rd.job_end()["status"] == "failed" and rd.job_end()["reason"] == "the disk is full"
    with rd.open_process_log() as fh:
        fh.write(b"a line the job process printed\n")
    assert (rd.root / "job_process.log").read_bytes() == b"a line the job process printed\n"
    try:
        raise ZeroDivisionError("a bug")
    except ZeroDivisionError:
        rd.log_traceback()
    assert "ZeroDivisionError: a bug" in rd.log_tail()
    rd.record_error("the worker stopped")
    rd.record_error("said twice")                       # the run already ended with an error: not repeated
    errors = [e for e in rd.events() if e["kind"] == "error"]
    assert [e["message"] for e in errors] == ["the worker stopped"]
    assert "[error]  the worker stopped" in rd.log_tail()     # the line Reporter.emit writes for an error
    rd.remove()
    assert not rd.exists()
    rd.record_error("nowhere")                          # a run folder that is gone is left gone
    assert not rd.exists()


def test_finished_runs_are_those_whose_last_event_is_done_newest_first(tmp_path):
    home = tmp_path / "home"
    for i, (ws, last) in enumerate([("a", "done"), ("a", "error"), ("b", "done"), ("b", None)]):
        rd = RunDir(home / ws / "runs" / f"r{i}")
        rd.create()
        rep = Reporter(rd.root)
        rep.emit("stage", stage="load")
        if last:
            rep.emit(last, message="x")
    (home / "a" / "runs" / "r0" / "events.jsonl").touch()    # the newest
    found = [rd.id for rd in RunDir.finished_runs([home], limit=5)]
    assert found == ["r0", "r2"]
    assert [rd.id for rd in RunDir.finished_runs([home / "b" / "runs"], limit=5)] == ["r2"]   # a runs/ folder
    assert len(RunDir.finished_runs([home], limit=1)) == 1
    (home / "b" / "runs" / "r2" / "events.jsonl").write_text('{"kind": "done"', encoding="utf-8")  # cut short
    assert [rd.id for rd in RunDir.finished_runs([home], limit=5)] == ["r0"]


def test_one_split_is_the_run_itself_or_the_chosen_fold(tmp_path):
    single = RunDir(tmp_path / "single")
    single.create()
    assert single.one_split() == single or single.one_split().root == single.root
    with pytest.raises(ParamError, match="one split, no folds"):
        single.one_split(1)
    k = RunDir(tmp_path / "kfold")
    for i in range(3):
        k.fold(i).create()
    assert k.one_split().root == k.root / "folds" / "f0"
    assert k.one_split(2).root == k.root / "folds" / "f2"
    with pytest.raises(ParamError, match="has 3 folds; choose fold 0 to 2"):
        k.one_split(3)


def test_pooled_predictions_are_written_as_each_model_s_are(tmp_path):
    classes = ["crack", "normal"]
    test = ImageSet(np.zeros((3, 4, 4, 1), np.uint8), [0, 1, 1], classes, ["crack/a.png", "normal/b.png", "=c.png"])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    one, pooled = RunDir(tmp_path / "one"), RunDir(tmp_path / "pooled")
    one.write_predictions("m_s0", test, probs)
    pooled.write_prediction_rows("m_s0", one.predictions("m_s0"), classes)     # what aggregate does with K folds
    assert one.predictions_path("m_s0").read_bytes() == pooled.predictions_path("m_s0").read_bytes()
    assert [r["pred"] for r in one.predictions("m_s0")] == ["crack", "normal", "crack"]
    assert one.predictions("m_s0")[2]["file"] == "=c.png"                     # formula-safe, read back as it was


def test_training_checkpoints_keep_their_names_and_are_dropped_by_model(tmp_path):
    ctx = Context(seed=3, work_dir=tmp_path / "work", shared_dir=tmp_path / "shared")
    assert ctx.checkpoint("dcgan", "class2") == tmp_path / "work" / "dcgan_seed3_class2.safetensors"
    assert ctx.checkpoint("stable_diffusion", "lora") == tmp_path / "work" / "stable_diffusion_seed3_lora.safetensors"
    assert ctx.checkpoint("ddpm", shared=True) == tmp_path / "shared" / "ddpm_seed3.safetensors"
    assert Context(seed=3, work_dir=tmp_path / "work").checkpoint("ddpm", shared=True) == \
        tmp_path / "work" / "ddpm_seed3.safetensors"
    assert Context(seed=3).checkpoint("dcgan", "class2") is None
    (tmp_path / "work").mkdir()
    for name in ("dcgan_seed3_class0", "dcgan_seed3_class1", "dcgan_seed4_class0", "gan_seed3_class0"):
        (tmp_path / "work" / f"{name}.safetensors").write_bytes(b"x")
    ctx.drop_checkpoints("dcgan")
    assert sorted(p.stem for p in (tmp_path / "work").iterdir()) == ["dcgan_seed4_class0", "gan_seed3_class0"]


def test_run_folders_under_a_runs_folder_are_those_with_a_record(tmp_path):
    runs = tmp_path / "runs"
    RunDir(runs / "with_config").write_config({"methods": []})
    (runs / "empty").mkdir()
    (runs / ".hidden").mkdir()
    (runs / ".hidden" / "config.json").write_text(json.dumps({}), encoding="utf-8")
    assert [rd.id for rd in RunDir.under(runs)] == ["with_config"]
