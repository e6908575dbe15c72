"""A test-only plugin that makes the job store fail as a failing disk does: with
`DEFECTAUG_TEST_STORE_FAULTS="worker.counts=2,job.finish=3"`, the first N calls of each named `JobStore`
method raise `sqlite3.OperationalError("disk I/O error")`, counted per process; `worker.` names the worker
process, `job.` the job processes it starts. Named in DEFECTAUG_PLUGINS, so both import it; only the store's
methods are wrapped, the worker and the job run as they do."""
from __future__ import annotations

import os
import sqlite3

from core.jobs import JobStore

FAULTS_ENV = "DEFECTAUG_TEST_STORE_FAULTS"
raised: dict[str, int] = {}


def _install() -> None:
    role = "job" if os.environ.get("DEFECTAUG_WORKER_PID") else "worker"
    for item in filter(None, os.environ.get(FAULTS_ENV, "").split(",")):
        key, count = item.split("=")
        who, name = key.split(".")
        if who != role:
            continue
        original = getattr(JobStore, name)
        left = [int(count)]

        def flaky(self, *args, _original=original, _left=left, _name=name, **kwargs):
            if _left[0] > 0:
                _left[0] -= 1
                raised[_name] = raised.get(_name, 0) + 1
                raise sqlite3.OperationalError("disk I/O error")
            return _original(self, *args, **kwargs)

        setattr(JobStore, name, flaky)


_install()
