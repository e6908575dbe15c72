"""Synthesize: choose methods and settings, see what will run, launch a background job."""
from __future__ import annotations

import streamlit as st

from core.views import runs
from ui import common
from ui.forms import classifier_form, params_form

def _unavailable(specs) -> None:
    """Methods this server cannot run, each with what it needs (never hidden, never a failed job)."""
    off = [m for m in specs if not m.available]
    if off:
        with st.expander(f"Not available on this server ({len(off)})"):
            for m in off:
                st.markdown(f"**{m.name}** ({m.family}): {m.unavailable_reason()}")


@st.cache_data(ttl=300, show_spinner=False, max_entries=8)
def _cached_slow(data: str, counts: tuple, names: tuple, test_per_class: int, ratio, normal, image_size: int,
                 seeds: tuple, preset: str) -> dict[str, float]:
    from core.estimate import machine_rates, slow_methods
    return slow_methods(data, dict(counts), list(names), test_per_class=test_per_class, ratio=ratio,
                        normal_class=normal, image_size=image_size, seeds=list(seeds), preset=preset,
                        rates=machine_rates())


def _slow_methods(path, counts: dict[str, int], settings: dict, names: list[str]) -> dict[str, float]:
    """Methods over an hour on this machine (core.estimate.slow_methods), for the run as set on this page (its
    image size, seeds and preset as they stand; the defaults on the first visit)."""
    from core.advice import DEFAULT_SEEDS
    from core.experiment import parse_seeds
    try:
        seeds = tuple(parse_seeds(st.session_state.get("seeds") or ",".join(map(str, DEFAULT_SEEDS))))
    except Exception:   # noqa: BLE001  a bad seeds field is the form's to report
        seeds = tuple(DEFAULT_SEEDS)
    tpc = int(st.session_state.get("test_per_class") or settings.get("test_per_class") or 20)
    return _cached_slow(str(path), tuple(sorted(counts.items())), tuple(names), tpc, settings.get("ratio"),
                        st.session_state.get("normal_s"), int(st.session_state.get("image_size") or 64), seeds,
                        st.session_state.get("preset") or "quick")


def _select_all(names: list[str], slow: dict[str, float]) -> None:
    """'Select all', which asks before it adds the methods that take over an hour here."""
    c1, c2, _ = st.columns([1, 1, 3])
    if c1.button("Select all", key="select_all"):
        if slow:
            st.session_state["confirm_all"] = True
        else:
            st.session_state["methods"] = list(names)
    if c2.button("Clear", key="select_none"):
        st.session_state["methods"], st.session_state["confirm_all"] = [], False
    if st.session_state.get("confirm_all"):
        st.warning(f"{len(slow)} of the methods take over an hour each on this machine: "
                   f"{common.md_escape(', '.join(f'{n} (~{runs.format_seconds(s)})' for n, s in slow.items()))}. "
                   "Include them?")
        a, b, _ = st.columns([1, 1, 2])
        if a.button("Include them too", key="confirm_all_yes"):
            st.session_state["methods"], st.session_state["confirm_all"] = list(names), False
            st.rerun()
        if b.button("Only the faster ones", key="confirm_all_no"):
            st.session_state["methods"] = [n for n in names if n not in slow]
            st.session_state["confirm_all"] = False
            st.rerun()


