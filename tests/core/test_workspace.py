"""Workspaces: random ids, isolation between users, the shared option, typed paths only inside roots,
and uploads (zip and folder) stored only inside the workspace."""
from __future__ import annotations

import io
import os
import time
import zipfile

import pytest

from core.data import Limits
from core.errors import ArchiveError, DataError, ParamError, RunError
from core.workspace import (REFUSED_TAKEN, REFUSED_TOO_LONG, REFUSED_UNSAFE, FolderImport, Workspace,
                            data_roots, is_valid_id, list_data_candidates, safe_name, workspace_home)


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


def test_typed_paths_stay_inside_the_data_roots(home, tmp_path, monkeypatch, outside_unchanged):
    root = tmp_path / "datasets"
    (root / "tiles" / "crack").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    (root / "link").symlink_to(secret)
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", os.pathsep.join([str(root), str(tmp_path / "missing")]))
    assert data_roots() == [root.resolve()]
    ws = Workspace.create()
    with outside_unchanged(tmp_path, ws.root):
        assert ws.resolve_data("tiles") == (root / "tiles").resolve()
        assert ws.resolve_data(str(root / "tiles")) == (root / "tiles").resolve()
        for bad in ("/etc", "../secret", str(secret), "link", "tiles/../../secret", "nope", ""):
            with pytest.raises(DataError, match=r"outside the allowed data folders|does not exist|type a folder path"):
                ws.resolve_data(bad)
    # the workspace's own uploads are always allowed, another workspace's never
    (ws.uploads / "up").mkdir()
    assert ws.check_data_path(ws.uploads / "up") == (ws.uploads / "up").resolve()
    other = Workspace.create()
    (other.uploads / "theirs").mkdir()
    with pytest.raises(DataError):
        ws.check_data_path(other.uploads / "theirs")


def test_data_candidates_are_folders_and_zips_inside_their_root(home, tmp_path, monkeypatch):
    root, other = tmp_path / "datasets", tmp_path / "more"
    for folder in (root / "tiles" / "crack", root / "b_set", root / ".hidden", other / "plates"):
        folder.mkdir(parents=True)
    (root / "archive.ZIP").write_bytes(b"PK")
    (root / "notes.txt").write_text("not data")
    secret = tmp_path / "secret"
    (secret / "crack").mkdir(parents=True)
    (tmp_path / "secret.zip").write_bytes(b"PK")
    (root / "escape").symlink_to(secret)                    # a link out of the root: never offered
    (root / "escape.zip").symlink_to(tmp_path / "secret.zip")
    (root / "up").symlink_to(tmp_path)
    (root / "self").symlink_to(root)
    (root / "dangling").symlink_to(tmp_path / "gone")
    (root / "inner").symlink_to(root / "tiles" / "crack")   # a link that stays inside the root is fine
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", os.pathsep.join([str(root), str(other)]))
    found = list_data_candidates()
    assert found == [(root / "archive.ZIP").resolve(), (root / "b_set").resolve(),
                     (root / "tiles" / "crack").resolve(), (root / "tiles").resolve(), (other / "plates").resolve()]
    assert all(any(p.is_relative_to(r) for r in data_roots()) for p in found)
    assert list_data_candidates([root], limit=2) == found[:2]
    assert list_data_candidates([tmp_path / "missing"]) == []
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", "")
    assert list_data_candidates() == []
    # what is listed is what the typed-path check accepts
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", str(root))
    ws = Workspace.create()
    for path in list_data_candidates():
        assert ws.resolve_data(str(path)) == path


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


# ---------------------------------------------------------------------------------------------
# Uploads
# ---------------------------------------------------------------------------------------------
def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


TREE = {"tiles/normal/a.png": b"a", "tiles/normal/b.png": b"b", "tiles/crack/c.png": b"c"}


class Upload:
    """Like Streamlit's UploadedFile: `size` and `getvalue()`; counts how often it was read."""

    def __init__(self, data: bytes):
        self.size, self._data, self.reads = len(data), data, 0

    def getvalue(self) -> bytes:
        self.reads += 1
        return self._data


def _files(ws: Workspace) -> list[str]:
    return sorted(p.relative_to(ws.root).as_posix() for p in ws.root.rglob("*") if p.is_file())


def test_import_zip_from_bytes_or_a_stream_unwraps_the_top_folder(home, tmp_path, outside_unchanged):
    ws = Workspace.create()
    with outside_unchanged(tmp_path, ws.root):
        root = ws.import_zip(_zip(TREE), "tiles.zip")
        stream = io.BytesIO(_zip(TREE))
        stream.read()                                   # a rerun hands over a stream already read
        again = ws.import_zip(stream, "tiles.zip")
    assert root == ws.uploads / "tiles" / "tiles" and again == ws.uploads / "tiles_2" / "tiles"
    assert sorted(p.name for p in root.iterdir()) == ["crack", "normal"]
    assert (again / "crack" / "c.png").read_bytes() == b"c"
    assert not list((ws.root / ".incoming").iterdir())           # the uploaded copy is removed
    assert ws.dataset_root(ws.uploads / "tiles") == root         # "My datasets" finds the class folders
    assert ws.dataset_root(root) == root


