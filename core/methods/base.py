"""The contract every synthesis method fulfils, and the spec that describes it to the registry.

A method is one `MethodSpec`: its name, family, the paper it comes from, a parameters dataclass
(field defaults = the CPU `quick` preset; `presets["paper"]` holds the overrides for the GPU `paper`
preset, `presets["tiny"]` those that make it train for a couple of steps on tiny images in the common
checks), a `Sampler` class, and what it needs to run (a GPU, an optional package, a configured local
weights path). The UI builds its forms from the dataclass fields (`metadata["help"]`, and optionally
`choices`, `min`, `max`); the CLI `--set method.param=value` goes through `MethodSpec.make_params`.

    sampler = spec.sampler_cls(params, ctx)
    sampler.fit(train, needed)                  # needed: {class name: synthetic images wanted}
    batch = sampler.sample("crack", 10, seed=0) # SampleBatch: uint8 [10,H,W,C] + parents
    sampler.save(folder); sampler2 = spec.load_sampler(folder, ctx)

Checkpoints are `state.safetensors` (tensors) + `meta.json` (everything else), written by `save` from
what `get_state` returns, so a new method only says what its state is.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ParamError
from ..events import Reporter
from ..files import load_tensors, save_tensors, write_json
from ..imageset import ImageSet
from ..params import build_params
from ..runtime import pick_device

PRESETS = ("quick", "paper", "tiny")   # tiny: the common checks' few steps on 16 px images


@dataclass
class Context:
    """What a sampler gets from the run around it."""
    reporter: Reporter = field(default_factory=Reporter)
    device: torch.device = field(default_factory=lambda: pick_device("auto"))
    seed: int = 0
    method: str = ""
    work_dir: Path | None = None      # where the method may keep resumable training state
    shared_dir: Path | None = None    # where methods that train the same model (TrainingProcess.shared_as) keep
                                      # it, so that one run trains it once for all of them
    num_threads: int | None = None     # torch.set_num_threads on CPU
    normal_class: str | None = None   # the run's normal class (the source of translation methods)


@dataclass
class SampleBatch:
    images: np.ndarray                 # uint8 [n, H, W, C]
    parents: list[list[str]]           # per image, the source ids it was made from (may be empty)


class Sampler:
    """Base class. Subclasses implement `fit`, `sample`, `get_state` and `set_state`."""

    def __init__(self, params: Any, ctx: Context | None = None) -> None:
        self.params = params
        self.ctx = ctx or Context()
        self.classes_: list[str] = []
        self.shape_: tuple[int, int, int] | None = None

    # -- to implement ------------------------------------------------------------------------------
    def fit(self, train: ImageSet, needed: dict[str, int]) -> "Sampler":
        raise NotImplementedError

    @classmethod
    def check_data(cls, params: Any, counts: dict[str, int], normal_class: str | None,
                   needed: dict[str, int] | None = None) -> str | None:
        """Why this method cannot train on a training set with these class counts, said before a run starts
        (`core.jobs.preflight`), or None. Translation methods need a normal class, for instance."""
        return None

    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        raise NotImplementedError

    def get_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, JSON-able meta) that `set_state` restores. Called after `fit`."""
        raise NotImplementedError

    def set_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------------
    def _remember(self, train: ImageSet) -> None:
        self.classes_ = list(train.classes)
        self.shape_ = train.shape

    def _empty(self) -> SampleBatch:
        assert self.shape_ is not None, "fit first"
        return SampleBatch(np.zeros((0, *self.shape_), np.uint8), [])

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors, meta = self.get_state()
        meta = {"classes": self.classes_, "shape": list(self.shape_ or ()),
                "params": dataclasses.asdict(self.params), **meta}
        save_tensors(tensors, folder / "state.safetensors")     # both atomic: never half a checkpoint
        write_json(folder / "meta.json", meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, ctx: Context | None, params: Any) -> "Sampler":
        """Use `MethodSpec.load_sampler`, which rebuilds `params` from the checkpoint."""
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        tensors = load_tensors(folder / "state.safetensors")
        obj = cls.__new__(cls)
        Sampler.__init__(obj, params, ctx)
        obj.classes_ = list(meta["classes"])
        obj.shape_ = tuple(meta["shape"]) if meta["shape"] else None
        obj.set_state(tensors, meta)
        return obj


@dataclass
class NoParams:
    """A method without settings."""


@dataclass
class MethodSpec:
    name: str
    family: str          # classic | interpolation | mixing | gan | translation | diffusion
    paper: str           # the reference, in a few words
    summary: str         # what it does and when it helps, one or two sentences
    params_cls: type
    sampler_cls: type[Sampler]
    presets: dict[str, dict] = field(default_factory=dict)   # "paper" / "tiny" -> field overrides
    conditional: bool = False      # trains one model for all classes (vs one per class)
    provenance: str = "parents"    # what SampleBatch.parents names: "parents" (real images of the class it
    #                                was made from), "source" (the one normal image it was translated from),
    #                                "none" (generated from noise: empty)
    needs_gpu: bool = False        # refuses to run without CUDA
    packages: tuple[str, ...] = ()  # optional Python packages it needs
    weights_env: str | None = None  # environment variable that must name a local weights file or folder
    broken: str | None = None      # set by the registry when the method's module could not be imported

    def __post_init__(self) -> None:
        if self.provenance not in ("parents", "source", "none"):
            raise TypeError(f"{self.name}: provenance must be parents, source or none, got {self.provenance!r}")

    def unavailable_reason(self) -> str | None:
        """Why this method cannot run on this server (what to install or configure), or None."""
        if self.broken:
            return self.broken
        missing = [p for p in self.packages if importlib.util.find_spec(p) is None]
        if missing:
            return (f"needs the Python package{'s' if len(missing) > 1 else ''} {', '.join(missing)}, which "
                    f"{'are' if len(missing) > 1 else 'is'} not installed (pip install {' '.join(missing)})")
        if self.needs_gpu and not torch.cuda.is_available():
            return "needs a CUDA GPU, and this server has none"
        if self.weights_env:
            where = os.environ.get(self.weights_env, "").strip()
            if not where:
                return f"needs local model weights: set {self.weights_env} to their folder, then restart"
            if not Path(where).expanduser().exists():
                return f"{self.weights_env} points to {where}, which does not exist"
        return None

    @property
    def available(self) -> bool:
        return self.unavailable_reason() is None

    def make_params(self, preset: str = "quick", overrides: dict[str, Any] | None = None) -> Any:
        if preset not in PRESETS:
            raise ParamError(f"unknown preset {preset!r}; use 'quick' (CPU) or 'paper' (GPU)")
        values = dict(self.presets.get(preset, {}))
        values.update(overrides or {})
        return build_params(self.params_cls, values, self.name)

    def param_fields(self) -> list[dataclasses.Field]:
        return list(dataclasses.fields(self.params_cls))

    def load_sampler(self, folder: str | Path, ctx: Context | None = None) -> Sampler:
        """A fitted sampler back from a checkpoint folder written by `Sampler.save`."""
        meta = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
        params = build_params(self.params_cls, meta.get("params", {}), self.name)
        return self.sampler_cls.load(folder, ctx, params)