def build() -> None:
    from core.advice import DEFAULT_METHODS, DEFAULT_SEEDS, defaults_note, suggestion, workspace_evidence
    from core.data import protocol_counts
    from core.experiment import BASELINE_HELP, BASELINES, SUPPORTED_SIZES, parse_seeds
    from core.jobs import preflight, start_worker
    from core.methods import all_methods

    ws = common.workspace()
    path = common.current_dataset()
    if path is None:
        st.info("Choose a dataset first.")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
        return
    _, rep = common.load_dataset(path)
    st.caption(f"Dataset: {common.md_code(common.dataset_name(path))} · {len(rep.classes)} classes · "
               f"{sum(rep.counts.values())} images")
    every = all_methods()
    specs = {m.name: m for m in every if m.available}
    settings = ws.settings()

    left, right = st.columns([3, 2])
    with left:
        slow = _slow_methods(path, rep.counts, settings, list(specs))
        if "methods" not in st.session_state:
            st.session_state["methods"] = [m for m in DEFAULT_METHODS if m in specs]
        _select_all(list(specs), slow)
        methods = st.multiselect("Methods", list(specs), key="methods",
                                 format_func=lambda n: f"{n} ({specs[n].family})" + (
                                     f" · over an hour here (~{runs.format_seconds(slow[n])})" if n in slow else ""),
                                 help="Each method makes synthetic images for the minority classes; each is "
                                      "compared with the same baselines. Marked: over an hour on this machine "
                                      "for the settings below (3 seeds if more are not set).")
        # the chips can scroll out of the box: what is selected, always in plain sight
        st.caption(f"**Selected ({len(methods)})**: " + (", ".join(
            common.md_escape(m) + (" (over an hour)" if m in slow else "") for m in methods) or "none"))
        note = defaults_note(list(specs))
        if note:
            st.caption(note)
        c1, c2, c3 = st.columns(3)
        preset = c1.radio("Preset", ["quick", "paper"], horizontal=True, key="preset",
                          help="quick: small networks, minutes on a CPU. paper: the papers' settings, for a GPU.")
        image_size = c2.selectbox("Image size (px)", list(SUPPORTED_SIZES),
                                  index=list(SUPPORTED_SIZES).index(64), key="image_size")
        seeds_text = c3.text_input("Seeds", value=",".join(map(str, DEFAULT_SEEDS)), key="seeds",
                                   help="One run per seed; several seeds (0,1,2) show whether a gain is larger "
                                        "than the seed-to-seed spread.")
        c4, c5, c6 = st.columns(3)
        simulate = c4.checkbox("Simulate imbalance", value=settings.get("ratio") is not None, key="simulate_s",
                               help="Cut each defect class to at most ratio x the normal class's count, as "
                                    "the papers do (0.1 and below).")
        ratio = c4.slider("Imbalance ratio", 0.01, 1.0, float(settings.get("ratio") or 0.1), 0.01,
                          key="ratio_s", disabled=not simulate)
        ratio = ratio if simulate else None
        target_ratio = c5.slider("Target balance ratio", 0.05, 1.0, 1.0, 0.05, key="target_ratio",
                                 help="Generate until each class has this fraction of the majority count "
                                      "(1.0 = fully balanced).")
        test_per_class = c6.number_input("Test images per class", 1, 10_000, int(settings.get("test_per_class") or 20),
                                         1, key="test_per_class",
                                         help="Real images held out per class (at most half of the class).")
        smallest = min(rep.counts.values()) if rep.counts else 0
        folds = c6.number_input("Folds", 1, 10, 1, 1, key="folds",
                                help="1: one split (test images per class above). K: stratified K-fold: every real "
                                     "image is tested once, each fold simulates the imbalance and fits the methods "
                                     "on its own training part (K times the work); the verdict pools the folds.")
        if folds == 1 and smallest < 50:
            st.caption(f"The smallest class has {smallest} images: with one split, at most half of them test "
                       "anything. 5 folds test every image once and give a narrower verdict (5 times the work).")
        if (settings.get("ratio"), settings.get("test_per_class")) != (ratio, int(test_per_class)):
            ws.update_settings(ratio=ratio, test_per_class=int(test_per_class))   # the Data page shows the same
        normal = common.normal_class_picker(path, rep.counts, key="normal_s")
        groups = common.groups_picker(path, key="groups_s")
        gate = st.checkbox("Quality gate", value=False, key="quality_gate",
                           help="Also train each method on its gated set: without the synthetic images the "
                                "real-data classifier puts in another class with high confidence, and (for "
                                "generators) without near-copies of real images. The leaderboard then shows "
                                "each method with and without the gate; the export can keep the gated set.")
        _unavailable(every)
        overrides: dict[str, dict] = {}
        for name in methods:
            spec = specs[name]
            with st.expander(f"{name} settings"):
                st.caption(f"{spec.summary} ({spec.paper})")
                if spec.param_fields():
                    changed = params_form(spec.params_cls, spec.make_params(preset), key=f"p:{preset}:{name}")
                    if changed:
                        overrides[name] = changed
                else:
                    st.caption("No settings.")
        with st.expander("Classifier settings"):
            st.caption("The same classifier (architecture, initial weights, seed) is trained on the baseline "
                       "and on each augmented set, so the difference is the data. The torchvision networks are "
                       "the papers' classifiers; on a CPU they train 10-100x slower than small_cnn.")
            changed = classifier_form(preset, key=f"p:{preset}:classifier")
            if changed:
                overrides["classifier"] = changed
            baselines = st.multiselect("Baselines", list(BASELINES), default=list(BASELINES), key="baselines",
                                       help="What a method must beat, trained on the imbalanced set; its verdict "
                                            "is taken against the strongest. " +
                                            "; ".join(f"{b}: {BASELINE_HELP[b]}" for b in BASELINES))

    seeds = parse_seeds(seeds_text)
    config = {"data": str(path), "methods": methods, "seeds": seeds, "ratio": ratio,
              "target_ratio": float(target_ratio), "image_size": int(image_size),
              "test_per_class": int(test_per_class), "normal_class": normal, "preset": preset,
              "overrides": overrides, "quality_gate": bool(gate), "folds": int(folds), "groups": groups,
              "baselines": list(baselines)}

    with right:
        counts = protocol_counts(rep.counts, int(test_per_class), ratio, normal, float(target_ratio))
        train_counts = counts.train
        st.markdown("**Images per class in the run** (real test images held out first" +
                    (", then the imbalance simulated)" if ratio else ")"))
        st.dataframe(counts.rows(), hide_index=True, width="stretch")
        tip = suggestion(train_counts, list(specs), workspace_evidence(runs.finished_metrics(ws.runs)), normal)
        if tip:
            st.info(common.md_escape(tip))
        if not methods:
            st.warning("Choose at least one method.")
            return
        checked = preflight(config, ws, counts=train_counts)   # a wrong setting shows here, with what to change
        est = checked.estimate
        st.markdown("**What will run**")
        e1, e2 = st.columns(2)
        e1.metric("Classifier trainings", est.get("trainings", "?"))
        e2.metric("Synthetic images per method and seed", f"{est.get('synthetic_per_method', 0):,}")
        e3, e4 = st.columns(2)
        e3.metric("Time on this machine", runs.format_seconds(est.get("seconds")),
                  help="From the start of the job to its results: loading, every training, the synthesis and the "
                       "metrics, by a model calibrated on this machine's finished runs and its load now.")
        e4.metric("Memory for images", f"{est.get('memory_bytes', 0) / 1e6:,.0f} MB")
        st.caption(f"{len(seeds)} seed(s) x ({len(est.get('baselines', []))} baselines + {len(methods)} "
                   f"method(s)). Baselines: {', '.join(est.get('baselines', []))}. Test images stay real.")
        if est.get("seconds_low") is not None:
            st.caption(runs.estimate_note(est))
        if preset == "paper":
            st.warning("The paper preset is meant for a GPU; on a CPU it can take hours.")
        if st.button("Launch", type="primary", key="launch"):
            store = common.store()
            job_id = store.submit(checked)      # as checked above: one check per launch
            start_worker(store)
            common.select_run(job_id)
            st.session_state["launched"] = job_id
        launched = st.session_state.get("launched")
        if launched:
            st.success(f"Job {launched[:8]} queued. It runs in the background: you can follow it on the "
                       "Jobs page or close this tab.")
            st.page_link("app_pages/jobs.py", label="Follow it on the Jobs page", icon=":material/schedule:")


st.title("Synthesize")
with common.guard():
    build()