def test_an_upload_copy_left_by_a_killed_app_is_removed_by_the_next_upload(home):
    ws = Workspace.create()
    incoming = ws.root / ".incoming"
    stale, fresh = incoming / "upload-stale", incoming / "upload-fresh"
    for d in (stale, fresh):
        d.mkdir(parents=True)
        (d / "tiles.zip").write_bytes(b"half an upload")
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    ws.import_zip(_zip(TREE), "tiles.zip")
    assert not stale.exists()                  # left over from an app killed mid-upload
    assert (fresh / "tiles.zip").exists()      # may be another upload in progress


def test_import_zip_errors_name_the_uploaded_file_and_keep_nothing(home, tmp_path, outside_unchanged):
    ws = Workspace.create()
    slip = _zip({"normal/a.png": b"a", "../../evil.png": b"x"})
    with outside_unchanged(tmp_path, ws.root):
        for name, shown in (("données 裂纹.zip", "données 裂纹.zip"), ("C:\\Users\\me\\set.zip", "set.zip"),
                            ("..", "upload.zip"), ("x" * 300 + ".zip", "x" * 60 + ".zip")):
            with pytest.raises(ArchiveError) as err:
                ws.import_zip(slip, name)
            assert str(err.value).startswith(f"unsafe archive {shown}: entry '../../evil.png' points outside")
    assert _files(ws) == [] and ws.datasets() == []


def test_import_zip_over_the_size_limit_stops_copying(home, tmp_path, outside_unchanged):
    ws = Workspace.create()
    data = _zip(TREE)
    with outside_unchanged(tmp_path, ws.root), pytest.raises(ArchiveError) as err:
        ws.import_zip(io.BytesIO(data), "big.zip", Limits(max_archive_bytes=100))
    assert str(err.value) == f"big.zip is {len(data)} B, more than the limit of 100 B; upload a smaller archive."
    assert _files(ws) == []


def test_import_folder_strips_the_picked_folder_and_reads_each_file_once(home, tmp_path, outside_unchanged):
    ws = Workspace.create()
    uploads = {name: Upload(data) for name, data in TREE.items()}
    with outside_unchanged(tmp_path, ws.root):
        result = ws.import_folder(list(uploads.items()))
    assert result == FolderImport(root=ws.uploads / "tiles", written=3, refused=[])
    assert result.warnings == []
    assert (result.root / "normal" / "b.png").read_bytes() == b"b"
    assert all(u.reads == 1 for u in uploads.values())


@pytest.mark.parametrize("names, root, kept", [
    (["normal/a.png", "crack/b.png"], "uploaded_folder", ["crack/b.png", "normal/a.png"]),    # no picked folder
    (["tiles/a.png", "tiles/b.png"], "tiles", ["tiles/a.png", "tiles/b.png"]),                # loose images: kept
    (["tiles/stray.png", "tiles/crack/b.png"], "tiles", ["crack/b.png", "stray.png"]),          # the loader skips stray
])
def test_import_folder_layouts(home, names, root, kept):
    result = Workspace.create().import_folder([(n, b"x") for n in names])
    assert result.root.name == root
    assert sorted(p.relative_to(result.root).as_posix() for p in result.root.rglob("*") if p.is_file()) == kept


def test_import_folder_refuses_bad_names_and_says_why(home, tmp_path, outside_unchanged):
    ws = Workspace.create()
    unsafe = ["../../evil.png", "/etc/evil.png", "tiles/../../evil.png", "..\\evil.png", "C:evil.png",
              "tiles/nul\x00.png"]
    long_name = "tiles/crack/" + "é" * 130 + ".png"
    files = [(n, b"x") for n in ["tiles/normal/a.png", "tiles/crack/b.png", *unsafe, long_name,
                                  "tiles/crack/b.png", "tiles/normal"]]
    with outside_unchanged(tmp_path, ws.root):
        result = ws.import_folder(files)
    assert result.written == 2
    assert result.refused == [(n, REFUSED_UNSAFE) for n in unsafe] + [(long_name, REFUSED_TOO_LONG)] + \
        [("tiles/crack/b.png", REFUSED_TAKEN), ("tiles/normal", REFUSED_TAKEN)]
    assert result.warnings == [
        f"Ignored 6 file(s) with unsafe names: {', '.join(unsafe[:5])} and 1 more",
        f"Ignored 1 file(s) with a name longer than the server's file system allows (255 bytes per name); "
        f"rename them and upload again: {long_name}",
        "Ignored 2 file(s) whose path was already taken by another uploaded file or folder: tiles/crack/b.png, "
        "tiles/normal"]
    assert not list(tmp_path.rglob("evil.png"))


