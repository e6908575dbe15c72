"""Every page of the app through streamlit.testing.v1.AppTest: empty states, normal use, error states.

Fragments run once per `run()` here (their timers do not fire), so live updates are tested by
changing the run directory or the job store and calling `run()` again.
"""
from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from core.events import Reporter
from core.experiment.config import BASELINES
from core.jobs import WORKER_DIED, JobStore, worker_main
from core.rundir import RunDir
from core.workspace import Workspace, is_valid_id

from .conftest import assert_clean, open_page, open_zip_names, texts, ws_of, zip_bytes

PAGES = ["data", "synthesize", "jobs", "gallery", "compare", "export"]


# ---------------------------------------------------------------------------------------------
# Home, workspaces, sessions
# ---------------------------------------------------------------------------------------------
def test_home_starts_a_new_workspace_and_a_reload_returns_to_it():
    at = open_page()
    assert_clean(at)
    ws = ws_of(at)
    assert is_valid_id(ws.id) and ws.root.is_dir()
    assert at.title[0].value == "DefectAug"
    assert any("No dataset chosen yet" in t for t in texts(at.info))
    again = open_page(ws=ws.id)                          # a reload or a bookmarked link
    assert ws_of(again).id == ws.id
    assert any(ws.id[:8] in m for m in texts(again.sidebar.markdown))


def test_invalid_workspace_id_in_the_link_gives_a_fresh_workspace():
    for bad in ("../../etc", "x" * 32, "0" * 31):
        at = open_page(ws=bad)
        assert_clean(at)
        assert not at.error
        assert is_valid_id(ws_of(at).id)


def test_two_sessions_see_only_their_own_runs(done_ws):
    stranger = open_page("compare")
    assert ws_of(stranger).id != done_ws["ws"].id
    assert any("No finished run yet" in t for t in texts(stranger.info))
    owner = open_page("compare", ws=done_ws["ws"].id)
    assert any("Verdict" in t for t in texts(owner.subheader))
    # even with the run id in the link, another workspace does not show it
    snoop = open_page("compare", ws=ws_of(stranger).id, run=done_ws["run"])
    assert any("No finished run yet" in t for t in texts(snoop.info))


def test_shared_workspace_when_configured(monkeypatch):
    monkeypatch.setenv("DEFECTAUG_SHARED_WORKSPACE", "team")
    a, b = open_page(), open_page(ws=Workspace.create().id)
    assert ws_of(a).id == ws_of(b).id == "team"
    assert any("(shared)" in m for m in texts(a.sidebar.markdown))


def test_every_page_has_an_empty_state_without_errors():
    ws = ws_of(open_page()).id
    for page in PAGES:
        at = open_page(page, ws=ws)
        assert_clean(at)
        assert not at.error, (page, texts(at.error))
        assert at.info, page                               # tells the user where to start


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def test_data_sample_dataset_in_one_click():
    at = open_page("data")
    at.button(key="make_sample").click().run()
    assert_clean(at)
    assert any("Sample dataset created" in t for t in texts(at.success))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classes"] == "4" and metrics["Images"] == "417"
    assert at.get("plotly_chart") and at.get("image")       # class-count chart and thumbnails
    # the choice survives a reload
    again = open_page("data", ws=ws_of(at).id)
    assert any("Dataset:" in t for t in texts(again.subheader))


def test_data_imbalance_ratio_changes_the_counts():
    at = open_page("data")
    at.button(key="make_sample").click().run()
    at.checkbox(key="simulate").check().run()
    at.slider(key="ratio").set_value(0.1).run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table.columns) == ["class", "images", "test", "train after imbalance"]
    # 20 test images per class first (the sample has them for every class), then every defect class cut to
    # 0.1 x the 260 normal images left: the counts a run will train on
    after = dict(zip(table["class"], table["train after imbalance"]))
    assert after == {"crack": 22, "normal": 260, "scratch": 26, "spot": 25}
    assert dict(zip(table["class"], table["test"])) == {"crack": 20, "normal": 20, "scratch": 20, "spot": 20}
    assert ws_of(at).settings()["ratio"] == 0.1
    chart = at.get("plotly_chart")[0].proto.spec
    assert "after the test split and imbalance" in chart
    # the Synthesize page shows the same counts (one preview for both pages)
    at.switch_page("app_pages/synthesize.py").run()
    assert_clean(at)
    preview = at.dataframe[0].value
    assert dict(zip(preview["class"], preview["train"])) == after
    assert at.selectbox(key="normal_s").value == "normal"


def test_data_zip_upload(tmp_path):
    at = open_page("data")
    at.radio(key="source").set_value("Upload a zip").run()
    at.file_uploader(key="zip_upload").set_value(
        ("tiles.zip", zip_bytes(tmp_path, {"normal": 10, "crack": 4}), "application/zip")).run()
    assert_clean(at)
    assert any("Extracted `tiles.zip`" in t for t in texts(at.success))
    assert {m.label: m.value for m in at.metric}["Images"] == "14"
    ws = ws_of(at)
    assert Path(ws.settings()["dataset"]).resolve().is_relative_to(ws.uploads.resolve())


def test_data_shows_groups_and_what_a_split_by_single_images_would_leak(tmp_path):
    from tests.support.parts import write_parts_zip
    at = open_page("data")
    at.radio(key="source").set_value("Upload a zip").run()
    zip_path = write_parts_zip(tmp_path / "parts.zip", {"normal": 12, "crack": 8}, shots=4)
    at.file_uploader(key="zip_upload").set_value(("parts.zip", zip_path.read_bytes(), "application/zip")).run()
    assert_clean(at)
    assert "Images of one part, and leakage" in texts(at.subheader)
    metrics = {m.label: m.value for m in at.metric}
    assert 20 <= int(metrics["Groups"]) <= 24                # 20 parts of 4 images each, found from the pixels
    assert metrics["Test images with a near-duplicate in training"] == "0%"
    assert any("Drawn by single images" in t and "regex: or csv:" in t for t in texts(at.caption))
    assert any("largest groups" in e.label for e in at.expander)
    at.radio(key="groups_d_mode").set_value("none").run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Groups"] == "80"
    at.radio(key="groups_d_mode").set_value("frames").run()      # the zip numbers its files 0..79 per class
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Groups"] == "2"     # within 200 of each other: one burst a class
    at.number_input(key="groups_d_gap").set_value(0).run()
    assert {m.label: m.value for m in at.metric}["Groups"] == "80"
    assert ws_of(at).settings()["groups"] == {ws_of(at).settings()["dataset"]: "frames:0"}
    at.radio(key="groups_d_mode").set_value("regex").run()
    at.text_input(key="groups_d_regex").set_value(r"part(\d+)_cam").run()      # matches none of the files
    assert_clean(at)
    assert any("matches none of the 80 image paths" in t for t in texts(at.error))
    assert "Images per class" in texts(at.subheader)                  # the rest of the page goes on
    at.radio(key="groups_d_mode").set_value("none").run()
    warning = next(t for t in texts(at.warning) if "Without groups" in t)
    assert int(re.search(r"(\d+)% of the planned test images", warning).group(1)) > 50
    assert ws_of(at).settings()["groups"] == {ws_of(at).settings()["dataset"]: "none"}
    # the Synthesize page launches with the same choice
    at.switch_page("app_pages/synthesize.py").run()
    assert at.radio(key="groups_s_mode").value == "none"


