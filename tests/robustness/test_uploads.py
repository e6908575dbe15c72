"""Uploads: hostile, broken and odd zips and folder uploads, through Workspace.import_zip / import_folder
and load_dataset, as the Data page calls them. Every case checks the exact message the user sees and
that nothing outside the user's workspace changed; a refused upload keeps nothing in it either.

core.data's own tests (tests/core/test_zip_security.py) cover the extractor's finer points (headers
that lie about sizes, encrypted or duplicate entries...); here each case goes the user's way in.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import stat
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import REASON_NESTED, Limits
from core.errors import ArchiveError, DataError
from core.workspace import REFUSED_UNSAFE
from tests.robustness.conftest import png

GOOD = {**{f"set/normal/n{i}.png": png(i) for i in range(3)}, **{f"set/crack/c{i}.png": png(10 + i) for i in range(2)}}


def test_the_outside_check_sees_a_stray_file(user):
    """The guard every test here relies on: a file written beside the workspace fails the check."""
    with pytest.raises(AssertionError, match=r"created \[.*stray.txt'\]"):
        with user.unchanged_outside():
            (user.ws.root.parent / "stray.txt").write_text("x")
    (user.ws.root.parent / "stray.txt").unlink()
    with pytest.raises(AssertionError, match=r"modified \[.*note.txt'\]"):
        (user.desktop / "note.txt").write_text("a")
        with user.unchanged_outside():
            (user.desktop / "note.txt").write_text("bb")
    with user.unchanged_outside():
        (user.ws.uploads / "inside.txt").write_text("the workspace may change")


def test_a_good_zip_loads(user):
    z = user.zip(GOOD)
    with user.unchanged_outside():
        root = user.upload_zip(z)
        ds, report = user.load(root)
    assert root == user.ws.uploads / "upload" / "set"
    assert ds.counts() == {"crack": 2, "normal": 3} and report.skipped == []


# ---------------------------------------------------------------------------------------------------
# Unsafe archives: refused whole, nothing extracted
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("evil", ["../evil.png", "../../../../evil.png", "set/normal/../../../../evil.png",
                                  "..\\..\\..\\evil.png"])
def test_zip_slip(user, evil):
    z = user.zip({**GOOD, evil: png(9)})
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == (f"unsafe archive upload.zip: entry {evil!r} points outside the extraction folder ('..'); "
                       "nothing was extracted. Zip the dataset folder itself and upload again.")


@pytest.mark.parametrize("kind", ["posix", "windows"])
def test_zip_with_an_absolute_path(user, kind):
    name = str(user.tmp / "home" / "evil.png") if kind == "posix" else "C:\\evil.png"
    z = user.zip({**GOOD, name: png(9)})
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == (f"unsafe archive upload.zip: entry {name!r} has an absolute path; nothing was extracted. "
                       "Zip the dataset folder itself so that entries are relative paths.")


def test_zip_with_a_symlink_entry(user):
    link = zipfile.ZipInfo("set/normal/link.png")
    link.create_system = 3   # unix
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = user.zip([*GOOD.items(), (link, str(user.tmp / "home").encode())])
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == ("unsafe archive upload.zip: entry 'set/normal/link.png' is a symbolic link; links are not "
                       "extracted for safety. Replace links with the real files and zip again.")


def test_zip_bomb_by_compression_ratio(user):
    z = user.zip({**GOOD, "set/normal/bomb.png": bytes(4 * 1024 * 1024)})   # 4 MiB of zeros, ~4 KiB packed
    info = zipfile.ZipFile(z).getinfo("set/normal/bomb.png")
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == (f"upload.zip looks like a zip bomb: entry 'set/normal/bomb.png' expands "
                       f"{info.file_size / info.compress_size:.0f}:1 (limit 200:1) to 4.0 MiB; nothing was extracted.")


def test_zip_bomb_of_many_entries_each_under_the_per_entry_floor(user):
    """80 entries of 1 MiB - 1 zeros: no entry is over the per-entry 1 MiB floor, but together they expand
    ~1000:1 to 80 MiB (thousands of them would fill the disk under the default size limit)."""
    bomb = {f"set/normal/b{i}.png": bytes(1024 * 1024 - 1) for i in range(80)}
    z = user.zip({**GOOD, **bomb})
    total = sum(i.file_size for i in zipfile.ZipFile(z).infolist())
    assert all(i.file_size < 1024 * 1024 for i in zipfile.ZipFile(z).infolist()) and z.stat().st_size < 1024 ** 2
    with user.unchanged_outside():
        message = user.refused_zip(z, Limits(max_total_bytes=64 * 1024 ** 3))   # the total limit does not stop it
    assert message == (f"upload.zip looks like a zip bomb: its 85 files expand {total / z.stat().st_size:.0f}:1 "
                       f"(limit 200:1) to {total / 1024 ** 2:.1f} MiB; nothing was extracted.")


@pytest.mark.parametrize("var, value, message", [
    ("DEFECTAUG_MAX_UPLOAD_ENTRIES", "4", "upload.zip has 5 entries, more than the limit of 4; upload fewer files "
                                          "(or ask the administrator to raise the limit)"),
    ("DEFECTAUG_MAX_UPLOAD_BYTES", "1e3", "upload.zip would expand to more than 1000 B (the limit); upload a "
                                          "smaller dataset, or resize the images before zipping."),
    ("DEFECTAUG_MAX_ZIP_BYTES", "1000", "upload.zip is {size}, more than the limit of 1000 B; upload a smaller "
                                        "archive."),
])
def test_zip_over_limits_set_in_the_environment(user, monkeypatch, var, value, message):
    z = user.zip(GOOD)
    monkeypatch.setenv(var, value)   # as the administrator configures the app (README, App settings)
    size = f"{z.stat().st_size / 1024:.1f} KiB"
    with user.unchanged_outside():
        assert user.refused_zip(z) == message.format(size=size)


def test_folder_over_limits_set_in_the_environment(user, monkeypatch):
    monkeypatch.setenv("DEFECTAUG_MAX_UPLOAD_ENTRIES", "4")
    with user.unchanged_outside(), pytest.raises(DataError) as err:
        user.upload_folder(GOOD)
    assert str(err.value) == "5 files is more than the limit of 4; upload a smaller folder or a zip"
    assert user.kept() == []


@pytest.mark.parametrize("value", ["lots", "0", "-5", "nan"])
def test_a_bad_upload_limit_in_the_environment_is_named(user, monkeypatch, value):
    z = user.zip(GOOD)
    monkeypatch.setenv("DEFECTAUG_MAX_UPLOAD_BYTES", value)
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == (f"DEFECTAUG_MAX_UPLOAD_BYTES must be a positive whole number such as 1e9 (it is {value!r}); "
                       "fix it in the environment and restart the app")


@pytest.mark.parametrize("limits, message", [
    (Limits(max_total_bytes=1000), "upload.zip would expand to more than 1000 B (the limit); upload a smaller "
                                   "dataset, or resize the images before zipping."),
    (Limits(max_entries=4), "upload.zip has 5 entries, more than the limit of 4; upload fewer files (or ask the "
                            "administrator to raise the limit)"),
    (Limits(max_archive_bytes=1000), "upload.zip is {size}, more than the limit of 1000 B; upload a smaller "
                                     "archive."),
])
def test_zip_over_the_configured_limits(user, limits, message):
    z = user.zip(GOOD)
    size = f"{z.stat().st_size / 1024:.1f} KiB"
    with user.unchanged_outside():
        assert user.refused_zip(z, limits) == message.format(size=size)


# ---------------------------------------------------------------------------------------------------
# Broken archives and files that are not zips
# ---------------------------------------------------------------------------------------------------
def _damaged(data: bytes, how: str) -> bytes:
    data = bytearray(data)
    if how == "truncated":
        return bytes(data[: len(data) // 2])
    if how == "central directory":
        at = data.find(b"PK\x01\x02")
        data[at: at + 4] = b"XXXX"
        return bytes(data)
    raise ValueError(how)


@pytest.mark.parametrize("how, detail", [("truncated", "File is not a zip file"),
                                         ("central directory", "Bad magic number for central directory")])
def test_corrupt_or_truncated_zip(user, how, detail):
    z = user.zip(GOOD)
    z.write_bytes(_damaged(z.read_bytes(), how))
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == (f"upload.zip is not a zip archive, or it is corrupt or truncated ({detail}); re-create it "
                       "with a zip tool and upload it again.")


def test_zip_with_damaged_entry_data_keeps_nothing(user):
    z = user.zip({**GOOD, "set/normal/last.png": png(7, size=64)}, method=zipfile.ZIP_STORED)
    info = zipfile.ZipFile(z).getinfo("set/normal/last.png")
    data = bytearray(z.read_bytes())
    start = info.header_offset + 30 + len(info.filename)
    data[start + 40: start + 60] = b"\xff" * 20
    z.write_bytes(bytes(data))
    with user.unchanged_outside():
        message = user.refused_zip(z)   # the five good entries extracted before it are removed again
    assert message == ("upload.zip is corrupt: entry 'set/normal/last.png' cannot be extracted (Bad CRC-32 for file "
                       "'set/normal/last.png'); re-create the zip and upload it again. Nothing was kept.")


@pytest.mark.parametrize("name, data, message", [
    ("photos.zip", png(1), "photos.zip is not a zip archive, or it is corrupt or truncated (File is not a zip file); "
                           "re-create it with a zip tool and upload it again."),
    ("labels.zip", b"file,label\na.png,crack\n", "labels.zip is not a zip archive, or it is corrupt or truncated "
                                                 "(File is not a zip file); re-create it with a zip tool and upload "
                                                 "it again."),
    ("empty.zip", b"", "empty.zip is an empty file (0 bytes), not a zip archive; upload it again."),
])
def test_a_file_that_is_not_a_zip(user, name, data, message):
    path = user.desktop / name
    path.write_bytes(data)
    with user.unchanged_outside():
        assert user.refused_zip(path) == message


def test_empty_zip(user):
    z = user.zip({"set/": b"", "set/normal/": b"", "__MACOSX/._x.png": b"\0"})
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == ("upload.zip is empty: it holds no files. Zip the dataset folder (one sub-folder per class, "
                       "e.g. normal/ and crack/) and upload again.")


def test_nested_zip_beside_images_is_skipped_and_the_rest_loads(user):
    inner = user.zip(GOOD, name="inner.zip").read_bytes()
    z = user.zip({**GOOD, "set/normal/more.zip": inner})
    with user.unchanged_outside():
        root = user.upload_zip(z)
        ds, report = user.load(root)
    assert (root / "normal" / "more.zip").read_bytes() == inner                    # stored, never opened
    assert not (root / "normal" / "set").exists()
    assert ds.counts() == {"crack": 2, "normal": 3}
    assert [(s.path, s.reason) for s in report.skipped] == [("normal/more.zip", REASON_NESTED)]
    assert REASON_NESTED == "nested archive: not supported, unzip it first and put its images in class folders"


def test_zip_of_only_zips(user):
    inner = user.zip(GOOD, name="inner.zip").read_bytes()
    z = user.zip({"dataset.zip": inner, "more/other.zip": inner})
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == ("upload.zip holds only other archives (dataset.zip, more/other.zip); nested archives are not "
                       "supported: unzip it and upload the inner archive, or zip the class folders themselves.")


# ---------------------------------------------------------------------------------------------------
# A full disk while an upload is stored
# ---------------------------------------------------------------------------------------------------
def test_disk_full_while_storing_a_zip(user, full_disk):
    z = user.zip(GOOD)
    full_disk()
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == ("cannot store upload.zip (No space left on device); check the free disk space and upload it "
                       "again. Nothing was kept.")


def test_disk_full_while_extracting_a_zip(user, full_disk, monkeypatch):
    import core.uploads
    z = user.zip(GOOD)
    full_disk()
    monkeypatch.setattr(core.uploads, "open", open)     # the copy of the upload fits, its contents do not
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == ("cannot write 'set/normal/n0.png' from upload.zip (No space left on device); check the free "
                       "disk space. Nothing was kept.")


def test_disk_full_while_storing_a_folder(user, full_disk):
    full_disk()
    with user.unchanged_outside(), pytest.raises(DataError) as err:
        user.upload_folder(GOOD)
    assert str(err.value) == ("cannot write 'set/normal/n0.png' from the uploaded folder (No space left on device); "
                              "check the free disk space and upload again. Nothing was kept.")
    assert user.kept() == []


# ---------------------------------------------------------------------------------------------------
# Folder uploads: the browser sends each file with its path, and a hostile client can send any path
# ---------------------------------------------------------------------------------------------------
UNSAFE = ["../../evil.png", "/etc/evil.png", "set/../../evil.png", "..\\..\\evil.png", "C:evil.png"]


def test_folder_upload_with_escaping_names_keeps_the_rest(user):
    with user.unchanged_outside():
        result = user.upload_folder({**GOOD, **{name: png(9) for name in UNSAFE}})
        ds, report = user.load(result.root)
    assert result.warnings == [f"Ignored 5 file(s) with unsafe names: {', '.join(UNSAFE)}"]
    assert result.refused == [(name, REFUSED_UNSAFE) for name in UNSAFE]
    assert ds.counts() == {"crack": 2, "normal": 3} and report.skipped == []
    assert user.kept() == sorted(f"uploads/set/{n.removeprefix('set/')}" for n in GOOD)


# ---------------------------------------------------------------------------------------------------
# Fuzzing the two ways in with whatever names a client may send
# ---------------------------------------------------------------------------------------------------
FUZZ = settings(max_examples=int(os.environ.get("DEFECTAUG_FUZZ_EXAMPLES", "40")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
PART = st.sampled_from(["set", "normal", "crack", "..", ".", "", "/", "\\", "C:", "é 裂", "a" * 120, "x.png",
                        "\x00", "__MACOSX", ".hidden"])
NAME = st.lists(PART, min_size=1, max_size=5).map("/".join)
# Deep paths (past the depth limit of 32 and past Python's recursion limit) and many sibling folders
DEEP = st.tuples(st.sampled_from(["set/normal/", "set/", ""]), st.integers(0, 1100), st.sampled_from(["a.png", ""])
                 ).map(lambda t: t[0] + "d/" * t[1] + t[2])
WIDE = st.integers(1, 80).map(lambda n: [f"set/normal/f{i}/a.png" for i in range(n)])


def _outcome(call):
    try:
        return call()
    except (ArchiveError, DataError) as err:
        assert str(err) and "Traceback" not in str(err)
        return None


@FUZZ
@given(names=st.lists(NAME, min_size=1, max_size=6))
def test_fuzz_folder_upload_names(user, names):
    with user.unchanged_outside():
        result = _outcome(lambda: user.upload_folder({n: png(i) for i, n in enumerate(names)}))
    if result is not None:
        uploads = user.ws.uploads.resolve()
        assert result.root.resolve().parent == uploads
        written = [p for p in result.root.rglob("*") if p.is_file()]
        assert len(written) == result.written == len(set(names)) - len({n for n, _ in result.refused})
        assert all(p.resolve().is_relative_to(result.root.resolve()) for p in written)


@FUZZ
@given(names=st.lists(NAME, min_size=1, max_size=6), name=st.text(max_size=40))
def test_fuzz_zip_entry_names_and_upload_name(user, names, name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, n in enumerate(dict.fromkeys(names)):
            zf.writestr(n.replace("\x00", "_") or "x", png(i))
    with user.unchanged_outside():
        root = _outcome(lambda: user.ws.import_zip(buf.getvalue(), name))
    if root is not None:
        assert root.resolve().is_relative_to(user.ws.uploads.resolve())
    assert not list((user.ws.root / ".incoming").iterdir())
    assert re.fullmatch(r"[0-9a-f]{32}", user.ws.root.name)


def _tree_outcome(user, names: list[str], limits: Limits, via: str):
    """Upload `names` (each a file of its own) one way; returns the root or the refusal, checking the rules."""
    names = list(dict.fromkeys(n for n in names if n and not n.endswith("/")))
    if via == "folder":
        result = _outcome(lambda: user.ws.import_folder([(n, png(i)) for i, n in enumerate(names)], limits))
        root = result.root if result is not None else None
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i, n in enumerate(names):
                zf.writestr(n, png(i))
        root = _outcome(lambda: user.ws.import_zip(buf.getvalue(), "tree.zip", limits))
    folders = [p for p in user.ws.uploads.rglob("*") if p.is_dir()] if user.ws.uploads.exists() else []
    depth = max((len(p.relative_to(user.ws.uploads).parts) for p in folders), default=0)
    assert depth <= limits.max_depth + 2            # the dataset folder (and a wrapper) above the limited paths
    assert len(folders) <= limits.max_folders + 2
    return root


@FUZZ
@given(names=st.lists(DEEP, min_size=1, max_size=4), wide=WIDE, via=st.sampled_from(["zip", "folder"]),
       max_folders=st.integers(5, 60))
def test_fuzz_deep_paths_and_implied_folders(user, names, wide, via, max_folders):
    limits = Limits(max_folders=max_folders)
    all_names = names + wide
    with user.unchanged_outside():
        root = _tree_outcome(user, all_names, limits, via)
    parts = [[p for p in n.split("/") if p] for n in all_names if n and not n.endswith("/")]
    implied = {tuple(p[:i]) for p in parts for i in range(1, len(p))}
    too_deep = any(len(p) - 1 > limits.max_depth for p in parts)
    if too_deep or len(implied) > max_folders:
        assert root is None                            # refused whole, and nothing kept
        assert user.kept() == []
    if root is not None:
        shutil.rmtree(user.ws.uploads)                 # the next example starts from an empty workspace


# ---------------------------------------------------------------------------------------------------
# A data root that holds the workspaces folder (DEFECTAUG_HOME=srv/workspaces, DEFECTAUG_DATA_ROOTS=srv)
# ---------------------------------------------------------------------------------------------------
def test_a_data_root_holding_the_workspaces_never_reaches_another_users_upload(tmp_path, monkeypatch,
                                                                                outside_unchanged):
    from core.jobs import JobStore
    from core.workspace import Workspace, list_data_candidates
    srv = tmp_path / "srv"
    monkeypatch.setenv("DEFECTAUG_HOME", str(srv / "workspaces"))
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", str(srv))
    monkeypatch.delenv("DEFECTAUG_SHARED_WORKSPACE", raising=False)
    tiles = srv / "tiles"
    for name, data in GOOD.items():
        (tiles / name).parent.mkdir(parents=True, exist_ok=True)
        (tiles / name).write_bytes(data)
    (srv / "link_to_home").symlink_to(srv / "workspaces")
    alice, bob = Workspace.create(), Workspace.create()
    secret = alice.import_folder(list(GOOD.items())).root
    mine = bob.import_folder(list(GOOD.items())).root
    # the picker lists the server's datasets, never the workspaces folder (nor a link to it)
    assert list_data_candidates() == [tiles.resolve()]
    config = {"methods": ["smote"], "seeds": [0], "image_size": 16, "test_per_class": 1}
    with outside_unchanged(tmp_path, bob.root):
        for typed in (f"workspaces/{alice.id}/uploads/{secret.name}", str(secret), "workspaces", str(srv),
                      f"link_to_home/{alice.id}/uploads", f"tiles/../workspaces/{alice.id}"):
            with pytest.raises(DataError) as err:
                bob.resolve_data(typed)
            assert str(err.value) == (f"{typed} is in (or holds) the folder where the app keeps every user's "
                                      "workspace, which is never a data source; upload the dataset, or pick a "
                                      "folder of the server data folders outside it")
            assert alice.id not in str(err.value).replace(typed, "")
        with pytest.raises(DataError, match="never a data source"):
            JobStore(bob).submit({**config, "data": str(secret)})
        assert JobStore(bob).list() == []
    # what is allowed still is: the server's datasets and bob's own uploads
    assert bob.resolve_data("tiles") == tiles.resolve()
    assert bob.resolve_data(str(mine)) == mine.resolve()
    assert bob.resolve_data(".") == bob.uploads.resolve()       # relative paths try bob's uploads first
    assert JobStore(bob).submit({**config, "data": str(mine)})
