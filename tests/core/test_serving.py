"""The download route (core.serving) sends only files the app exported into a workspace, from disk, byte for byte,
with the headers a browser needs; anything else is a 404. Real files and the real starlette route, through
starlette's TestClient."""
from __future__ import annotations

import json
import os
import re
import secrets
from urllib.parse import unquote

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core import serving
from core.workspace import Workspace


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DEFECTAUG_HOME", str(home))
    monkeypatch.delenv("DEFECTAUG_SHARED_WORKSPACE", raising=False)
    return home


@pytest.fixture
def client(home):
    with TestClient(Starlette(routes=[serving.route()])) as c:
        yield c


def _export(ws: Workspace, name: str, data: bytes):
    path = ws.exports / name
    path.write_bytes(data)
    return path


def test_a_registered_export_comes_back_byte_for_byte_with_its_headers(home, client):
    ws = Workspace.create()
    data = os.urandom(3 * 2**20 + 17)                       # larger than FileResponse's 64 KiB chunks
    path = _export(ws, "abcd1234_smote.zip", data)
    token = serving.register(ws, path)
    assert serving.download_url(token) == f"/api/download/{token}"
    r = client.get(serving.download_url(token))
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == ("attachment; filename=\"abcd1234_smote.zip\"; "
                                                "filename*=UTF-8''abcd1234_smote.zip")
    assert r.headers["cache-control"] == "no-store"
    head = client.head(serving.download_url(token))
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data)) and head.content == b""
    part = client.get(serving.download_url(token), headers={"Range": "bytes=100-199"})  # a resumed download
    assert part.status_code == 206 and part.content == data[100:200]
    # the same file keeps its token (the page registers at each render); the registry lives in the home
    assert serving.register(ws, path) == token
    assert token in json.loads((home / serving.REGISTRY).read_text(encoding="utf-8"))
    # a rebuilt zip under the same name is served as it is now
    path.write_bytes(b"rebuilt")
    assert client.get(serving.download_url(token)).content == b"rebuilt"


def test_unknown_malformed_and_tampered_tokens_are_404(home, client):
    ws = Workspace.create()
    token = serving.register(ws, _export(ws, "a.zip", b"zip bytes"))
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (secrets.token_urlsafe(32), flipped, token[:-1], token + "x", "a.zip", "..", "%2e%2e%2fa.zip",
                "..%2F..%2Fetc%2Fpasswd"):
        r = client.get(f"/api/download/{bad}")
        assert r.status_code == 404, bad
        assert b"zip bytes" not in r.content
    assert client.get("/api/download/../a.zip").status_code == 404
    assert client.get(f"/api/download/{token}/../a.zip").status_code == 404
    assert client.get(f"/api/download/{token}").status_code == 200


def test_a_token_fetches_only_its_own_workspaces_file(home, client):
    one, two = Workspace.create(), Workspace.create()
    t1 = serving.register(one, _export(one, "same.zip", b"workspace one"))
    t2 = serving.register(two, _export(two, "same.zip", b"workspace two"))
    assert t1 != t2
    assert client.get(f"/api/download/{t1}").content == b"workspace one"
    assert client.get(f"/api/download/{t2}").content == b"workspace two"
    # one workspace cannot register (and so serve) another's file, nor anything outside its exports/
    with pytest.raises(ValueError):
        serving.register(one, two.exports / "same.zip")
    with pytest.raises(ValueError):
        serving.register(one, one.exports / ".." / ".." / two.id / "exports" / "same.zip")
    (one.root / "jobs.db").write_bytes(b"sqlite")
    for outside in (one.root / "jobs.db", one.exports / ".." / "jobs.db", one.exports, one.exports / "nothing.zip"):
        with pytest.raises(ValueError):
            serving.register(one, outside)
    # a deleted workspace's token stops working
    (two.exports / "same.zip").unlink()
    assert client.get(f"/api/download/{t2}").status_code == 404
    assert client.get(f"/api/download/{t1}").status_code == 200


def test_a_symlink_or_a_tampered_registry_entry_never_leaves_the_exports_folder(home, client, tmp_path):
    ws = Workspace.create()
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not an export")
    link = ws.exports / "link.zip"
    link.symlink_to(secret)
    with pytest.raises(ValueError):
        serving.register(ws, link)
    token = serving.register(ws, _export(ws, "real.zip", b"real"))
    registry = home / serving.REGISTRY
    entries = json.loads(registry.read_text(encoding="utf-8"))
    for file, root in (("../../../secret.txt", entries[token]["root"]), ("link.zip", entries[token]["root"]),
                       (str(secret), entries[token]["root"]), ("secret.txt", str(tmp_path / "x" / "..")),
                       ("", entries[token]["root"]), (None, None)):
        registry.write_text(json.dumps({token: {**entries[token], "file": file, "root": root}}), encoding="utf-8")
        r = client.get(f"/api/download/{token}")
        assert r.status_code == 404 and b"not an export" not in r.content, file
    registry.write_text("{not json", encoding="utf-8")
    assert client.get(f"/api/download/{token}").status_code == 404
    registry.write_text(json.dumps(entries), encoding="utf-8")
    assert client.get(f"/api/download/{token}").content == b"real"


