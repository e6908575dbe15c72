"""The contract every synthesis method fulfils, and the registry that names them.

A method is one `MethodSpec`: its name, family, the paper it comes from, a parameters dataclass
(field defaults = the CPU `quick` preset; `presets["paper"]` holds the overrides for the GPU
`paper` preset), and a `Sampler` class. The UI builds its forms from the dataclass fields
(`metadata["help"]`, and optionally `choices`, `min`, `max`); the CLI `--set method.param=value`
goes through `MethodSpec.make_params`.

    sampler = spec.sampler_cls(params, ctx)
    sampler.fit(train, needed)                  # needed: {class name: synthetic images wanted}
    batch = sampler.sample("crack", 10, seed=0) # SampleBatch: uint8 [10,H,W,C] + parents
    sampler.save(folder); sampler2 = spec.sampler_cls.load(folder, ctx)

Checkpoints are `state.safetensors` (tensors) + `meta.json` (everything else), written by
`save` from what `get_state` returns, so a new method only says what its state is.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ParamError
from ..events import Reporter
from ..imageset import ImageSet


def pick_device(preference: str | None = "auto") -> torch.device:
    """CUDA when present (or asked), CPU otherwise."""
    if preference in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ParamError("a CUDA device was asked for but none is available; use device=auto or cpu")
    return torch.device(preference)


@dataclass
class Context:
    """What a sampler gets from the run around it."""
    reporter: Reporter = field(default_factory=Reporter)
    device: torch.device = field(default_factory=lambda: pick_device("auto"))
    seed: int = 0
    method: str = ""
    work_dir: Path | None = None      # where the method may write checkpoints and sample grids
    num_threads: int | None = None     # torch.set_num_threads on CPU


@dataclass
class SampleBatch:
    images: np.ndarray                 # uint8 [n, H, W, C]
    parents: list[list[str]]           # per image, the source ids it was made from (may be empty)


_OS_ERROR = re.compile(r"os error (\d+)")


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """`safetensors.torch.save_file`, with a failed write raised as the `OSError` it is (safetensors raises
    its own `SafetensorError`): a full disk while saving a checkpoint then reads "the disk is full", like
    any other write, instead of an internal error. The message is kept; nothing is left at `path`."""
    import safetensors.torch
    from safetensors import SafetensorError
    try:
        safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as err:
        text = str(err)
        code = _OS_ERROR.search(text)
        if code is None and "No space left" not in text and "I/O error" not in text:
            raise   # not a write failure (a bad tensor): a bug, reported as such
        if code:
            number = int(code.group(1))
        else:
            number = errno.ENOSPC if "No space left" in text else errno.EIO
        with contextlib.suppress(OSError):
            Path(path).unlink()
        raise OSError(number, text, str(path)) from err


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
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        tmp_t, tmp_m = folder / "state.safetensors.tmp", folder / "meta.json.tmp"
        save_tensors(tensors, tmp_t)
        tmp_m.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp_t, folder / "state.safetensors")   # atomic: a crash never leaves half a checkpoint
        os.replace(tmp_m, folder / "meta.json")
        return folder

    @classmethod
    def load(cls, folder: str | Path, ctx: Context | None, params: Any) -> "Sampler":
        """Use `MethodSpec.load_sampler`, which rebuilds `params` from the checkpoint."""
        from safetensors.torch import load_file
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "state.safetensors"))
        obj = cls.__new__(cls)
        Sampler.__init__(obj, params, ctx)
        obj.classes_ = list(meta["classes"])
        obj.shape_ = tuple(meta["shape"]) if meta["shape"] else None
        obj.set_state(tensors, meta)
        return obj


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------
@dataclass
class MethodSpec:
    name: str
    family: str          # baseline | classic | interpolation | mixing | gan | translation | diffusion
    paper: str           # the reference, in a few words
    summary: str         # what it does and when it helps, one or two sentences
    params_cls: type
    sampler_cls: type[Sampler]
    presets: dict[str, dict] = field(default_factory=dict)   # preset name -> field overrides
    conditional: bool = False  # trains one model for all classes (vs one per class)

    def make_params(self, preset: str = "quick", overrides: dict[str, Any] | None = None) -> Any:
        if preset not in ("quick", "paper"):
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


_REGISTRY: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"method {spec.name!r} is registered twice")
    if not dataclasses.is_dataclass(spec.params_cls):
        raise TypeError(f"{spec.name}: params_cls must be a dataclass")
    for preset, over in spec.presets.items():
        unknown = set(over) - {f.name for f in dataclasses.fields(spec.params_cls)}
        if unknown:
            raise TypeError(f"{spec.name}: preset {preset} sets unknown params {sorted(unknown)}")
    _REGISTRY[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ParamError(f"unknown method {name!r}; available: {', '.join(method_names())}") from None


def method_names() -> list[str]:
    _load_all()
    return list(_REGISTRY)


def all_methods() -> list[MethodSpec]:
    _load_all()
    return list(_REGISTRY.values())


def _load_all() -> None:
    from . import _catalog  # noqa: F401  (imports every method module, which registers itself)


# ---------------------------------------------------------------------------------------------
# Parameters: typed values from strings (CLI, UI) with the bounds declared in field metadata
# ---------------------------------------------------------------------------------------------
def _field_type(params_cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(params_cls)
    return hints.get(f.name, f.type)


def coerce_value(tp: Any, value: Any, where: str) -> Any:
    """Convert `value` (often a string from the CLI) to the annotated type `tp`."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return coerce_value(args[0], value, where)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ParamError(f"{where} must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (list, tuple):
        (inner,) = typing.get_args(tp)[:1] or (str,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        return [coerce_value(inner, v, where) for v in value]
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "." in value else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ParamError(f"{where} expects {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def build_params(params_cls: type, values: dict[str, Any], owner: str) -> Any:
    """An instance of `params_cls` from defaults + `values`, type-converted and range-checked."""
    names = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ParamError(f"{owner} has no parameter {', '.join(sorted(unknown))}; "
                         f"its parameters are {', '.join(names)}")
    kwargs = {}
    for key, value in values.items():
        f = names[key]
        where = f"{owner}.{key}"
        v = coerce_value(_field_type(params_cls, f), value, where)
        meta = f.metadata
        if "choices" in meta and v not in meta["choices"]:
            raise ParamError(f"{where} must be one of {list(meta['choices'])}, got {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if "min" in meta and v < meta["min"]:
                raise ParamError(f"{where} must be at least {meta['min']}, got {v}")
            if "max" in meta and v > meta["max"]:
                raise ParamError(f"{where} must be at most {meta['max']}, got {v}")
        kwargs[key] = v
    obj = params_cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def param(default: Any, help: str, **bounds: Any) -> Any:
    """A dataclass field with its help text and bounds (min, max, choices) for UI and validation."""
    return field(default=default, metadata={"help": help, **bounds})
