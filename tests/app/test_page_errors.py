"""Pages facing broken or hostile files: a finished run whose results were damaged on disk, and the
server-folder picker of the Data page, which offers only what lies inside the configured data roots.

A damaged run is a copy of the session's finished run (conftest `done_ws`) in a workspace of its own,
so the other app tests keep reading the intact one.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.sample_data import write_sample_dataset, write_sample_zip
from core.workspace import Workspace

from .conftest import assert_clean, open_page, texts, ws_of

RERUN = "re-run it from the Jobs page"


def _copy_of_finished_run(done_ws) -> tuple[Workspace, str, Path]:
    ws = Workspace.create()
    run_dir = Path(shutil.copytree(done_ws["run_dir"], ws.run_dir(done_ws["run"])))
    return ws, done_ws["run"], run_dir


def _jobs_links(at) -> list[str]:
    return [str(p.proto.page) for p in at.get("page_link") if "jobs" in str(p.proto.page)]


# ---------------------------------------------------------------------------------------------
# Damaged results
# ---------------------------------------------------------------------------------------------
def test_compare_with_a_corrupt_metrics_file_says_to_rerun(done_ws):
    ws, run_id, run_dir = _copy_of_finished_run(done_ws)
    intact = open_page("compare", ws=ws.id, run=run_id)
    assert_clean(intact)
    assert not any("unreadable" in t for t in texts(intact.error))
    metrics = run_dir / "metrics.json"
    for damaged in (metrics.read_text()[: metrics.stat().st_size // 2],     # a write cut short
                    '{"classes": ["crack", "normal"]}',                      # parts missing
                    "\x00\x01 not json"):
        metrics.write_text(damaged)
        at = open_page("compare", ws=ws.id, run=run_id)
        assert_clean(at)
        errors = texts(at.error)
        assert any(e.startswith("This run's results are unreadable (metrics.json") and e.endswith(f"{RERUN}.")
                   for e in errors), errors
        assert not any("This is a bug" in e for e in errors), errors
        assert _jobs_links(at)
        assert not at.get("plotly_chart") and not at.dataframe
        assert "results unreadable" in at.selectbox(key="run_pick").options[0]


def test_gallery_with_a_corrupt_or_missing_provenance_says_to_rerun(done_ws):
    ws, run_id, run_dir = _copy_of_finished_run(done_ws)
    prov = run_dir / "synthetic" / "smote" / "provenance_s0.csv"
    for damage in ("garbage", "missing"):
        if damage == "garbage":
            prov.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\xfd not a table\n")
            where = "synthetic/smote/provenance_s0.csv "
        else:
            for p in prov.parent.glob("provenance*.csv"):
                p.unlink()
            where = "synthetic/smote has no provenance file"
        at = open_page("gallery", ws=ws.id, run=run_id)
        at.selectbox(key="g_method").set_value("smote").run()
        assert_clean(at)
        errors = texts(at.error)
        assert any(e.startswith(f"This run's synthetic images of smote are unreadable ({where}")
                   and e.endswith(f"{RERUN}.") for e in errors), errors
        assert not any("This is a bug" in e for e in errors), errors
        assert _jobs_links(at)
        assert not at.get("image")


# ---------------------------------------------------------------------------------------------
# Server folders: the picker
# ---------------------------------------------------------------------------------------------
def _server_page():
    at = open_page("data")
    at.radio(key="source").set_value("Folder on the server").run()
    assert_clean(at)
    return at


def test_server_picker_lists_the_data_root_and_loads_the_chosen_dataset(tmp_path, monkeypatch):
    root = tmp_path / "roots"
    write_sample_dataset(root / "plates", {"normal": 6, "scratch": 3}, size=16, seed=1)
    write_sample_dataset(root / "tiles", {"normal": 5, "crack": 2, "spot": 2}, size=16, seed=2)
    write_sample_zip(root / "packed.zip", {"normal": 4, "crack": 2}, size=16)
    (root / "readme.txt").write_text("not a dataset")
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", str(root))
    at = _server_page()
    pick = at.selectbox(key="srv_pick")
    real = root.resolve()
    assert pick.options == ["packed.zip", "plates", "tiles"]           # named inside the root, not by server path
    pick.set_value(real / "tiles").run()
    at.button(key="srv_use").click().run()
    assert_clean(at)
    assert not at.error, texts(at.error)
    assert ws_of(at).settings()["dataset"] == str(real / "tiles")
    assert {m.label: m.value for m in at.metric}["Images"] == "9"
    table = at.dataframe[0].value
    assert dict(zip(table["class"], table["images"])) == {"crack": 2, "normal": 5, "spot": 2}
    at.selectbox(key="srv_pick").set_value(real / "packed.zip").run()
    at.button(key="srv_use").click().run()
    assert_clean(at)
    assert not at.error, texts(at.error)
    table = at.dataframe[0].value
    assert dict(zip(table["class"], table["images"])) == {"crack": 2, "normal": 4}
    assert sorted(p.name for p in root.iterdir()) == ["packed.zip", "plates", "readme.txt", "tiles"]   # untouched
    # the typed path is still there as an alternative
    at.text_input[0].set_value("plates")
    [b for b in at.button if b.label == "Use this folder"][0].click().run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert dict(zip(table["class"], table["images"])) == {"normal": 6, "scratch": 3}


def test_server_picker_never_offers_a_link_out_of_the_root(tmp_path, monkeypatch):
    root = tmp_path / "roots"
    write_sample_dataset(root / "tiles", {"normal": 5, "crack": 2}, size=16)
    private = write_sample_dataset(tmp_path / "private", {"normal": 5, "scratch": 2}, size=16)
    (root / "escape").symlink_to(private)
    (root / "everything").symlink_to("/")
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", str(root))
    at = _server_page()
    pick = at.selectbox(key="srv_pick")
    assert pick.options == ["tiles"] and pick.value == root.resolve() / "tiles"
    for typed in ("escape", str(root / "escape"), "everything/etc"):     # typing the link is refused too
        at.text_input[0].set_value(typed)
        [b for b in at.button if b.label == "Use this folder"][0].click().run()
        assert_clean(at)
        assert any("allowed data folders" in t for t in texts(at.error)), (typed, texts(at.error))
        assert not ws_of(at).settings().get("dataset")


def test_server_picker_without_data_roots_says_how_to_configure_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", "")
    at = _server_page()
    infos = texts(at.info)
    assert any("DEFECTAUG_DATA_ROOTS" in t and os.pathsep in t for t in infos), infos
    assert not at.selectbox
    empty = tmp_path / "empty_root"
    empty.mkdir()
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", str(empty))
    at = _server_page()
    assert any("hold no sub-folder or .zip" in t for t in texts(at.info))
    assert not at.selectbox
