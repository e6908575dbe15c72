"""Jobs: the live list of this workspace's jobs, and the progress, curves and log of one of them."""
from __future__ import annotations

import streamlit as st

from core.errors import DefectAugError
from core.jobs import ACTIVE, FINISHED, Job, JobStoreDamaged, start_worker
from core.rundir import RunDir
from core.views import report, runs
from ui import common


DETAIL_TABS = ("Losses", "Samples", "Classifier", "Latent codes", "Log", "Where it ran")


def _status_line(job: Job, p: runs.Progress, position: int | None) -> None:
    if job.status == "running":
        text = common.md_escape(p.stage or "starting")
        if p.total:
            text += f" · step {p.step}/{p.total}"
        st.progress(p.fraction, text=text)
        left = f"remaining ~{runs.format_seconds(p.remaining)}" if p.remaining is not None else "estimating time left"
        st.caption(f"elapsed {runs.format_seconds(job.elapsed)} · {left}"
                   + (" · stopping..." if job.cancel_requested else ""))
    elif job.status == "queued":
        st.caption(f"waiting for a free slot (position {position} in the queue)" if position else "waiting")
    elif job.status == "done":
        st.caption(f"finished in {runs.format_seconds(job.elapsed)} at {common.when(job.finished)}")
    elif job.status == "failed":
        st.error(f"Failed: {common.md_escape(job.reason)}")
    else:
        st.warning(f"{job.status.capitalize()}: {common.md_escape(job.reason)}")


def _actions(job: Job) -> None:
    s = common.store()
    # stacked, full width: side by side in the narrow action column the labels were cut to "Det..."
    if st.button("Details", key=f"open_{job.id}", width="stretch"):
        common.select_run(job.id)
        st.rerun()
    if job.status in ACTIVE:
        if st.button("Cancel", key=f"cancel_{job.id}", disabled=job.cancel_requested, width="stretch"):
            with common.guard():
                s.cancel(job.id)
                st.rerun()
    else:
        if job.kind == "experiment" and job.status in ("failed", "cancelled", "interrupted") and st.button(
                "Resume", key=f"resume_{job.id}", width="stretch",
                help="Go on where it stopped: models it already trained are kept, the rest is trained"):
            with common.guard():
                s.resume(job.id)
                start_worker(s)
                st.rerun()
        if st.button("Re-run", key=f"rerun_{job.id}", help="A new job with the same settings", width="stretch"):
            with common.guard():
                new = s.rerun(job.id)
                start_worker(s)
                common.select_run(new)
                st.rerun()
        if st.button("Delete", key=f"delete_{job.id}", help="Forget the job and delete its run folder",
                     width="stretch"):
            with common.guard():
                s.delete(job.id)
                if common.selected_run() == job.id:
                    common.select_run(None)
                st.rerun()


@st.fragment(run_every="2s")
def job_list() -> None:
    # the page's guard covers only full runs; a fragment's own reruns need their own
    with common.guard():
        _job_list()


def _job_list() -> None:
    s = common.store()
    jobs = s.list()
    if not jobs:
        st.info("No jobs yet. Launch one on the Synthesize page.")
        st.page_link("app_pages/synthesize.py", label="Go to Synthesize", icon=":material/science:")
        return
    counts = {k: sum(1 for j in jobs if j.status == k) for k in ("running", "queued", "done", "failed")}
    info = s.worker_info()
    worker = "running" if info and info.get("alive") else "not running (starts when a job is queued)"
    st.caption(f"{counts['running']} running · {counts['queued']} queued · {counts['done']} done · "
               f"{counts['failed']} failed · background worker: {worker}")
    queued = sorted((j for j in jobs if j.status == "queued"), key=lambda j: j.created)
    position = {j.id: i + 1 for i, j in enumerate(queued)}
    for job in jobs:
        p = runs.progress(job.run_dir, active=job.status == "running")
        with st.container(border=True):
            c1, c2, c3 = st.columns([3, 4, 2])
            with c1:
                st.markdown(f"{common.STATUS_ICON.get(job.status, '')} **{common.md_escape(job.label)}**")
                st.caption(f"{job.status} · {job.id[:8]} · submitted {common.when(job.created)}")
            with c2:
                _status_line(job, p, position.get(job.id))
            with c3:
                _actions(job)


def _samples(run_id: str, run_dir) -> None:
    """The sample grids as a timeline: one generator (method, class, seed) at a time, stepped through in
    training order. It shows the latest grid, and keeps following new ones unless the user went back."""
    timelines = report.sample_timelines(runs.sample_grids(run_dir))
    if not timelines:
        st.caption("No sample grids: generative methods write them while they train.")
        return
    labels = {f"{m} · {c} · s{seed}": (m, c, seed) for (m, c, seed) in timelines}
    pick = next(iter(labels))
    if len(labels) > 1:
        pick = st.selectbox("Generator", list(labels), key=f"grid_gen_{run_id}",
                            help="Method, class and seed of the generator whose sample grids to show")
    method, cls, seed = labels[pick]
    grids = {g["step"]: g for g in timelines[labels[pick]]}
    steps = list(grids)
    step = steps[-1]
    if len(steps) > 1:
        key, latest_key = f"grid_step_{run_id}_{pick}", f"grid_latest_{run_id}_{pick}"
        # follow new grids while the slider sits on the latest one; stay put once the user went back
        shown = st.session_state.get(key)
        if shown not in grids or shown == st.session_state.get(latest_key):
            st.session_state[key] = steps[-1]
        st.session_state[latest_key] = steps[-1]
        step = st.select_slider("Training step", steps, key=key, format_func=lambda s: f"step {s}",
                                help="Each grid is drawn from the same fixed noise, so the grids show how "
                                     "the generator's images change as it trains")
    rows = grids[step].get("rows")
    st.image(grids[step]["path"], width="stretch",
             caption=f"{method} · {common.md_escape(cls)} · s{seed} · step {step} ({steps.index(step) + 1} of "
                     f"{len(steps)})" + (f" · one row per class, top to bottom: "
                                         f"{common.md_escape(', '.join(rows))}" if rows else "")
                     + " · the button at the image's top right enlarges it")