def test_compare_and_the_report_show_the_leakage_report(done_ws):
    at = open_page("compare", ws=done_ws["ws"].id, run=done_ws["run"])
    assert_clean(at)
    assert any(t.startswith("Leakage: 0 of") and "cluster bootstrap" in t and "Auto joins images that look alike"
               in t for t in texts(at.caption))
    from core.views.report import build_report
    assert "class='leakage'>Leakage: 0 of" in build_report(done_ws["run_dir"])
    assert "<h2>Defect or normal</h2>" in build_report(done_ws["run_dir"])


@pytest.mark.parametrize("name, payload, fragment", [
    ("broken.zip", b"PK\x03\x04 this is not really a zip", "not a zip archive"),
    ("empty.zip", b"", "empty"),
    ("slip.zip", "slip", "unsafe archive"),
])
def test_data_bad_zips_show_an_error_and_write_nothing(tmp_path, name, payload, fragment):
    if payload == "slip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("normal/ok.png", b"x")
            zf.writestr("../../../escaped.png", b"x")
        payload = buf.getvalue()
    at = open_page("data")
    ws = ws_of(at)
    before = sorted(p.name for p in ws.root.parent.parent.iterdir())
    at.radio(key="source").set_value("Upload a zip").run()
    at.file_uploader(key="zip_upload").set_value((name, payload, "application/zip")).run()
    assert_clean(at)
    assert any(fragment in t for t in texts(at.error)), texts(at.error)
    assert ws.datasets() == [] and not ws.settings().get("dataset")
    assert sorted(p.name for p in ws.root.parent.parent.iterdir()) == before     # nothing outside
    assert not list(ws.root.rglob("escaped.png"))


def _png(seed: int) -> bytes:
    import numpy as np
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_data_folder_upload_keeps_paths_and_refuses_escapes():
    at = open_page("data")
    at.radio(key="source").set_value("Upload class folders").run()
    files = [(f"myset/{c}/{c}_{i}.png", _png(hash((c, i)) % 1000), "image/png")
             for c, n in (("normal", 6), ("crack", 3)) for i in range(n)]
    files.append(("../../evil.png", _png(1), "image/png"))
    at.file_uploader(key="dir_upload").set_value(files).run()
    assert_clean(at)
    ws = ws_of(at)
    assert any("unsafe names" in t for t in texts(at.warning))
    assert any("Uploaded 9 files" in t for t in texts(at.success))
    assert {m.label: m.value for m in at.metric}["Classes"] == "2"
    assert not list(ws.root.parent.rglob("evil.png"))


def test_data_server_folder_only_inside_the_data_roots(app_env, tmp_path):
    from core.sample_data import write_sample_dataset
    write_sample_dataset(app_env["roots"] / "tiles_srv", {"normal": 6, "spot": 3}, size=16)
    write_sample_dataset(tmp_path / "private", {"normal": 6, "spot": 3}, size=16)
    at = open_page("data")
    at.radio(key="source").set_value("Folder on the server").run()

    def use(text: str) -> None:
        at.text_input[0].set_value(text)
        [b for b in at.button if b.label == "Use this folder"][0].click().run()
        assert_clean(at)

    for bad in ("/etc", "../", str(tmp_path / "private"), "tiles_srv/../../", "no_such_set"):
        use(bad)
        assert any("allowed data folders" in t for t in texts(at.error)), (bad, texts(at.error))
        assert not ws_of(at).settings().get("dataset")
        # the folders by name, as the rest of the app shows them; never the server's own paths (issue 37)
        assert not any(str(app_env["roots"]) in t or str(app_env["home"]) in t for t in texts(at.error)), \
            texts(at.error)
    use("tiles_srv")
    assert not at.error
    assert {m.label: m.value for m in at.metric}["Images"] == "9"


