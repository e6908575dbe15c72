"""`bagan`: the balancing GAN of Mariani et al. (2018), pre-trained on every class.

1) An autoencoder on every image of every class, the normal class included (`pretrained`, stage 1).
2) G starts as the decoder, D as the encoder with a dense head of K + 1 logits (the K classes and "fake");
   a class-conditional latent Gaussian N(mu_c, Sigma_c) is fitted to the encoder's codes of each class
   (Ledoit-Wolf shrinkage: a class with 16 images and a 64-d code still gets a usable covariance).
3) Adversarial training: D learns the class of real images and "fake" for generated ones; G, asked for class
   c (codes drawn from N(mu_c, Sigma_c)), is rewarded only when D calls its image class c. Real batches, and
   so the classes asked of G, are class-balanced.
Seminar 004: BAGAN's images are more varied than ACGAN's, and blurrier than IDA-GAN's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.bagan import ClassLatentGenerator, CodeDiscriminator

from ...params import param
from ..base import MethodSpec
from ..registry import register
from .base import GANTraining
from .common import PAPER_COMMON, TINY
from .pretrained import PretrainedGANSampler, PretrainedParams, autoencoder_nets

BAGAN_TINY = {**TINY, "pretrain_steps": 2}


@dataclass
class BAGANParams(PretrainedParams):
    loss: str = param("non_saturating", "BAGAN's loss: cross-entropy over the K classes + fake (D), and over "
                                        "the K classes for the class asked (G).", choices=["non_saturating"])


def realness(logits: torch.Tensor) -> torch.Tensor:
    """The logit of 'not fake' from K + 1 class logits (its sigmoid is 1 - p(fake))."""
    return torch.logsumexp(logits[:, :-1].float(), 1) - logits[:, -1].float()


class ClassOrFakeStep(GANTraining):
    """D: the class of real images, "fake" (index K) for generated ones; G: be called the class asked."""

    def step(self, monitor: bool) -> dict[str, float] | None:
        D, p = self.D, self.p
        for k in range(p.d_steps):
            x, y = self.real_batch()
            z = self.noise(x.shape[0])
            with self.autocast():
                fake = self.fakes(z, y, keep_graph=k == p.d_steps - 1)   # the last ones train G below
                real_out, _ = D(self.aug(x))
                fake_out, _ = D(self.aug(fake.detach()))
            fake_class = torch.full_like(y, D.n_out - 1)
            loss_d = F.cross_entropy(real_out.float(), y) + F.cross_entropy(fake_out.float(), fake_class)
            self.update(self.opt_d, loss_d)
        with self.frozen(D):
            with self.autocast():
                out, _ = D(self.aug(fake))
            loss_g = F.cross_entropy(out.float(), y)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        stats = None
        if monitor:
            stats = self.stats(loss_d, loss_g, realness(real_out), realness(fake_out), fake, x)
            stats["class_acc"] = float((real_out[:, :-1].argmax(1) == y).float().mean())
        self.opt_g.step()
        return stats


class BAGAN(PretrainedGANSampler):
    NAME = "bagan"
    training = ClassOrFakeStep
    autoencoder = "plain"

    @staticmethod
    def build(arch, generator=None):
        E, Dec = autoencoder_nets(arch, generator)
        K = arch["n_classes"]
        return (ClassLatentGenerator(Dec, K, arch["latent_dim"]),
                CodeDiscriminator(E, n_out=K + 1, generator=generator))


register(MethodSpec(
    name="bagan", family="gan", paper="Mariani et al. 2018, BAGAN; seminar 004",
    summary="Autoencoder pre-trained on every class (normal images included), then G = decoder, D = encoder "
            "with K classes + fake; each class drawn from a Gaussian fitted to its codes. Borrows the surface "
            "from the plentiful normal images. Measured here (magnetic_tile, quick, 3 seeds): -0.137 macro F1 "
            "against the strongest baseline, hurts.",
    params_cls=BAGANParams, sampler_cls=BAGAN, conditional=True,
    provenance="none",
    presets={"paper": {**PAPER_COMMON, "epochs": 150, "pretrain_steps": 5000}, "tiny": BAGAN_TINY}))
