"""DCGAN networks (Radford et al. 2015) for square images of 16 to 256 px, and their conditional variants.

Generator: z (plus a label embedding when conditional) -> 4x4 by a transposed convolution, then stride-2
transposed convolutions that double the side up to `img_size`; BatchNorm + ReLU, Tanh out. No pooling,
no fully-connected hidden layers.
Discriminator: stride-2 convolutions that halve the side down to 4x4, LeakyReLU(0.2), BatchNorm on every
layer but the first, then a 4x4 convolution to one logit (the sigmoid lives in the loss).
Channel widths follow the paper's 64 px layout (width x 8, x 4, x 2, x 1 from 4x4 outwards), capped at x 8
for larger images.

Variants, chosen by constructor arguments:
  cgan    G gets a label embedding concatenated to z; D gets the label as an extra input plane
          (`label_input=n_classes`), the concatenation of Mirza & Osindero (2014).
  acgan   G as cgan; D unconditional with a second head of class logits (`aux_classes`, Odena et al. 2017).
  wgan_gp D without BatchNorm (`norm="none"` or `"layer"`): the gradient penalty of Gulrajani et al. (2017)
          is per sample, which batch statistics would break.

Every discriminator returns `(logit [B], class_logits [B, K] or None)`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

MIN_SIZE, MAX_SIZE = 16, 256


def check_size(img_size: int) -> int:
    """Number of doublings from 4x4 to `img_size`; ValueError unless a power of two in [16, 256]."""
    if img_size < MIN_SIZE or img_size > MAX_SIZE or img_size & (img_size - 1):
        raise ValueError(f"DCGAN networks need a square image side that is a power of two from {MIN_SIZE} "
                         f"to {MAX_SIZE} (e.g. 32, 64 or 128); got {img_size}")
    return int(math.log2(img_size)) - 2


def _widths(img_size: int, width: int) -> list[int]:
    """Channels at sides 4, 8, ..., img_size/2."""
    sizes = [4 * 2 ** i for i in range(check_size(img_size))]
    return [width * min(8, img_size // (2 * s)) for s in sizes]


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """DCGAN initialisation (N(0, 0.02) weights, N(1, 0.02) norm scales, zero biases) from `generator`."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 1.0, generator=generator)


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, channels: int = 1, img_size: int = 64, width: int = 64,
                 n_classes: int = 0, embed_dim: int = 50) -> None:
        super().__init__()
        ch = _widths(img_size, width)
        self.embed = nn.Embedding(n_classes, embed_dim) if n_classes else None
        n_in = latent_dim + (embed_dim if n_classes else 0)
        layers: list[nn.Module] = [nn.ConvTranspose2d(n_in, ch[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(ch[0]), nn.ReLU(inplace=True)]
        for a, b in zip(ch, ch[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(ch[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is conditional: pass the class labels")
            z = torch.cat([z, self.embed(y).to(z.dtype)], 1)
        return self.net(z[:, :, None, None])


def _norm(kind: str, ch: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(ch)]
    if kind == "layer":
        return [nn.GroupNorm(1, ch)]   # layer norm over (C, H, W), per sample
    if kind == "none":
        return []
    raise ValueError(f"norm must be batch, layer or none, got {kind!r}")


class DCGANDiscriminator(nn.Module):
    def __init__(self, channels: int = 1, img_size: int = 64, width: int = 64, norm: str = "batch",
                 label_input: int = 0, aux_classes: int = 0) -> None:
        super().__init__()
        ch = list(reversed(_widths(img_size, width)))          # img/2, ..., 4
        self.img_size = img_size
        self.label_plane = nn.Embedding(label_input, img_size * img_size) if label_input else None
        c_in = channels + (1 if label_input else 0)
        layers: list[nn.Module] = [nn.Conv2d(c_in, ch[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(ch, ch[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), *_norm(norm, b), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(ch[-1], 1, 4, 1, 0, bias=False)
        self.aux = nn.Conv2d(ch[-1], aux_classes, 4, 1, 0) if aux_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.label_plane is not None:
            if y is None:
                raise ValueError("this discriminator is conditional: pass the class labels")
            plane = self.label_plane(y).view(-1, 1, self.img_size, self.img_size).to(x.dtype)
            x = torch.cat([x, plane], 1)
        h = self.features(x)
        logit = self.head(h).flatten()
        aux = self.aux(h).flatten(1) if self.aux is not None else None
        return logit, aux


def build_dcgan(latent_dim: int, channels: int, img_size: int, g_width: int, d_width: int, *,
                n_classes: int = 0, conditional_d: bool = False, aux: bool = False, norm: str = "batch",
                generator: torch.Generator | None = None) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """G and D of one variant, initialised from `generator` so the same seed gives the same nets.

    n_classes > 0 makes G conditional; `conditional_d` adds the label plane to D (cgan); `aux` adds the
    class head (acgan).
    """
    G = DCGANGenerator(latent_dim, channels, img_size, g_width, n_classes=n_classes)
    D = DCGANDiscriminator(channels, img_size, d_width, norm=norm,
                           label_input=n_classes if conditional_d else 0,
                           aux_classes=n_classes if aux else 0)
    init_weights(G, generator)
    init_weights(D, generator)
    return G, D