@st.fragment(run_every="2s")
def details(run_id: str) -> None:
    with common.guard():
        _details(run_id)


def _details(run_id: str) -> None:
    s = common.store()
    job = s.job_for_run(run_id)
    run_dir = common.workspace().run_dir(run_id)
    if job is None and not run_dir.exists():
        st.caption("The selected run is not in this workspace.")
        return
    active = job is not None and job.status == "running"
    p = runs.progress(run_dir, active=active)
    label = job.label if job else run_id[:8]
    st.subheader(common.md_escape(label))
    status = job.status if job else runs.run_status(run_dir)
    m = st.columns(4)
    m[0].metric("Status", status)
    m[1].metric("Progress", f"{p.fraction * 100:.0f}%")
    m[2].metric("Elapsed", runs.format_seconds(job.elapsed if job else p.elapsed))
    m[3].metric("Remaining", (runs.format_seconds(p.remaining) if p.remaining is not None else "estimating")
                if active else "-")
    if job and job.reason and job.status in FINISHED and job.status != "done":
        (st.error if job.status == "failed" else st.warning)(common.md_escape(job.reason))
    for w in p.warnings[-5:]:
        st.warning(common.md_escape(w))
    if status == "done":
        st.page_link("app_pages/compare.py", label="See the results on Compare", icon=":material/compare:")
    loss = runs.loss_rows(run_dir)
    latent = RunDir(run_dir).latent_methods()
    # the same tabs in the same order for every run and moment, so a rerun (every 2 s) keeps the one chosen
    tabs = dict(zip(DETAIL_TABS, st.tabs(list(DETAIL_TABS), key=f"job_tabs_{run_id}")))
    with tabs["Where it ran"]:
        where = runs.placements(run_dir)
        st.caption(common.md_escape(runs.placement_summary(where)))
        if where:
            st.dataframe([{k: r[k] for k in ("task", "runner", "node", "device", "attempt", "pid")} for r in where],
                         width="stretch", hide_index=True)
    with tabs["Losses"]:
        rows = loss
        if rows:
            st.plotly_chart(report.fig_losses(rows), width="stretch", key=f"loss_{run_id}")
            other = sorted({r["series"] for r in rows} - set(report.loss_series(rows)))
            if other:
                pick = st.selectbox("Other monitor", other, key=f"mon_{run_id}")
                st.plotly_chart(report.fig_lines([r for r in rows if r["series"] == pick], "step",
                                                 ["method", "class", "seed"], pick, pick),
                                width="stretch", key=f"mon_chart_{run_id}")
        else:
            st.caption("No generator losses: only generative methods (GANs, diffusion) have them.")
    with tabs["Classifier"]:
        rows = runs.epoch_rows(run_dir)
        if rows:
            series = sorted({r["series"] for r in rows})
            pick = st.selectbox("Curve", series, index=series.index("loss") if "loss" in series else 0,
                                key=f"epoch_series_{run_id}")
            st.plotly_chart(report.fig_epochs(rows, pick), width="stretch", key=f"epochs_{run_id}")
        else:
            st.caption("No classifier epoch yet.")
    with tabs["Samples"]:
        _samples(run_id, run_dir)
    with tabs["Latent codes"]:
        if latent:
            _latent(run_id, run_dir, latent)
        else:
            st.caption("No latent codes: only the pre-trained GANs (bagan, bagan_gp) encode the training images.")
    with tabs["Log"]:
        st.code(RunDir(run_dir).log_tail(60) or "(empty)", language=None)


def _latent(run_id: str, run_dir, latent: list[tuple[str, int]]) -> None:
    """The pre-trained GANs' latent codes of the training images, in 2-D: whether the classes separate."""
    labels = {f"{m} · s{seed}": (m, seed) for m, seed in latent}
    pick = next(iter(labels))
    if len(labels) > 1:
        pick = st.selectbox("Generator", list(labels), key=f"latent_pick_{run_id}")
    method, seed = labels[pick]
    points = runs.latent_map(run_dir, method, seed)
    if not points:
        st.caption("Too few codes to draw.")
        return
    st.plotly_chart(report.fig_latent(points, f"{method} · s{seed}: the autoencoder's codes of the training "
                                              "images (t-SNE)"), width="stretch", key=f"latent_{run_id}_{pick}")
    st.caption("Each point is one training image as the autoencoder encodes it (mirror copies included). "
               "Minority classes in their own clusters can be generated apart from the normal class; "
               "classes inside one cloud tend to come out as normal-looking images.")


st.title("Jobs")
try:
    common.store().check()         # also when the file was damaged after this session opened it
except JobStoreDamaged as err:     # say what happened and offer the way out, instead of an error on every poll
    common.recover_store(err)
    st.stop()
except DefectAugError as err:
    common.show_error(err)
    st.stop()
note = st.session_state.pop("store_note", None)
if note:
    st.success(note)
with common.guard():
    job_list()
run_id = common.selected_run()
st.divider()
if run_id:
    with common.guard():
        details(run_id)
else:
    st.caption("Choose Details on a job to see its curves and log.")
