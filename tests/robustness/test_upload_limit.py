"""The browser's upload limit is derived from the zip limit the server enforces (scripts/serve.sh, which
scripts/app.sh and the Docker image start the app with), so a browser refuses a too-large file before it is
sent; the Data page says the limits."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _cli(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", "upload-limit"], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("value, mib", [(None, 2048), ("1e9", 954), ("5000000", 5), ("1", 1)])
def test_the_upload_limit_follows_the_zip_limit(value, mib):
    env = {k: v for k, v in os.environ.items() if k != "DEFECTAUG_MAX_ZIP_BYTES"}
    if value is not None:
        env["DEFECTAUG_MAX_ZIP_BYTES"] = value
    out = _cli(env)
    assert (out.returncode, out.stdout) == (0, f"{mib}\n")


def test_a_bad_zip_limit_stops_the_start_with_its_name():
    out = _cli({**os.environ, "DEFECTAUG_MAX_ZIP_BYTES": "lots"})
    assert out.returncode == 2
    assert "DEFECTAUG_MAX_ZIP_BYTES must be a positive whole number such as 1e9 (it is 'lots')" in out.stderr


def test_serve_passes_the_derived_limit_to_streamlit(tmp_path):
    fake = tmp_path / "streamlit"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "DEFECTAUG_MAX_ZIP_BYTES": "1e9", "PYTHON": sys.executable, "STREAMLIT": str(fake)}
    out = subprocess.run(["bash", str(REPO / "scripts" / "serve.sh"), "--server.port=9999"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["run", "app.py", "--server.maxUploadSize=954", "--server.port=9999"]
    bad = subprocess.run(["bash", str(REPO / "scripts" / "serve.sh")], capture_output=True, text=True,
                         env={**env, "DEFECTAUG_MAX_ZIP_BYTES": "-3"}, timeout=60)
    assert bad.returncode != 0 and bad.stdout == "" and "DEFECTAUG_MAX_ZIP_BYTES" in bad.stderr   # never started


def test_the_data_page_says_the_limits(monkeypatch, tmp_path):
    from tests.app.conftest import assert_clean, open_page, texts
    monkeypatch.setenv("DEFECTAUG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEFECTAUG_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DEFECTAUG_MAX_ZIP_BYTES", "1e9")
    at = open_page("data")
    at.radio(key="source").set_value("Upload a zip").run()
    assert_clean(at)
    assert ("Upload limit on this server: a zip of at most 953.7 MiB, 100,000 files and 4.0 GiB unpacked, folders at "
            "most 32 deep.") in texts(at.caption)
