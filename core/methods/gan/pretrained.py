"""What the GANs pre-trained on every class share (bagan, bagan_gp, ida_gan, three_player_gan): the
autoencoder stage, the hand-over of its weights to G and D, and the latent codes kept for the t-SNE.

Stage 1 (`AutoencoderTraining`, run by the loop as its own stage, class label "autoencoder"): an encoder
and a decoder trained on every training image of every class, the normal class included (batches drawn
from all images alike, as the papers do: that is where the plentiful normal images teach the surface).
  plain        x -> E -> Dec -> x'                           (BAGAN)
  supervised   x -> E -> * e(y) -> Dec -> x'                  (BAGAN-GP, the three-player GAN)
  variational  x -> E -> (mu, logvar) -> z ~ N(mu, s^2) -> Dec (IDA-GAN; loss + kl_weight x KL per pixel)
Monitors: recon_loss (mean squared error in [-1, 1] pixel units; kl for the VAE); its sample grid shows real
images (odd rows) above their reconstructions (even rows).
Stage 2: G starts as the decoder, D as the encoder (`from_autoencoder`), then the method's own adversarial
step (`training`) runs in the loop. Each stage has its own resumable checkpoint, so a run stopped in either
continues where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.bagan import build_autoencoder
from models.dcgan import init_weights

from ...params import param
from ...runtime import Placement
from ...training import LoopSettings, Trainer, TrainingProcess, Who, settings_fingerprint, to_uint8
from ...training.images import GRID_COLS
from .base import training_tensors
from .common import ConvGANParams
from .dcgan import conv_size
from .sampler import GANSampler

PRETRAIN = "autoencoder"          # the class label of stage 1's monitors and sample grids


@dataclass
class PretrainedParams(ConvGANParams):
    """The quick preset (CPU): 800 autoencoder steps, then 1200 adversarial steps of one model for all
    classes, 64 px in about 6 minutes on 2 cores."""
    steps: int = param(1200, "Adversarial generator updates after pre-training (used when epochs is 0).",
                       min=1, max=1_000_000)
    latent_dim: int = param(64, "Size of the latent code (the autoencoder's bottleneck and G's input).",
                            min=2, max=1024)
    pretrain_steps: int = param(800, "Autoencoder updates on every image of every class before the GAN.",
                                min=1, max=1_000_000)
    pretrain_lr: float = param(1e-3, "Adam learning rate of the autoencoder.", min=1e-6, max=1e-1)


class AutoencoderTraining(TrainingProcess):
    """Stage 1: an encoder and a decoder (and a label embedding when supervised) on every image."""
    divergence_hint = "Lower pretrain_lr."

    def __init__(self, E: nn.Module, Dec: nn.Module, embed: nn.Module | None, params, images: np.ndarray,
                 labels: np.ndarray, *, placement: Placement, seed: int, kl_weight: float = 0.0) -> None:
        self.p, self.place, self.kl_weight = params, placement, float(kl_weight)
        self.E, self.Dec = placement.module(E), placement.module(Dec)
        self.embed = embed.to(placement.device) if embed is not None else None
        self.networks = {"E": self.E, "Dec": self.Dec, **({"embed": self.embed} if embed is not None else {})}
        weights = [q for net in self.networks.values() for q in net.parameters()]
        self.opt = placement.adam(weights, params.pretrain_lr, (0.9, 0.999))
        self.optimizers = {"AE": self.opt}
        self.rng = torch.Generator(device=placement.device).manual_seed(int(seed))
        self.seed = int(seed)
        self._data_sha, self.x, self.y = training_tensors(images, labels, params.hflip, placement)
        self.n = int(self.x.shape[0])
        # the grid: one real image of each class in turn (fixed), its reconstruction in the row below
        first = [int(torch.nonzero(self.y == c)[0]) for c in torch.unique(self.y).tolist()]
        picks = [first[i % len(first)] for i in range(2 * GRID_COLS)]
        self.grid_idx = torch.tensor(picks, device=placement.device)

    def encode(self, x: torch.Tensor, y: torch.Tensor, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(the decoder's input, the KL term per image: 0 unless variational)."""
        out = self.E(x)
        kl = torch.zeros((), device=x.device)
        if isinstance(out, tuple):
            mu, logvar = out
            kl = 0.5 * (mu.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).sum(1).mean()
            z = mu
            if sample:
                eps = torch.randn(mu.shape, generator=self.rng, device=mu.device, dtype=mu.dtype)
                z = mu + eps * (0.5 * logvar).exp()
        else:
            z = out
        if self.embed is not None:
            z = z * self.embed(y).to(z.dtype)
        return z, kl

    def step(self, monitor: bool) -> dict[str, float] | None:
        idx = torch.randint(self.n, (self.p.batch_size,), generator=self.rng, device=self.x.device)
        x, y = self.x[idx].contiguous(memory_format=self.place.memory_format), self.y[idx]
        with self.place.autocast():
            z, kl = self.encode(x, y, sample=True)
            rec = self.Dec(z)
        recon = F.mse_loss(rec.float(), x.float())
        loss = recon + self.kl_weight * kl / x[0].numel()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if not monitor:
            return None
        stats = {"recon_loss": float(recon.detach())}
        if self.kl_weight:
            stats["kl"] = float(kl.detach())
        return stats

    @torch.no_grad()
    def _eval(self, fn):
        modes = {k: net.training for k, net in self.networks.items()}
        for net in self.networks.values():
            net.eval()
        try:
            return fn()
        finally:
            for k, net in self.networks.items():
                net.train(modes[k])

    def grid(self) -> np.ndarray:
        def rows():
            x, y = self.x[self.grid_idx], self.y[self.grid_idx]
            rec = self.Dec(self.encode(x, y, sample=False)[0])
            out = []
            for r in range(0, len(x), GRID_COLS):
                out += [x[r:r + GRID_COLS], rec[r:r + GRID_COLS]]
            return to_uint8(torch.cat(out))
        return self._eval(rows)

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's input for every training image (mean codes, no noise) and their labels."""
        def run():
            parts = [self.encode(self.x[i:i + 256], self.y[i:i + 256], sample=False)[0].float().cpu()
                     for i in range(0, self.n, 256)]
            return torch.cat(parts).numpy(), self.y.cpu().numpy()
        return self._eval(run)

    def fingerprint(self) -> dict:
        return {"settings": settings_fingerprint(self.p), "seed": self.seed, "data": self._data_sha,
                "kl_weight": self.kl_weight, "supervised": self.embed is not None}

    def summary(self) -> dict:
        return {"images": self.n}


