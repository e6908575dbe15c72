"""A browser visit that uploads, sets and runs nothing leaves no workspace folder, and a made-up ?ws= id in
a link never becomes a workspace of that id; the first write (here: a sample dataset) makes one."""
from __future__ import annotations

from tests.app.conftest import assert_clean, open_page, ws_of

PAGES = [None, "data", "synthesize", "jobs", "gallery", "compare", "export"]


def test_visiting_every_page_leaves_no_workspace_folder(app_env):
    home = app_env["home"]
    before = {p.name for p in home.iterdir() if not p.name.startswith(".")}
    made_up = "feedfacefeedfacefeedfacefeedface"
    for page in PAGES:
        at = open_page(page, ws=made_up)
        assert_clean(at)
        value = at.query_params["ws"]
        assert (value[0] if isinstance(value, list) else value) != made_up
    assert {p.name for p in home.iterdir() if not p.name.startswith(".")} == before


def test_the_first_write_makes_the_workspace_and_a_reload_finds_it(app_env):
    at = open_page("data")
    value = at.query_params["ws"]
    ws_id = value[0] if isinstance(value, list) else value
    assert not (app_env["home"] / ws_id).exists()
    reload = open_page("jobs", ws=ws_id)       # the link, reopened before anything was written: the same one
    assert reload.query_params["ws"] in (ws_id, [ws_id]) and not (app_env["home"] / ws_id).exists()
    at.button(key="make_sample").click().run()
    assert_clean(at)
    assert (app_env["home"] / ws_id / "uploads").is_dir()
    again = open_page("data", ws=ws_id)
    assert ws_of(again).id == ws_id and again.query_params["ws"] in (ws_id, [ws_id])
