"""The GAN family: `gan`, `dcgan`, `cgan`, `wgan_gp`, `acgan`.

Networks live in `models/` (MLP in `models.gan`, convolutional in `models.dcgan`); the adversarial loop,
monitors, sample grids and checkpoints in `core.generative`. This module only says, per method, which
networks, which loss and which defaults.

Unconditional methods (gan, dcgan, wgan_gp) train one model per class that needs images, as paper 000
did; conditional ones (cgan, acgan) train one model on every class (class-balanced batches), so a minority
class borrows what the majority teaches about the surface. On CPU the per-class models train side by side,
one per core with one torch thread each (`side_by_side`); the models are the same as one after another on
one thread, only sooner. The image size is the run's (`--image-size`):
the convolutional methods need a power of two from 16 to 256 (32, 64 and 128 are the tested ones).

Every method has the same option names (latent_dim, steps, epochs, batch_size, d_steps, loss, lr_g, lr_d,
b1, b2, g_width, d_width, hflip, diffaugment, sample_every, ...), so forms and `--set` look alike.
Field defaults are the CPU `quick` preset (each method under 10 minutes on magnetic_tile, ratio 0.1,
64 px, 2 cores); `presets["paper"]` the papers' settings for a GPU.
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.dcgan import build_dcgan, check_size
from models.gan import build_mlp

from ..errors import ParamError
from ..generative import DIFFAUGMENT_CHOICES, AdversarialTrainer, Stopped, cpu_threads, generate
from ..imageset import ImageSet
from .base import MethodSpec, SampleBatch, Sampler, param, register

FEW_IMAGES = 10   # paper 000: below about 10 images per class GANs fail and oversampling wins
BCE_AND_HINGE = ["saturating", "non_saturating", "hinge"]
LOSS_HELP = ("Adversarial loss. saturating: G minimises log(1 - D(G(z))), the original minimax, whose "
             "gradient vanishes when D wins (paper 000); non_saturating: G maximises log D(G(z)); hinge: "
             "margin loss.")


def side_by_side(n_models: int, device: torch.device) -> list[tuple[int, int, int]]:
    """How to train `n_models` independent per-class models: (models, at once, torch threads each) groups.

    On CPU the models of gan/dcgan/wgan_gp train side by side, one per core, each with one torch
    thread: a 64 px GAN step uses two threads of one process poorly (one model on two threads is
    1.6x one thread, two single-thread models side by side 2x). Models left over when the count
    does not divide by the cores share the cores between them (5 models on 2 cores: 4 two at a time,
    then 1 on both cores), so no core idles. The grouping depends only on the counts and every model
    has its own seeded generators, so the results never depend on which model finishes first.
    CUDA: one at a time.
    """
    cores = torch.get_num_threads()       # what the run allows (num_threads / the machine's cores)
    if device.type != "cpu":
        return [(n_models, 1, cores)] if n_models > 0 else []
    groups = []
    full = (n_models // cores) * cores
    if full:
        groups.append((full, cores, 1))
    rest = n_models - full
    if rest:
        groups.append((rest, rest, max(1, cores // rest)))
    return groups


def _train_side_by_side(train_one, todo: list[tuple[int, str]], workers: int, stop: threading.Event) -> list:
    """Run `train_one(ci, c)` for every model in `workers` threads (torch ops release the GIL); the
    results come back in `todo` order. The first failure (or a cancel, or Ctrl-C here) stops the
    others at their next step; each saves its checkpoint then."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gan-model") as pool:
        futures = [pool.submit(train_one, ci, c) for ci, c in todo]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:                # Ctrl-C while waiting: the models stop at their next step
            stop.set()
            raise
        if any(f.done() and f.exception() is not None for f in futures):
            stop.set()
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])
        return [f.result() for f in futures]


