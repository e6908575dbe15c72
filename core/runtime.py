"""Where and how training runs: the device, thread count, memory layout and mixed precision, and
process-wide settings that make CPU training faster without changing a single number it computes.

`pick_device("auto")`: CUDA when present, else the CPU. `cpu_threads(n, device)`: torch's thread count
for a block (CPU only). `training_threads(n)`: the fixed thread count of one training (1 unless the run names
another; never chosen from the load, so a run's numbers do not depend on how busy the machine is). `Placement.for_device(device)`: the layout (channels_last, the fast one for
convolutions on CUDA and on CPU's oneDNN: 1.12x on CPU) and the autocast (bfloat16 on CUDA with bf16)
a generative model trains with.

`tune_allocator()`: glibc's malloc hands blocks above its mmap threshold (128 KiB to start) straight
back to the kernel when they are freed, and trims the top of the heap once more than twice that is
free. A training step of a small CNN or GAN allocates and frees activations of a few MiB each (a
[64, 16, 32, 32] float tensor is 4 MiB), so every step page-faults its memory in again: 2,264 page
faults per step of the evaluation classifier, 43 ms -> 32 ms per step on a 2-core AMD EPYC once the
memory is kept (benchmarks/RESULTS.md). Raising both thresholds keeps the freed blocks in the heap
for the next step. The values computed are the same; only where the memory comes from changes.

Only glibc (Linux) has `mallopt`; elsewhere (macOS, Windows, musl) it does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from dataclasses import dataclass
from typing import Iterator

import torch

from .errors import ParamError


def pick_device(preference: str | None = "auto") -> torch.device:
    """CUDA when present (or asked), CPU otherwise."""
    if preference in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ParamError("a CUDA device was asked for but none is available; use device=auto or cpu")
    return torch.device(preference)


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """`torch.set_num_threads(n)` for the duration (CPU only), restoring the previous value."""
    if not n or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable of /proc/meminfo; 4 GiB where it cannot be read)."""
    from pathlib import Path
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 4 << 30


TRAINING_THREADS = 1   # torch threads of every training unless the run's config names another count


def training_threads(n: int | None) -> int:
    """The torch threads one training runs on: the run's `num_threads`, else `TRAINING_THREADS`. Never read from
    the machine or its load: 1 and 2 threads round differently (up to 0.04 macro F1 between the same models,
    benchmarks/RESULTS.md ray_runner), so a count chosen from the load made a run's numbers depend on how busy
    the machine was. The count is part of every result's key (`ExperimentConfig.key`); a machine's cores are
    used by training several models side by side (`cpu_budget`), which changes no number."""
    return int(n) if n else TRAINING_THREADS


def cpu_budget() -> int:
    """The cores this process may keep busy: the worker's share ($DEFECTAUG_JOB_THREADS, cores / jobs at
    once), else the machine's. Decides how many models train side by side, never a number they compute."""
    import os
    raw = os.environ.get("DEFECTAUG_JOB_THREADS", "")
    try:
        return max(1, int(raw))
    except ValueError:
        return os.cpu_count() or 1


PARALLEL_FROM = 120.0   # seconds (estimated, idle machine) from which a run's trainings go side by side: a
                        # process costs ~6 s to start (torch and the methods imported), a small run stays in one


def local_processes(device: str, threads: int | None, seconds: float | None = None) -> int:
    """How many trainings a local run keeps side by side: on a CPU, the cores this process may use
    (`cpu_budget`, the worker's share) over each training's fixed thread count; on a GPU one (the trainings
    take turns on it); one for a run estimated (`seconds`, idle) under PARALLEL_FROM. Never a number a training
    computes: every one runs on its fixed threads, so the metrics are the same either way."""
    if seconds is not None and seconds < PARALLEL_FROM:
        return 1
    try:
        if pick_device(device).type != "cpu":
            return 1
    except Exception:   # noqa: BLE001  a device that cannot be used is the run's to report
        return 1
    return max(1, cpu_budget() // max(1, int(training_threads(threads))))


@dataclass(frozen=True)
class Placement:
    """Device, memory layout and autocast of one generative model's training."""
    device: torch.device
    memory_format: torch.memory_format = torch.channels_last
    amp: bool = False

    @classmethod
    def for_device(cls, device: torch.device | str) -> "Placement":
        device = torch.device(device)
        return cls(device, torch.channels_last, device.type == "cuda" and torch.cuda.is_bf16_supported())

    def module(self, m: torch.nn.Module) -> torch.nn.Module:
        return m.to(self.device, memory_format=self.memory_format)

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    def adam(self, params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam, fused on CUDA (one kernel for all parameters)."""
        fused = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.Adam(params, lr=lr, betas=betas, **fused)

M_TRIM_THRESHOLD = -1     # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum (HEAP_MAX / 2 on 64-bit): blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 512 << 20  # keep up to 512 MiB of freed heap for reuse before returning it to the kernel

_done: bool | None = None


def tune_allocator() -> bool:
    """Keep freed training buffers in the heap (glibc only). Idempotent; True when the settings took."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
