"""Workspaces: random ids, isolation between users, the shared option, typed paths only inside roots."""
from __future__ import annotations

import os

import pytest

from core.errors import DataError, ParamError, RunError
from core.workspace import Workspace, data_roots, is_valid_id, safe_name, workspace_home


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTAUG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEFECTAUG_SHARED_WORKSPACE", raising=False)
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", "")
    return tmp_path / "home"


def test_new_workspaces_are_random_and_separate(home):
    a, b = Workspace.create(), Workspace.create()
    assert is_valid_id(a.id) and a.id != b.id and a.root.parent == home.resolve()
    for p in (a.uploads, a.runs, a.exports):
        assert p.is_dir()
    (a.uploads / "mine").mkdir()
    assert [p.name for p in a.datasets()] == ["mine"] and b.datasets() == []
    assert workspace_home() == home.resolve()


def test_session_gets_the_requested_workspace_or_a_fresh_one(home):
    a = Workspace.create()
    assert Workspace.for_session(a.id).root == a.root
    assert Workspace.for_session(a.id.upper()).root == a.root
    for bad in ("../..", "/etc", "x" * 32, "", None, a.id + "/.."):
        ws = Workspace.for_session(bad)
        assert ws.id != a.id and ws.root.parent == home.resolve()
    with pytest.raises(ParamError, match="not a workspace id"):
        Workspace.open("../../etc")


def test_shared_workspace_when_configured(home, monkeypatch):
    monkeypatch.setenv("DEFECTAUG_SHARED_WORKSPACE", "team")
    a = Workspace.for_session(None)
    b = Workspace.for_session(Workspace.create().id)
    assert a.id == b.id == "team" and a.shared
    monkeypatch.setenv("DEFECTAUG_SHARED_WORKSPACE", "1")
    assert Workspace.for_session(None).id == "shared"
    monkeypatch.setenv("DEFECTAUG_SHARED_WORKSPACE", "../x")
    with pytest.raises(ParamError):
        Workspace.for_session(None)


def test_run_dirs_only_for_run_ids(home):
    ws = Workspace.create()
    with pytest.raises(RunError):
        ws.run_dir("../../etc")
    rid = "a" * 32
    assert ws.run_dir(rid) == ws.runs / rid


def test_typed_paths_stay_inside_the_data_roots(home, tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    (root / "tiles" / "crack").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    (root / "link").symlink_to(secret)
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", os.pathsep.join([str(root), str(tmp_path / "missing")]))
    assert data_roots() == [root.resolve()]
    ws = Workspace.create()
    assert ws.resolve_data("tiles") == (root / "tiles").resolve()
    assert ws.resolve_data(str(root / "tiles")) == (root / "tiles").resolve()
    for bad in ("/etc", "../secret", str(secret), "link", "tiles/../../secret", "nope", ""):
        with pytest.raises(DataError):
            ws.resolve_data(bad)
    # the workspace's own uploads are always allowed, another workspace's never
    (ws.uploads / "up").mkdir()
    assert ws.check_data_path(ws.uploads / "up") == (ws.uploads / "up").resolve()
    other = Workspace.create()
    (other.uploads / "theirs").mkdir()
    with pytest.raises(DataError):
        ws.check_data_path(other.uploads / "theirs")


def test_dataset_dirs_and_settings(home):
    ws = Workspace.create()
    first = ws.dataset_dir("my set/../x")
    assert first.parent == ws.uploads and "/" not in first.name and ".." not in first.name
    first.mkdir()
    assert ws.dataset_dir("my set/../x") != first
    assert safe_name("...") == "dataset"
    ws.update_settings(dataset="a", ratio=0.1)
    assert Workspace.open(ws.id).settings() == {"dataset": "a", "ratio": 0.1}
    with pytest.raises(DataError):
        ws.remove_dataset(ws.root)
    ws.remove_dataset(first)
    assert not first.exists()
