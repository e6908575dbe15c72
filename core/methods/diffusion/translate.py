"""`ddpm_translate`: SDEdit (Meng et al. 2022) from real normal images with the `ddpm_cfg` model.

A real normal *training* image is noised to `strength` of the schedule and denoised conditioned on a defect
class (guided, base.py's `denoise`), so each synthetic defect keeps a real normal surface: the diffusion
counterpart of CycleGAN's idea. When the model trains below the run's size, the change it made is upsampled
and added to the full-size source, so the source's fine texture stays. Its provenance is the normal file. In
one run it shares the trained model with `ddpm_cfg` (one training for both).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...imageset import ImageSet
from ...params import param
from ...runtime import cpu_threads
from ...training import to_signed, to_uint8
from ..base import MethodSpec, SampleBatch, check_normal_source, each_once
from ..registry import register
from .base import PAPER, TINY, DDPMParams, denoise, resize
from .ddpm import DDPMSampler


@dataclass
class TranslateParams(DDPMParams):
    guidance: float = param(3.0, "Guidance weight w toward the defect class while denoising the noised normal "
                                 "image (0: the conditional model).", min=0.0, max=50.0)
    strength: float = param(0.6, "How far the normal image is noised before it is denoised as the defect class: "
                                 "0 returns it unchanged, 1 ignores it (plain generation).", min=0.0, max=1.0)
    min_images: int = param(5, "A defect class with fewer training images is refused before the run starts.",
                            min=1, max=1000)


class TranslateSampler(DDPMSampler):
    translates_normal_images = True
    NAME = "ddpm_translate"

    @classmethod
    def check_data(cls, params: TranslateParams, counts: dict[str, int], normal_class: str | None,
                   needed: dict[str, int] | None = None) -> str | None:
        return check_normal_source(counts, normal_class, needed, params.min_images,
                                   "starts every image from a real normal image")

    def fit(self, train: ImageSet, needed: dict[str, int]) -> TranslateSampler:
        super().fit(train, needed)
        src = train.of_class(self.ctx.normal_class)
        self.normal_images_, self.normal_sources_ = src.images, list(src.sources)
        return self

    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        if n <= 0:
            return self._empty()
        device = torch.device(self.ctx.device)
        labels = self._labels(class_name, n, device)
        rng = np.random.default_rng([int(seed), self.classes_.index(class_name)])
        k = len(self.normal_images_)                 # every normal image once before any twice, seeded order
        order = each_once(rng, k, n)
        g = torch.Generator(device=device).manual_seed(int(seed))
        unet, p, out = self.unet_.to(device), self.params, []
        with cpu_threads(self.ctx.num_threads, device):
            for i in range(0, n, p.sample_batch):
                full = self._to_full(self.normal_images_[order[i:i + p.sample_batch]], device)
                x0 = resize(full, self.arch_["size"])
                x = denoise(unet, self.arch_, labels[i:i + p.sample_batch], w=p.guidance, steps=p.sample_steps,
                            kind=p.scheduler, generator=g, x0=x0, strength=p.strength)
                # the change the model made, at full size, on the full-size source: its fine texture stays
                y = full if p.strength <= 0 else (full + resize(x - x0, full.shape[-1])).clamp(-1, 1)
                out.append(to_uint8(y))
                self.ctx.reporter.log(f"{self.NAME}: {min(n, i + p.sample_batch)}/{n} images of {class_name}")
                if self.ctx.sampled is not None:
                    self.ctx.sampled(min(n, i + p.sample_batch))
        return SampleBatch(np.concatenate(out), [[self.normal_sources_[j]] for j in order])

    @staticmethod
    def _to_full(images: np.ndarray, device: torch.device) -> torch.Tensor:
        return to_signed(images, device)

    def get_state(self):
        tensors, meta = super().get_state()
        tensors["normal.images"] = torch.from_numpy(np.ascontiguousarray(self.normal_images_))
        return tensors, {**meta, "normal_sources": self.normal_sources_}

    def set_state(self, tensors, meta):
        super().set_state(tensors, meta)
        self.normal_images_ = tensors["normal.images"].numpy()
        self.normal_sources_ = list(meta["normal_sources"])



register(MethodSpec(
    name="ddpm_translate", family="diffusion",
    paper="Meng et al. 2022, SDEdit, with the ddpm_cfg model (normal -> defect)",
    summary="Noises a real normal training image part way (strength) and denoises it as a defect class with the "
            "ddpm_cfg model, so every synthetic defect keeps a real normal surface; in one run both methods share "
            "the trained model. Needs the run's normal class. Measured here (magnetic_tile, quick): +0.048 macro F1 "
            "against the strongest baseline on one split, ahead in all 3 seeds but within noise (interval -0.030 "
            "to +0.125); with 5 folds (every real image tested) -0.005, interval -0.037 to +0.027, crack recall "
            "0.842 vs 0.772 at lower precision: no clear difference either way.",
    params_cls=TranslateParams, sampler_cls=TranslateSampler, provenance="source",
    presets={"paper": PAPER, "tiny": {**TINY, "min_images": 1}}))
