"""`GANSampler`: what the GAN methods' samplers share. One model per class that needs images (trained side
by side on CPU cores), or one conditional model for all classes; sampling from the saved generators; the
state a checkpoint holds. A method's sampler sets NAME, its `training` class and `conditional`, and builds its
networks (`arch`, `build`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...advice import FEW_IMAGES  # paper 000: below about 10 images per class GANs fail
from ...errors import ParamError
from ...imageset import ImageSet
from ...runtime import Placement, cpu_threads
from ...training import LoopSettings, Trainer, Who, train_models
from ...training.checkpoint import sub
from ..base import SampleBatch, Sampler
from .base import GANTraining
from .common import class_seed, generate


class GANSampler(Sampler):
    """Fit / sample / state shared by the GANs. A method's sampler sets NAME, `training` (its
    GANTraining subclass), `conditional`, and implements `arch` and `build`."""
    NAME = "gan"
    training: type[GANTraining] = GANTraining
    conditional = False

    # -- networks (per method) -------------------------------------------------------------------------
    def arch(self, shape: tuple[int, int, int], n_classes: int) -> dict:
        """The JSON-able description from which `build` makes the networks (saved with the sampler)."""
        raise NotImplementedError

    @staticmethod
    def build(arch: dict, generator: torch.Generator | None = None) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def networks(self, shape: tuple[int, int, int], n_classes: int) -> list[tuple[nn.Module, tuple]]:
        """G and D with a batch of noise and labels for G, of images and labels for D (the memory check)."""
        arch = self.arch(shape, n_classes)
        G, D = self.build(arch)
        b = int(getattr(self.params, "batch_size", 32))
        h, w, c = shape
        y = torch.zeros(b, dtype=torch.long)
        return [(G, (torch.zeros(b, arch["latent_dim"]), y)), (D, (torch.zeros(b, c, h, w), y))]

    def _square(self, shape: tuple[int, int, int]) -> int:
        h, w, _ = shape
        if h != w:
            raise ParamError(f"{self.NAME} needs square images, got {h}x{w}; set the run's image size "
                             f"(--image-size 64)")
        return h

    def _checkpoint(self, tag: str) -> Path | None:
        return self.ctx.checkpoint(self.NAME, tag)

    def _few_images(self, c: str, n: int) -> None:
        if n < FEW_IMAGES:
            self.ctx.reporter.warn(f"{self.NAME}: class {c} has only {n} training images; with fewer than "
                                   f"~{FEW_IMAGES}, GANs tend to fail and oversampling is the safer choice")

    def _train(self, tag: str, images: np.ndarray, labels: np.ndarray | None, seed: int, cls: str | None,
               stop=None) -> tuple[dict, nn.Module]:
        """One model: networks from `seed`, trained by the loop; returns (summary, G in eval mode)."""
        G, D = self.build(self.arch_, torch.Generator().manual_seed(seed))
        who = Who(self.NAME, cls, self.ctx.seed)
        process = self.training(G, D, self.params, images, labels, placement=Placement.for_device(self.ctx.device),
                                seed=seed, who=who)
        trainer = Trainer(process, LoopSettings.from_params(self.params, process.total), who=who,
                          reporter=self.ctx.reporter, checkpoint=self._checkpoint(tag), stop=stop)
        return trainer.run(), process.G.eval()

    # -- fit -----------------------------------------------------------------------------------------
    def fit(self, train: ImageSet, needed: dict[str, int]) -> "GANSampler":
        self._remember(train)
        self.arch_ = self.arch(train.shape, len(train.classes))
        self.generators_: dict[str, nn.Module] = {}
        self.trained_: list[str] = []
        self.fit_info_: dict[str, dict] = {}
        device = torch.device(self.ctx.device)
        counts = train.counts()
        with cpu_threads(self.ctx.num_threads, device):
            if self.conditional:
                self.trained_ = [c for c in train.classes if counts[c] > 0]
                for c in self.trained_:
                    if needed.get(c, 0) > 0:
                        self._few_images(c, counts[c])
                info, G = self._train("all", train.images, train.labels, class_seed(self.ctx.seed, 10_000), None)
                self.fit_info_["all"], self.generators_["all"] = info, G
            else:
                todo = []
                for ci, c in enumerate(train.classes):
                    if needed.get(c, 0) <= 0:
                        continue
                    if counts[c] == 0:
                        self.ctx.reporter.warn(f"{self.NAME}: class {c} has no training image; nothing to learn from")
                        continue
                    self._few_images(c, counts[c])
                    todo.append((ci, c))

                def job(ci: int, c: str):
                    return lambda stop: self._train(f"class{ci}", train.of_class(c).images, None,
                                                    class_seed(self.ctx.seed, ci), c, stop)

                done = train_models([job(ci, c) for ci, c in todo], device)
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
        self.ctx.drop_checkpoints(self.NAME)

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
            G, _ = self.build(self.arch_)
            G.load_state_dict(sub(tensors, self._slot(name) + "."))
            self.generators_[name] = G.to(torch.device(self.ctx.device)).eval()