def test_data_problems_are_listed_with_reasons(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            zf.writestr(f"set/normal/n{i}.png", _png(i))
            zf.writestr(f"set/crack/c{i}.png", _png(100 + i))
        zf.writestr("set/crack/broken.png", b"not an image at all")
        zf.writestr("set/crack/empty.png", b"")
    at = open_page("data")
    at.radio(key="source").set_value("Upload a zip").run()
    at.file_uploader(key="zip_upload").set_value(("problems.zip", buf.getvalue(), "application/zip")).run()
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Skipped files"] == "2"
    skipped = at.dataframe[1].value
    assert set(skipped["file"].str.split("/").str[-1]) == {"broken.png", "empty.png"}
    assert all(skipped["reason"].str.len() > 5)


# ---------------------------------------------------------------------------------------------
# Synthesize
# ---------------------------------------------------------------------------------------------
def _with_sample(page: str):
    at = open_page("data")
    at.button(key="make_sample").click().run()
    return open_page(page, ws=ws_of(at).id)


def test_synthesize_estimate_suggestion_and_launch():
    at = _with_sample("synthesize")
    assert_clean(at)
    tips = [t for t in texts(at.info) if "rarest defect class" in t]
    # the suggestion rests on what this project measured, and the sample's 22 crack training images
    assert tips and "clearly beat the strongest baseline" in tips[0], tips
    assert "(crack) keeps 22 training images" in tips[0], tips
    # the first run's defaults: augment and 3 seeds, and why (what this project measured)
    assert at.multiselect(key="methods").value == ["augment"] and at.text_input(key="seeds").value == "0,1,2"
    assert any("no clear difference against the strongest fair baseline" in t for t in texts(at.caption))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classifier trainings"] == "21"                 # 3 seeds x (6 baselines + augment)
    # the time on this machine as a range, with what it rests on
    assert "Time on this machine" in metrics
    assert any(t.startswith("Likely ") and " to " in t for t in texts(at.caption)), texts(at.caption)
    at.number_input(key="p:quick:classifier:epochs").set_value(1).run()
    at.text_input(key="seeds").set_value("0").run()
    assert {m.label: m.value for m in at.metric}["Classifier trainings"] == "7"   # one seed
    at.checkbox(key="quality_gate").check().run()
    assert {m.label: m.value for m in at.metric}["Classifier trainings"] == "8"   # + smote on its gated set
    at.checkbox(key="quality_gate").uncheck().run()
    assert any("5 folds test every image once" in t for t in texts(at.caption))   # 42 crack images in the sample
    at.number_input(key="folds").set_value(2).run()
    assert {m.label: m.value for m in at.metric}["Classifier trainings"] == "14"   # each fold trains them all
    at.number_input(key="folds").set_value(1).run()
    assert int(metrics["Synthetic images per method and seed"].replace(",", "")) > 0
    at.button(key="launch").click().run()
    assert_clean(at)
    assert any("queued" in t for t in texts(at.success))
    store = JobStore(ws_of(at))
    (job,) = store.list()
    assert job.status == "queued" and job.config["methods"] == ["augment"]
    assert job.config["overrides"] == {"classifier": {"epochs": 1}}
    assert at.query_params["run"] in (job.id, [job.id])


def test_plugin_methods_appear_in_the_synthesize_form_and_the_app_still_starts(toy_plugins):
    """A method from a module outside the project (DEFECTAUG_PLUGINS) is in the form with its parameters; one
    whose package is missing is listed as unavailable with the reason; a module that cannot be imported
    does not stop the app."""
    at = _with_sample("synthesize")
    assert_clean(at)
    options = at.multiselect(key="methods").options
    assert "toy_mean (classic)" in options and not any("toy_needs_extra" in o for o in options)
    assert any("toy_needs_extra" in t and "defectaug_surely_missing_package" in t for t in texts(at.markdown))
    at.multiselect(key="methods").set_value(["toy_mean"]).run()
    assert_clean(at)
    assert at.number_input(key="p:quick:toy_mean:noise").value == 8.0     # its form, from its dataclass
    home = open_page()
    assert_clean(home)


def test_synthesize_forms_come_from_the_registry():
    at = _with_sample("synthesize")
    at.multiselect(key="methods").set_value(["smote", "borderline_smote"]).run()
    assert at.number_input(key="p:quick:smote:k_neighbors").value == 5
    kind = at.selectbox(key="p:quick:borderline_smote:kind")
    assert kind.options == ["borderline-1", "borderline-2"]
    at.number_input(key="p:quick:smote:k_neighbors").set_value(3).run()
    kind.set_value("borderline-2").run()
    at.button(key="launch").click().run()
    assert_clean(at)
    (job,) = JobStore(ws_of(at)).list()
    assert job.config["overrides"]["smote"] == {"k_neighbors": 3}
    assert job.config["overrides"]["borderline_smote"] == {"kind": "borderline-2"}


def test_synthesize_without_a_dataset_says_where_to_go():
    at = open_page("synthesize")
    assert_clean(at)
    assert any("Choose a dataset first" in t for t in texts(at.info))


def test_synthesize_errors_are_messages(monkeypatch):
    at = _with_sample("synthesize")
    at.text_input(key="seeds").set_value("0, one").run()
    assert_clean(at)
    assert any("seeds must be whole numbers" in t for t in texts(at.error))
    assert not [b for b in at.button if b.key == "launch"]
    at.text_input(key="seeds").set_value("0").run()
    at.multiselect(key="methods").set_value([]).run()
    assert any("Choose at least one method" in t for t in texts(at.warning))
    monkeypatch.setenv("DEFECTAUG_MAX_JOB_MEMORY", "1000")
    at.multiselect(key="methods").set_value(["smote"]).run()
    assert_clean(at)
    # 1000 bytes cannot hold even the real images, so the page says so rather than suggesting a lower ratio
    assert any("memory" in t and "Even the real images alone do not fit" in t for t in texts(at.error))
    assert not [b for b in at.button if b.key == "launch"]
    assert JobStore(ws_of(at)).list() == []


# ---------------------------------------------------------------------------------------------
# Jobs
# ---------------------------------------------------------------------------------------------
def test_jobs_list_follows_a_running_job_by_polling_the_run_dir():
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 1}, kind="sleep")
    at = open_page("jobs", ws=ws.id)
    assert any("waiting for a free slot (position 1" in t for t in texts(at.caption))
    # the worker picks it up and reports progress (we play the worker: hold its lock, write events)
    import fcntl
    fd = os.open(ws.root / "worker.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        job = store.claim_next(os.getpid())
        rep = Reporter(job.run_dir)
        rep.stage("train:smote_s0", "training")
        rep.emit("progress", stage="train:smote_s0", step=3, total=10, overall=0.3)
        at.run()
        assert_clean(at)
        bars = at.get("progress")
        assert bars and any(abs(b.proto.value - 30) <= 1 for b in bars)
        rep.emit("progress", stage="train:smote_s0", step=9, total=10, overall=0.9)
        at.run()
        assert any(abs(b.proto.value - 90) <= 1 for b in at.get("progress"))
        assert any("remaining" in t for t in texts(at.caption))
        store.finish(job_id, "done")
        rep.emit("done", message="ok", overall=1.0)
        at.run()
        assert any("finished in" in t for t in texts(at.caption))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def test_jobs_show_failed_reason_and_cancel_rerun_delete():
    ws = ws_of(open_page())
    store = JobStore(ws)
    failed = store.submit({"seconds": 0.1, "steps": 2, "fail": "the ratio is too small: use 0.05 or more"},
                          kind="sleep")
    worker_main(ws.root, once=True)
    queued = store.submit({"seconds": 0.1}, kind="sleep")
    at = open_page("jobs", ws=ws.id)
    assert_clean(at)
    assert any("the ratio is too small: use 0.05 or more" in t for t in texts(at.error))
    at.button(key=f"cancel_{queued}").click().run()
    assert store.get(queued).status == "cancelled"
    at.button(key=f"rerun_{failed}").click().run()
    assert_clean(at)
    new = [j for j in store.list() if j.id not in (failed, queued)]
    assert len(new) == 1 and new[0].status == "queued" and new[0].config == store.get(failed).config
    at.button(key=f"delete_{queued}").click().run()
    assert_clean(at)
    assert queued not in [j.id for j in store.list()]
    assert not (ws.runs / queued).exists()


def test_jobs_details_of_a_job_whose_worker_died():
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 1}, kind="sleep")
    store.claim_next(999_999)                 # marked running by a worker that no longer exists
    Reporter(store.get(job_id).run_dir).stage("fit:smote_s0", "fitting")
    at = open_page("jobs", ws=ws.id, run=job_id)
    assert_clean(at)
    assert store.get(job_id).status == "failed"
    assert any(WORKER_DIED in t for t in texts(at.error))
    assert {m.label: m.value for m in at.metric}["Status"] == "failed"
    assert any("fitting" in c.value for c in at.code)         # the log tail


def test_jobs_resume_button_requeues_an_interrupted_experiment_in_its_run_folder():
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"data": "nowhere", "methods": ["smote"]}, check=False)
    sleeper = store.submit({"seconds": 1}, kind="sleep")
    for _ in range(2):
        store.claim_next(999_999)             # running under a worker that no longer exists
    at = open_page("jobs", ws=ws.id)
    assert_clean(at)
    assert store.get(job_id).status == "failed" and store.get(sleeper).status == "failed"
    assert not [b for b in at.button if b.key == f"resume_{sleeper}"]   # only experiments resume
    at.button(key=f"resume_{job_id}").click().run()
    assert_clean(at)
    job = store.get(job_id)
    assert job.status == "queued" and job.reason == "" and len(store.list()) == 2


