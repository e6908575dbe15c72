"""Synthesize: choose methods and settings, see what will run, launch a background job."""
from __future__ import annotations

import streamlit as st

from core import runs
from core.errors import ParamError
from ui import common
from ui.forms import params_form

INTERPOLATION = ("smote", "borderline_smote", "adasyn")


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", ",").split(",") if s.strip()]
    except ValueError:
        raise ParamError(f"seeds must be whole numbers separated by commas, e.g. 0,1,2; got {text!r}") from None
    if not seeds:
        raise ParamError("give at least one seed, e.g. 0 (or 0,1,2 to measure the spread between seeds)")
    return seeds


def suggestion(train_counts: dict[str, int], available: list[str]) -> str:
    """Advice from the class counts, following the papers: interpolation is safer below ~10 images
    per class, DCGAN stronger from ~25."""
    if len(train_counts) < 2:
        return ""
    majority = max(train_counts, key=train_counts.get)
    minority = {c: n for c, n in train_counts.items() if c != majority}
    cls, n = min(minority.items(), key=lambda kv: kv[1])
    gan = "dcgan" if "dcgan" in available else None
    if n < 10:
        return (f"Your rarest class ({cls}) keeps {n} training images. Below about 10 images per class the "
                "papers found interpolation (smote, borderline_smote, adasyn) safer than GANs: start with smote.")
    if n >= 25 and gan:
        return (f"Your rarest class ({cls}) keeps {n} training images. From about 25 images per class the papers "
                "found DCGAN stronger than interpolation: try dcgan beside smote (GANs want the paper preset "
                "on a GPU; quick is a short CPU run).")
    return (f"Your rarest class ({cls}) keeps {n} training images, between the ~10 where interpolation is safer "
            "and the ~25 where DCGAN gets stronger: run smote" + (" and dcgan side by side" if gan else "")
            + " and let the Compare page decide.")


def build() -> None:
    from core.data import simulate_imbalance, split
    from core.experiment import SUPPORTED_SIZES, ExperimentConfig
    from core.classifier import PRESETS as CLF_PRESETS, ClassifierParams
    from core.jobs import preflight
    from core.methods import all_methods, build_params, get_method

    ws = common.workspace()
    path = common.current_dataset()
    if path is None:
        st.info("Choose a dataset first.")
        st.page_link("pages/data.py", label="Go to Data", icon=":material/folder_open:")
        return
    ds, rep = common.load_dataset(path)
    st.caption(f"Dataset: `{common.dataset_name(path)}` · {len(rep.classes)} classes · "
               f"{sum(rep.counts.values())} images")
    specs = {m.name: m for m in all_methods() if m.name != "none"}
    settings = ws.settings()

    left, right = st.columns([3, 2])
    with left:
        methods = st.multiselect("Methods", list(specs), default=["smote"] if "smote" in specs else [],
                                 format_func=lambda n: f"{n} ({specs[n].family})", key="methods",
                                 help="Each method makes synthetic images for the minority classes; each is "
                                      "compared with the same baselines.")
        c1, c2, c3 = st.columns(3)
        preset = c1.radio("Preset", ["quick", "paper"], horizontal=True, key="preset",
                          help="quick: small networks, minutes on a CPU. paper: the papers' settings, for a GPU.")
        image_size = c2.selectbox("Image size (px)", list(SUPPORTED_SIZES),
                                  index=list(SUPPORTED_SIZES).index(64), key="image_size")
        seeds_text = c3.text_input("Seeds", value="0", key="seeds",
                                   help="One run per seed; several seeds (0,1,2) show whether a gain is larger "
                                        "than the seed-to-seed spread.")
        c4, c5, c6 = st.columns(3)
        simulate = c4.checkbox("Simulate imbalance", value=settings.get("ratio") is not None, key="simulate_s",
                               help="Cut each minority class to at most ratio x the majority count, as the "
                                    "papers do (0.1 and below).")
        ratio = c4.slider("Imbalance ratio", 0.01, 1.0, float(settings.get("ratio") or 0.1), 0.01,
                          key="ratio_s", disabled=not simulate)
        ratio = ratio if simulate else None
        target_ratio = c5.slider("Target balance ratio", 0.05, 1.0, 1.0, 0.05, key="target_ratio",
                                 help="Generate until each class has this fraction of the majority count "
                                      "(1.0 = fully balanced).")
        test_per_class = c6.number_input("Test images per class", 1, 10_000, 20, 1, key="test_per_class",
                                         help="Real images held out per class (at most half of the class).")
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
                       "and on each augmented set, so the difference is the data.")
            defaults = build_params(ClassifierParams, dict(CLF_PRESETS[preset]), "classifier")
            changed = params_form(ClassifierParams, defaults, key=f"p:{preset}:classifier")
            if changed:
                overrides["classifier"] = changed

    seeds = parse_seeds(seeds_text)
    config = {"data": str(path), "methods": methods, "seeds": seeds, "ratio": ratio,
              "target_ratio": float(target_ratio), "image_size": int(image_size),
              "test_per_class": int(test_per_class), "preset": preset, "overrides": overrides}

    with right:
        pool, _ = split(ds, int(test_per_class), seed=0)
        train = simulate_imbalance(pool, ratio, seed=0) if ratio else pool
        train_counts = train.counts()
        st.markdown("**Training images per class** (after the test split" +
                    (" and the imbalance)" if ratio else ")"))
        st.dataframe([{"class": c, "train": n} for c, n in train_counts.items()], hide_index=True,
                     width="stretch")
        tip = suggestion(train_counts, list(specs))
        if tip:
            st.info(tip)
        if not methods:
            st.warning("Choose at least one method.")
            return
        ExperimentConfig.from_dict(dict(config))   # a wrong setting shows here, before the estimate
        est = preflight(config, ws, counts=train_counts)
        st.markdown("**What will run**")
        e1, e2 = st.columns(2)
        e1.metric("Classifier trainings", est.get("trainings", "?"))
        e2.metric("Synthetic images per method and seed", f"{est.get('synthetic_per_method', 0):,}")
        e3, e4 = st.columns(2)
        e3.metric("Rough time (CPU)", runs.format_seconds(est.get("seconds")))
        e4.metric("Memory for images", f"{est.get('memory_bytes', 0) / 1e6:,.0f} MB")
        st.caption(f"{len(seeds)} seed(s) x ({len(est.get('baselines', []))} baselines + {len(methods)} "
                   f"method(s)). Baselines: {', '.join(est.get('baselines', []))}. Test images stay real.")
        if preset == "paper":
            st.warning("The paper preset is meant for a GPU; on a CPU it can take hours.")
        if st.button("Launch", type="primary", key="launch"):
            s = common.store()
            job_id = s.submit(config, counts=train_counts)
            if common.autostart_worker():
                from core.jobs import ensure_worker
                ensure_worker(s)
            common.select_run(job_id)
            st.session_state["launched"] = job_id
        launched = st.session_state.get("launched")
        if launched:
            st.success(f"Job {launched[:8]} queued. It runs in the background: you can follow it on the "
                       "Jobs page or close this tab.")
            st.page_link("pages/jobs.py", label="Follow it on the Jobs page", icon=":material/schedule:")


st.title("Synthesize")
with common.guard():
    build()
