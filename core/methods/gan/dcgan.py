"""`dcgan`: the convolutional GAN of Radford et al. (2015), one model per class; paper 000's best method
(F1 0.7369 -> 0.8611 with about 25 images per class, 500 epochs, 128 px).

Networks: `models.dcgan` (transposed-conv generator, strided-conv discriminator with BatchNorm). Trained with
the same step as the fully-connected GAN (gan.py: Goodfellow et al.'s Algorithm 1, `d_steps` D updates
per G update); what DCGAN changed is the architecture. Image sizes: a power of two from 16 to 256 (32, 64
and 128 are the tested ones).
"""
from __future__ import annotations

from dataclasses import dataclass

from models.dcgan import build_dcgan, check_size

from ...errors import ParamError
from ..base import MethodSpec
from ..registry import register
from .common import PAPER_COMMON, TINY, ConvGANParams
from .gan import AdversarialStep
from .sampler import GANSampler


@dataclass
class DCGANParams(ConvGANParams):
    pass


def conv_size(name: str, shape: tuple[int, int, int]) -> int:
    """The side of square images the convolutional networks can take, or a ParamError saying what to set."""
    h, w, _ = shape
    if h != w:
        raise ParamError(f"{name} needs square images, got {h}x{w}; set the run's image size (--image-size 64)")
    try:
        check_size(h)
    except ValueError as err:
        raise ParamError(f"{name}: {err}. Set the run's image size to 32, 64 or 128.") from None
    return h


class DCGAN(GANSampler):
    NAME = "dcgan"
    training = AdversarialStep

    def arch(self, shape, n_classes):
        p = self.params
        return {"latent_dim": p.latent_dim, "channels": shape[2], "img_size": conv_size(self.NAME, shape),
                "g_width": p.g_width, "d_width": p.d_width}

    @staticmethod
    def build(arch, generator=None):
        return build_dcgan(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"],
                           arch["d_width"], generator=generator)


register(MethodSpec(
    name="dcgan", family="gan", paper="Radford et al. 2015, DCGAN; paper 000 (F1 0.7369 -> 0.8611)",
    summary="Convolutional GAN, one model per class. Keeps a defect's shading and texture; paper 000's best "
            "method with about 25 images per class (500 epochs, 128 px). Watch the diversity monitor for "
            "mode collapse.",
    params_cls=DCGANParams, sampler_cls=DCGAN,
    provenance="none",
    presets={"paper": {**PAPER_COMMON, "epochs": 500}, "tiny": TINY}))
