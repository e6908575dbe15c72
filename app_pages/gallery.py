"""Gallery: synthetic images of a run beside real ones of the same class, with their provenance."""
from __future__ import annotations

import math

import streamlit as st

from core.errors import RunError
from core.rundir import RunDir
from core.views import runs
from ui import common

PER_PAGE = 24


def nearest(run_dir, method: str, item: runs.GalleryItem) -> None:
    """The synthetic image's nearest real training image (memorisation) and what the quality gate made of it."""
    row = runs.quality_of(run_dir, method, item)
    if not row:
        return
    found = RunDir(run_dir).images_by_source([row["nearest"]]) if row.get("nearest") else {}
    text = (f"Nearest real training image: {common.md_escape(row['nearest'])} (RMS distance {float(row['distance']):.3f}"
            + ("; a near-copy" if row["copy"] == "True" else "") + f"). The real-data classifier reads it as "
            f"{common.md_escape(row['predicted'])} ({float(row['confidence']):.2f}); the quality gate "
            + ("keeps it." if row["kept"] == "True" else "drops it."))
    st.caption(text)
    if row.get("nearest") in found:
        st.image(runs.to_display(found[row["nearest"]]), caption=f"nearest real: {common.md_escape(row['nearest'])}",
                 width=120)


def provenance(run_dir, item: runs.GalleryItem) -> None:
    if not item.parents:
        st.image(runs.to_display(runs.synthetic_image(item)), caption=common.md_escape(item.file), width=160)
        st.caption("No parent images: this image was generated from noise by a trained model "
                   "(or the method keeps no provenance).")
        return
    views = runs.transplant_views(run_dir, item)
    if views is not None:
        transplant(views, item)
        return
    found = RunDir(run_dir).images_by_source(item.parents)
    if runs.is_translation(item):
        src = item.parents[0]
        st.caption(f"Translated from one real normal training image (seed {item.seed}): source, then result.")
        left, right = st.columns(2)
        with left:
            if src in found:
                st.image(runs.to_display(found[src]), caption=f"source: {common.md_escape(src)}", width=160)
            else:
                st.caption(f"{common.md_escape(src)} (not in this run's data)")
        with right:
            st.image(runs.to_display(runs.synthetic_image(item)),
                     caption=f"translated: {common.md_escape(item.file)}", width=160)
        return
    st.image(runs.to_display(runs.synthetic_image(item)), caption=common.md_escape(item.file), width=160)
    st.caption(f"Made from {len(item.parents)} real image(s) (seed {item.seed}):")
    cols = st.columns(max(2, len(item.parents)))
    for col, src in zip(cols, item.parents):
        with col:
            if src in found:
                st.image(runs.to_display(found[src]), caption=common.md_escape(src), width=120)
            else:
                st.caption(f"{common.md_escape(src)} (not in this run's data)")


def transplant(views: dict, item: runs.GalleryItem) -> None:
    """A pasted defect: its real defect image (mask outlined), the real normal background, the result."""
    d = views["details"]
    how = {"automatic": "a mask found automatically", "user": "the dataset's own mask",
           "box": "a CutMix box"}.get(d.get("mask_from", ""), "a mask")
    st.caption(f"A real defect cut out by {how}, pasted onto a real normal image at {d.get('position', '?')} "
               f"(x, y, width, height){'; ' + d['transform'] if d.get('transform') else ''} (seed {item.seed}).")
    cols = st.columns(3)
    for col, key, label in zip(cols, ("defect", "background", "result"),
                               (f"defect: {d.get('defect_source', '')}", f"background: {d.get('background', '')}",
                                f"result: {item.file}")):
        with col:
            if views[key] is not None:
                st.image(runs.to_display(views[key]), caption=common.md_escape(label), width=160)
            else:
                st.caption(f"{common.md_escape(label)} (not in this run's data)")


