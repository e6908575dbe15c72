"""User strings (class, folder, file and dataset names) are shown as they are on every page, never rendered as
Markdown: a class folder named '**[phish](https:evil.com)**' is its name in bold, never a link."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
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


# ---------------------------------------------------------------------------------------------
# Hostile class names through every page and the report (issue 37, item 1)
# ---------------------------------------------------------------------------------------------
LINK_MD = "[x](https:evil.com) **b**"
LINK_HTML = '<a href="https:evil.com">Login again'
HOSTILE = {"normal": 24, LINK_MD: 9, LINK_HTML: 9}


def _strings(value):
    """Every string in a JSON value (a chart's spec)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _chart_strings(at) -> list[str]:
    import json
    return [s for chart in at.get("plotly_chart") for s in _strings(json.loads(chart.proto.spec))]


def _markup_leaks(at) -> list[str]:
    """Shown text where a hostile name is markup: a Markdown link or an HTML tag in a chart."""
    shown = _all_text(at)
    leaks = [t for t in shown if _unescaped(t, "[x](") or _unescaped(t, "<a ")]
    leaks += [s for s in _chart_strings(at) if "<a " in s or "<a\u00a0" in s]
    return leaks


@pytest.fixture(scope="module")
def hostile_ws(app_env, tmp_path_factory):
    """A workspace whose dataset has classes named like a Markdown link and an HTML link, and a finished run of
    it as a done job."""
    import os
    import shutil
    from pathlib import Path

    from core.experiment import run
    from core.jobs import JobStore
    from core.workspace import Workspace
    from tests.conftest import FINISHED_RUN, write_dataset
    tmp = tmp_path_factory.mktemp("hostile")
    ws = Workspace.create()
    data = write_dataset(ws.uploads, HOSTILE, size=16, name="hostile")
    ws.update_settings(dataset=str(data))
    config = {**FINISHED_RUN, "data": str(data), "methods": ["smote"], "seeds": [0]}
    run(config, tmp / "run")
    store = JobStore(ws)
    run_id = store.submit(config)
    shutil.copytree(tmp / "run", store.get(run_id).run_dir, dirs_exist_ok=True)
    store.claim_next(os.getpid())
    store.finish(run_id, "done")
    assert store.status(run_id).status == "done"
    return {"ws": ws, "run": run_id, "run_dir": Path(store.status(run_id).run_dir)}


@pytest.mark.parametrize("page", [None, "data", "synthesize", "jobs", "gallery", "compare", "export"])
def test_hostile_class_names_are_never_markup_on_any_page(hostile_ws, page):
    at = open_page(page, ws=hostile_ws["ws"].id, run=hostile_ws["run"])
    assert_clean(at)
    if page == "compare":                       # the confusion matrices, labelled by the hostile names
        assert len(at.get("plotly_chart")) >= 2
    if page == "data":
        assert any("&lt;a href" in s for s in _chart_strings(at)), _chart_strings(at)   # shown, as text
    if page == "export":
        caption = next(t for t in texts(at.caption) if "classes " in t)
        assert r"\[x\](https:evil.com) \*\*b\*\*" in caption and r"\<a href=" in caption, caption
    assert not _markup_leaks(at)


def test_hostile_class_names_are_text_in_the_report(hostile_ws):
    import json
    import re

    from core.views.report import build_report
    page = build_report(hostile_ws["run_dir"])
    assert LINK_HTML not in page and "&lt;a href=&quot;https:evil.com&quot;&gt;Login again" in page   # tables
    specs = re.findall(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{", page, flags=re.S)
    assert specs
    strings = [s for spec in specs for s in _strings(json.loads(spec))]
    assert "&lt;a href=\"https:evil.com\"&gt;Login again" in strings
    assert not [s for s in strings if "<a " in s]


def test_the_data_page_warns_of_class_names_that_merge_on_windows_or_macos():
    from core.workspace import Workspace
    from tests.conftest import write_dataset
    from tests.core.test_export_cli import COLLIDING
    ws = Workspace.create()
    ws.update_settings(dataset=str(write_dataset(ws.uploads, COLLIDING, size=16, name="clash")))
    at = open_page("data", ws=ws.id)
    assert_clean(at)
    warnings = [t for t in texts(at.warning) if "differ only by case" in t]
    assert len(warnings) == 3 and all("The export refuses such a run." in t for t in warnings), texts(at.warning)
