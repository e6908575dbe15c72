"""A test-only job kind, "sleep": `steps` progress events over `seconds`, no torch; for tests of the job
runner itself. Registered through DEFECTAUG_PLUGINS (tests/conftest.py sets it), so the worker's job
processes know it too.

Options: fail (message -> ParamError), crash (a bug), disk_full (ENOSPC while writing), ignore_cancel (keeps
going: tests the kill), exit_on_cancel (ends with SystemExit(1) once cancelled, as a Ray driver does on the
worker's SIGTERM).
"""
from __future__ import annotations

import errno
import sys
import time
from pathlib import Path

from core.errors import ParamError
from core.events import Reporter
from core.jobs import register_job_kind


def sleep_job(config: dict, run_dir: Path) -> dict:
    rep = Reporter(run_dir)
    steps = int(config.get("steps", 10))
    seconds = float(config.get("seconds", 1.0))
    rep.stage("sleep", f"{steps} steps over {seconds:.1f}s")
    for i in range(steps):
        if config.get("exit_on_cancel") and (Path(run_dir) / "CANCEL").exists():
            sys.exit(1)
        if config.get("ignore_cancel") or config.get("exit_on_cancel"):
            rep.emit("progress", stage="sleep", step=i + 1, total=steps, overall=(i + 1) / steps)
        else:
            rep.progress("sleep", i + 1, steps, overall=(i + 1) / steps)
        with open(Path(run_dir) / "partial.txt", "a", encoding="utf-8") as fh:
            fh.write(f"step {i + 1}\n")
        if config.get("fail") and i == steps // 2:
            raise ParamError(str(config["fail"]))
        if config.get("crash") and i == steps // 2:
            raise ZeroDivisionError("a bug on purpose")
        if config.get("disk_full") and i == steps // 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(run_dir) / "partial.txt"))
        time.sleep(seconds / max(1, steps))
    rep.emit("done", message="slept")
    return {"steps": steps}


register_job_kind("sleep", sleep_job)