# ---------------------------------------------------------------------------------------------
# Parameters (field defaults = quick preset)
# ---------------------------------------------------------------------------------------------
@dataclass
class GANParams:
    latent_dim: int = param(100, "Size of the noise vector z.", min=2, max=1024)
    steps: int = param(1000, "Generator updates per model (used when epochs is 0).", min=1, max=1_000_000)
    epochs: int = param(0, "If above 0: passes over the training images (mirror copies included) instead "
                           "of `steps`; steps = epochs x images / batch_size.", min=0, max=100_000)
    batch_size: int = param(32, "Images per batch (real batches are drawn with replacement).", min=2, max=1024)
    d_steps: int = param(1, "k: discriminator updates per generator update. Paper 000: k = 4 with lr_d = 2e-4 "
                            "starves G (vanishing gradients, or mode collapse with the non-saturating loss).",
                         min=1, max=10)
    loss: str = param("non_saturating", LOSS_HELP, choices=BCE_AND_HINGE)
    lr_g: float = param(2e-4, "Adam learning rate of the generator.", min=1e-6, max=1e-1)
    lr_d: float = param(2e-4, "Adam learning rate of the discriminator.", min=1e-6, max=1e-1)
    b1: float = param(0.5, "Adam beta1 (0.5 in DCGAN; 0 in WGAN-GP).", min=0.0, max=0.999)
    b2: float = param(0.999, "Adam beta2.", min=0.0, max=0.9999)
    g_width: int = param(128, "Generator width: hidden units of the first layer (then x2, x4).", min=4, max=2048)
    d_width: int = param(128, "Discriminator width: hidden units of the last layer (the first has x2).",
                         min=4, max=2048)
    hflip: bool = param(True, "Double the training images with mirror copies (paper 000 did).")
    diffaugment: str = param("color,translation,cutout",
                             "Differentiable augmentation of real and fake batches before D (DiffAugment): "
                             "keeps D from memorising a few dozen images.", choices=list(DIFFAUGMENT_CHOICES))
    sample_every: int = param(250, "Save a grid of generated images every N steps (0: only at the end).",
                              min=0)
    monitor_every: int = param(10, "Write the training monitors (losses, D(x), D(G(z)), gradient norm, "
                                   "diversity) every N steps.", min=1)
    checkpoint_every: int = param(250, "Write a resumable training checkpoint every N steps (0: only at the "
                                       "end and when cancelled).", min=0)
    keep_train_state: bool = param(False, "Keep D and the optimiser state after training, so a later run "
                                          "with more steps continues (large at 128 px).")


@dataclass
class DCGANParams(GANParams):
    steps: int = param(500, "Generator updates per model (used when epochs is 0).", min=1, max=1_000_000)
    g_width: int = param(32, "Generator base channels (x8, x4, x2, x1 from 4x4 outwards; DCGAN used 64).",
                         min=4, max=512)
    d_width: int = param(32, "Discriminator base channels (x1, x2, x4, x8 inwards; DCGAN used 64).",
                         min=4, max=512)


@dataclass
class CGANParams(DCGANParams):
    steps: int = param(2000, "Generator updates of the one model for all classes (used when epochs is 0; "
                             "2000 keeps the quick preset under 10 minutes on a 2-core CPU).",
                       min=1, max=1_000_000)


@dataclass
class ACGANParams(CGANParams):
    aux_weight: float = param(1.0, "Weight of the auxiliary class loss in D and G.", min=0.0, max=100.0)


@dataclass
class WGANGPParams(DCGANParams):
    steps: int = param(400, "Generator updates per model (used when epochs is 0).", min=1, max=1_000_000)
    batch_size: int = param(16, "Images per batch (real batches are drawn with replacement).", min=2, max=1024)
    d_steps: int = param(3, "n_critic: critic updates per generator update (5 in WGAN-GP and the paper "
                            "preset; 3 in quick to fit the CPU budget).", min=1, max=10)
    loss: str = param("wasserstein_gp", "wasserstein_gp: the critic's Wasserstein estimate with gradient "
                                        "penalty; the others as in the other GANs (the critic has no BatchNorm).",
                      choices=["wasserstein_gp", *BCE_AND_HINGE])
    lr_g: float = param(1e-4, "Adam learning rate of the generator.", min=1e-6, max=1e-1)
    lr_d: float = param(1e-4, "Adam learning rate of the critic.", min=1e-6, max=1e-1)
    g_width: int = param(24, "Generator base channels (x8, x4, x2, x1 from 4x4 outwards; DCGAN used 64).",
                         min=4, max=512)
    d_width: int = param(16, "Critic base channels (x1, x2, x4, x8 inwards; DCGAN used 64). Small in quick: "
                             "the critic runs d_steps times per step, with a double backward for the penalty.",
                         min=4, max=512)
    b1: float = param(0.0, "Adam beta1 (0 in WGAN-GP).", min=0.0, max=0.999)
    b2: float = param(0.9, "Adam beta2 (0.9 in WGAN-GP).", min=0.0, max=0.9999)
    gp_weight: float = param(10.0, "lambda: weight of the gradient penalty.", min=0.0, max=1000.0)
    critic_norm: str = param("none", "Normalisation in the critic: none (WGAN-GP's DCGAN runs) or layer "
                                     "(per-sample layer norm). Never BatchNorm: it breaks the penalty.",
                             choices=["none", "layer"])


