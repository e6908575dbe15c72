"""The Export page links a large zip to the app's download route (core.serving) instead of handing it to
st.download_button, and that link serves the zip the page built, byte for byte."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.testclient import TestClient

from core import serving
from tests.app.conftest import assert_clean, open_page, texts


def test_a_large_zip_gets_the_served_link_and_it_downloads_the_built_zip(done_ws, monkeypatch):
    ws = done_ws["ws"]
    monkeypatch.setattr(serving, "_mounted", True)          # as under `streamlit run app.py`
    at = open_page("export", ws=ws.id, run=done_ws["run"])
    at.selectbox(key="e_method").set_value("smote").run()
    at.button(key="e_build").click().run()
    assert_clean(at)
    # the sample run's zip is small: under the threshold it keeps the in-memory button
    assert [b.proto.label for b in at.get("download_button")][:1] == ["Download the balanced dataset (.zip)"]
    assert not at.get("link_button")

    monkeypatch.setattr(serving, "INLINE_MAX_BYTES", 0)     # every zip is "large"
    at.run()
    assert_clean(at)
    (link,) = at.get("link_button")
    assert link.proto.label == "Download the balanced dataset (.zip)"
    assert "Download the balanced dataset (.zip)" not in [b.proto.label for b in at.get("download_button")]
    assert any("sent from the server's disk" in t for t in texts(at.caption))
    url = link.proto.url
    assert url.startswith("/api/download/")
    at.run()
    assert at.get("link_button")[0].proto.url == url       # a rerun keeps the same link
    (zip_path,) = list(ws.exports.glob(f"{done_ws['run'][:8]}_smote.zip"))
    with TestClient(Starlette(routes=[serving.route()])) as client:
        r = client.get(url)
    assert r.status_code == 200
    assert r.content == zip_path.read_bytes()
    assert r.headers["content-length"] == str(zip_path.stat().st_size)
    assert zip_path.name in r.headers["content-disposition"]
