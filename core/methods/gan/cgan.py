"""`cgan`: the conditional GAN of Mirza & Osindero (2014), as a conditional DCGAN, one model for all classes;
paper 000's proposed next step.

Networks: `models.dcgan` with a label embedding concatenated to z in G and the label as an extra input plane
in D. Real batches are class-balanced, so a minority class is seen as often as the majority and borrows
what the other classes teach about the surface.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.dcgan import build_dcgan

from ...params import param
from ..base import MethodSpec
from ..registry import register
from .base import GANTraining
from .common import PAPER_COMMON, TINY, ConvGANParams, d_loss_fn, g_loss_fn
from .dcgan import conv_size
from .sampler import GANSampler


@dataclass
class CGANParams(ConvGANParams):
    steps: int = param(2000, "Generator updates of the one model for all classes (used when epochs is 0; "
                             "2000 keeps the quick preset under 10 minutes on a 2-core CPU).",
                       min=1, max=1_000_000)


class ConditionalStep(GANTraining):
    """`d_steps` updates of D(x | y), then one of G(z | y), on class-balanced real batches."""

    def step(self, monitor: bool) -> dict[str, float] | None:
        D, p = self.D, self.p
        # -- train the discriminator on real and fake images of the same classes ----------------------
        for k in range(p.d_steps):
            x, y = self.real_batch()
            z = self.noise(x.shape[0])
            with self.autocast():
                fake = self.fakes(z, y, keep_graph=k == p.d_steps - 1)   # the last ones train G below
                real_out, _ = D(self.aug(x), y)
                fake_out, _ = D(self.aug(fake.detach()), y)
            loss_d = d_loss_fn(self.loss, real_out, fake_out)
            self.update(self.opt_d, loss_d)
        # -- train the generator: D must take its images for real ones of the class asked ------------
        with self.frozen(D):
            with self.autocast():
                out, _ = D(self.aug(fake), y)
            loss_g = g_loss_fn(self.loss, out)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        stats = self.stats(loss_d, loss_g, real_out, fake_out, fake, x) if monitor else None
        self.opt_g.step()
        return stats


class CGAN(GANSampler):
    NAME = "cgan"
    training = ConditionalStep
    conditional = True

    def arch(self, shape, n_classes):
        p = self.params
        return {"latent_dim": p.latent_dim, "channels": shape[2], "img_size": conv_size(self.NAME, shape),
                "g_width": p.g_width, "d_width": p.d_width, "n_classes": n_classes}

    @staticmethod
    def build(arch, generator=None):
        return build_dcgan(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"],
                           arch["d_width"], n_classes=arch["n_classes"], conditional_d=True, generator=generator)


register(MethodSpec(
    name="cgan", family="gan", paper="Mirza & Osindero 2014, conditional GAN (as a conditional DCGAN); paper 000",
    summary="One conditional DCGAN for all classes (label embedding in G, label plane in D), trained on "
            "class-balanced batches: minority classes share what the others teach. Paper 000's proposed next step.",
    params_cls=CGANParams, sampler_cls=CGAN, conditional=True,
    provenance="none",
    presets={"paper": {**PAPER_COMMON, "epochs": 200}, "tiny": TINY}))
