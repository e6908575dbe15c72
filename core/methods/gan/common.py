"""What the GAN methods share: their parameters, losses, DiffAugment, the training data on the device, and
the sampler that fits one model per class or one for all classes (`base`). Each method's own file (gan.py,
dcgan.py, cgan.py, wgan_gp.py, acgan.py) holds its networks, its training step and its registry entry; the
loop that runs the step (steps, cancel, monitors, grids, checkpoints) is `core.training.Trainer`.

What matters with 20-100 training images: the training set lives on the device as one tensor (no
DataLoader), `hflip` doubles it with mirror images (as paper 000 did), and `diffaugment` applies the same
random colour / translation / cutout to real and fake batches before D (Zhao et al. 2020, DiffAugment), so D
cannot memorise the few real images. Conditional training draws real batches class-balanced, so a minority
class is seen as often as the majority.

Losses (on logits, in float32):
  saturating       D: -log D(x) - log(1 - D(G(z)))    G: log(1 - D(G(z)))  (vanishes when D wins: paper 000)
  non_saturating   D: as above                        G: -log D(G(z))
  hinge            D: relu(1 - D(x)) + relu(1 + D(G(z)))   G: -D(G(z))
  wasserstein_gp   D: D(G(z)) - D(x) (+ the gradient penalty, wgan_gp.py)   G: -D(G(z))

Monitors (every `monitor_every` steps): d_loss, g_loss, g_grad_norm (L2 norm of all generator gradients),
d_real / d_fake (mean D(x) and D(G(z)): probabilities for the two BCE losses, raw critic scores for hinge and
wasserstein_gp), diversity (mean pairwise RMS distance of a generated batch, in [-1, 1] pixel units) beside
diversity_real (the same for the real batch): a generator in mode collapse has diversity far below
diversity_real. ACGAN adds aux_acc (accuracy of D's class head on real images).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ParamError
from ...params import param
from ...training import to_uint8

LOSSES = ("saturating", "non_saturating", "hinge", "wasserstein_gp")
BCE_LOSSES = ("saturating", "non_saturating")
BCE_AND_HINGE = ["saturating", "non_saturating", "hinge"]
LOSS_HELP = ("Adversarial loss. saturating: G minimises log(1 - D(G(z))), the original minimax, whose "
             "gradient vanishes when D wins (paper 000); non_saturating: G maximises log D(G(z)); hinge: "
             "margin loss.")
DIFFAUGMENT_CHOICES = ("none", "color", "translation", "cutout", "color,translation", "color,cutout",
                       "translation,cutout", "color,translation,cutout")
DIVERGENCE_HINT = "Lower lr_d / lr_g, or use loss=non_saturating."
# Presets the GANs share. Paper: the papers' settings for a GPU (the image size is the run's: paper 000's
# DCGAN made 128 px images, run with --image-size 128). Tiny: two steps for the common checks.
PAPER_COMMON = {"diffaugment": "none", "hflip": True, "g_width": 64, "d_width": 64, "batch_size": 64,
                "sample_every": 1000, "checkpoint_every": 1000, "monitor_every": 20}
TINY = {"steps": 2, "batch_size": 4}


# ---------------------------------------------------------------------------------------------
# Parameters every GAN has (field defaults = the CPU quick preset)
# ---------------------------------------------------------------------------------------------
@dataclass
class GANParams:
    latent_dim: int = param(100, "Size of the noise vector z.", min=2, max=1024)
    steps: int = param(1000, "Generator updates per model (used when epochs is 0).", min=1, max=1_000_000)
    epochs: int = param(0, "If above 0: passes over the training images (mirror copies included) instead "
                           "of `steps`; steps = epochs x images / batch_size.", min=0, max=100_000)
    batch_size: int = param(32, "Images per batch (real batches are drawn with replacement).", min=2, max=1024)
    d_steps: int = param(1, "k: discriminator updates per generator update. Paper 000: k = 4 with lr_d = 2e-4 "
                            "starves G (vanishing gradients, or mode collapse with the non-saturating loss).",
                         min=1, max=10)
    loss: str = param("non_saturating", LOSS_HELP, choices=BCE_AND_HINGE)
    lr_g: float = param(2e-4, "Adam learning rate of the generator.", min=1e-6, max=1e-1)
    lr_d: float = param(2e-4, "Adam learning rate of the discriminator.", min=1e-6, max=1e-1)
    b1: float = param(0.5, "Adam beta1 (0.5 in DCGAN; 0 in WGAN-GP).", min=0.0, max=0.999)
    b2: float = param(0.999, "Adam beta2.", min=0.0, max=0.9999)
    g_width: int = param(128, "Generator width: hidden units of the first layer (then x2, x4).", min=4, max=2048)
    d_width: int = param(128, "Discriminator width: hidden units of the last layer (the first has x2).",
                         min=4, max=2048)
    hflip: bool = param(True, "Double the training images with mirror copies (paper 000 did).")
    diffaugment: str = param("color,translation,cutout",
                             "Differentiable augmentation of real and fake batches before D (DiffAugment): "
                             "keeps D from memorising a few dozen images.", choices=list(DIFFAUGMENT_CHOICES))
    sample_every: int = param(250, "Save a grid of generated images every N steps (0: only at the end).",
                              min=0)
    monitor_every: int = param(10, "Write the training monitors (losses, D(x), D(G(z)), gradient norm, "
                                   "diversity) every N steps.", min=1)
    checkpoint_every: int = param(250, "Write a resumable training checkpoint every N steps (0: only at the "
                                       "end and when cancelled).", min=0)
    keep_train_state: bool = param(False, "Keep D and the optimiser state after training, so a later run "
                                          "with more steps continues (large at 128 px).")


@dataclass
class ConvGANParams(GANParams):
    """The convolutional GANs' widths (DCGAN's base channels) and quick-preset length."""
    steps: int = param(500, "Generator updates per model (used when epochs is 0).", min=1, max=1_000_000)
    g_width: int = param(32, "Generator base channels (x8, x4, x2, x1 from 4x4 outwards; DCGAN used 64).",
                         min=4, max=512)
    d_width: int = param(32, "Discriminator base channels (x1, x2, x4, x8 inwards; DCGAN used 64).",
                         min=4, max=512)


# ---------------------------------------------------------------------------------------------
# Losses and DiffAugment
# ---------------------------------------------------------------------------------------------
def d_loss_fn(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if kind in BCE_LOSSES:
        return F.softplus(-real).mean() + F.softplus(fake).mean()   # BCE with targets 1 and 0
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wasserstein_gp":
        return fake.mean() - real.mean()
    raise ParamError(f"loss must be one of {list(LOSSES)}, got {kind!r}")


def g_loss_fn(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "saturating":
        return -F.softplus(fake).mean()                 # log(1 - sigmoid(l)) = -softplus(l)
    if kind == "non_saturating":
        return F.softplus(-fake).mean()                 # -log sigmoid(l)
    if kind in ("hinge", "wasserstein_gp"):
        return -fake.mean()
    raise ParamError(f"loss must be one of {list(LOSSES)}, got {kind!r}")


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Random colour / translation (1/8 of the side) / cutout (half the side) of a [B,C,H,W] batch, the
    same policy for real and fake batches, differentiable (Zhao et al. 2020)."""
    if not policy:
        return x
    B, C, H, W = x.shape
    dev, dt = x.device, x.dtype

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, device=dev, dtype=torch.float32).to(dt)

    if "color" in policy:
        x = x + (rand(B, 1, 1, 1) - 0.5)                                   # brightness
        if C > 1:
            m = x.mean(1, keepdim=True)
            x = (x - m) * (rand(B, 1, 1, 1) * 2) + m                       # saturation
        m = x.mean((1, 2, 3), keepdim=True)
        x = (x - m) * (rand(B, 1, 1, 1) + 0.5) + m                         # contrast
    if "translation" in policy:
        sh, sw = int(H * 0.125 + 0.5), int(W * 0.125 + 0.5)
        ty = torch.randint(-sh, sh + 1, (B, 1, 1), generator=gen, device=dev)
        tx = torch.randint(-sw, sw + 1, (B, 1, 1), generator=gen, device=dev)
        gy = (torch.arange(H, device=dev)[None, :, None] + ty + 1).clamp(0, H + 1)
        gx = (torch.arange(W, device=dev)[None, None, :] + tx + 1).clamp(0, W + 1)
        xp = F.pad(x, [1, 1, 1, 1])                                        # zeros where it shifts in
        b = torch.arange(B, device=dev)[:, None, None]
        x = xp[b, :, gy, gx].permute(0, 3, 1, 2)
    if "cutout" in policy:
        ch, cw = int(H * 0.5 + 0.5), int(W * 0.5 + 0.5)
        oy = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), generator=gen, device=dev)
        ox = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), generator=gen, device=dev)
        ys = torch.arange(H, device=dev)[None, :, None]
        xs = torch.arange(W, device=dev)[None, None, :]
        top, left = oy - ch // 2, ox - cw // 2
        inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
        x = x * (~inside).to(dt)[:, None]
    return x.contiguous(memory_format=torch.channels_last)


