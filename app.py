"""DefectAug web app. Start it with:

    streamlit run app.py          # or scripts/serve.sh, which adds the upload limit

`streamlit run` finds `app = st.App(...)` below and serves this script with uvicorn (Streamlit's ASGI mode), plus
the Export page's download route (`core.serving`: a large zip is sent from disk, never held in this process).
The ASGI branch runs only when the server imports this file as the module `app`; Streamlit (and AppTest) run it
as the script `__main__`, which draws the pages.

Pages (app_pages/): Data -> Synthesize -> Jobs -> Gallery -> Compare -> Export, listed by st.navigation
below. The folder is not named pages/: Streamlit would take that for the old multipage layout and run a
page file on its own, without this script, for the first visitor after a restart who opens a deep link
(/data). Training never runs in this process: Synthesize submits a job to the background worker
(started here when none runs), and the other pages read the run folders. Settings: DEFECTAUG_HOME (where workspaces live),
DEFECTAUG_DATA_ROOTS (server folders users may pick), DEFECTAUG_SHARED_WORKSPACE (one workspace for
everyone), DEFECTAUG_MAX_PARALLEL (jobs at once; default one per GPU, or one on CPU).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # core/ and ui/ importable from any cwd

import streamlit as st  # noqa: E402

from ui import common  # noqa: E402


def home() -> None:
    from core.views import runs
    from core.advice import measured_summary
    ws = common.workspace()
    st.title("DefectAug")
    st.markdown(
        "Make a small, imbalanced set of defect images bigger with synthetic images, and see whether a "
        "classifier trained on the result really gets better on **real** test images.")
    st.info(measured_summary())
    st.subheader("Start here")
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**1. Data** - use the built-in sample dataset, upload a zip of class folders, or "
                    "upload the class folders themselves.")
        st.page_link(PAGES["data"], label="Open Data", icon=":material/folder_open:")
        st.markdown("**2. Synthesize** - pick methods, see the estimate, launch. The job runs in the "
                    "background; you can close the tab.")
        st.page_link(PAGES["synthesize"], label="Open Synthesize", icon=":material/science:")
        st.markdown("**3. Jobs** - live progress, losses and log; cancel or re-run.")
        st.page_link(PAGES["jobs"], label="Open Jobs", icon=":material/schedule:")
    with c2:
        st.markdown("**4. Gallery** - synthetic images beside real ones, with where each came from.")
        st.page_link(PAGES["gallery"], label="Open Gallery", icon=":material/photo_library:")
        st.markdown("**5. Compare** - baseline vs augmented: confusion matrices, per-class scores, "
                    "leaderboard and a plain verdict.")
        st.page_link(PAGES["compare"], label="Open Compare", icon=":material/compare:")
        st.markdown("**6. Export** - the balanced dataset as a zip, and a one-page HTML report.")
        st.page_link(PAGES["export"], label="Open Export", icon=":material/download:")
    st.divider()
    with common.guard():
        summaries = runs.list_runs(ws.runs)
        datasets = ws.datasets()
        m1, m2, m3 = st.columns(3)
        m1.metric("Datasets in this workspace", len(datasets))
        m2.metric("Runs", len(summaries))
        m3.metric("Finished runs", sum(1 for r in summaries if r["status"] == "done"))
        chosen = common.current_dataset()
        if chosen is None:
            st.info("No dataset chosen yet: start on the Data page (the sample dataset takes one click).")
        else:
            st.caption(f"Current dataset: {common.md_code(common.dataset_name(chosen))}")


if __name__ != "__main__":          # imported by the server (`streamlit run app.py`): the ASGI app, no page
    from core import serving  # noqa: E402
    app = st.App(__file__, routes=[serving.mount(st.get_option("server.baseUrlPath"))])
else:                               # a session's run of the script: the pages
    st.set_page_config(page_title="DefectAug", page_icon="🔍", layout="wide")
    PAGES = {
        "home": st.Page(home, title="Home", icon=":material/home:", default=True),
        "data": st.Page("app_pages/data.py", title="Data", icon=":material/folder_open:", url_path="data"),
        "synthesize": st.Page("app_pages/synthesize.py", title="Synthesize", icon=":material/science:", url_path="synthesize"),
        "jobs": st.Page("app_pages/jobs.py", title="Jobs", icon=":material/schedule:", url_path="jobs"),
        "gallery": st.Page("app_pages/gallery.py", title="Gallery", icon=":material/photo_library:", url_path="gallery"),
        "compare": st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
        "export": st.Page("app_pages/export.py", title="Export", icon=":material/download:", url_path="export"),
    }
    page = st.navigation(list(PAGES.values()))
    first = not st.session_state.get("_loaded")       # a session's first page loads torch and the methods:
    loading = st.empty()                               # say so instead of a blank body for half a minute
    if first:
        loading.info("Loading DefectAug (the first page of a visit loads its libraries, up to half a minute on a "
                     "busy machine)...", icon=":material/hourglass_empty:")
    with common.guard():
        common.workspace()
        common.sidebar()
    try:
        page.run()
    finally:                                           # also when a page stops early (st.stop)
        st.session_state["_loaded"] = True
        loading.empty()
