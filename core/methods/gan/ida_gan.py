"""`ida_gan`: the imbalanced data augmentation GAN of Yang & Zhou (2021), pre-trained on every class.

A variational autoencoder instead of BAGAN's plain one (`pretrained`, stage 1: reconstruction + kl_weight x
KL), whose mean codes give the class latent Gaussians N(mu_c, Sigma_c); G starts as the VAE's decoder and D as
its encoder. D has two outputs instead of BAGAN's K + 1 (whose "fake" class contradicts its class task): a
real/fake logit and a class head trained on real images; G is rewarded for fooling D and for being
classified as the class asked. Seminar 004: sharper and more varied than BAGAN.
"""
from __future__ import annotations

from dataclasses import dataclass


from models.bagan import ClassLatentGenerator, CodeDiscriminator

from ...params import param
from ..base import MethodSpec
from ..registry import register
from .acgan import AuxiliaryClassifierStep
from .bagan import BAGAN_TINY
from .common import BCE_AND_HINGE, LOSS_HELP, PAPER_COMMON
from .pretrained import PretrainedGANSampler, PretrainedParams, autoencoder_nets


@dataclass
class IDAGANParams(PretrainedParams):
    loss: str = param("non_saturating", LOSS_HELP, choices=BCE_AND_HINGE)
    aux_weight: float = param(1.0, "Weight of the class loss in D (real images) and G.", min=0.0, max=100.0)
    kl_weight: float = param(1.0, "Weight of the VAE's KL term (per pixel, beside the per-pixel "
                                  "reconstruction error).", min=0.0, max=100.0)


class RealClassStep(AuxiliaryClassifierStep):
    """ACGAN's step with the class head trained on real images only."""
    classify_fakes = False


class IDAGAN(PretrainedGANSampler):
    NAME = "ida_gan"
    training = RealClassStep
    autoencoder = "variational"

    @staticmethod
    def build(arch, generator=None):
        E, Dec = autoencoder_nets(arch, generator)
        K = arch["n_classes"]
        return (ClassLatentGenerator(Dec, K, arch["latent_dim"]),
                CodeDiscriminator(E, n_out=1, aux_classes=K, generator=generator))


register(MethodSpec(
    name="ida_gan", family="gan", paper="Yang & Zhou 2021, IDA-GAN; seminar 004",
    summary="BAGAN with a variational autoencoder pre-trained on every class, and a discriminator with a "
            "real/fake output beside a class output. Measured here (magnetic_tile, quick, 3 seeds): -0.151 "
            "macro F1 against the strongest baseline, hurts.",
    params_cls=IDAGANParams, sampler_cls=IDAGAN, conditional=True,
    provenance="none",
    presets={"paper": {**PAPER_COMMON, "epochs": 150, "pretrain_steps": 5000}, "tiny": BAGAN_TINY}))
