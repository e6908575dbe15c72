"""Compare: baseline vs augmented classifier on the same real test images."""
from __future__ import annotations

import streamlit as st

from core.views import headline
from core.errors import RunError
from core.rundir import RunDir
from core.views import report, runs
from ui import common

VERDICT_BOX = {"success": st.success, "warning": st.warning, "info": st.info}   # hurts is a warning, not an error


def cell_images(run_dir, model: str, true_cls: str, pred_cls: str, title: str) -> None:
    rows = runs.cell(run_dir, model, true_cls, pred_cls)
    st.markdown(f"**{title}**: {len(rows)} image(s)")
    if not rows:
        return
    found = RunDir(run_dir).images_by_source([r["file"] for r in rows[:24]])
    imgs, caps = [], []
    for r in rows[:24]:
        if r["file"] in found:
            imgs.append(found[r["file"]])
            caps.append(f"pred {r['probs'].get(pred_cls, 0):.2f} · true {r['probs'].get(true_cls, 0):.2f}")
    st.caption(f"Under each image: the predicted probability of {common.md_escape(pred_cls)} (pred) and of "
               f"{common.md_escape(true_cls)} (true).")
    common.image_grid(imgs, caps, cols=4, width=90)


def quality_section(metrics: dict, methods: list[str]) -> None:
    """How good the synthetic images are, per method and class, and where they fall among the real ones."""
    rows = runs.quality_rows(metrics)
    if not rows:
        return
    st.subheader("Synthetic image quality")
    first = next(metrics["methods"][m]["quality"] for m in methods if metrics["methods"][m].get("quality"))
    st.caption(f"Features: {first['features']} (FD-cls / KD-cls, not FID); real training images of a class against "
               "its synthetic images, means over seeds. SSIM synthetic near 1 while real is lower: mode collapse. "
               "Near-copies: closer to one real image than a quarter of the real images' spacing. Wrong class: the "
               "real-data classifier puts them in another class with confidence 0.9 or more. The quality gate drops "
               "wrong-class images, and a generator's near-copies (copies are what random_oversample and SMOTE "
               "make by design). Train-on-synthetic F1: a classifier trained on the synthetic defect images and "
               "the real normal images, scored on the real test images.")
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        k: st.column_config.TextColumn(k, help=f"{m}. Better: {d}.") for k, (m, d) in runs.QUALITY_HELP.items()
        if k in rows[0]})
    st.markdown("\n".join(f"- **{k}**: {m}; better: {d}." for k, (m, d) in runs.QUALITY_HELP.items()
                          if k in rows[0]))
    with_embedding = [m for m in methods if (metrics["methods"][m].get("quality") or {}).get("embedding")]
    if with_embedding:
        pick = st.selectbox("Embedding of", with_embedding, key="c_embed")
        st.plotly_chart(report.fig_embedding(metrics["methods"][pick]["quality"]["embedding"]), width="stretch",
                        key="embedding")


def _flagged(title: str, name: str, metrics: dict) -> str:
    """A chart title with the model's collapse flag, when it collapsed."""
    note = headline.collapse_note(name, metrics)
    return f"{title}: {note}" if note else title


