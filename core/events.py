"""Progress reporting: the append-only `events.jsonl` of a run, and the hooks long work calls.

Every long step (classifier epochs, generator steps, sampling) reports through a `Reporter`.
The reporter appends one JSON object per line to the run's `events.jsonl`, mirrors messages to
`log.txt`, forwards each event to an optional callback (the CLI's progress bar), and raises
`Cancelled` from `check_cancel()` once the run's `CANCEL` file exists (how the job runner asks a
worker to stop without killing it mid-write). The paths are `core.rundir.RunDir`'s; it is also the
one reader of the events (`RunDir.events()`).

Event kinds used across the project:
  stage     {"stage": str, "message": str, "load": float}        a new phase begins (load: the machine's
                                                                 1-minute load average, for core.estimate)
  progress  {"stage": str, "step": int, "total": int, ...metrics} inside a phase
  epoch     {"model": str, "epoch": int, "epochs": int, "loss": float, ...}   classifier curve
  monitor   {"method": str, "class": str|None, "seed": int, "step": int, "total": int, ...}
                                                                 generative training monitors
  image     {"method": str, "class": str|None, "seed": int, "path": str, "step": int}
                                                                 a sample grid written under the run
  result    {"model": str, "f1_macro": float, ...}               a classifier was trained and scored
  task      {"task": str, "runner": str, "node": str, "host": str, "pid": int, "device": str}
                                                                 a task of the plan starts (where it ran; a
                                                                 re-run after a lost node adds another)
  warning   {"message": str}
  done      {"message": str}
  error     {"message": str}
"""
from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .errors import Cancelled
from .rundir import CANCEL_FILE, RunDir

__all__ = ["CANCEL_FILE", "Reporter"]


def _clean(value: Any) -> Any:
    """JSON-safe value (numpy scalars, NaN/inf as strings so the file stays valid JSON)."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class Reporter:
    """Writes events of one run. `run_dir=None` keeps everything in memory (tests, library use)."""

    def __init__(self, run_dir: str | Path | None = None,
                 callback: Callable[[dict], None] | None = None) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.rd = RunDir(run_dir) if run_dir is not None else None
        self.callback = callback
        self.events: list[dict] = []
        self.warnings: list[str] = []
        self._lock = threading.RLock()     # models trained side by side (core.training.train_models) share one
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)

    # -- writing -----------------------------------------------------------------------------
    def emit(self, kind: str, **fields: Any) -> dict:
        with self._lock:
            event = {"t": round(time.time(), 3), "kind": kind, **_clean(fields)}
            self.events.append(event)
            if self.rd is not None:
                self.rd.append_event(event)
                if kind in ("stage", "warning", "error", "done"):
                    self.log(f"[{kind}] {fields.get('stage', '')} {fields.get('message', '')}".strip())
            if self.callback is not None:
                self.callback(event)
            return event

    def log(self, line: str) -> None:
        if self.rd is not None:
            with self._lock:
                self.rd.append_log(line)

    def stage(self, stage: str, message: str = "") -> None:
        self.check_cancel()
        try:
            load = round(os.getloadavg()[0], 2)     # how busy the machine was: core.estimate's calibration
        except (OSError, AttributeError):
            load = None
        self.emit("stage", stage=stage, message=message, **({} if load is None else {"load": load}))

    def progress(self, stage: str, step: int, total: int, **metrics: Any) -> None:
        self.check_cancel()
        self.emit("progress", stage=stage, step=int(step), total=int(total), **metrics)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.emit("warning", message=message)

    # -- cancellation ----------------------------------------------------------------------------
    def cancel_requested(self) -> bool:
        return self.rd is not None and self.rd.cancel_requested()

    def check_cancel(self) -> None:
        if self.cancel_requested():
            raise Cancelled("the job was cancelled; what it wrote so far is kept")

