"""`wgan_gp`: the Wasserstein GAN with gradient penalty of Gulrajani et al. (2017), one model per class.

The critic (a DCGAN discriminator without BatchNorm: the penalty is per sample, which batch statistics
would break) is updated `d_steps` = n_critic times per generator update (5 in the paper preset); its loss is
the Wasserstein estimate D(G(z)) - D(x) plus `gp_weight` x (|grad D(x_hat)| - 1)^2 on random interpolates
x_hat between real and fake images. More stable and less prone to mode collapse than DCGAN, slower per step.
The BCE and hinge losses are available too (with the same critic, without the penalty).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.dcgan import build_dcgan

from ...params import param
from ..base import MethodSpec
from ..registry import register
from .base import GANTraining
from .common import BCE_AND_HINGE, PAPER_COMMON, TINY, ConvGANParams, d_loss_fn, g_loss_fn
from .dcgan import conv_size
from .sampler import GANSampler


@dataclass
class WGANGPParams(ConvGANParams):
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


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator,
                     y: torch.Tensor | None = None) -> torch.Tensor:
    """Gulrajani et al.'s penalty on random interpolates between real and fake, in float32; `y`: the
    labels of a conditional critic (real and fake of the same classes)."""
    a = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=real.device)
    x_hat = (a * real.float() + (1 - a) * fake.detach().float()).requires_grad_(True)
    out, _ = D(x_hat) if y is None else D(x_hat, y)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class CriticStep(GANTraining):
    """n_critic updates of the critic (Wasserstein loss + gradient penalty), then one of the generator.
    With labelled training images (a conditional model, bagan_gp) G and the critic get the labels of the
    class-balanced real batch: fake labels are balanced too."""

    def step(self, monitor: bool) -> dict[str, float] | None:
        D, p = self.D, self.p
        # -- train the critic: n_critic updates, each on a fresh real batch and fresh noise -----------
        for k in range(p.d_steps):
            x, y = self.real_batch()
            z = self.noise(x.shape[0])
            with self.autocast():
                fake = self.fakes(z, y, keep_graph=k == p.d_steps - 1)   # the last ones train G below
                x_aug, f_aug = self.aug(x), self.aug(fake.detach())
                real_out, _ = D(x_aug, y)
                fake_out, _ = D(f_aug, y)
            loss_d = d_loss_fn(self.loss, real_out, fake_out)
            if self.loss == "wasserstein_gp":
                loss_d = loss_d + p.gp_weight * gradient_penalty(D, x_aug, f_aug, self.rng, y)
            self.update(self.opt_d, loss_d)
        # -- train the generator: raise the critic's score of its images -------------------------------
        with self.frozen(D):
            with self.autocast():
                out, _ = D(self.aug(fake), y)
            loss_g = g_loss_fn(self.loss, out)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        stats = self.stats(loss_d, loss_g, real_out, fake_out, fake, x) if monitor else None
        self.opt_g.step()
        return stats


class WGANGP(GANSampler):
    NAME = "wgan_gp"
    training = CriticStep

    def arch(self, shape, n_classes):
        p = self.params
        return {"latent_dim": p.latent_dim, "channels": shape[2], "img_size": conv_size(self.NAME, shape),
                "g_width": p.g_width, "d_width": p.d_width, "critic_norm": p.critic_norm}

    @staticmethod
    def build(arch, generator=None):
        return build_dcgan(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"],
                           arch["d_width"], norm=arch["critic_norm"], generator=generator)


register(MethodSpec(
    name="wgan_gp", family="gan", paper="Gulrajani et al. 2017, WGAN-GP (DCGAN generator, critic without BatchNorm)",
    summary="Wasserstein loss with gradient penalty and n_critic = 5 critic updates per generator update; "
            "more stable and less prone to mode collapse than DCGAN, slower per step. One model per class.",
    params_cls=WGANGPParams, sampler_cls=WGANGP,
    provenance="none",
    presets={"paper": {**PAPER_COMMON, "epochs": 500, "lr_g": 1e-4, "lr_d": 1e-4, "b1": 0.0, "b2": 0.9,
                       "d_steps": 5}, "tiny": TINY}))