def build() -> None:
    picked = common.pick_run(need="metrics")
    if picked is None:
        st.info("No finished run yet. Results appear here when a job is done.")
        st.page_link("app_pages/jobs.py", label="See the jobs", icon=":material/schedule:")
        return
    run_id, run_dir = picked
    folds = RunDir(run_dir).folds()
    if folds:                       # a K-fold run: the folds pooled (every real image tested once), or one fold
        view = st.radio("Folds", ["pooled"] + [f"fold {i + 1}" for i in range(len(folds))], horizontal=True,
                        key="c_fold", help="Pooled: every real image tested once, the verdict over all folds and "
                                           "seeds. A fold: its own test part, split and verdict.")
        if view != "pooled":
            run_dir = folds[int(view.split()[1]) - 1]
    try:
        metrics = RunDir(run_dir).read_metrics()
    except RunError as err:
        common.show_unreadable(err)
        return
    from core.experiment import BASELINE_HELP
    classes = metrics["classes"]
    methods = list(metrics.get("methods", {}))
    baselines = list(metrics.get("baselines", {}))
    strongest = metrics.get("strongest_baseline") or baselines[0]

    st.subheader("Verdict")
    with_images = set(RunDir(run_dir).synthetic_methods())
    for name, cls in headline.collapsed(metrics).items():
        st.warning(f"{common.md_escape(name)}: collapsed: predicts {common.md_escape(cls)} for almost every test "
                   f"image ({headline.COLLAPSE_SHARE:.0%} or more); its scores say little about the images it "
                   "trained on.")
    for name in methods:
        h = headline.headline(metrics, name)
        v = metrics["methods"][name].get("verdict") or {}
        VERDICT_BOX[h.tone](f"**{h.words}**: {common.md_escape(name)}. {common.md_escape(h.line)}")
        if h.details:
            with st.expander(f"Details of {name}'s verdict"):
                st.caption(common.md_escape(h.details))
        source = metrics["methods"][name].get("gated_from") or name
        if v.get("label") in ("hurts", "no clear difference") and source in with_images:
            st.page_link("app_pages/gallery.py", label=f"See the images {source} made, in the Gallery",
                         icon=":material/photo_library:", query_params={"method": source, "run": run_id,
                                                                        "ws": common.workspace().id})
    for name, why in (metrics.get("failed") or {}).items():
        st.error(f"{name} failed and is not compared: {common.md_escape(why)}")
    leak = runs.leakage_text(metrics)
    if leak:
        (st.warning if (metrics.get("leakage") or {}).get("leaking") else st.caption)(common.md_escape(leak))
    if not methods:
        st.warning("This run has no method results to compare (only baselines).")

    st.subheader("Leaderboard")
    st.caption(f"Methods first, ordered by their gain over the strongest baseline ({strongest}); mean ± std over "
               "seeds, with the 95% bootstrap interval over test images.")
    st.dataframe(runs.leaderboard_rows(metrics), hide_index=True, width="stretch")
    st.markdown("**The baselines**, each trained on the imbalanced real images only (the CNNs from the same "
                "initial weights as the methods):\n" + "\n".join(
                    f"- **{b}**: {BASELINE_HELP.get(b, '')}" + (" (the strongest here)" if b == strongest else "")
                    for b in baselines))
    st.caption(f"A method's verdict is taken against the strongest of them, here {strongest}: beating the "
               "papers' baseline alone can be extra optimisation, not better data.")
    detect = runs.detection_rows(metrics)
    if detect:
        st.subheader("Defect or normal")
        st.caption(runs.detection_help())
        st.dataframe(detect, hide_index=True, width="stretch")

    if not methods:
        return
    st.subheader("Confusion matrices")
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("Method", methods, key="c_method")
    baseline = c2.selectbox("Baseline", baselines, index=baselines.index(strongest), key="c_base",
                            help="; ".join(f"{b}: {BASELINE_HELP.get(b, '')}" for b in baselines))
    seeds = runs.seeds_of(metrics) or [0]
    seed = c3.selectbox("Seed", ["all seeds"] + seeds, key="c_seed")
    normalize = c4.radio("Show", ["counts", "row-normalised"], key="c_norm") == "row-normalised"
    s = None if seed == "all seeds" else int(seed)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(report.fig_confusion(runs.seed_confusion(metrics, baseline, s), classes,
                                             _flagged(f"Baseline ({baseline})", baseline, metrics), normalize),
                        width="stretch", key="cm_base")
    with right:
        st.plotly_chart(report.fig_confusion(runs.seed_confusion(metrics, method, s), classes,
                                             _flagged(f"Augmented ({method})", method, metrics), normalize),
                        width="stretch", key="cm_method")

    st.markdown("**Test images in one cell** (before and after)")
    d1, d2, d3 = st.columns(3)
    t0, p0 = runs.largest_mistake(runs.seed_confusion(metrics, baseline, s))
    true_cls = d1.selectbox("True class", classes, index=t0, key="c_true")
    pred_cls = d2.selectbox("Predicted class", classes, index=p0, key="c_pred")
    cell_seed = seeds[0] if s is None else s
    d3.caption(f"Images of seed {cell_seed}" + (" (choose a seed to see another)" if s is None else ""))
    b, a = st.columns(2)
    with b:
        cell_images(run_dir, runs.model_id(baseline, cell_seed), true_cls, pred_cls, f"Baseline ({baseline})")
    with a:
        cell_images(run_dir, runs.model_id(method, cell_seed), true_cls, pred_cls, f"Augmented ({method})")

    st.subheader("Per-class scores")
    metric = st.radio("Score", ["f1", "recall", "precision"], horizontal=True, key="c_metric")
    models = {f"baseline {b}": metrics["baselines"][b] for b in baselines}
    models.update({m: metrics["methods"][m] for m in methods})
    st.plotly_chart(report.fig_per_class(models, classes, metric), width="stretch", key="per_class")
    if metrics.get("leaderboard"):
        st.plotly_chart(report.fig_leaderboard(metrics), width="stretch", key="leader_chart")
    quality_section(metrics, methods)
    notes = list(metrics.get("warnings") or [])
    notes += [f"{f.get('method')} / {f.get('class')}: {f.get('reason')}; {f.get('fallback')} was used"
              for f in metrics.get("fallbacks") or []]
    if notes:
        with st.expander(f"Warnings and fallbacks ({len(notes)})"):
            for n in notes:
                st.caption(common.md_escape(n))


st.title("Compare")
with common.guard():
    build()