def test_jobs_details_of_a_finished_run(done_ws):
    at = open_page("jobs", ws=done_ws["ws"].id, run=done_ws["run"])
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Status"] == "done"
    assert at.get("plotly_chart")                              # classifier curves
    assert any("See the results" in str(p.proto.label) for p in at.get("page_link"))


# ---------------------------------------------------------------------------------------------
# Gallery, Compare, Export
# ---------------------------------------------------------------------------------------------
def test_gallery_shows_synthetic_beside_real_with_provenance(done_ws):
    at = open_page("gallery", ws=done_ws["ws"].id)
    assert_clean(at)
    assert at.selectbox(key="g_method").options == ["mixup", "smote"]
    at.selectbox(key="g_method").set_value("smote").run()
    at.selectbox(key="g_class").set_value("crack").run()
    assert any(t.startswith("**Synthetic crack**") for t in texts(at.markdown))
    assert any(t.startswith("**Real crack**") for t in texts(at.markdown))
    # a click on an image opens its large view: its parents, its nearest real training image, the gate's decision
    first = next(b for b in at.button if b.key and b.key.startswith("g_open_"))
    first.click().run()
    assert_clean(at)
    assert any(b.key == "g_close" for b in at.button)
    assert any("Made from 2 real image(s)" in t for t in texts(at.caption))
    assert any(t.startswith("Nearest real training image: crack/") and "quality gate" in t for t in texts(at.caption))
    assert any(i.caption == "large view" for im in at.get("image") for i in im.proto.imgs)
    at.button(key="g_close").click().run()
    assert not any(b.key == "g_close" for b in at.button)
    at.selectbox(key="g_seed").set_value(1).run()
    assert_clean(at)
    assert len(at.get("image")) > 4


def test_compare_shows_both_confusion_matrices_cells_and_verdict(done_ws):
    at = open_page("compare", ws=done_ws["ws"].id, run=done_ws["run"])
    assert_clean(at)
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    strongest = json.loads((done_ws["run_dir"] / "metrics.json").read_text())["strongest_baseline"]
    # the strongest baseline is shown first: it is the one the verdict is judged against
    assert any(f"Baseline ({strongest})" in s for s in specs) and any("Augmented (smote)" in s for s in specs)
    assert any("Verdict:" in t for t in verdict_texts(at))
    board = at.dataframe[0].value
    assert board["kind"].iloc[0] == "method" and "gain vs paper" in board.columns
    cells = [str(v) for v in board.to_numpy().ravel()]
    assert "None" not in cells and "nan" not in cells                 # a baseline's gain cells are empty
    assert all(v.startswith("± ") for v in board["± std"]) and all(len(v) == 5 for v in board["macro F1"])
    # each baseline said in one line, so "paper" being low is no surprise
    lines = next(t for t in texts(at.markdown) if t.startswith("**The baselines**")).splitlines()[1:]
    assert [ln.split("**")[1] for ln in lines] == ["paper", "equal_steps", "class_weighted", "logit_adjusted", "drw",
                                                   "linear"]
    assert "same epochs as an augmented run" in lines[0] and "class frequency" in lines[2]
    assert "logit-adjusted loss" in lines[3] and "last 25% of the epochs" in lines[4] and "logistic" in lines[5]
    assert sum("(the strongest here)" in ln for ln in lines) == 1
    # a verdict that is not "helps" leads to that method's images in the Gallery
    verdicts = json.loads((done_ws["run_dir"] / "metrics.json").read_text())["methods"]
    links = [ln for ln in at.get("page_link")]
    for name, m in verdicts.items():
        shown = [ln for ln in links if ln.proto.label == f"See the images {name} made, in the Gallery"]
        assert len(shown) == (m["verdict"]["label"] != "helps"), (name, m["verdict"]["label"])
    # defect or normal: every model as a defect detector, beside the leaderboard
    assert "Defect or normal" in texts(at.subheader)
    detect = next(d.value for d in at.dataframe if "AUROC" in d.value.columns)
    assert set(detect["name"]) == set(board["name"])                  # named as on the leaderboard
    assert list(detect["AUROC"]) == sorted(detect["AUROC"], reverse=True)
    # how good the synthetic images are, named by the features that measured them
    assert "Synthetic image quality" in texts(at.subheader)
    quality = at.dataframe[2].value                     # after the leaderboard and defect or normal
    assert {"FD-cls", "KD-cls", "SSIM synthetic", "near-copies", "train-on-synthetic F1"} <= set(quality.columns)
    assert set(quality["method"]) == {"smote", "mixup"} and "all" in set(quality["class"])
    assert any("not FID" in t for t in texts(at.caption))
    assert any("t-SNE" in c.proto.spec for c in at.get("plotly_chart"))
    at.radio(key="c_norm").set_value("row-normalised").run()
    at.selectbox(key="c_seed").set_value(1).run()
    other = next(b for b in ("paper", "equal_steps", "class_weighted") if b != strongest)
    at.selectbox(key="c_base").set_value(other).run()
    assert_clean(at)
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any(f"Baseline ({other})" in s for s in specs)
    at.selectbox(key="c_true").set_value("crack").run()
    at.selectbox(key="c_pred").set_value("normal").run()
    assert_clean(at)
    assert sum("image(s)" in t for t in texts(at.markdown)) == 2    # before and after


def test_export_zip_and_report(done_ws):
    ws = done_ws["ws"]
    at = open_page("export", ws=ws.id, run=done_ws["run"])
    assert_clean(at)
    at.selectbox(key="e_method").set_value("smote").run()
    at.button(key="e_build").click().run()
    assert_clean(at)
    assert at.get("download_button")
    (zip_path,) = list(ws.exports.glob(f"{done_ws['run'][:8]}_smote.zip"))
    names = open_zip_names(zip_path)
    assert "manifest.csv" in names and any(n.startswith("crack/syn_smote_") for n in names)
    # the run measured its images: the set the quality gate keeps can be exported instead
    full = {c: sum(n.startswith(f"{c}/syn_") for n in names) for c in ("crack", "spöt ü")}
    at.checkbox(key="e_filtered").check().run()
    at.button(key="e_build").click().run()
    assert_clean(at)
    (gated,) = list(ws.exports.glob(f"{done_ws['run'][:8]}_smote_filtered.zip"))
    table = RunDir(done_ws["run_dir"]).quality_table("smote", 0)
    kept = {c: sum(r["kept"] == "True" and r["class"] == c for r in table.values()) for c in full}
    gated_names = open_zip_names(gated)
    # each class takes what the balance of the exported real images needs, from the images the gate keeps
    assert {c: sum(n.startswith(f"{c}/syn_") for n in gated_names) for c in full} == \
        {c: min(kept[c], full[c]) for c in full}
    assert sum(full.values()) <= len(table)
    # the train/test layout, only what the run trained on, synthetic images resized: the table says what it holds
    at.checkbox(key="e_filtered").uncheck().run()
    at.radio(key="e_layout").set_value("split").run()
    at.radio(key="e_real").set_value("train").run()
    at.selectbox(key="e_size").set_value(32).run()
    assert any("softer than real images" in t for t in texts(at.caption))
    at.button(key="e_build").click().run()
    assert_clean(at)
    (split,) = list(ws.exports.glob(f"{done_ws['run'][:8]}_smote_split_train_32px.zip"))
    names = open_zip_names(split)
    assert {"train/metadata.csv", "test/metadata.csv"} <= set(names)
    assert not any(n.startswith("test/") and "/syn_" in n for n in names)
    table = at.dataframe[0].value
    assert list(table["class"]) == ["crack", "normal", "spöt ü"] and table["real held back"].sum() == 0
    assert any("upscaled" in t for t in texts(at.warning))
    assert at.get("download_button")
    at.button(key="e_report").click().run()
    assert_clean(at)
    report = ws.exports / f"{done_ws['run'][:8]}_report.html"
    assert report.exists() and "Leaderboard" in report.read_text(encoding="utf-8")
    assert len(at.get("download_button")) >= 1