# ---------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------
def _class_seed(seed: int, class_index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(class_index)]).generate_state(1)[0])


class GANSampler(Sampler):
    """Shared fit/sample/state of the five methods; subclasses set NAME, ARCH and MODE."""
    NAME = "gan"
    ARCH = "mlp"        # mlp | dcgan
    MODE = "none"       # none (one model per class) | cgan | acgan (one model for all classes)

    @property
    def conditional(self) -> bool:
        return self.MODE != "none"

    # -- networks ------------------------------------------------------------------------------------
    def _arch(self, shape: tuple[int, int, int], n_classes: int) -> dict:
        h, w, c = shape
        if h != w:
            raise ParamError(f"{self.NAME} needs square images, got {h}x{w}; set the run's image size "
                             f"(--image-size 64)")
        if self.ARCH == "dcgan":
            try:
                check_size(h)
            except ValueError as err:
                raise ParamError(f"{self.NAME}: {err}. Set the run's image size to 32, 64 or 128.") from None
        elif h < 8:
            raise ParamError(f"{self.NAME} needs images of at least 8 px, got {h}")
        p = self.params
        return {"arch": self.ARCH, "mode": self.MODE, "latent_dim": p.latent_dim, "channels": c, "img_size": h,
                "g_width": p.g_width, "d_width": p.d_width, "n_classes": n_classes if self.conditional else 0,
                "critic_norm": getattr(p, "critic_norm", None)}

    @staticmethod
    def _build(arch: dict, generator: torch.Generator | None = None):
        if arch["arch"] == "mlp":
            return build_mlp(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"],
                             arch["d_width"], generator=generator)
        norm = arch["critic_norm"] or "batch"
        return build_dcgan(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"],
                           arch["d_width"], n_classes=arch["n_classes"], conditional_d=arch["mode"] == "cgan",
                           aux=arch["mode"] == "acgan", norm=norm, generator=generator)

    def _checkpoint(self, tag: str) -> Path | None:
        wd = self.ctx.work_dir
        return Path(wd) / f"{self.NAME}_seed{self.ctx.seed}_{tag}.safetensors" if wd is not None else None

    # -- fit -----------------------------------------------------------------------------------------
    def fit(self, train: ImageSet, needed: dict[str, int]) -> "GANSampler":
        self._remember(train)
        self.arch_ = self._arch(train.shape, len(train.classes))
        self.generators_: dict[str, torch.nn.Module] = {}
        self.trained_: list[str] = []
        self.fit_info_: dict[str, dict] = {}
        device = torch.device(self.ctx.device)
        rep = self.ctx.reporter
        counts = train.counts()
        with cpu_threads(self.ctx.num_threads, device):
            if self.conditional:
                self.trained_ = [c for c in train.classes if counts[c] > 0]
                for c in self.trained_:
                    if needed.get(c, 0) > 0 and counts[c] < FEW_IMAGES:
                        rep.warn(f"{self.NAME}: class {c} has only {counts[c]} training images; with fewer than "
                                 f"~{FEW_IMAGES}, GANs tend to fail and oversampling is the safer choice")
                seed = _class_seed(self.ctx.seed, 10_000)
                G, D = self._build(self.arch_, torch.Generator().manual_seed(seed))
                trainer = AdversarialTrainer(
                    G, D, self.params, train.images, train.labels, device=device, seed=seed, reporter=rep,
                    method=self.NAME, class_name=None, mode=self.MODE, checkpoint=self._checkpoint("all"),
                    run_seed=self.ctx.seed)
                self.fit_info_["all"] = trainer.run()
                self.generators_["all"] = trainer.G.eval()
            else:
                todo = []
                for ci, c in enumerate(train.classes):
                    if needed.get(c, 0) <= 0:
                        continue
                    if counts[c] == 0:
                        rep.warn(f"{self.NAME}: class {c} has no training image; nothing to learn from")
                        continue
                    if counts[c] < FEW_IMAGES:
                        rep.warn(f"{self.NAME}: class {c} has only {counts[c]} training images; with fewer than "
                                 f"~{FEW_IMAGES}, GANs tend to fail and oversampling is the safer choice")
                    todo.append((ci, c))
                stop = threading.Event()

                def train_one(ci: int, c: str) -> tuple[dict, torch.nn.Module]:
                    seed = _class_seed(self.ctx.seed, ci)
                    G, D = self._build(self.arch_, torch.Generator().manual_seed(seed))
                    trainer = AdversarialTrainer(
                        G, D, self.params, train.of_class(c).images, None, device=device, seed=seed,
                        reporter=rep, method=self.NAME, class_name=c, mode="none",
                        checkpoint=self._checkpoint(f"class{ci}"), run_seed=self.ctx.seed, stop=stop)
                    return trainer.run(), trainer.G.eval()

                done, at = [], 0
                for count, workers, threads in side_by_side(len(todo), device):
                    group, at = todo[at:at + count], at + count
                    with cpu_threads(threads, device):
                        done += ([train_one(ci, c) for ci, c in group] if workers == 1
                                 else _train_side_by_side(train_one, group, workers, stop))
                for (_, c), (info, G) in zip(todo, done):
                    self.fit_info_[c] = info
                    self.generators_[c] = G
                    self.trained_.append(c)
        self._drop_training_checkpoints()
        return self

    def _drop_training_checkpoints(self) -> None:
        """Once every model is trained the per-model checkpoints only duplicate G (the sampler's own
        checkpoint holds it): remove them, unless keep_train_state asks to continue training later.
        Until then they let a fit that died in class 4 skip classes 1 to 3 when it is run again."""
        if self.ctx.work_dir is None or getattr(self.params, "keep_train_state", False):
            return
        for p in Path(self.ctx.work_dir).glob(f"{self.NAME}_seed{self.ctx.seed}_*.safetensors"):
            p.unlink(missing_ok=True)

    # -- sample --------------------------------------------------------------------------------------
    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        if n <= 0:
            return self._empty()
        if class_name not in self.classes_:
            raise ParamError(f"unknown class {class_name!r}; classes are {self.classes_}")
        if class_name not in self.trained_:
            why = "has no training image" if self.conditional else "needed no images when the model was fitted"
            raise ParamError(f"{self.NAME} has no generator for class {class_name!r} (it {why}); "
                             f"fit again with that class in `needed`")
        device = torch.device(self.ctx.device)
        G = self.generators_["all" if self.conditional else class_name].to(device)
        labels = torch.full((n,), self.classes_.index(class_name), dtype=torch.long) if self.conditional else None
        with cpu_threads(self.ctx.num_threads, device):
            imgs = generate(G, n, seed, labels, self.arch_["latent_dim"], device)
        return SampleBatch(imgs, [[] for _ in range(n)])

    # -- state ---------------------------------------------------------------------------------------
    def _slot(self, name: str) -> str:
        return "all" if name == "all" else f"c{self.classes_.index(name)}"

    def get_state(self):
        tensors = {f"{self._slot(k)}.{name}": v for k, G in self.generators_.items()
                   for name, v in G.state_dict().items()}
        return tensors, {"arch": self.arch_, "trained": self.trained_, "fit": self.fit_info_}

    def set_state(self, tensors, meta):
        self.arch_ = meta["arch"]
        self.trained_ = list(meta["trained"])
        self.fit_info_ = meta.get("fit", {})
        names = ["all"] if self.conditional else self.trained_
        self.generators_ = {}
        for name in names:
            G, _ = self._build(self.arch_)
            prefix = self._slot(name) + "."
            G.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            self.generators_[name] = G.to(torch.device(self.ctx.device)).eval()


