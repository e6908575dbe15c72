"""The fully-connected GAN of Goodfellow et al. (2014), as paper 000 used it (its Figure 4).

Generator: z -> Linear+BatchNorm+ReLU blocks (width, 2 width, 4 width) -> Linear -> Tanh -> image.
Discriminator: flattened image -> Linear+LeakyReLU(0.2) blocks (2 width, width) -> one logit (the sigmoid
is part of the loss). Kept as the paper's reference point: on real defect images it produces noise even
with all data, which is the reason DCGAN exists.

Both networks take an optional label argument and the discriminator returns `(logit, None)` so they are
drop-in replacements for the DCGAN networks in the GAN training steps (core/methods/gan/).
"""
from __future__ import annotations

import torch
from torch import nn

from .dcgan import init_weights


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int = 100, channels: int = 1, img_size: int = 64, width: int = 256) -> None:
        super().__init__()
        self.img_shape = (channels, img_size, img_size)
        dims = [latent_dim, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        layers += [nn.Linear(dims[-1], channels * img_size * img_size), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.img_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, channels: int = 1, img_size: int = 64, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * img_size * img_size, 2 * width), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(2 * width, width), nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        return self.net(x).view(-1), None


def build_mlp(latent_dim: int, channels: int, img_size: int, g_width: int, d_width: int,
              generator: torch.Generator | None = None) -> tuple[MLPGenerator, MLPDiscriminator]:
    """G and D, initialised from `generator` (N(0, 0.02) weights) so the same seed gives the same nets."""
    G = MLPGenerator(latent_dim, channels, img_size, g_width)
    D = MLPDiscriminator(channels, img_size, d_width)
    init_weights(G, generator)
    init_weights(D, generator)
    return G, D