def test_result_pages_on_a_run_that_failed_half_way(done_ws):
    """A run folder with no metrics (failed early) is not offered on Compare/Export, and Jobs explains."""
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 0.1, "steps": 2, "crash": True}, kind="sleep")
    worker_main(ws.root, once=True)
    for page in ("compare", "export", "gallery"):
        at = open_page(page, ws=ws.id, run=job_id)
        assert_clean(at)
        assert at.info
    at = open_page("jobs", ws=ws.id, run=job_id)
    assert any("internal error" in t for t in texts(at.error))


def test_jobs_live_loss_curves_of_a_generative_method():
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 1}, kind="sleep")
    rep = Reporter(store.get(job_id).run_dir)
    for step in (1, 10, 20):
        rep.emit("monitor", method="dcgan", **{"class": "crack"}, seed=0, step=step, total=20,
                 d_loss=1.2 / step, g_loss=0.7 + step / 100, diversity=0.3, diversity_real=0.35)
    at = open_page("jobs", ws=ws.id, run=job_id)
    assert_clean(at)
    def traces() -> dict[str, list]:
        out = {}
        for c in at.get("plotly_chart"):
            for t in json.loads(c.proto.spec)["data"]:
                out[t.get("name", "")] = t.get("x")
        return out

    assert traces()["dcgan · crack · s0 · d_loss"] == [1, 10, 20]
    assert at.selectbox(key=f"mon_{job_id}").options == ["diversity", "diversity_real"]
    rep.emit("monitor", method="dcgan", **{"class": "crack"}, seed=0, step=30, total=30,
             d_loss=0.01, g_loss=3.0, diversity=0.3, diversity_real=0.35)
    at.run()                                   # the next poll picks up the new point
    assert traces()["dcgan · crack · s0 · d_loss"] == [1, 10, 20, 30]


def test_jobs_curves_of_two_seeds_are_separate_and_samples_are_a_timeline():
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 1}, kind="sleep")
    run_dir = store.get(job_id).run_dir
    rep = Reporter(run_dir)
    for seed in (0, 1):
        for step in (1, 2):
            rep.emit("monitor", method="dcgan", **{"class": "crack"}, seed=seed, step=step, total=4,
                     d_loss=1.0 + seed + step, g_loss=0.5, diversity=0.3, diversity_real=0.35)

    def grid(seed: int, step: int, shade: int) -> None:
        # as the trainer writes them: samples/<method>/<class>/seed<s>_step<n>.png, then an image event
        rel = Path("samples", "dcgan", "crack", f"seed{seed}_step{step:06d}.png")
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), shade).save(run_dir / rel)
        rep.emit("image", method="dcgan", **{"class": "crack"}, seed=seed, path=rel.as_posix(), step=step)

    grid(0, 2, 40)
    grid(0, 4, 200)
    grid(1, 2, 90)
    at = open_page("jobs", ws=ws.id, run=job_id)
    assert_clean(at)
    losses = {t["name"]: (t["x"], t["y"]) for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert losses["dcgan · crack · s0 · d_loss"] == ([1, 2], [2.0, 3.0])       # one line per seed, not
    assert losses["dcgan · crack · s1 · d_loss"] == ([1, 2], [3.0, 4.0])       # one line zigzagging
    assert len(losses) == 4

    def shown() -> tuple[str, str]:
        (image,) = at.image
        return image.captions[0], image.value[0]

    assert at.selectbox(key=f"grid_gen_{job_id}").options == ["dcgan · crack · s0", "dcgan · crack · s1"]
    key = f"grid_step_{job_id}_dcgan · crack · s0"
    assert at.select_slider(key=key).options == ["step 2", "step 4"]
    assert at.select_slider(key=key).value == 4                                  # the latest first
    caption, url4 = shown()
    assert "s0 · step 4" in caption
    at.select_slider(key=key).set_value(2).run()
    assert_clean(at)
    caption, url2 = shown()
    assert "s0 · step 2" in caption and url2 != url4
    grid(0, 6, 120)                             # training goes on: the user who went back stays there
    at.run()
    assert at.select_slider(key=key).options == ["step 2", "step 4", "step 6"]
    assert at.select_slider(key=key).value == 2 and "step 2" in shown()[0]
    at.select_slider(key=key).set_value(6).run()
    grid(0, 8, 160)                             # ... and on the latest one follows the new grids
    at.run()
    assert at.select_slider(key=key).value == 8 and "step 8 (4 of 4)" in shown()[0]
    at.selectbox(key=f"grid_gen_{job_id}").set_value("dcgan · crack · s1").run()
    assert_clean(at)
    assert "s1 · step 2 (1 of 1)" in shown()[0]                                 # a single grid: no slider


def test_a_k_fold_run_on_compare_gallery_and_export(tmp_path):
    """Compare reads the pooled folds (every real image tested once); Gallery and Export pick a fold."""
    from core.experiment import run
    from tests.conftest import write_dataset
    ws = Workspace.create()
    data = write_dataset(ws.uploads, {"normal": 20, "crack": 8, "dent": 6}, size=16, name="tiles")
    store = JobStore(ws)
    config = dict(data=str(data), methods=["smote"], seeds=[0], ratio=0.3, image_size=16, folds=2,
                  overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu", num_threads=1)
    run_id = store.submit(config)
    run(config, store.get(run_id).run_dir)
    store.claim_next(os.getpid())
    store.finish(run_id, "done")
    at = open_page("compare", ws=ws.id, run=run_id)
    assert_clean(at)
    assert any("2 folds x 1 seed" in t for t in verdict_texts(at))
    at.selectbox(key="c_true").set_value("crack").run()
    assert_clean(at)
    at.radio(key="c_fold").set_value("fold 2").run()                  # one fold's own results
    assert_clean(at)
    assert any("over 1 seed and the test images" in t for t in verdict_texts(at))
    gallery = open_page("gallery", ws=ws.id, run=run_id)
    assert_clean(gallery)
    assert gallery.selectbox(key="g_fold").options == ["fold 1 of 2", "fold 2 of 2"]
    gallery.selectbox(key="g_fold").set_value(1).run()
    assert_clean(gallery)
    assert gallery.selectbox(key="g_method").value == "smote"
    export = open_page("export", ws=ws.id, run=run_id)
    assert_clean(export)
    assert any("first fold's split" in t for t in texts(export.caption))
    export.radio(key="e_layout").set_value("split").run()
    export.button(key="e_build").click().run()
    assert_clean(export)
    fold = json.loads((Path(store.get(run_id).run_dir) / "folds" / "f0" / "split.json").read_text())
    assert export.dataframe[0].value["real test"].sum() == len(fold["test"])


def test_jobs_draw_the_latent_codes_of_a_pre_trained_gan():
    """A bagan fitted into the job's run folder: the Jobs page gets a "Latent codes" tab with one t-SNE trace
    per class, every training image (mirror copies included) a point."""
    from core.methods import Context, get_method
    from tests.core.methods.test_gan import tiny_set
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 1}, kind="sleep")
    rd = RunDir(store.get(job_id).run_dir)
    spec = get_method("bagan")
    params = spec.make_params("quick", {"steps": 1, "pretrain_steps": 2, "batch_size": 4, "g_width": 4,
                                        "d_width": 4, "latent_dim": 8})
    train = tiny_set()
    spec.sampler_cls(params, Context(device=torch.device("cpu"))).fit(train, {"crack": 2}).save(
        rd.checkpoint_dir("bagan", 0))
    at = open_page("jobs", ws=ws.id, run=job_id)
    assert_clean(at)
    assert "Latent codes" in [t.label for t in at.tabs]
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    latent = [c for c in charts if "autoencoder's codes" in json.dumps(c.get("layout", {}).get("title", ""))]
    assert latent, "no latent-code chart"
    points = {t["name"]: len(t["x"]) for t in latent[0]["data"]}
    assert points == {c: 2 * n for c, n in train.counts().items()}


