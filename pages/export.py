"""Export: the balanced dataset of a run as a zip (ImageFolder layout + manifest), and the HTML report."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import runs
from core.rundir import RunDir
from ui import common


def build() -> None:
    from core.export import available_methods, export_zip, manifest_counts
    from core.report import write_report

    ws = common.workspace()
    picked = common.pick_run(need="metrics")
    if picked is None:
        st.info("No finished run yet. When a job is done, its balanced dataset can be downloaded here.")
        st.page_link("pages/jobs.py", label="See the jobs", icon=":material/schedule:")
        return
    run_id, run_dir = picked
    report_dir = run_dir
    folds = runs.fold_dirs(run_dir)
    if folds:                       # a K-fold run: the dataset of one fold (its training part + synthetic top-up)
        st.caption(f"This run has {len(folds)} folds; the balanced dataset is the first fold's training images "
                   "with its synthetic images. The report covers every fold.")
        run_dir = folds[0]

    st.subheader("Balanced dataset")
    methods = available_methods(run_dir)
    if not methods:
        st.info("This run kept no synthetic images; only the real training images can be exported.")
    options = methods + ["none"]
    c1, c2 = st.columns([2, 1])
    method = c1.selectbox("Synthetic images from", options,
                          format_func=lambda m: "none (real images only)" if m == "none" else m, key="e_method")
    filtered = False
    if method != "none" and RunDir(run_dir).has_quality_filter(method):   # only when there is a filter to apply
        filtered = c2.checkbox("Quality-filtered set only", key="e_filtered",
                               help="Only the synthetic images that passed the run's quality gate.")
    st.caption("Layout: `<class>/<file>.png` (torchvision ImageFolder), real and synthetic files named so they "
               "never collide, plus `manifest.csv` (origin, method, seed, parents), `metrics.json` and "
               "`config.json`.")
    key = f"zip:{run_id}:{method}:{filtered}"
    if st.button("Build the zip", type="primary", key="e_build"):
        with common.guard(), st.spinner("Writing the zip..."):
            out = ws.exports / f"{run_id[:8]}_{method}{'_filtered' if filtered else ''}.zip"
            st.session_state[key] = str(export_zip(run_dir, method, out, quality_filtered=filtered))
    built = st.session_state.get(key)
    if built and Path(built).exists():
        counts = manifest_counts(built)
        st.dataframe([{"class": c, "real": v.get("real", 0), "synthetic": v.get("synthetic", 0)}
                      for c, v in counts.items()], hide_index=True, width="stretch")
        st.download_button("Download the balanced dataset (.zip)", Path(built).read_bytes(),
                           file_name=Path(built).name, mime="application/zip", key="e_download")

    st.subheader("Report")
    st.caption("One HTML page with the setup, the verdict, the leaderboard, the confusion matrices and the "
               "per-class scores; it opens offline in any browser.")
    rkey = f"report:{run_id}"
    if st.button("Build the report", key="e_report"):
        with common.guard(), st.spinner("Writing the report..."):
            st.session_state[rkey] = str(write_report(report_dir, ws.exports / f"{run_id[:8]}_report.html"))
    built = st.session_state.get(rkey)
    if built and Path(built).exists():
        st.download_button("Download the report (.html)", Path(built).read_bytes(), file_name=Path(built).name,
                           mime="text/html", key="r_download")
    summary = runs.run_summary(report_dir)
    st.caption(f"Run {run_id[:8]} · {common.md_escape(summary['label'])} · {summary['status']}")


st.title("Export")
with common.guard():
    build()
