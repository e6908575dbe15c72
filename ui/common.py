"""What every page of the app shares: the workspace of this browser session, the sidebar, error
display, run selection and a few display helpers. Streamlit only; the logic lives in `core`.

The workspace id and the selected run id live in `st.query_params` (`?ws=...&run=...`), so a reload
or a bookmarked link reopens the same workspace and run; they are mirrored in `st.session_state`
because page navigation may drop query parameters.
"""
from __future__ import annotations

import logging
import re
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import streamlit as st

from core.errors import DISK_FULL, DefectAugError, is_disk_full
from core.jobs import ACTIVE, JobStore, JobStoreDamaged, start_worker
from core.views import runs
from core.workspace import Workspace, data_roots, is_valid_id

log = logging.getLogger("defectaug.app")

WS_KEY, RUN_KEY = "ws", "run"
STATUS_ICON = {"queued": ":material/hourglass_empty:", "running": ":material/play_circle:",
               "done": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/stop_circle:",
               "interrupted": ":material/warning:", "unknown": ":material/help:"}


# ---------------------------------------------------------------------------------------------
# User text in Markdown: class, folder, file and dataset names are shown as they are, never rendered
# ---------------------------------------------------------------------------------------------
# What gives Markdown (GitHub's and Streamlit's flavours) its meaning inside one line: emphasis, code, links and
# images, HTML, strike-through, math, tables; a list or heading marker at the start; and what a bare link needs
# to become clickable. Each is backslash-escaped, which CommonMark shows as the character itself; the rest of a
# message (quotes, colons, full stops) stays as it is, so messages read and match as written.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>!~$|]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")   # a_b is never emphasis
_MD_LINE_START = re.compile(r"^(\s*(?:\d+(?=[.)]))?)([#+=.)-])")
_MD_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def md_escape(text: object) -> str:
    """`text` for st.markdown / caption / error / warning / info / success / progress / spinner / image
    captions: shown literally on one line (a class named '**[phish](https:evil.com)**' is its name, never a link)."""
    out = _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))
    out = _MD_LINE_START.sub(r"\1\\\2", out)          # "# x", "- x", "1. x" would be a heading or a list
    return _MD_AUTOLINK.sub(lambda m: ":\\/\\/" if m.group(1) == "://" else m.group(1)[:3] + "\\.", out)


def md_code(text: object) -> str:
    """`text` as an inline code span (a path, a dataset name), fenced by more backticks than it holds."""
    text = " ".join(str(text).splitlines())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# ---------------------------------------------------------------------------------------------
# Errors: a user-caused error is a message; a bug is a short apology, never a traceback
# ---------------------------------------------------------------------------------------------
def show_error(err: BaseException) -> None:
    if isinstance(err, DefectAugError):
        st.error(md_escape(err))
    elif is_disk_full(err):       # a write that found no space (an export, a report): what it wrote is gone
        st.error(md_escape(DISK_FULL[0].upper() + DISK_FULL[1:]))
    else:
        log.error("unexpected error in the app:\n%s", "".join(traceback.format_exception(err)))
        st.error(f"Something went wrong inside DefectAug ({md_escape(type(err).__name__)}: {md_escape(err)}). "
                 "This is a bug, not something you did; the details are in the server log. Reload the page to "
                 "continue.")


def show_unreadable(err: DefectAugError) -> None:
    """A run whose files cannot be read: the error (it says what to do) and the way to the Jobs page."""
    st.error(md_escape(err))
    st.page_link("app_pages/jobs.py", label="Open the Jobs page to re-run it", icon=":material/replay:")


@contextmanager
def guard() -> Iterator[None]:
    """Show any error raised inside as `st.error` and carry on with the rest of the page."""
    try:
        yield
    except DefectAugError as err:
        show_error(err)
    except Exception as err:   # noqa: BLE001  (st.stop / st.rerun raise BaseException: not caught)
        show_error(err)


# ---------------------------------------------------------------------------------------------
# Workspace and store
# ---------------------------------------------------------------------------------------------
def workspace() -> Workspace:
    """This session's workspace: ?ws= when valid, else the one already in the session, else new."""
    ws = st.session_state.get("_workspace")
    requested = st.query_params.get(WS_KEY)
    if ws is None or (requested and requested != ws.id):
        ws = Workspace.for_session(requested or st.session_state.get("_ws_id"))
        st.session_state["_workspace"] = ws
        st.session_state["_ws_id"] = ws.id
    if st.query_params.get(WS_KEY) != ws.id:
        st.query_params[WS_KEY] = ws.id
    run = st.session_state.get("_run")
    if run and RUN_KEY not in st.query_params:
        st.query_params[RUN_KEY] = run
    return ws


def store() -> JobStore:
    ws = workspace()
    key = f"_store_{ws.id}"
    if key not in st.session_state:
        st.session_state[key] = JobStore(ws)
    return st.session_state[key]