# ---------------------------------------------------------------------------------------------
# Names, not server paths (issue 26)
# ---------------------------------------------------------------------------------------------
def page_text(at) -> str:
    """Everything the page shows (every element's message, the sidebar included), as one string."""
    out: list[str] = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        children = getattr(node, "children", None) or {}
        for child in (children.values() if isinstance(children, dict) else children):
            walk(child)
    walk(at._tree)
    return "\n".join(out)


def test_no_page_or_report_of_a_data_root_dataset_shows_the_roots_path(app_env, finished_run, tmp_path):
    import shutil
    from core.views.report import write_report
    roots = Path(app_env["roots"])
    data = Path(shutil.copytree(RunDir(finished_run).config()["data"], roots / "inspection" / "tiles_root"))
    ws = Workspace.create()
    ws.update_settings(dataset=str(data))
    store = JobStore(ws)
    config = RunDir(finished_run).config()
    keys = ("methods", "seeds", "ratio", "image_size", "test_per_class", "overrides", "device", "num_threads")
    run_id = store.submit({"data": str(data), **{k: config[k] for k in keys}})
    run_dir = Path(store.get(run_id).run_dir)
    shutil.copytree(finished_run, run_dir, dirs_exist_ok=True)
    RunDir(run_dir).write_config(dict(config, data=str(data)))      # this run read the data root's copy
    store.claim_next(os.getpid())
    store.finish(run_id, "done")
    forbidden = {str(roots), str(roots.resolve())}

    seen = []
    for page in PAGES:
        at = open_page(page, ws=ws.id, run=run_id)
        assert_clean(at)
        if page == "data":
            at.radio(key="source").set_value("Folder on the server").run()
            assert_clean(at)
            assert "inspection" in page_text(at)
        text = page_text(at)
        assert not [f for f in forbidden if f in text], (page, [ln for ln in text.splitlines() if str(roots) in ln][:5])
        seen.append(text)
    assert any("inspection/tiles_root" in t for t in seen[:2]), "the Data and Synthesize pages name the dataset"
    assert store.status(run_id).label.endswith("on tiles_root (2 seeds)")
    report = write_report(run_dir, tmp_path / "report.html").read_text(encoding="utf-8")
    assert not [f for f in forbidden if f in report]
    assert "tiles_root" in report


def test_a_verdict_link_opens_the_gallery_on_that_method(done_ws):
    from streamlit.testing.v1 import AppTest
    from .conftest import REPO
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
    first = RunDir(done_ws["run_dir"]).synthetic_methods()[0]
    other = next(m for m in ("smote", "mixup") if m != first)          # not the one shown by default
    at.query_params.update(ws=done_ws["ws"].id, run=done_ws["run"], method=other)
    at.run()
    at.switch_page("app_pages/gallery.py").run()
    assert_clean(at)
    assert at.selectbox(key="g_method").value == other


# ---------------------------------------------------------------------------------------------
# The README's path for a newcomer (issue 25)
# ---------------------------------------------------------------------------------------------
def shown_seconds(text: str) -> float:
    """Seconds of a duration as runs.format_seconds writes it ('42 s', '3 min 05 s', '1 h 02 min')."""
    units = {"h": 3600, "min": 60, "s": 1}
    return float(sum(int(n) * units[u] for n, u in re.findall(r"(\d+) (h|min|s)\b", text)))


def estimate_range(caption: str) -> tuple[float, float]:
    low, high = re.match(r"Likely (.+?) to (.+?)[,;.]", caption).groups()
    return shown_seconds(low), shown_seconds(high)


def verdict_texts(at) -> list[str]:
    """The verdicts on Compare: each headline (a success, warning or info box) and its details (a caption)."""
    return texts(at.info) + texts(at.success) + texts(at.warning) + texts(at.error) + texts(at.caption)


def test_the_readme_path_on_the_sample_launches_its_defaults():
    """Data -> the built-in sample -> Synthesize with its defaults -> Launch: the job is smote on 3 seeds with the
    six baselines and nothing overridden, after an estimate was shown. The run itself, to its verdict on Compare,
    is walked in Chromium (tests/e2e/test_browser.py::test_the_readme_path_on_the_sample_with_its_defaults): the
    two once trained the same 21 models, 330 s each in a full test run."""
    at = open_page("data")
    at.button(key="make_sample").click().run()
    ws = ws_of(at)
    at = open_page("synthesize", ws=ws.id)
    assert_clean(at)
    low, high = estimate_range(next(t for t in texts(at.caption) if t.startswith("Likely ")))
    assert 0 < low < high
    at.button(key="launch").click().run()
    assert_clean(at)
    (job,) = JobStore(ws).list()
    assert job.config["methods"] == ["augment"] and job.config["seeds"] == [0, 1, 2] and not job.config["overrides"]
    assert job.config.get("baselines", list(BASELINES)) == list(BASELINES)
    assert job.status == "queued"