def parse_policy(text: str) -> tuple[str, ...]:
    if text not in DIFFAUGMENT_CHOICES:
        raise ParamError(f"diffaugment must be one of {list(DIFFAUGMENT_CHOICES)}, got {text!r}")
    return () if text == "none" else tuple(text.split(","))


@torch.no_grad()
def generate(G: nn.Module, n: int, seed: int, labels: torch.Tensor | None = None, latent_dim: int = 100,
             device: torch.device | str = "cpu", chunk: int = 256) -> np.ndarray:
    """n images (uint8 [n,H,W,C]) from G in eval mode. The noise is drawn on the CPU from `seed`, so the
    same seed gives the same images whatever the batch chunking, and the same noise on every device."""
    device = torch.device(device)
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(int(seed)))
    was_training = G.training
    G.eval()
    out = []
    try:
        for i in range(0, n, chunk):
            y = labels[i:i + chunk].to(device) if labels is not None else None
            out.append(to_uint8(G(z[i:i + chunk].to(device), y)))
    finally:
        G.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,), np.uint8)


def class_seed(seed: int, class_index: int) -> int:
    """The seed of one per-class model (10_000: the one conditional model) of a run seed."""
    return int(np.random.SeedSequence([int(seed), int(class_index)]).generate_state(1)[0])