def class_gaussians(codes: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class the mean and Cholesky factor of a Ledoit-Wolf (shrunk) covariance of its codes; classes
    without codes get N(0, I). Shrinkage keeps the covariance of a class with fewer images than latent
    dimensions well-conditioned."""
    from sklearn.covariance import LedoitWolf
    d = codes.shape[1]
    mean = np.zeros((n_classes, d), np.float64)
    chol = np.tile(np.eye(d), (n_classes, 1, 1))
    for c in range(n_classes):
        zc = codes[labels == c].astype(np.float64)
        if len(zc) == 0:
            continue
        mean[c] = zc.mean(0)
        if len(zc) > 1:
            cov = LedoitWolf().fit(zc).covariance_
            chol[c] = np.linalg.cholesky(cov + 1e-6 * np.eye(d) * max(1.0, float(np.trace(cov)) / d))
    return mean.astype(np.float32), chol.astype(np.float32)


def autoencoder_nets(arch: dict, generator: torch.Generator | None = None) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder `arch` describes (a method's `build` wraps them into G and D)."""
    return build_autoencoder(arch["latent_dim"], arch["channels"], arch["img_size"], arch["g_width"],
                             arch["d_width"], variational=arch["variational"], generator=generator)


class PretrainedGANSampler(GANSampler):
    """A GAN whose G and D start from an autoencoder trained on every class. A method sets NAME,
    `training`, `autoencoder` ("plain", "supervised" or "variational") and `build`."""
    conditional = True
    autoencoder = "plain"

    def arch(self, shape, n_classes):
        p = self.params
        return {"latent_dim": p.latent_dim, "channels": shape[2], "img_size": conv_size(self.NAME, shape),
                "g_width": p.g_width, "d_width": p.d_width, "n_classes": n_classes,
                "variational": self.autoencoder == "variational"}

    def build_autoencoder(self, seed: int) -> tuple[nn.Module, nn.Module, nn.Module | None]:
        a, gen = self.arch_, torch.Generator().manual_seed(int(seed))
        E, Dec = autoencoder_nets(a, gen)
        embed = None
        if self.autoencoder == "supervised":
            embed = nn.Embedding(a["n_classes"], a["latent_dim"])
            init_weights(embed, gen)
        return E, Dec, embed

    def init_latent(self, G: nn.Module, embed: nn.Module | None, codes: np.ndarray, labels: np.ndarray) -> None:
        """How G turns noise into a code of the class asked: the supervised autoencoder's label embedding
        (EmbeddedGenerator), else Gaussians fitted to each class's codes (ClassLatentGenerator)."""
        if embed is not None:
            G.embed.load_state_dict(embed.state_dict())
            return
        mean, chol = class_gaussians(codes, labels, self.arch_["n_classes"])
        G.mean.copy_(torch.from_numpy(mean))
        G.chol.copy_(torch.from_numpy(chol))

    def from_autoencoder(self, E: nn.Module, Dec: nn.Module, embed: nn.Module | None, codes: np.ndarray,
                         labels: np.ndarray, seed: int) -> tuple[nn.Module, nn.Module]:
        """G with the decoder's weights, D with the encoder's (its heads fresh from `seed`)."""
        G, D = self.build(self.arch_, torch.Generator().manual_seed(int(seed) + 1))
        G.decoder.load_state_dict(Dec.state_dict())
        D.encoder.load_state_dict(E.state_dict())
        self.init_latent(G, embed, codes, labels)
        return G, D

    def make_process(self, G, D, E, images, labels, seed, who, **extra):
        """The stage-2 training process (a method with a third network builds it from E and passes it)."""
        return self.training(G, D, self.params, images, labels, placement=Placement.for_device(self.ctx.device),
                             seed=seed, who=who, **extra)

    def _train(self, tag, images, labels, seed, cls, stop=None):
        p, place = self.params, Placement.for_device(self.ctx.device)
        E, Dec, embed = self.build_autoencoder(seed)
        ae = AutoencoderTraining(E, Dec, embed, p, images, labels, placement=place, seed=seed,
                                 kl_weight=getattr(p, "kl_weight", 0.0) if self.autoencoder == "variational" else 0.0)
        who_ae = Who(self.NAME, PRETRAIN, self.ctx.seed)
        pre = Trainer(ae, LoopSettings.from_params(p, p.pretrain_steps), who=who_ae, reporter=self.ctx.reporter,
                      checkpoint=self._checkpoint(PRETRAIN), stop=stop,
                      stage=f"pre-train {self.NAME}: autoencoder on every class").run()
        codes, code_labels = ae.codes()
        self.codes_ = (codes, code_labels)
        G, D = self.from_autoencoder(ae.E.cpu(), ae.Dec.cpu(), ae.embed.cpu() if ae.embed is not None else None,
                                     codes, code_labels, seed)
        who = Who(self.NAME, cls, self.ctx.seed)
        process = self.make_process(G, D, E, images, labels, seed, who)
        info = Trainer(process, LoopSettings.from_params(p, process.total), who=who, reporter=self.ctx.reporter,
                       checkpoint=self._checkpoint(tag), stop=stop, stage=f"train {self.NAME}: adversarial").run()
        return {**info, "pretrain": pre}, process.G.eval()

    # -- state: the generator, plus the latent codes of the training images --------------------------
    def get_state(self):
        tensors, meta = super().get_state()
        if getattr(self, "codes_", None) is not None:
            tensors["codes.z"] = torch.from_numpy(np.ascontiguousarray(self.codes_[0]))
            tensors["codes.y"] = torch.from_numpy(np.ascontiguousarray(self.codes_[1]))
        return tensors, meta

    def set_state(self, tensors, meta):
        super().set_state(tensors, meta)
        self.codes_ = ((tensors["codes.z"].numpy(), tensors["codes.y"].numpy()) if "codes.z" in tensors else None)