def test_synthesize_classifier_arch_and_pretrained_availability(tmp_path, monkeypatch):
    """A torchvision arch without local ImageNet weights is offered from scratch, "pretrained" unavailable with
    the reason; with the weights configured it can be chosen, and the paper's recipe fills the form."""
    monkeypatch.delenv("DEFECTAUG_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("DEFECTAUG_WEIGHTS_RESNET18", raising=False)
    at = _with_sample("synthesize")
    arch = at.selectbox(key="p:quick:classifier::arch")
    assert "resnet18 (from scratch)" in arch.options and arch.value == "small_cnn"
    arch.set_value("resnet18").run()
    assert_clean(at)
    box = at.checkbox(key="p:quick:classifier::resnet18:pretrained")
    assert box.disabled and not box.value
    assert any("Pretrained is unavailable" in t and "resnet18-f37072fd.pth" in t and "DEFECTAUG_WEIGHTS_DIR" in t
               for t in texts(at.caption))
    at.button(key="launch").click().run()
    assert_clean(at)
    (job,) = JobStore(ws_of(at)).list()
    assert job.config["overrides"] == {"classifier": {"arch": "resnet18"}}
    # the administrator configures the weights: pretrained becomes a choice, and the recipe sets lr and batch
    from tests.core.test_classifier import imagenet_file
    imagenet_file(tmp_path / "w", "resnet50")
    monkeypatch.setenv("DEFECTAUG_WEIGHTS_DIR", str(tmp_path / "w"))
    at = _with_sample("synthesize")
    at.selectbox(key="p:quick:classifier:recipe").set_value("cyclegan_paper").run()
    assert_clean(at)
    assert at.selectbox(key="p:quick:classifier:cyclegan_paper:arch").value == "resnet50"
    box = at.checkbox(key="p:quick:classifier:cyclegan_paper:resnet50:pretrained")
    assert not box.disabled and box.value
    assert at.number_input(key="p:quick:classifier:cyclegan_paper:batch_size").value == 4
    at.button(key="launch").click().run()
    assert_clean(at)
    (job,) = JobStore(ws_of(at)).list()
    assert job.config["overrides"] == {"classifier": {"recipe": "cyclegan_paper"}}


def test_export_offers_the_chosen_models_classifier_weights(done_ws):
    import json
    ws = done_ws["ws"]
    at = open_page("export", ws=ws.id, run=done_ws["run"])
    assert_clean(at)
    model = at.selectbox(key="w_model")
    assert "smote_s0" in model.options and "baseline_equal_steps_s1" in model.options
    model.set_value("smote_s1").run()
    assert_clean(at)
    assert any("small_cnn" in t and "python -m core predict" in t for t in texts(at.caption))
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download the weights (.safetensors)" in labels and "Download classes and preprocessing (.json)" in labels
    meta = json.loads(RunDir(done_ws["run_dir"]).classifier_meta_path("smote_s1").read_text())
    assert meta["classes"] == ["crack", "normal", "spöt ü"] and "mean" in meta["preprocessing"]


def test_jobs_say_where_each_task_of_a_run_ran():
    """The `task` events a runner writes (here as the Ray runner's, one task twice after a lost worker) are the
    Jobs page's "Where it ran" tab: one row per start, and a sentence naming the re-run."""
    from core.events import Reporter
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 1}, kind="sleep")
    rep = Reporter(store.get(job_id).run_dir)
    for task, node, pid in [("prepare", "10.0.0.1 (a1b2c3d4)", 11), ("fit:dcgan_s0", "10.0.0.2 (e5f6a7b8)", 12),
                            ("fit:dcgan_s0", "10.0.0.1 (a1b2c3d4)", 13)]:
        rep.emit("task", task=task, runner="ray", node=node, host="h", pid=pid, device="cuda:0 (NVIDIA H200)")
    at = open_page("jobs", ws=ws.id, run=job_id)
    assert_clean(at)
    assert "Where it ran" in [t.label for t in at.tabs]
    table = next(d.value for d in at.dataframe if "runner" in d.value.columns)
    assert list(table["task"]) == ["prepare", "fit:dcgan_s0", "fit:dcgan_s0"] and list(table["attempt"]) == [1, 1, 2]
    assert any("2 tasks on 2 nodes (ray runner)" in t and "1 ran again" in t and "fit:dcgan_s0" in t
               for t in texts(at.caption))


def test_gallery_shows_a_transplanted_defect_beside_its_source_and_background(tmp_path):
    """cmo and defect_paste images: the defect source with its mask outlined, the normal background, the result."""
    from core.experiment import run
    from tests.conftest import write_dataset
    ws = Workspace.create()
    data = write_dataset(ws.uploads, {"normal": 20, "crack": 8}, size=16, name="tiles")
    store = JobStore(ws)
    config = dict(data=str(data), methods=["defect_paste", "cmo"], seeds=[0], ratio=None, image_size=16,
                  test_per_class=2, quality=False, overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu",
                  num_threads=1)
    run_id = store.submit(config)
    run(config, store.get(run_id).run_dir)
    store.claim_next(os.getpid())
    store.finish(run_id, "done")
    at = open_page("gallery", ws=ws.id, run=run_id)
    assert_clean(at)
    for method, how in (("defect_paste", "a mask found automatically"), ("cmo", "a CutMix box")):
        at.selectbox(key="g_method").set_value(method).run()
        assert_clean(at)
        next(b for b in at.button if str(b.key).startswith("g_open_")).click().run()      # its large view
        assert_clean(at)
        assert any(f"A real defect cut out by {how}" in t for t in texts(at.caption)), texts(at.caption)
        assert not any("not in this run's data" in t for t in texts(at.caption))   # source and background found


def test_jobs_tabs_keep_their_order_when_a_generator_starts_and_its_loss_is_on_the_losses_tab():
    """The details of a job have the same tabs in the same order before and after its first monitor event (a
    rerun every 2 s then keeps the tab the user chose), and a diffusion model's `loss` is drawn on Losses."""
    from app_pages.jobs import DETAIL_TABS
    from core.events import Reporter
    ws = ws_of(open_page())
    store = JobStore(ws)
    job_id = store.submit({"seconds": 1}, kind="sleep")
    rep = Reporter(store.get(job_id).run_dir)
    rep.stage("fit:ddpm_translate_s0", "fitting ddpm_translate")
    before = open_page("jobs", ws=ws.id, run=job_id)
    assert_clean(before)
    assert [t.label for t in before.tabs] == list(DETAIL_TABS)
    for step in (20, 40):
        rep.emit("monitor", method="ddpm_translate", **{"class": "all"}, seed=0, step=step, total=200,
                 loss=1.0 / step, grad_norm=2.0, lr=1e-4)
    after = open_page("jobs", ws=ws.id, run=job_id)
    assert_clean(after)
    assert [t.label for t in after.tabs] == list(DETAIL_TABS)
    charts = [json.loads(c.proto.spec) for c in after.get("plotly_chart")]
    loss = [c for c in charts if "Training loss" in json.dumps(c.get("layout", {}).get("title", ""))]
    assert loss and [t["y"] for t in loss[0]["data"]] == [[1 / 20, 1 / 40]]


