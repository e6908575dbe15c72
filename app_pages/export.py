"""Export: the balanced dataset of a run as a zip (the user's original images + the synthetic top-up, flat or
train/test layout, manifest and Hugging Face metadata), and the HTML report."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.views import headline
from core.rundir import RunDir
from core.views import runs
from ui import common

SIZES = [None, 32, 64, 128, 224, 256, 512]


def build() -> None:
    from core.views.export import available_methods, export_zip
    from core.views.report import write_report

    ws = common.workspace()
    picked = common.pick_run(need="metrics")
    if picked is None:
        st.info("No finished run yet. When a job is done, its balanced dataset can be downloaded here.")
        st.page_link("app_pages/jobs.py", label="See the jobs", icon=":material/schedule:")
        return
    run_id, run_dir = picked
    report_dir = run_dir
    folds = len(RunDir(run_dir).folds())
    if folds:                       # a K-fold run: the dataset of one fold (its split + synthetic top-up)
        st.caption(f"This run has {folds} folds; the balanced dataset uses the first fold's split and its "
                   "synthetic images. The report covers every fold.")
    run_dir = RunDir(run_dir).one_split()

    st.subheader("Balanced dataset")
    methods = available_methods(run_dir)
    if not methods:
        st.info("This run kept no synthetic images; only the real images can be exported.")
    options = methods + ["none"]
    metrics = RunDir(report_dir).metrics() or {}
    best, why = headline.export_choice(metrics, methods)
    if st.session_state.get("e_method_run") != run_id:       # a new run: preselect what its verdict favours
        st.session_state["e_method_run"], st.session_state["e_method"] = run_id, best
    c1, c2 = st.columns([2, 1])
    method = c1.selectbox("Synthetic images from", options,
                          format_func=lambda m: "none (real images only)" if m == "none" else m, key="e_method")
    chosen = headline.headline(metrics, method) if method in (metrics.get("methods") or {}) else None
    if chosen is not None:
        (st.success if chosen.tone == "success" else st.warning if chosen.tone == "warning" else st.info)(
            f"**{chosen.words}**: {common.md_escape(method)}. {common.md_escape(chosen.line)}")
    elif method == "none":
        st.info(common.md_escape(why if best == "none" else "Real images only: the dataset as it is, balanced by "
                                                             "nothing."))
    if method != best:
        st.caption(f"Suggested by the verdicts: {common.md_escape(why)}")
    filtered = False
    if method != "none" and RunDir(run_dir).has_quality_filter(method):   # only when there is a filter to apply
        filtered = c2.checkbox("Quality-filtered set only", key="e_filtered",
                               help="Only the synthetic images that passed the run's quality gate.")
    run_size = RunDir(run_dir).data_report().get("image_size") or RunDir(run_dir).config().get("image_size")
    c3, c4, c5 = st.columns(3)
    layout = c3.radio("Layout", ["flat", "split"], key="e_layout",
                      format_func=lambda v: "flat: <class>/" if v == "flat" else "split: train/ and test/",
                      help="split keeps the run's real test images apart under test/, never mixed with synthetic "
                           "images.")
    real = c4.radio("Real images", ["all", "train"], key="e_real",
                    format_func=lambda v: "all of the dataset" if v == "all" else "only what the run trained on",
                    help="All: the run's training, test and held-back images (the simulated imbalance left some "
                         "out of training). Real images are always your original files, never re-encoded.")
    size = c5.selectbox("Synthetic image size", SIZES, key="e_size", disabled=method == "none",
                        format_func=lambda s: f"the run's ({run_size} px)" if s is None else f"{s} px")
    st.caption("Each class is topped up to the balance of the real images exported (more are drawn from the run's "
               "saved generator when it made too few). The zip holds `manifest.csv` (origin, role, method, seed, "
               "parents), a Hugging Face imagefolder `metadata.csv`, a README, `metrics.json` and `config.json`.")
    if size and run_size and size > int(run_size):
        st.caption(f"Upscaled from {run_size} px, generator output is softer than real images.")
    key = f"zip:{run_id}:{method}:{filtered}:{layout}:{real}:{size}"
    if st.button("Build the zip", type="primary", key="e_build"):
        with common.guard(), st.spinner("Writing the zip..."):
            name = f"{run_id[:8]}_{method}{'_filtered' if filtered else ''}" + \
                   ("" if layout == "flat" else "_split") + ("" if real == "all" else "_train") + \
                   (f"_{size}px" if size else "")
            result = export_zip(run_dir, method, ws.exports / f"{name}.zip", quality_filtered=filtered,
                                layout=layout, real=real, size=size, check_data=ws.check_data_path)
            st.session_state[key] = {"path": str(result.path), "rows": result.rows(), "notes": result.notes}
    built = st.session_state.get(key)
    if built and Path(built["path"]).exists():
        st.dataframe(built["rows"], hide_index=True, width="stretch")
        for note in built["notes"]:
            (st.warning if "missing" in note or "softer" in note or "grey" in note else st.info)(note)
        download_zip(ws, Path(built["path"]))

    st.subheader("Report")
    st.caption("One HTML page with the setup, the verdict, the leaderboard, the confusion matrices and the "
               "per-class scores; it opens offline in any browser.")
    rkey = f"report:{run_id}"
    if st.button("Build the report", key="e_report"):
        with common.guard(), st.spinner("Writing the report..."):
            st.session_state[rkey] = str(write_report(report_dir, ws.exports / f"{run_id[:8]}_report.html"))
    built = st.session_state.get(rkey)
    if built and Path(built).exists():
        st.download_button("Download the report (.html)", common.file_on_click(Path(built)), file_name=Path(built).name,
                           mime="text/html", key="r_download")
    summary = runs.run_summary(report_dir)
    st.caption(f"Run {run_id[:8]} · {common.md_escape(summary['label'])} · {summary['status']}")


def download_zip(ws, path: Path) -> None:
    """A zip over `serving.INLINE_MAX_BYTES` (50 MB): a link to the app's download route, which sends the file
    from disk (this process never holds it). A smaller one, or with no route (AppTest): st.download_button,
    which holds it in memory while it is downloaded."""
    from core import serving
    size = path.stat().st_size
    if serving.mounted() and size > serving.INLINE_MAX_BYTES:
        token = serving.register(ws, path)
        st.link_button("Download the balanced dataset (.zip)", serving.download_url(
            token, st.get_option("server.baseUrlPath")), type="primary", icon=":material/download:")
        st.caption(f"{size / 1e6:,.0f} MB, sent from the server's disk: the link works for this workspace's file "
                   "as long as the file exists (building the same zip again replaces it).")
        return
    st.download_button("Download the balanced dataset (.zip)", common.file_on_click(path), file_name=path.name,
                       mime="application/zip", key="e_download", on_click="ignore")


def classifier_weights(run_id: str, run_dir) -> None:
    """The trained classifier of one model and seed, to use elsewhere: its weights and what feeds it."""
    from core.views.predict import trained_models, weights_download
    st.subheader("Trained classifier")
    kept = trained_models(run_dir)
    if not kept:
        st.info("This run kept no trained classifier (it was made before runs kept them); run it again to get one.")
        return
    model_id = st.selectbox("Model", kept, key="w_model",
                            help="A baseline (the real images only) or a method's classifier, per seed.")
    name, seed = model_id.rsplit("_s", 1)
    weights, meta, meta_bytes = weights_download(run_dir, name, int(seed))
    st.caption(f"{meta['arch']}{' fine-tuned from ImageNet' if meta.get('pretrained') else ''}, "
               f"{meta['image_size']} px, classes {', '.join(common.md_escape(c) for c in meta['classes'])}; "
               f"{weights.stat().st_size / 2**20:.1f} MB. The JSON says the preprocessing (size, channels, mean "
               "and std); the weights are " + ("the per-pixel standardisation (mean, scale) and the logistic "
                                               "regression's weight and bias" if meta["arch"] == "linear" else
                                               "the network's state dict") + " (safetensors). On the command line: "
               f"`python -m core predict RUN --model {name} --seed {seed} IMAGES_DIR`.")
    c1, c2 = st.columns(2)
    c1.download_button("Download the weights (.safetensors)", common.file_on_click(weights),
                       file_name=f"{run_id[:8]}_{model_id}.safetensors", mime="application/octet-stream",
                       key="w_download")
    c2.download_button("Download classes and preprocessing (.json)", meta_bytes,
                       file_name=f"{run_id[:8]}_{model_id}.json", mime="application/json", key="w_meta")


st.title("Export")
with common.guard():
    build()
with common.guard():
    chosen = common.selected_run()              # the run build() picked (its selectbox keeps ?run=)
    run = RunDir(common.workspace().run_dir(chosen)) if chosen else None
    if run is not None and run.has_metrics():
        classifier_weights(chosen, run.one_split())
