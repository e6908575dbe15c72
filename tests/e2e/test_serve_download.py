"""The app as scripts/serve.sh starts it (`streamlit run app.py`, which finds app.py's `st.App` and serves it in
Streamlit's ASGI mode): the download route on the same port sends a registered export from disk, byte for byte,
and nothing else; the launcher's --server.* options still apply (address, port, and the upload limit the
browser is told). The route is fetched with urllib; the upload limit is read in Chromium (skipped without it)."""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote

import pytest

from core import serving
from core.workspace import Workspace
from tests.e2e.servers import free_port, stop, wait_healthy

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow]


@contextlib.contextmanager
def _serve(home: Path, max_zip_bytes: str):
    port = free_port()
    streamlit = Path(sys.executable).parent / "streamlit"
    env = dict(os.environ, DEFECTAUG_HOME=str(home), DEFECTAUG_AUTOSTART_WORKER="0", DEFECTAUG_DATA_ROOTS="",
               DEFECTAUG_MAX_ZIP_BYTES=max_zip_bytes, PYTHON=sys.executable,
               STREAMLIT=str(streamlit) if streamlit.exists() else "streamlit", PYTHONPATH=str(REPO))
    env.pop("DEFECTAUG_SHARED_WORKSPACE", None)
    log = open(home / "serve.log", "ab")
    proc = subprocess.Popen(["bash", "scripts/serve.sh", "--server.headless=true", f"--server.port={port}",
                             "--server.address=127.0.0.1", "--browser.gatherUsageStats=false"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log=str(home / "serve.log"))
        yield url
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("DEFECTAUG_HOME", str(home))           # this process registers files in the server's home
    mp.delenv("DEFECTAUG_SHARED_WORKSPACE", raising=False)
    try:
        with _serve(home, "5000000") as url:          # a 5 MiB upload limit
            yield {"url": url, "home": home}
    finally:
        mp.undo()


def _get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            digest, n = hashlib.sha256(), 0
            while chunk := r.read(1 << 20):
                digest.update(chunk)
                n += len(chunk)
            return r.status, dict(r.headers), digest.hexdigest().encode() + b":" + str(n).encode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_serve_sh_sends_a_registered_export_from_disk_and_nothing_else(served, monkeypatch):
    monkeypatch.setenv("DEFECTAUG_HOME", str(served["home"]))
    one, two = Workspace.create(), Workspace.create()
    data = os.urandom(8 * 2**20 + 3)
    path = one.exports / "défaut ü.zip"
    path.write_bytes(data)
    (two.exports / "other.zip").write_bytes(b"workspace two")
    token = serving.register(one, path)
    status, headers, body = _get(served["url"] + serving.download_url(token))
    assert status == 200
    assert body == hashlib.sha256(data).hexdigest().encode() + b":" + str(len(data)).encode()
    assert headers["content-length"] == str(len(data))
    assert headers["content-type"] == "application/zip"
    assert "content-encoding" not in {k.lower() for k in headers}          # never gzipped on the way
    cd = headers["content-disposition"]
    assert cd.startswith("attachment; ") and unquote(cd.split("filename*=UTF-8''")[1]) == "défaut ü.zip"
    # the other workspace's token gets its own file; unknown and tampered tokens a 404 (not the app's page)
    t2 = serving.register(two, two.exports / "other.zip")
    assert _get(served["url"] + serving.download_url(t2))[2].endswith(b":13")
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43, "other.zip"):
        status, _, body = _get(f"{served['url']}/api/download/{bad}")
        assert status == 404 and b"unknown" in body, bad
    status, _, body = _get(f"{served['url']}/api/download/..%2F..%2F{one.id}%2Fjobs.db")
    assert status == 400 and body == b"Bad Request"          # Streamlit's path security middleware, first
    # the app itself still answers on the same port
    assert _get(served["url"] + "/_stcore/health")[0] == 200


@pytest.mark.skipif(not CHROMIUM.exists(), reason="system Chromium not found at /usr/bin/chromium")
def test_the_upload_limit_still_reaches_the_browser(served):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{served['url']}/data")
            page.get_by_text("Upload a zip").click()
            instructions = page.locator("[data-testid='stFileUploaderDropzoneInstructions']")
            instructions.wait_for()
            text = instructions.inner_text()
            assert "5MB per file" in text.replace(" MB", "MB") or "5.0MB per file" in text, text
        finally:
            browser.close()
