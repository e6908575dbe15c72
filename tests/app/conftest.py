"""AppTest fixtures: one DEFECTAUG_HOME for the app tests, a helper to open a page, and a workspace
holding the session's finished real run (tests/conftest.py `finished_run`: smote and mixup, two seeds) as a
done job, for the result pages.

Each `open_page()` without `ws=` is a new browser session and so gets a new workspace. The app never
starts a worker here (DEFECTAUG_AUTOSTART_WORKER=0); tests that need jobs to run call `worker_main`.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.jobs import JobStore
from core.files import write_json
from core.rundir import RunDir
from core.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def app_env(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("app_home")
    roots = tmp_path_factory.mktemp("data_roots")
    mp.setenv("DEFECTAUG_HOME", str(home))
    mp.setenv("DEFECTAUG_DATA_ROOTS", str(roots))
    mp.setenv("DEFECTAUG_AUTOSTART_WORKER", "0")
    mp.setenv("DEFECTAUG_WORKER_IDLE", "5")
    mp.setenv("DEFECTAUG_MAX_PARALLEL", "1")
    mp.delenv("DEFECTAUG_SHARED_WORKSPACE", raising=False)
    mp.delenv("DEFECTAUG_MAX_JOB_MEMORY", raising=False)
    yield {"home": home, "roots": roots}
    mp.undo()


def open_page(page: str | None = None, ws: str | None = None, run: str | None = None,
              timeout: float = 90) -> AppTest:
    """Run app.py (as a fresh browser session) and switch to app_pages/<page>.py."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
    if ws:
        at.query_params["ws"] = ws
    if run:
        at.query_params["run"] = run
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def ws_of(at: AppTest) -> Workspace:
    value = at.query_params["ws"]
    return Workspace.open(value[0] if isinstance(value, list) else value)


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def assert_clean(at: AppTest) -> None:
    """No traceback on the page (a user-caused error is an st.error, never an exception)."""
    assert not at.exception, [e.value for e in at.exception]


def zip_bytes(tmp_path: Path, counts: dict[str, int], size: int = 32, seed: int = 0) -> bytes:
    from core.sample_data import write_sample_zip
    return write_sample_zip(tmp_path / "upload.zip", counts, size=size, seed=seed).read_bytes()


@pytest.fixture(scope="session")
def done_ws(app_env, finished_run) -> dict:
    """A workspace with the finished run's dataset chosen and the run itself as a done job."""
    ws = Workspace.create()
    config = RunDir(finished_run).config()
    data = Path(shutil.copytree(config["data"], ws.uploads / "tiles"))
    ws.update_settings(dataset=str(data))
    store = JobStore(ws)
    keys = ("methods", "seeds", "ratio", "image_size", "test_per_class", "overrides", "device", "num_threads")
    run_id = store.submit({"data": str(data), **{k: config[k] for k in keys}})
    shutil.copytree(finished_run, store.get(run_id).run_dir, dirs_exist_ok=True)
    # the run this job made read the workspace's copy (the Export page reads no dataset outside the workspace)
    rd = RunDir(store.get(run_id).run_dir)
    write_json(rd.root / "config.json", dict(rd.config(), data=str(data)))
    store.claim_next(os.getpid())
    store.finish(run_id, "done")
    job = store.status(run_id)
    assert job.status == "done", job.reason
    return {"ws": ws, "run": run_id, "run_dir": Path(job.run_dir)}


def open_zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()
