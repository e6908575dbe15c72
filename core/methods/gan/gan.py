"""`gan`: the fully-connected GAN of Goodfellow et al. (2014), one model per class, as paper 000 used it.

Paper 000 found it makes noise on real defect images even with all data: the reference point that DCGAN
improves on. Networks: `models.gan` (MLP generator and discriminator).

The training step is Goodfellow et al.'s Algorithm 1 with k = `d_steps`: k discriminator updates, each on a
fresh real batch and fresh noise, then one generator update, which reuses the fakes of the last D update (as
the PyTorch DCGAN example does; the fresh noise of Algorithm 1 would cost one more G forward per step).
DCGAN trains with the same step (dcgan.py).
"""
from __future__ import annotations

from models.gan import build_mlp

from ...errors import ParamError
from ..base import MethodSpec
from ..registry import register
from .base import GANTraining
from .common import PAPER_COMMON, TINY, GANParams, d_loss_fn, g_loss_fn
from .sampler import GANSampler


class AdversarialStep(GANTraining):
    """Algorithm 1: `d_steps` updates of D, then one of G; unconditional (one model per class)."""

    def step(self, monitor: bool) -> dict[str, float] | None:
        D, p = self.D, self.p
        # -- train the discriminator: k updates, each on a fresh real batch and fresh noise -----------
        for k in range(p.d_steps):
            x, _ = self.real_batch()
            z = self.noise(x.shape[0])
            with self.autocast():
                fake = self.fakes(z, keep_graph=k == p.d_steps - 1)   # the last ones train G below
                real_out, _ = D(self.aug(x))
                fake_out, _ = D(self.aug(fake.detach()))
            loss_d = d_loss_fn(self.loss, real_out, fake_out)
            self.update(self.opt_d, loss_d)
        # -- train the generator: fool D on the last fakes (no D weight gradients) ---------------------
        with self.frozen(D):
            with self.autocast():
                out, _ = D(self.aug(fake))
            loss_g = g_loss_fn(self.loss, out)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        stats = self.stats(loss_d, loss_g, real_out, fake_out, fake, x) if monitor else None
        self.opt_g.step()
        return stats


class MLPGAN(GANSampler):
    NAME = "gan"
    training = AdversarialStep

    def arch(self, shape, n_classes):
        h = self._square(shape)
        if h < 8:
            raise ParamError(f"{self.NAME} needs images of at least 8 px, got {h}")
        p = self.params
        return {"latent_dim": p.latent_dim, "channels": shape[2], "img_size": h, "g_width": p.g_width,
                "d_width": p.d_width}

    @staticmethod
    def build(arch, generator=None):
        return build_mlp(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"], arch["d_width"],
                         generator=generator)


register(MethodSpec(
    name="gan", family="gan", paper="Goodfellow et al. 2014, GAN (fully connected); paper 000",
    summary="Fully-connected generator and discriminator, one model per class. Paper 000 found it makes "
            "noise on real defect images even with all data: the reference point that DCGAN improves on.",
    params_cls=GANParams, sampler_cls=MLPGAN,
    provenance="none",
    presets={"paper": {**PAPER_COMMON, "epochs": 600, "g_width": 256, "d_width": 256}, "tiny": TINY}))
