"""Links in a run folder (issue 37, item 5): whoever can write the workspaces folder (a shared drive, a restored
backup) swaps a run's file or folder for a link to a file of the server. A resumed run, its event and log
appends and the export never follow one out of the run folder."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import DataError, RunError
from core.rundir import RunDir
from core.views.export import export_zip
from core.workspace import Workspace
from tests.conftest import write_dataset

REPO = Path(__file__).resolve().parents[2]
FAST = ["--set", "classifier.epochs=1", "--set", "classifier.width=4", "--image-size", "16",
        "--test-per-class", "4", "--ratio", "0.2", "--device", "cpu", "--no-quality"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file outside the run folder that a link points at: it must keep its bytes."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_text("do not touch\n")
    return path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple[Path, list]:
    tmp = tmp_path_factory.mktemp("linked")
    data = write_dataset(tmp, {"normal": 12, "crack": 6, "spot": 6}, size=16)
    args = ["run", "--data", data, "--methods", "random_oversample", "--seeds", "0", *FAST, "--out", tmp / "run"]
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    return tmp / "run", args


def _copy(small_run, tmp_path) -> tuple[Path, list]:
    run, args = small_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy, [a if a != run else copy for a in args]


@pytest.mark.parametrize("where", ["results/random_oversample_s0.json", "results", "checkpoints", "events.jsonl",
                                   "log.txt"])
def test_resume_refuses_a_run_folder_with_a_link_and_writes_nothing_through_it(small_run, tmp_path, victim, where):
    run, args = _copy(small_run, tmp_path)
    target = run / where
    (run / "checkpoints").mkdir(exist_ok=True)
    if target.is_dir():
        shutil.rmtree(target)
        target.symlink_to(victim.parent, target_is_directory=True)
    else:
        target.unlink(missing_ok=True)
        target.symlink_to(victim)
    before = sorted(p.name for p in victim.parent.iterdir())
    res = cli(*args, "--resume")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "the run folder holds links" in res.stderr and where.split("/")[0] in res.stderr
    assert victim.read_text() == "do not touch\n"
    assert sorted(p.name for p in victim.parent.iterdir()) == before     # no file written beside it


def test_event_and_log_appends_replace_a_link_instead_of_writing_through_it(tmp_path, victim):
    rd = RunDir(tmp_path / "run").mkdir()
    rd.events_path.symlink_to(victim)
    rd.log_path.symlink_to(victim)
    rd.append_event({"t": 1.0, "kind": "stage", "stage": "load"})
    rd.append_log("a line")
    rd.request_cancel("now")
    assert victim.read_text() == "do not touch\n"
    assert not rd.events_path.is_symlink() and json.loads(rd.events_path.read_text())["kind"] == "stage"
    assert not rd.log_path.is_symlink() and "a line" in rd.log_path.read_text()


def test_export_refuses_a_run_whose_synthetic_image_is_a_link(small_run, tmp_path, victim):
    run, _ = _copy(small_run, tmp_path)
    png = next((run / "synthetic").rglob("*.png"))
    png.unlink()
    png.symlink_to(victim)
    out = tmp_path / "out.zip"
    with pytest.raises(RunError, match="the run folder holds links"):
        export_zip(run, "random_oversample", out)
    assert not out.exists()


def test_the_app_export_reads_no_dataset_outside_the_users_workspace(small_run, tmp_path, monkeypatch):
    """config.json naming another workspace's upload (or any folder outside this user's uploads and the data
    roots): the export stops before reading an image."""
    monkeypatch.setenv("DEFECTAUG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEFECTAUG_DATA_ROOTS", raising=False)
    mine, other = Workspace.create(), Workspace.create()
    stolen = other.uploads / "their_data"
    shutil.copytree(RunDir(small_run[0]).config()["data"], stolen)
    run, _ = _copy(small_run, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(cfg, data=str(stolen))))
    out = tmp_path / "out.zip"
    with pytest.raises(DataError):
        export_zip(run, "random_oversample", out, check_data=mine.check_data_path)
    assert not out.exists()
    own = mine.uploads / "my_data"                       # the same files in the user's own uploads: exported
    shutil.copytree(stolen, own)
    (run / "config.json").write_text(json.dumps(dict(cfg, data=str(own))))
    assert export_zip(run, "random_oversample", out, check_data=mine.check_data_path).path.exists()