def recover_store(err: JobStoreDamaged) -> None:
    """A damaged jobs.db: what happened, and the way out (keep it aside, rebuild from the run folders)."""
    st.error(md_escape(err))
    if st.button("Recover the job list", type="primary", key="recover_store",
                 help="Renames the damaged jobs.db (it is kept beside the new one) and rebuilds the job list "
                      "from the run folders; no run is deleted"):
        ws = workspace()
        with guard():
            new, kept = JobStore.recover(ws)
            st.session_state[f"_store_{ws.id}"] = new
            jobs = new.list()
            st.session_state["store_note"] = (
                f"Rebuilt the job list from {len(jobs)} run folder(s)"
                + (f"; the damaged file is kept as {md_code(kept.name)} in the workspace folder." if kept else "."))
            st.rerun()


# ---------------------------------------------------------------------------------------------
# Selected run
# ---------------------------------------------------------------------------------------------
def selected_run() -> str | None:
    run = st.query_params.get(RUN_KEY) or st.session_state.get("_run")
    return run if run and is_valid_id(run) else None


def select_run(run_id: str | None) -> None:
    st.session_state["_run"] = run_id
    if run_id:
        st.query_params[RUN_KEY] = run_id
    elif RUN_KEY in st.query_params:
        del st.query_params[RUN_KEY]


def pick_run(need: str | None = None, key: str = "run_pick") -> tuple[str, Path] | None:
    """A selectbox of this workspace's runs (those with results when need='metrics', with synthetic
    images when need='synthetic'); remembers the choice in ?run=. None (and a hint) when there is none."""
    ws = workspace()
    summaries = runs.list_runs(ws.runs)
    if need == "metrics":
        summaries = [r for r in summaries if r["has_metrics"]]
    elif need == "synthetic":
        summaries = [r for r in summaries if r["has_synthetic"]]
    if not summaries:
        return None
    ids = [r["id"] for r in summaries]
    labels = {r["id"]: runs.run_label(r) for r in summaries}
    current = selected_run()
    index = ids.index(current) if current in ids else 0
    choice = st.selectbox("Run", ids, index=index, format_func=lambda i: labels[i], key=key)
    if choice != current:
        select_run(choice)
    return choice, ws.run_dir(choice)


# ---------------------------------------------------------------------------------------------
# Sidebar
# ---------------------------------------------------------------------------------------------
def sidebar() -> None:
    """Workspace and the live list of active jobs, on every page."""
    ws = workspace()
    with st.sidebar:
        st.markdown(f"**Workspace** `{ws.id[:8]}`" + (" (shared)" if ws.shared else ""))
        st.caption("Bookmark this page's address to come back to this workspace and its jobs."
                   if not ws.shared else "Everyone on this server uses this shared workspace.")
        _sidebar_jobs()


@st.fragment(run_every="3s")
def _sidebar_jobs() -> None:
    try:
        s = store()
        if s.counts().get("queued"):
            start_worker(s)       # jobs wait, none runs them (after an app or machine restart)
        jobs = s.list(ACTIVE)
    except Exception as err:   # noqa: BLE001  the sidebar must never break a page
        st.caption(f"jobs unavailable: {md_escape(err)}")
        return
    st.markdown("**Running jobs**")
    if not jobs:
        st.caption("none")
        return
    for job in jobs[:6]:
        p = runs.progress(job.run_dir, active=True)
        text = md_escape(job.label)
        if job.status == "running":
            st.progress(p.fraction, text=f"{text} · {md_escape(p.stage or 'starting')}")
        else:
            st.caption(f"{text} · waiting for a free slot")
    if len(jobs) > 6:
        st.caption(f"and {len(jobs) - 6} more")


# ---------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------
def _signature(path: Path) -> float:
    """Changes when the dataset's files change (newest mtime of the top two levels)."""
    try:
        stamps = [path.stat().st_mtime]
        if path.is_dir():
            for child in path.iterdir():
                stamps.append(child.stat().st_mtime)
        return max(stamps)
    except OSError:
        return 0.0


@st.cache_resource(max_entries=4, show_spinner=False)
def _load_cached(path: str, image_size: int, signature: float):
    from core.data import load_dataset_apart    # decoding never runs (nor costs memory) in the app's process
    return load_dataset_apart(path, image_size=image_size)


def load_dataset(path: str | Path, image_size: int = 64):
    """(ImageSet, DataReport) of a dataset folder or zip, cached while its files do not change."""
    return _load_cached(str(path), int(image_size), _signature(Path(path)))


def current_dataset() -> Path | None:
    """The dataset chosen on the Data page (kept in the workspace settings, so it survives reloads),
    if it is still there and still allowed."""
    ws = workspace()
    raw = ws.settings().get("dataset")
    if not raw:
        return None
    try:
        path = ws.check_data_path(raw)
    except DefectAugError:
        return None
    return path if path.exists() else None


def set_dataset(path: Path | None) -> None:
    workspace().update_settings(dataset=str(path) if path else "")