def build() -> None:
    picked = common.pick_run(need="synthetic")
    if picked is None:
        st.info("No run with synthetic images yet. Launch one on the Synthesize page; its images appear "
                "here as soon as a method has made them.")
        st.page_link("app_pages/synthesize.py", label="Go to Synthesize", icon=":material/science:")
        return
    run_id, run_dir = picked
    folds = RunDir(run_dir).folds()
    if folds:                       # a K-fold run: each fold made its own synthetic images
        k = st.selectbox("Fold", list(range(len(folds))), format_func=lambda i: f"fold {i + 1} of {len(folds)}",
                         key="g_fold", help="Each fold simulated the imbalance and fitted the methods on its own "
                                            "training part")
        run_dir = folds[k]
    methods = RunDir(run_dir).synthetic_methods()
    c1, c2, c3 = st.columns(3)
    asked = st.query_params.get("method")          # a link from a verdict on Compare
    if asked in methods and st.session_state.get("_g_asked") != asked:
        st.session_state["g_method"] = st.session_state["_g_asked"] = asked
    method = c1.selectbox("Method", methods, key="g_method")
    try:
        items_all = RunDir(run_dir).gallery(method)
    except RunError as err:
        common.show_unreadable(err)
        return
    classes = sorted({it.cls for it in items_all})
    if not classes:
        st.info("This method has not written images yet.")
        return
    cls = c2.selectbox("Class", classes, key="g_class")
    seeds = sorted({it.seed for it in items_all if it.cls == cls})
    seed = c3.selectbox("Seed", ["all"] + seeds, key="g_seed")
    items = [it for it in items_all if it.cls == cls and (seed == "all" or it.seed == seed)]
    pages = max(1, math.ceil(len(items) / PER_PAGE))

    c4, c5, c6 = st.columns(3)
    sort = c4.selectbox("Sort by", runs.GALLERY_SORTS, key="g_sort",
                        help="Distance to the nearest real training image (closest: the near-copies), the real-data "
                             "classifier's confidence in its reading, or the quality gate's decision")
    show = c5.selectbox("Show", runs.GATE_FILTERS, key="g_show")
    min_conf = c6.slider("Classifier confidence at least", 0.0, 1.0, 0.0, 0.05, key="g_conf")
    rows = runs.sort_and_filter(runs.provenance_rows(run_dir, method, items), sort, show, min_conf)
    by_file = {it.file: it for it in items}
    pages = max(1, math.ceil(len(rows) / PER_PAGE))

    left, right = st.columns([1, 3])
    with left:
        real, sources = runs.real_images(run_dir, cls)
        st.markdown(f"**Real {common.md_escape(cls)}** ({len(real)} training images)")
        common.image_grid(real[:12], [common.md_escape(s.split("/")[-1]) for s in sources[:12]], cols=2, width=90)
    with right:
        opened = st.session_state.get("g_open")
        if opened in by_file:
            large_view(run_dir, method, by_file[opened], next((r for r in rows if r["file"] == opened), None))
        page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"g_page_{method}_{cls}_{seed}_{sort}_{show}")
        shown = rows[(page - 1) * PER_PAGE: page * PER_PAGE]
        st.markdown(f"**Synthetic {common.md_escape(cls)}** by {method}: {len(rows)} of {len(items)} images"
                    + ("" if len(rows) == len(items) else " (filtered)"))
        grid, table = st.tabs(["Images", "Table of this page"])
        with grid:
            _grid(shown, by_file)
        with table:
            st.dataframe([{k: ("" if v is None else v) for k, v in r.items()} for r in shown], hide_index=True,
                         width="stretch", column_config={
                             "distance": st.column_config.NumberColumn(format="%.3f", help="RMS pixel distance "
                                                                       "to the nearest real training image"),
                             "confidence": st.column_config.NumberColumn(format="%.2f")})


def _caption(r: dict) -> str:
    bits = [f"s{r['seed']} #{r['index']}"]
    if r["distance"] is not None:
        bits.append(f"d {r['distance']:.3f}")
    if r["gate"]:
        bits.append(r["gate"])
    return " · ".join(bits)


def _grid(shown: list[dict], by_file: dict, cols: int = 6) -> None:
    """Thumbnails, each with a button that opens its large view (with its provenance)."""
    if not shown:
        st.caption("No image matches these filters.")
        return
    for start in range(0, len(shown), cols):
        for col, r in zip(st.columns(cols), shown[start:start + cols]):
            with col:
                st.image(runs.to_display(runs.synthetic_image(by_file[r["file"]])), caption=_caption(r), width=90)
                if st.button("Enlarge", key=f"g_open_{r['file']}", help="A large view with where it came from"):
                    st.session_state["g_open"] = r["file"]
                    st.rerun()


def large_view(run_dir, method: str, item: runs.GalleryItem, row: dict | None) -> None:
    """One synthetic image large, with its provenance: how it was made (source / parents / background), its
    nearest real training image, the classifier's reading and the gate's decision."""
    with st.container(border=True):
        head, close = st.columns([5, 1])
        head.markdown(f"**{common.md_escape(item.file)}** · seed {item.seed}"
                      + (f" · {common.md_escape(row['made'])}" if row else ""))
        if close.button("Close", key="g_close"):
            st.session_state.pop("g_open", None)
            st.rerun()
        st.image(runs.to_display(runs.synthetic_image(item)), caption="large view", width=360)
        provenance(run_dir, item)
        nearest(run_dir, method, item)


st.title("Gallery")
with common.guard():
    build()