class MLPGANSampler(GANSampler):
    NAME, ARCH, MODE = "gan", "mlp", "none"


class DCGANSampler(GANSampler):
    NAME, ARCH, MODE = "dcgan", "dcgan", "none"


class CGANSampler(GANSampler):
    NAME, ARCH, MODE = "cgan", "dcgan", "cgan"


class WGANGPSampler(GANSampler):
    NAME, ARCH, MODE = "wgan_gp", "dcgan", "none"


class ACGANSampler(GANSampler):
    NAME, ARCH, MODE = "acgan", "dcgan", "acgan"


# ---------------------------------------------------------------------------------------------
# Registry entries. Paper presets: GPU, the papers' settings; the image size is the run's
# (paper 000's DCGAN made 128 px images: run with --image-size 128).
# ---------------------------------------------------------------------------------------------
_PAPER_COMMON = {"diffaugment": "none", "hflip": True, "g_width": 64, "d_width": 64, "batch_size": 64,
                 "sample_every": 1000, "checkpoint_every": 1000, "monitor_every": 20}

register(MethodSpec(
    name="gan", family="gan", paper="Goodfellow et al. 2014, GAN (fully connected); paper 000",
    summary="Fully-connected generator and discriminator, one model per class. Paper 000 found it makes "
            "noise on real defect images even with all data: the reference point that DCGAN improves on.",
    params_cls=GANParams, sampler_cls=MLPGANSampler,
    presets={"paper": {**_PAPER_COMMON, "epochs": 600, "g_width": 256, "d_width": 256}}))