def test_non_ascii_and_path_like_names_are_safe_in_content_disposition(home, client):
    ws = Workspace.create()
    data = b"\x00\xffdata"
    path = _export(ws, "défaut_spöt ü.zip", data)
    token = serving.register(ws, path)
    r = client.get(f"/api/download/{token}")
    assert r.status_code == 200 and r.content == data
    cd = r.headers["content-disposition"]
    assert cd.isascii()
    assert 'filename="d_faut_sp_t _.zip"' in cd
    assert unquote(cd.split("filename*=UTF-8''", 1)[1]) == "défaut_spöt ü.zip"
    # a download name that looks like a path keeps its last part only, with no quote, separator or control char
    for name, shown in (("../../etc/passwd", "passwd"), ("..\\..\\évil\".zip", "évil\".zip"),
                        ("a\r\nSet-Cookie: x=1.zip", "aSet-Cookie: x=1.zip"), ("..", "download"), ("", "download")):
        t = serving.register(ws, path, name=name)
        got = client.get(f"/api/download/{t}")
        assert got.status_code == 200 and got.content == data
        cd = got.headers["content-disposition"]
        assert cd.isascii() and "\r" not in cd and "\n" not in cd and "/" not in cd.split("filename*=")[0]
        assert unquote(cd.split("filename*=UTF-8''", 1)[1]) == shown
        assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._ ()+-]+"; filename\*=UTF-8\'\'[A-Za-z0-9%._~-]+', cd), cd


def test_the_route_follows_the_base_url_path(home):
    ws = Workspace.create()
    token = serving.register(ws, _export(ws, "b.zip", b"based"))
    assert serving.download_url(token, "/sub/path/") == f"/sub/path/api/download/{token}"
    with TestClient(Starlette(routes=[serving.route("sub/path")])) as c:
        assert c.get(f"/sub/path/api/download/{token}").content == b"based"
        assert c.get(f"/api/download/{token}").status_code == 404


def test_the_registry_forgets_files_that_are_gone_and_stays_bounded(home, monkeypatch):
    monkeypatch.setattr(serving, "MAX_ENTRIES", 3)
    ws = Workspace.create()
    gone = _export(ws, "gone.zip", b"x")
    serving.register(ws, gone)
    gone.unlink()
    tokens = [serving.register(ws, _export(ws, f"{i}.zip", b"x")) for i in range(5)]
    entries = json.loads((home / serving.REGISTRY).read_text(encoding="utf-8"))
    assert set(entries) == set(tokens[-3:])
    assert [serving.lookup(t) is not None for t in tokens] == [False, False, True, True, True]


@pytest.mark.parametrize("swap", ["file", "exports", "workspace"])
def test_a_link_swapped_in_after_registration_serves_nothing(home, client, tmp_path, swap):
    """The workspace, its exports/ or the registered file replaced by a link after the token was made (a shared
    drive, a restored backup): the route opens without following links and checks what it opened (issue 37)."""
    import shutil
    ws = Workspace.create()
    token = serving.register(ws, _export(ws, "real.zip", b"real"))
    assert client.get(serving.download_url(token)).content == b"real"
    outside = tmp_path / "outside"
    (outside / "exports").mkdir(parents=True)
    (outside / "exports" / "real.zip").write_bytes(b"not an export")
    (outside / "real.zip").write_bytes(b"not an export")
    if swap == "file":
        (ws.exports / "real.zip").unlink()
        (ws.exports / "real.zip").symlink_to(outside / "real.zip")
    elif swap == "exports":
        shutil.rmtree(ws.exports)
        ws.exports.symlink_to(outside / "exports")
    else:
        root = ws.root.resolve()
        shutil.rmtree(root)
        root.symlink_to(outside)
    for r in (client.get(serving.download_url(token)), client.head(serving.download_url(token)),
              client.get(serving.download_url(token), headers={"Range": "bytes=0-3"})):
        assert r.status_code == 404 and b"not an export" not in r.content
    assert serving.lookup(token) is None
