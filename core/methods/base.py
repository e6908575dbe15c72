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
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import ParamError
from ..events import Reporter
from ..files import load_tensors, save_tensors, write_json
from ..imageset import ImageSet
from ..params import build_params
from ..rundir import RunDir
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
    user_masks: dict[str, np.ndarray] | None = None   # the dataset's own defect masks by image source, uint8
    #                                                   [H, W] at the run's size (transplant methods use them)
    sampled: Callable[[int], None] | None = None   # a slow sampler calls it with the images of the class drawn
                                                   # so far (the Jobs page's progress between classes)

    def checkpoint(self, model: str, tag: str | None = None, shared: bool = False) -> Path | None:
        """Where the training checkpoint of `model` for this seed goes (`RunDir.training_checkpoint`'s name), in
        the work folder, or with `shared` in the folder methods training the same model share; None: nowhere."""
        folder = (self.shared_dir or self.work_dir) if shared else self.work_dir
        return RunDir.training_checkpoint(folder, model, self.seed, tag) if folder is not None else None

    def drop_checkpoints(self, model: str) -> None:
        """Remove the tagged training checkpoints of `model` for this seed from the work folder."""
        if self.work_dir is not None:
            RunDir.drop_training_checkpoints(self.work_dir, model, self.seed)


def check_normal_source(counts: dict[str, int], normal_class: str | None, needed: dict[str, int] | None,
                        min_images: int, what: str) -> str | None:
    """`Sampler.check_data` of the methods that start each image from a real normal image (cyclegan,
    ddpm_translate): why this training set cannot serve, or None. `what` says what the method does."""
    if not normal_class or counts.get(normal_class, 0) == 0:
        return (f"{what}, and this run has no normal class with training images; name the defect-free class "
                "(normal_class)")
    small = [f"{c} ({n})" for c, n in counts.items() if c != normal_class and 0 < n < min_images
             and (needed is None or needed.get(c, 0) > 0)]
    if small:
        return (f"needs at least {min_images} training images per defect class (min_images); "
                f"too few in {', '.join(small)}. Lower min_images or pick another method")
    return None