def test_synthesize_marks_the_methods_over_an_hour_and_select_all_asks_before_adding_them():
    """At 256 px and 10 seeds a GAN takes hours on any CPU: marked in the picker, and "Select all" asks first;
    what is selected is listed in plain sight whatever the box shows."""
    at = _with_sample("synthesize")
    at.selectbox(key="image_size").set_value(256).run()
    at.text_input(key="seeds").set_value("0,1,2,3,4,5,6,7,8,9").run()
    assert_clean(at)
    box = at.multiselect(key="methods")
    every = list(box.options)
    marked = [o for o in every if "over an hour here" in o]
    assert any(o.startswith("dcgan (gan) · over an hour here (~") for o in marked), marked
    assert any(t.startswith("**Selected (1)**: augment") for t in texts(at.caption)), texts(at.caption)
    at.button(key="select_all").click().run()
    asked = [w for w in texts(at.warning) if "over an hour each on this machine" in w]
    assert asked and "dcgan" in asked[0]
    assert at.multiselect(key="methods").value == ["augment"]        # nothing added before the answer
    at.button(key="confirm_all_no").click().run()
    fast = [o.split(" (")[0] for o in every if o not in marked]   # how many depends on the load now
    assert at.multiselect(key="methods").value == fast and "dcgan" not in fast
    at.button(key="select_all").click().run()
    at.button(key="confirm_all_yes").click().run()
    assert_clean(at)
    assert len(at.multiselect(key="methods").value) == len(every)
    assert any(t.startswith(f"**Selected ({len(every)})**") for t in texts(at.caption))


def test_gallery_sorts_and_filters_by_the_nearest_real_image_confidence_and_gate_with_a_table_of_the_page(done_ws):
    at = open_page("gallery", ws=done_ws["ws"].id)
    at.selectbox(key="g_method").set_value("smote").run()
    at.selectbox(key="g_class").set_value("crack").run()
    at.selectbox(key="g_sort").set_value("nearest real: closest first").run()
    assert_clean(at)
    table = at.dataframe[-1].value                    # the page's provenance as a table
    assert {"file", "made", "parents", "nearest real", "distance", "classifier reads", "confidence",
            "gate"} <= set(table.columns)
    d = list(table["distance"])
    assert len(d) > 2 and d == sorted(d)
    at.selectbox(key="g_sort").set_value("nearest real: farthest first").run()
    far = list(at.dataframe[-1].value["distance"])          # the first page of each order
    assert far == sorted(far, reverse=True) and far[0] >= d[-1] and far[-1] >= d[0]
    at.selectbox(key="g_show").set_value("near-copies only").run()
    assert_clean(at)
    shown = at.dataframe[-1].value if len(at.dataframe) else None
    assert shown is None or shown.empty or bool(shown["near-copy"].all())
    at.selectbox(key="g_show").set_value("all").run()
    at.slider(key="g_conf").set_value(0.99).run()
    assert_clean(at)
    assert any("of" in t and "(filtered)" in t for t in texts(at.markdown)) or \
        all(c >= 0.99 for c in at.dataframe[-1].value["confidence"])


NONE_WORDS = re.compile(r"\bNone\b|\bnan\b|\bNaN\b")


def _all_text(at) -> list[str]:
    """Every text a user reads on the page: markdown, captions, boxes, metrics, titles, tables' cells, options."""
    out = []
    for kind in ("markdown", "caption", "info", "success", "warning", "error", "title", "subheader", "header"):
        out += [f"{kind}: {t}" for t in texts(getattr(at, kind))]
    out += [f"metric {m.label}: {m.value}" for m in at.metric]
    for df in at.dataframe:
        frame = df.value
        out += [f"table: {c}" for c in frame.columns]
        out += [f"table cell: {v!r}" for v in frame.astype(object).to_numpy().ravel()
                if v is None or (isinstance(v, float) and v != v) or isinstance(v, str)]
    for box in list(at.selectbox) + list(at.multiselect) + list(at.radio):
        out += [f"option: {o}" for o in box.options]
    return out


@pytest.mark.parametrize("page", PAGES)
def test_no_page_and_no_report_shows_none_or_nan(done_ws, page):
    at = open_page(page, ws=done_ws["ws"].id, run=done_ws["run"])
    assert_clean(at)
    bad = [t for t in _all_text(at) if NONE_WORDS.search(t) or t.endswith("cell: None") or "cell: nan" in t]
    assert not bad, bad
    if page == "export":           # the report too, of this run and of one that kept the data's own imbalance
        import shutil
        from core.views.report import build_report
        own = Path(done_ws["ws"].runs.parent) / "own_ratio_copy"
        shutil.copytree(done_ws["run_dir"], own, dirs_exist_ok=True)
        cfg = json.loads((own / "config.json").read_text())
        (own / "config.json").write_text(json.dumps(dict(cfg, ratio=None, target_ratio=None)))
        for run_dir in (done_ws["run_dir"], own):
            html = build_report(run_dir)
            visible = re.sub(r"<script.*?</script>", "", html, flags=re.S)      # plotly.js itself says null/NaN
            import html as html_lib
            text = html_lib.unescape(re.sub(r"<[^>]+>", " ", visible))
            assert not NONE_WORDS.search(text), NONE_WORDS.findall(text)[:5]
            assert "none (the data's own counts)" in text or run_dir != own


def test_export_preselects_the_method_its_verdict_favours_and_shows_that_verdict_by_the_choice(done_ws):
    from core.views import headline
    metrics = json.loads((done_ws["run_dir"] / "metrics.json").read_text())
    best, why = headline.export_choice(metrics, ["mixup", "smote"])
    at = open_page("export", ws=done_ws["ws"].id, run=done_ws["run"])
    assert_clean(at)
    assert at.selectbox(key="e_method").value == best          # never just the alphabetically first
    boxes = texts(at.success) + texts(at.warning) + texts(at.info)
    if best == "none":
        assert any(t.startswith("Real images only: no method helped") for t in boxes), boxes
    else:
        assert any(t.startswith(f"**Use it**: {best}.") for t in boxes), boxes
    at.selectbox(key="e_method").set_value("mixup").run()
    words = headline.headline(metrics, "mixup").words
    assert any(t.startswith(f"**{words}**: mixup.") for t in texts(at.success) + texts(at.warning) + texts(at.info))
