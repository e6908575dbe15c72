"""Networks of the GANs initialised from an autoencoder (BAGAN, BAGAN-GP, IDA-GAN, the three-player GAN).

The autoencoder is a DCGAN pair turned around: the `Encoder` is a DCGAN discriminator's stride-2 stack (layer
norm instead of BatchNorm, so a critic made from it can take a gradient penalty) ending in a 4x4 convolution
to the latent code (mean and log-variance for a variational encoder); the decoder is a `DCGANGenerator`.
After pre-training on every image of every class:

  ClassLatentGenerator  decoder(mu_c + L_c z): z ~ N(0, I) mapped to the Gaussian N(mu_c, L_c L_c^T) fitted to
                        the encoder's codes of class c (BAGAN, IDA-GAN). mu and L are buffers, saved with G.
  EmbeddedGenerator     decoder(z * e(c)): a label embedding multiplied into the latent (BAGAN-GP's
                        supervised autoencoder; the three-player GAN's generator).
  CodeDiscriminator     the encoder followed by linear heads on its code: `n_out` logits (1: real/fake;
                        K + 1: BAGAN's K classes + "fake"), an optional class head (IDA-GAN), an optional label
                        embedding multiplied into the code (BAGAN-GP's conditional critic).

Every discriminator returns `(logits, class_logits or None)` like the DCGAN ones.
"""
from __future__ import annotations

import torch
from torch import nn

from .dcgan import DCGANGenerator, _widths, init_weights


class Encoder(nn.Module):
    """Image -> code [B, latent_dim], or (mu, logvar) when `variational`."""

    def __init__(self, channels: int, img_size: int, width: int, latent_dim: int, variational: bool = False) -> None:
        super().__init__()
        ch = list(reversed(_widths(img_size, width)))          # img/2, ..., 4
        layers: list[nn.Module] = [nn.Conv2d(channels, ch[0], 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(ch, ch[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.GroupNorm(1, b), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.variational = variational
        self.latent_dim = latent_dim
        self.code = nn.Conv2d(ch[-1], latent_dim * (2 if variational else 1), 4, 1, 0)

    @property
    def out_dim(self) -> int:
        return self.code.out_channels

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The code layer's output, [B, out_dim] (for a variational encoder: mu and logvar side by side)."""
        return self.code(self.features(x)).flatten(1)

    def forward(self, x: torch.Tensor):
        h = self.raw(x)
        if self.variational:
            mu, logvar = h.chunk(2, dim=1)
            return mu, logvar.clamp(-10, 10)
        return h


class ClassLatentGenerator(nn.Module):
    """decoder(mu[y] + L[y] z), the class-conditional latent Gaussians of BAGAN / IDA-GAN."""

    def __init__(self, decoder: DCGANGenerator, n_classes: int, latent_dim: int) -> None:
        super().__init__()
        self.decoder = decoder
        self.register_buffer("mean", torch.zeros(n_classes, latent_dim))
        self.register_buffer("chol", torch.eye(latent_dim).repeat(n_classes, 1, 1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("this generator is conditional: pass the class labels")
        code = self.mean[y] + torch.bmm(self.chol[y], z.unsqueeze(-1).to(self.chol.dtype)).squeeze(-1)
        return self.decoder(code.to(z.dtype))


class EmbeddedGenerator(nn.Module):
    """decoder(z * e(y)): BAGAN-GP's generator (label embedding multiplied into the latent)."""

    def __init__(self, decoder: DCGANGenerator, n_classes: int, latent_dim: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.decoder = decoder
        self.embed = nn.Embedding(n_classes, latent_dim)
        init_weights(self.embed, generator)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("this generator is conditional: pass the class labels")
        return self.decoder(z * self.embed(y).to(z.dtype))


class CodeDiscriminator(nn.Module):
    """An encoder with linear heads on its code (see the module docstring)."""

    def __init__(self, encoder: Encoder, n_out: int = 1, aux_classes: int = 0, label_classes: int = 0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.out_dim
        self.label = nn.Embedding(label_classes, d) if label_classes else None
        self.head = nn.Linear(d, n_out)
        self.aux = nn.Linear(d, aux_classes) if aux_classes else None
        self.n_out = n_out
        for m in (self.label, self.head, self.aux):      # the heads; the encoder comes initialised
            if m is not None:
                init_weights(m, generator)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.encoder.raw(x)
        if self.label is not None:
            if y is None:
                raise ValueError("this discriminator is conditional: pass the class labels")
            h = h * self.label(y).to(h.dtype)
        out = self.head(h)
        out = out.flatten() if self.n_out == 1 else out
        return out, (self.aux(h) if self.aux is not None else None)


def build_autoencoder(latent_dim: int, channels: int, img_size: int, g_width: int, d_width: int, *,
                      variational: bool = False, generator: torch.Generator | None = None
                      ) -> tuple[Encoder, DCGANGenerator]:
    """Encoder and decoder, DCGAN-initialised from `generator`."""
    E = Encoder(channels, img_size, d_width, latent_dim, variational)
    Dec = DCGANGenerator(latent_dim, channels, img_size, g_width)
    init_weights(E, generator)
    init_weights(Dec, generator)
    return E, Dec