def normal_class_picker(path: Path, counts: dict[str, int], key: str) -> str | None:
    """A select box of the dataset's classes for its normal (defect-free) class: the detected one first
    time, then the user's choice, kept per dataset in the workspace settings (Data and Synthesize share it).
    When no class is named like normal and the user has neither chosen nor confirmed the largest class, it says
    so and returns None (the run takes the largest class, and refuses the translation methods)."""
    from core.data import detect_normal_class, normal_class_note
    ws = workspace()
    chosen = dict(ws.settings().get("normal_classes") or {})
    classes = list(counts)
    detected = detect_normal_class(counts)
    current = chosen.get(str(path)) if chosen.get(str(path)) in classes else detected
    pick = st.selectbox("Normal (defect-free) class", classes, index=classes.index(current), key=key,
                        format_func=lambda c: f"{c} (detected)" if c == detected else c,
                        help="Kept whole when the imbalance is simulated (every defect class is cut to the "
                             "ratio x its count), and the source that translation methods turn into defects. "
                             "Detected from the names (normal, good, ok, free, pass...), else the largest class.")
    if pick != chosen.get(str(path), detected):
        chosen[str(path)] = pick
        ws.update_settings(normal_classes=chosen)
    note = normal_class_note(counts, chosen.get(str(path)))
    if note is None:
        return pick
    st.warning(md_escape(note))
    if st.checkbox(f"{md_escape(detected)} is the defect-free class", key=f"{key}_confirm"):
        chosen[str(path)] = detected
        ws.update_settings(normal_classes=chosen)
        return detected
    return None


GROUP_MODES = {"auto": "auto: near-duplicates found from the pixels", "none": "none: every image on its own",
               "regex": "regex: a pattern over the file paths", "frames": "frames: numbered shots in bursts"}


def groups_picker(path: Path, key: str) -> str:
    """Which images show one part (core.data.groups): auto, none, regex:PATTERN or frames:GAP; kept per dataset in
    the workspace settings (Data and Synthesize share it)."""
    ws = workspace()
    chosen = dict(ws.settings().get("groups") or {})
    current = chosen.get(str(path), "auto")
    mode = current.split(":", 1)[0] if current.split(":", 1)[0] in GROUP_MODES else "auto"
    mode = st.radio("Images of one part (groups)", list(GROUP_MODES), index=list(GROUP_MODES).index(mode),
                    format_func=GROUP_MODES.get, horizontal=True, key=f"{key}_mode",
                    help="Images of one part (other lights, cameras, frames, or the same file twice) are kept on "
                         "one side of every split, so a test image is never a near-copy of a training image. "
                         "auto finds them from the pixels; a regex's first capture group over the file path names "
                         "the part (e.g. part(\\d+)_cam); frames joins shots of a class whose file names' last "
                         "numbers lie within a gap of each other (a burst of one part); none splits single images "
                         "(what leaks is shown below).")
    spec = mode
    if mode == "regex":
        pattern = st.text_input("Pattern (first capture group = the part)",
                                current.split(":", 1)[1] if current.startswith("regex:") else r"part(\d+)",
                                key=f"{key}_regex")
        spec = f"regex:{pattern}"
    if mode == "frames":
        was = current.split(":", 1)[1] if current.startswith("frames:") else ""
        gap = st.number_input("Gap (shots whose numbers lie within it of the previous one are one part)", min_value=0,
                              value=int(was) if was.isdigit() else 200, step=10, key=f"{key}_gap")
        spec = f"frames:{int(gap)}"
    if spec != current:
        chosen[str(path)] = spec
        ws.update_settings(groups=chosen)
    return spec


@st.cache_resource(max_entries=4, show_spinner=False)
def _groups_cached(path: str, spec: str, signature: float):
    from core.data.groups import find_groups
    ds, _ = load_dataset(path)                  # 64 px: the size groups are found at
    return find_groups(ds, spec)


def dataset_groups(path: str | Path, spec: str):
    """The `core.data.groups.Grouping` of a dataset (64 px), cached while its files do not change."""
    return _groups_cached(str(path), spec, _signature(Path(path)))


def dataset_name(path: Path) -> str:
    """The dataset as users see it: relative to the uploads or its data root, never a server path."""
    return workspace().dataset_label(path)


def allowed_roots_text() -> str:
    """The server's data folders by name (a typed path is taken relative to them; the server's own paths stay
    off the pages)."""
    roots = data_roots()
    return ", ".join(md_code(r.name) for r in roots) if roots else ""


# ---------------------------------------------------------------------------------------------
# Display helpers
# ---------------------------------------------------------------------------------------------
def image_grid(images: list[np.ndarray] | np.ndarray, captions: list[str] | None = None, cols: int = 6,
               width: int = 96) -> None:
    """Thumbnails in rows of `cols` columns."""
    images = list(images)
    if not images:
        st.caption("(no images)")
        return
    captions = captions or [""] * len(images)
    for start in range(0, len(images), cols):
        row = st.columns(cols)
        for col, img, cap in zip(row, images[start:start + cols], captions[start:start + cols]):
            with col:
                st.image(runs.to_display(np.asarray(img)), caption=cap or None, width=width)


def when(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def file_on_click(path: str | Path):
    """`data` for `st.download_button` that serves a large file on disk: a callable, so Streamlit reads the file
    only when the user clicks (in its own thread), never at a rerun of the page. Streamlit 1.67 keeps what it
    serves in memory (a file object too, read at every rerun), so this holds one copy, during a download only."""
    path = Path(path)
    return lambda: path.read_bytes()
