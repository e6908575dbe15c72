"""The training loop of every generative method: one `Trainer`, no branch for any method.

    process = MyTraining(...)                  # a TrainingProcess: networks, optimisers, rng, step()
    settings = LoopSettings.from_params(params, total_steps)
    summary = Trainer(process, settings, who=Who("dcgan", "MT_Crack", seed=0), reporter=rep,
                      checkpoint=path).run()

What the loop owns, so that no method repeats it:
- the steps, with a cancel check before each (`Reporter.check_cancel`, the run's CANCEL file) and a stop
  check (`stop` is set when a model trained beside this one failed);
- monitors: every `monitor_every` steps (and at the first and last) the process's step returns its numbers,
  written as a `monitor` event with the method, class, seed, step and total; a loss that is no longer finite
  stops the run with the process's `divergence_hint`; `process.watch` may turn numbers into warnings;
- the sample-grid timeline: `process.grid()` saved under samples/<method>/<class>/ every `sample_every`
  steps and at the end, each announced by an `image` event;
- resumable checkpoints (safetensors): every network, optimiser and the random stream, every
  `checkpoint_every` steps and when the run is cancelled; a later Trainer whose process has the same
  fingerprint resumes from it and continues the same run (bit-identical on CPU). At the end only the
  networks in `process.keep` are kept, unless `keep_train_state` (then a run with more steps continues).

A method implements `TrainingProcess.step` (the losses it computes, the optimisers it steps) and, when it has
them, `grid`, `watch` and `fingerprint`. A method with two stages (an autoencoder, then the GAN) runs two
Trainers, each with its own process, stage label and checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import Cancelled, ParamError
from ..events import Reporter
from ..runtime import tune_allocator
from .checkpoint import flatten_optimizer, load_optimizer, load_tensors, read_metadata, save_tensors, sub
from .images import save_grid
from .parallel import Stopped

# Parameters that only steer the loop: changing them does not change what is trained, so a checkpoint
# stays valid for resuming.
LOOP_FIELDS = ("steps", "epochs", "sample_every", "monitor_every", "checkpoint_every", "keep_train_state")
PROGRESS_EVERY = 2.0       # seconds: a progress event at least this often while steps advance (not only at monitors)


def settings_fingerprint(params: Any) -> dict:
    """A method's parameters without the loop-only ones: what a resumable checkpoint must match."""
    return {k: v for k, v in dataclasses.asdict(params).items() if k not in LOOP_FIELDS}


class TrainingProcess:
    """What a method hands the loop. Subclasses set `networks`, `optimizers` and `rng` and implement
    `step`; the rest is optional."""
    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    rng: torch.Generator
    keep: tuple[str, ...] = ()          # networks the final checkpoint keeps (empty: all of them)
    divergence_hint: str = ""           # what to change when a loss stops being finite
    shared_as: str | None = None        # a name for a model several methods train alike: their checkpoints
                                        # (same fingerprint otherwise) are interchangeable

    def step(self, monitor: bool) -> dict[str, float] | None:
        """One training step; returns the monitor numbers when `monitor` (else None)."""
        raise NotImplementedError

    grid_rows: list[str] | None = None  # the label of each row of `grid` (one row per class), when it has rows

    def grid(self) -> np.ndarray | None:
        """uint8 [N,H,W,C] images of the sample grid at this step (fixed inputs), or None."""
        return None

    def watch(self, stats: dict[str, float], step: int, total: int) -> list[str]:
        """Warnings the monitor numbers call for now (e.g. mode collapse); the process says each once."""
        return []

    def fingerprint(self) -> dict:
        """What must match for a checkpoint of this process to be resumed (settings, data...)."""
        return {}

    def summary(self) -> dict:
        """Extra facts for the result of `Trainer.run` (e.g. the number of training images)."""
        return {}


@dataclass(frozen=True)
class Who:
    """Whose training this is: named in events and messages."""
    method: str
    cls: str | None = None
    seed: int = 0

    def __str__(self) -> str:
        return self.method + (f" [{self.cls}]" if self.cls else "")


@dataclass(frozen=True)
class LoopSettings:
    total: int
    monitor_every: int = 10
    sample_every: int = 0
    checkpoint_every: int = 0
    keep_train_state: bool = False

    @classmethod
    def from_params(cls, params: Any, total: int) -> "LoopSettings":
        """The loop fields of a method's parameters (the names every generative method shares)."""
        return cls(int(total), int(getattr(params, "monitor_every", 10)), int(getattr(params, "sample_every", 0)),
                   int(getattr(params, "checkpoint_every", 0)), bool(getattr(params, "keep_train_state", False)))


