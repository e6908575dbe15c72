"""Locks: the worker lock (one worker per workspace) and the machine-wide job slots.

An exclusive `flock` on `<workspace>/worker.lock` is held by the workspace's worker while it lives, so "is a worker
alive?" is a lock test, not a guess from a pid: the kernel releases a dead process's lock. How many jobs run at
once on the machine is bounded by slot lock files under `<home>/.slots` (`default_max_parallel`: one per GPU, or
one on CPU), so two workspaces never oversubscribe the machine.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import ParamError
from ..workspace import workspace_home

LOCK_FILE = "worker.lock"


def try_lock(path: Path) -> int | None:
    """An open fd holding an exclusive flock on `path`, or None when someone else holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def unlock(fd: int | None) -> None:
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def slots_dir() -> Path:
    return workspace_home() / ".slots"


def acquire_slot(max_parallel: int) -> tuple[int, int] | None:
    """(slot index, fd) of a free machine-wide job slot, or None when all are taken."""
    for i in range(max_parallel):
        fd = try_lock(slots_dir() / f"slot-{i}.lock")
        if fd is not None:
            return i, fd
    return None


def default_max_parallel() -> int:
    """Jobs allowed at once on this machine: $DEFECTAUG_MAX_PARALLEL, else one per GPU, else 1."""
    raw = os.environ.get("DEFECTAUG_MAX_PARALLEL", "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ParamError("DEFECTAUG_MAX_PARALLEL must be a whole number such as 1") from None
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
        n = len(list(gpus.iterdir()))
        if n:
            return n
    return 1