register(MethodSpec(
    name="dcgan", family="gan", paper="Radford et al. 2015, DCGAN; paper 000 (F1 0.7369 -> 0.8611)",
    summary="Convolutional GAN, one model per class. Keeps a defect's shading and texture; paper 000's best "
            "method with about 25 images per class (500 epochs, 128 px). Watch the diversity monitor for "
            "mode collapse.",
    params_cls=DCGANParams, sampler_cls=DCGANSampler,
    presets={"paper": {**_PAPER_COMMON, "epochs": 500}}))

register(MethodSpec(
    name="cgan", family="gan", paper="Mirza & Osindero 2014, conditional GAN (as a conditional DCGAN); paper 000",
    summary="One conditional DCGAN for all classes (label embedding in G, label plane in D), trained on "
            "class-balanced batches: minority classes share what the others teach. Paper 000's proposed next step.",
    params_cls=CGANParams, sampler_cls=CGANSampler, conditional=True,
    presets={"paper": {**_PAPER_COMMON, "epochs": 200}}))

register(MethodSpec(
    name="wgan_gp", family="gan", paper="Gulrajani et al. 2017, WGAN-GP (DCGAN generator, critic without BatchNorm)",
    summary="Wasserstein loss with gradient penalty and n_critic = 5 critic updates per generator update; "
            "more stable and less prone to mode collapse than DCGAN, slower per step. One model per class.",
    params_cls=WGANGPParams, sampler_cls=WGANGPSampler,
    presets={"paper": {**_PAPER_COMMON, "epochs": 500, "lr_g": 1e-4, "lr_d": 1e-4, "b1": 0.0, "b2": 0.9,
                       "d_steps": 5}}))

register(MethodSpec(
    name="acgan", family="gan", paper="Odena et al. 2017, ACGAN; seminar 004 (fails on minorities)",
    summary="One conditional DCGAN for all classes whose discriminator also classifies the image. Seminar "
            "004 reports it neglecting minority classes; class-balanced batches here counter that.",
    params_cls=ACGANParams, sampler_cls=ACGANSampler, conditional=True,
    presets={"paper": {**_PAPER_COMMON, "epochs": 200}}))