@pytest.mark.parametrize("files, limits, message", [
    ([], None, "the uploaded folder is empty; pick the dataset folder (one sub-folder per class)"),
    ([(f"t/c{i % 2}/{i}.png", b"x") for i in range(6)], Limits(max_entries=5),
     "6 files is more than the limit of 5; upload a smaller folder or a zip"),
    ([("t/a/x.png", b"x" * 600), ("t/b/y.png", b"y" * 600)], Limits(max_total_bytes=1000),
     "the folder holds 1.2 KiB, more than the limit of 1000 B; upload a smaller folder, or resize the images first"),
    ([("../x.png", b"x"), ("/y.png", b"y")], None,
     "no usable file in the uploaded folder (every name was refused: ../x.png, /y.png); pick the dataset folder "
     "itself, which holds one sub-folder per class"),
])
def test_import_folder_that_cannot_be_used(home, tmp_path, outside_unchanged, files, limits, message):
    ws = Workspace.create()
    with outside_unchanged(tmp_path, ws.root), pytest.raises(DataError) as err:
        ws.import_folder(files, limits)
    assert str(err.value) == message
    assert _files(ws) == []


def test_dataset_label_is_relative_to_the_uploads_or_the_data_root(tmp_path, monkeypatch):
    from core.workspace import dataset_label
    root = tmp_path / "srv" / "data"
    (root / "tiles" / "magnetic_tile").mkdir(parents=True)
    (root / "set.zip").write_bytes(b"")
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", str(root))
    ws = Workspace.create(tmp_path / "home")
    (ws.uploads / "sample_seed0").mkdir(parents=True)
    assert ws.dataset_label(root / "tiles" / "magnetic_tile") == "tiles/magnetic_tile"
    assert ws.dataset_label(root / "set.zip") == "set.zip"
    assert ws.dataset_label(ws.uploads / "sample_seed0") == "sample_seed0"
    assert dataset_label(tmp_path / "elsewhere" / "x", roots=[]) == "x"     # never the absolute path
    assert str(tmp_path) not in ws.dataset_label(root)


# ---------------------------------------------------------------------------------------------
# Sessions: an id from a link never makes a workspace; a visit that writes nothing leaves nothing
# ---------------------------------------------------------------------------------------------
def test_a_made_up_id_in_the_link_never_becomes_a_workspace(home):
    from core.jobs import JobStore
    made_up = "0123456789abcdef0123456789abcdef"
    ws = Workspace.for_session(made_up)
    assert ws.id != made_up and is_valid_id(ws.id)
    assert not (home / made_up).exists()
    store = JobStore(ws)       # what every page reads: nothing to list, and still no folder
    assert store.list() == [] and store.counts() == {} and store.worker_info() is None and not store.worker_alive()
    assert sorted(p.name for p in home.iterdir()) == [".session_key"]   # the server's secret for session ids
    ws.update_settings(ratio=0.1)             # the first write makes it
    assert ws.root.is_dir() and ws.settings()["ratio"] == 0.1
    assert Workspace.for_session(ws.id).root == ws.root      # and the link now reopens it


def test_a_link_to_a_session_workspace_reopens_it_before_its_first_write(home):
    """The home page shows the link at once: reloading it (or opening it in a new tab) before anything was
    uploaded reopens the same, still folder-less workspace; its id carries this server's keyed hash."""
    a = Workspace.for_session(None)
    again = Workspace.for_session(a.id)
    assert again.id == a.id and not a.root.exists()
    forged = a.id[:16] + ("0" if a.id[16] != "0" else "1") + a.id[17:]
    assert Workspace.for_session(forged).id not in (forged, a.id)
    assert (home / ".session_key").stat().st_mode & 0o077 == 0


def test_the_first_upload_or_job_makes_a_session_workspace(home, make_dataset, tmp_path):
    from core.jobs import JobStore
    a, b = Workspace.for_session(None), Workspace.for_session(None)
    assert not a.root.exists() and not b.root.exists()
    root = a.import_folder([("set/normal/a.png", b"x"), ("set/crack/b.png", b"y")]).root
    assert root.is_dir() and a.uploads.is_dir()
    job = JobStore(b).submit({"seconds": 0.1, "steps": 1}, kind="sleep")
    assert JobStore(b).get(job).status == "queued" and b.runs.is_dir()


def test_empty_workspaces_are_cleaned_and_the_rest_kept(home):
    from core.jobs import JobStore
    old = time.time() - 3 * 24 * 3600
    empty, visited, uploaded, with_jobs, fresh = (Workspace.create() for _ in range(5))
    JobStore(visited)                          # what a visit made before: the folders and an empty job list
    (uploaded.uploads / "set").mkdir()
    (uploaded.uploads / "set" / "a.png").write_bytes(b"x")
    JobStore(with_jobs).submit({"seconds": 0.1, "steps": 1}, kind="sleep")
    shared = Workspace.from_path(home / "team")
    for ws in (empty, visited, uploaded, with_jobs, shared):
        for p in [*ws.root.rglob("*"), ws.root]:
            os.utime(p, (old, old), follow_symlinks=False)
    Workspace.for_session(None)               # a new session cleans up
    assert sorted(p.name for p in home.iterdir()) == sorted([uploaded.id, with_jobs.id, fresh.id, "team",
                                                             ".session_key"])