def each_once(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """`n` indexes into `k` source images, every one once before any twice, in `rng`'s order (the translation
    methods' sources: each real image translated once before any is used again)."""
    return np.concatenate([rng.permutation(k) for _ in range(math.ceil(n / k))])[:n]


@dataclass
class SampleBatch:
    images: np.ndarray                 # uint8 [n, H, W, C]
    parents: list[list[str]]           # per image, the source ids it was made from (may be empty)
    targets: np.ndarray | None = None  # float [n, K] class shares of images that mix classes (cmo), else None
    masks: np.ndarray | None = None    # uint8 [n, H, W] where a transplanted defect lies (0/255), else None
    details: list[dict] | None = None  # per image, more provenance (transplant: defect source, background,
    #                                    position, mask origin), written as provenance columns


class Sampler:
    """Base class. Subclasses implement `fit`, `sample`, `get_state` and `set_state`."""

    # True for a method that turns real normal images into defects (cyclegan, ddpm_translate): it is refused
    # while the normal class is only the largest class's guess (core.data.normal_class_guessed)
    translates_normal_images = False

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

    @classmethod
    def model_memory(cls, params: Any, device_type: str) -> tuple[int, str] | None:
        """(bytes, what) of a pretrained model the method loads before it trains anything (its frozen weights),
        for the memory check before a job is queued; None for a method that loads none. Raises ParamError when
        the model's configuration cannot be built."""
        return None

    def networks(self, shape: tuple[int, int, int], n_classes: int) -> list[tuple[torch.nn.Module, tuple]]:
        """The networks one `fit` trains together, each with an example input batch (as its training step
        passes it), for the memory check before a run (`training_memory` builds them on the meta device).
        [] for a method that trains no network."""
        return []

    def on_image_batch(self, nets, shape: tuple[int, int, int]) -> list[tuple[torch.nn.Module, tuple]]:
        """Each network with a batch (`params.batch_size`) of images of `shape`: what `networks` returns for
        networks that take images."""
        x = torch.zeros(int(getattr(self.params, "batch_size", 32)), shape[2], shape[0], shape[1])
        return [(net, (x,)) for net in nets]

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
class TrainingMemory:
    """What training a method's networks holds in memory, from the networks themselves (`training_memory`)."""
    parameters: int            # weights of every network trained together
    activation_bytes: int      # one batch's forward outputs, their gradients and a second discriminator pass

    # float32 weights, their gradients and Adam's two moments: 4 copies of 4 bytes per parameter
    BYTES_PER_PARAMETER = 16

    @property
    def bytes(self) -> int:
        return self.parameters * self.BYTES_PER_PARAMETER + self.activation_bytes


class _MetaShortcuts(torch.overrides.TorchFunctionMode):
    """On meta tensors, skip weight initialisation (nothing to fill) and pass normalisation layers through
    (their output has their input's shape): torch runs both on meta through its Python references, which
    import the compiler (seconds, and a cache folder left in the temporary directory)."""
    _SAME_SHAPE = frozenset({"batch_norm", "instance_norm", "layer_norm", "group_norm"})
    _INIT = frozenset({"normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_",
                       "xavier_uniform_", "xavier_normal_", "orthogonal_", "constant_", "zeros_", "ones_",
                       "fill_", "zero_", "bernoulli_", "random_", "exponential_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self._INIT:
            target = args[0] if args else kwargs.get("tensor", kwargs.get("input"))   # nn.init passes tensor=
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        if getattr(func, "__name__", "") in self._SAME_SHAPE:
            x = args[0] if args else kwargs.get("input")
            if isinstance(x, torch.Tensor) and x.is_meta:
                return torch.empty_like(x)
        return func(*args, **kwargs)


def training_memory(sampler_cls: type[Sampler], params: Any, shape: tuple[int, int, int],
                    n_classes: int) -> TrainingMemory | None:
    """The memory training `sampler_cls` with `params` on images of `shape` needs, counted on networks built
    on the meta device (no weight is allocated, no time spent initialising): parameters x (weights + grads
    + Adam's 2 states), plus the activations of one forward pass of each network on its example batch, x3
    (kept for backward, their gradients, the discriminator's second pass). None when it trains no network."""
    sampler = sampler_cls(params, Context(device=torch.device("meta")))
    with torch.device("meta"), _MetaShortcuts():
        nets = sampler.networks(shape, n_classes)
    if not nets:
        return None
    parameters = sum(p.numel() for net, _ in nets for p in net.parameters())
    outputs = 0

    def count(_module, _inputs, output) -> None:
        nonlocal outputs
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                outputs += t.numel() * t.element_size()

    for net, example in nets:
        hooks = [m.register_forward_hook(count) for m in net.modules() if not list(m.children())]
        try:
            with torch.no_grad(), torch.device("meta"), _MetaShortcuts():
                net(*example)
        except (RuntimeError, NotImplementedError, TypeError, ValueError):
            pass    # an operation without a meta kernel: the parameters alone still bound the memory
        finally:
            for h in hooks:
                h.remove()
    return TrainingMemory(parameters, 3 * outputs)


@dataclass
class NoParams:
    """A method without settings."""


@dataclass
class MethodSpec:
    name: str
    family: str          # classic | interpolation | mixing | transplant | gan | translation | diffusion
    paper: str           # the reference, in a few words
    summary: str         # what it does and when it helps, one or two sentences
    params_cls: type
    sampler_cls: type[Sampler]
    presets: dict[str, dict] = field(default_factory=dict)   # "paper" / "tiny" -> field overrides
    conditional: bool = False      # trains one model for all classes (vs one per class)
    provenance: str = "parents"    # what SampleBatch.parents names: "parents" (real images of the class it
    #                                was made from), "source" (the one normal image it was translated from),
    #                                "transplant" (the defect image of the class, then the normal background),
    #                                "none" (generated from noise: empty)
    needs_gpu: bool = False        # refuses to run without CUDA
    gpu: bool | None = None        # its fit is worth a GPU (a cluster runner asks for one); None: by family
    packages: tuple[str, ...] = ()  # optional Python packages it needs
    weights_env: str | None = None  # environment variable that must name a local weights file or folder
    broken: str | None = None      # set by the registry when the method's module could not be imported

    def __post_init__(self) -> None:
        if self.provenance not in ("parents", "source", "transplant", "none"):
            raise TypeError(f"{self.name}: provenance must be parents, source, transplant or none, "
                            f"got {self.provenance!r}")

    @property
    def wants_gpu(self) -> bool:
        """Whether fitting it trains a network a GPU speeds up (the GAN, translation and diffusion families, or
        what the spec declares): the Ray runner then asks for a GPU for its fit when the cluster has one."""
        if self.gpu is not None:
            return self.gpu or self.needs_gpu
        return self.needs_gpu or self.family in ("gan", "translation", "diffusion")

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
