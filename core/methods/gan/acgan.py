"""`acgan`: the auxiliary-classifier GAN of Odena et al. (2017), one conditional DCGAN for all classes whose
discriminator also classifies the image.

Seminar 004 reports it neglecting minority classes; class-balanced real batches counter that here. Networks:
`models.dcgan` with a label embedding in G and a second head of class logits on D (D itself is unconditional).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from models.dcgan import build_dcgan

from ...params import param
from ..base import MethodSpec
from ..registry import register
from .base import GANTraining
from .cgan import CGAN, CGANParams
from .common import PAPER_COMMON, TINY, d_loss_fn, g_loss_fn


@dataclass
class ACGANParams(CGANParams):
    aux_weight: float = param(1.0, "Weight of the auxiliary class loss in D and G.", min=0.0, max=100.0)


class AuxiliaryClassifierStep(GANTraining):
    """D learns real vs fake and the class of both (of real images only when `classify_fakes` is False, as
    in IDA-GAN); G learns to fool D and to be recognised as its class."""
    classify_fakes = True

    def step(self, monitor: bool) -> dict[str, float] | None:
        D, p, w = self.D, self.p, self.p.aux_weight
        # -- train the discriminator: real/fake head plus the class head on real and fake images ------
        for k in range(p.d_steps):
            x, y = self.real_batch()
            z = self.noise(x.shape[0])
            with self.autocast():
                fake = self.fakes(z, y, keep_graph=k == p.d_steps - 1)   # the last ones train G below
                real_out, real_aux = D(self.aug(x))
                fake_out, fake_aux = D(self.aug(fake.detach()))
            loss_d = d_loss_fn(self.loss, real_out, fake_out)
            aux = F.cross_entropy(real_aux.float(), y)
            if self.classify_fakes:
                aux = aux + F.cross_entropy(fake_aux.float(), y)
            loss_d = loss_d + w * aux
            self.update(self.opt_d, loss_d)
        # -- train the generator: fool D, and be classified as the class asked -------------------------
        with self.frozen(D):
            with self.autocast():
                out, out_aux = D(self.aug(fake))
            loss_g = g_loss_fn(self.loss, out)
            loss_g = loss_g + w * F.cross_entropy(out_aux.float(), y)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        stats = None
        if monitor:
            stats = self.stats(loss_d, loss_g, real_out, fake_out, fake, x)
            stats["aux_acc"] = float((real_aux.argmax(1) == y).float().mean())
        self.opt_g.step()
        return stats


class ACGAN(CGAN):
    """cgan's sampler (one conditional model for all classes), with the class head on D instead of the label
    plane."""
    NAME = "acgan"
    training = AuxiliaryClassifierStep

    @staticmethod
    def build(arch, generator=None):
        return build_dcgan(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"],
                           arch["d_width"], n_classes=arch["n_classes"], aux=True, generator=generator)


register(MethodSpec(
    name="acgan", family="gan", paper="Odena et al. 2017, ACGAN; seminar 004 (fails on minorities)",
    summary="One conditional DCGAN for all classes whose discriminator also classifies the image. Seminar "
            "004 reports it neglecting minority classes; class-balanced batches here counter that.",
    params_cls=ACGANParams, sampler_cls=ACGAN, conditional=True,
    provenance="none",
    presets={"paper": {**PAPER_COMMON, "epochs": 200}, "tiny": TINY}))
