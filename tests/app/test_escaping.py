"""User strings (class, folder, file and dataset names) are shown as they are on every page, never rendered as
Markdown: a class folder named '**[phish](https:evil.com)**' is its name in bold, never a link."""
from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from tests.app.conftest import assert_clean, open_page, texts, ws_of

PHISH = "**[phish](https:evil.com)**"
SHOWN = r"\*\*\[phish\](https:evil.com)\*\*"


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _all_text(at) -> list[str]:
    return [t for kind in (at.markdown, at.caption, at.success, at.warning, at.error, at.info, at.subheader)
            for t in texts(kind)]


def _unescaped(text: str, needle: str = "[phish](") -> bool:
    i = text.find(needle)
    return i >= 0 and (i == 0 or text[i - 1] != "\\")


def test_a_class_named_like_a_markdown_link_is_shown_as_its_name():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(6):
            zf.writestr(f"normal/n{i}.png", _png(i))
        for i in range(3):
            zf.writestr(f"{PHISH}/c{i}.png", _png(100 + i))
    at = open_page("data")
    at.radio(key="source").set_value("Upload a zip").run()
    at.file_uploader(key="zip_upload").set_value(("`odd` [x](y).zip", buf.getvalue(), "application/zip")).run()
    assert_clean(at)
    shown = _all_text(at)
    assert f"**{SHOWN}** (3)" in texts(at.markdown)
    assert not any(_unescaped(t) for t in shown), shown
    assert any(t.startswith("Extracted `` `odd` [x](y).zip `` into ") for t in texts(at.success)), texts(at.success)
    synth = open_page("synthesize", ws=ws_of(at).id)
    assert_clean(synth)
    assert not any(_unescaped(t) for t in _all_text(synth))


def test_refused_file_names_in_a_folder_upload_warning_are_escaped():
    at = open_page("data")
    at.radio(key="source").set_value("Upload class folders").run()
    files = [(f"set/{c}/{c}_{i}.png", _png(i + 10 * len(c)), "image/png") for c in ("normal", "crack") for i in range(3)]
    files.append(("../[phish](https:evil.com).png", _png(1), "image/png"))
    at.file_uploader(key="dir_upload").set_value(files).run()
    assert_clean(at)
    (warning,) = [t for t in texts(at.warning) if "unsafe names" in t]
    assert warning == r"Ignored 1 file(s) with unsafe names: ../\[phish\](https:evil.com).png"