class Trainer:
    """Runs one `TrainingProcess` for `settings.total` steps; see the module docstring."""

    def __init__(self, process: TrainingProcess, settings: LoopSettings, *, who: Who,
                 reporter: Reporter | None = None, checkpoint: str | Path | None = None,
                 stop: threading.Event | None = None, stage: str | None = None) -> None:
        tune_allocator()                      # same numbers, no page faults per step (core.runtime)
        self.process, self.settings, self.who = process, settings, who
        self.reporter = reporter or Reporter()
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.stop = stop
        self.stage = stage or f"train {who}"
        self.step = 0
        self._reported = time.time()
        self.last_monitor: dict[str, float] = {}

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to `total` steps (resuming from the checkpoint when it fits). Returns a summary."""
        s, total = self.settings, self.settings.total
        start = self._resume()
        # a first grid by 10% of the steps, however far apart the rest are (a long fit shows early what it makes)
        first_grid = total // 10 if total >= 100 and s.sample_every > total // 10 else -1
        t0 = time.time()
        try:
            for step in range(start + 1, total + 1):
                self.reporter.check_cancel()
                if self.stop is not None and self.stop.is_set():
                    raise Stopped("stopped: a model trained beside this one failed or was interrupted")
                monitor = step == 1 or step == total or (s.monitor_every and step % s.monitor_every == 0)
                stats = self.process.step(bool(monitor))
                self.step = step
                if stats is not None:
                    self._report(stats)
                elif time.time() - self._reported >= PROGRESS_EVERY:
                    self._report_step()
                if s.sample_every and (step % s.sample_every == 0 or step == first_grid) and step < total:
                    self.save_grid()
                if self.checkpoint and s.checkpoint_every and step % s.checkpoint_every == 0 and step < total:
                    self._save(final=False)
        except (Cancelled, KeyboardInterrupt):
            if self.checkpoint and self.step > start:
                self._save(final=False)         # a cancelled job continues from here next time
            raise
        if total > start:
            self.save_grid()
        if self.checkpoint:
            self._save(final=True)
        return {"steps": total, "resumed_from": start, "seconds": round(time.time() - t0, 3),
                **self.process.summary(), **self.last_monitor}

    def _report(self, stats: dict[str, float]) -> None:
        bad = [k for k, v in stats.items() if k.endswith("loss") and not math.isfinite(v)]
        if bad:
            raise ParamError(f"{self.who} diverged at step {self.step} ({', '.join(bad)} is not finite). "
                             f"{self.process.divergence_hint}".rstrip())
        self.last_monitor = stats
        self.reporter.emit("monitor", method=self.who.method, **{"class": self.who.cls}, seed=self.who.seed,
                           step=self.step, total=self.settings.total, **stats)
        self._report_step()
        for warning in self.process.watch(stats, self.step, self.settings.total):
            self.reporter.warn(warning)

    def _report_step(self) -> None:
        """A progress event: between monitors too, every `PROGRESS_EVERY` seconds, so the Jobs page's figures move
        with the steps of a slow model (a diffusion step takes seconds on a busy CPU)."""
        self._reported = time.time()
        self.reporter.progress(self.stage, self.step, self.settings.total)

    def save_grid(self) -> Path | None:
        """Write the process's sample grid of the current step under samples/<method>/<class>."""
        rd = self.reporter.rd
        if rd is None:
            return None
        images = self.process.grid()
        if images is None:
            return None
        path = rd.grid_path(self.who.method, self.who.cls, self.who.seed, self.step)
        rows = self.process.grid_rows
        save_grid(images, path, row_labels=rows)
        self.reporter.emit("image", method=self.who.method, **{"class": self.who.cls}, seed=self.who.seed,
                           path=rd.relative(path), step=self.step, **({"rows": list(rows)} if rows else {}))
        return path

    # -- checkpoints ---------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        nets = self.process.networks
        first = next((q for net in nets.values() for q in net.parameters()), None)
        return json.dumps({"process": self.process.fingerprint(), "method": self.process.shared_as or self.who.method,
                           "class": self.who.cls, "device": first.device.type if first is not None else "cpu",
                           "sizes": {k: sum(q.numel() for q in net.parameters()) for k, net in nets.items()}},
                          sort_keys=True, default=str)

    def _save(self, final: bool) -> None:
        assert self.checkpoint is not None
        full = not final or self.settings.keep_train_state
        p = self.process
        names = list(p.networks) if full or not p.keep else list(p.keep)
        tensors = {f"{name}.{k}": v for name in names for k, v in p.networks[name].state_dict().items()}
        if full:
            for name, opt in p.optimizers.items():
                tensors.update(flatten_optimizer(f"opt.{name}", opt))
            tensors["rng"] = p.rng.get_state()
        meta = {"fingerprint": self.fingerprint(), "step": str(self.step), "full": "1" if full else "0"}
        save_tensors(tensors, self.checkpoint, metadata=meta)   # atomic: never half a checkpoint

    def _resume(self) -> int:
        """The step to continue after: 0 for a fresh start."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return 0
        meta = read_metadata(self.checkpoint)
        step, full = int(meta.get("step", 0)), meta.get("full") == "1"
        total = self.settings.total
        if meta.get("fingerprint") != self.fingerprint():
            self.reporter.log(f"{self.checkpoint.name}: other settings or data; training anew")
            return 0
        if step > total or (not full and step != total):
            self.reporter.log(f"{self.checkpoint.name}: at step {step}, cannot continue to {total}; training anew")
            return 0
        tensors = load_tensors(self.checkpoint)
        p = self.process
        for name, net in p.networks.items():
            if full or not p.keep or name in p.keep:
                net.load_state_dict(sub(tensors, f"{name}."))
        if full:
            for name, opt in p.optimizers.items():
                load_optimizer(f"opt.{name}", opt, tensors)
            p.rng.set_state(tensors["rng"])
        self.step = step
        self.reporter.log(f"{self.who}: resumed at step {step} of {total}")
        return step
