"""CycleGAN networks (Zhu et al. 2017): a ResNet generator with instance norm and a PatchGAN discriminator.

Generator: reflection-padded 7x7 convolution, `n_down` stride-2 convolutions (width x2 each), `n_blocks`
residual blocks (two 3x3 convolutions with instance norm), `n_down` transposed convolutions back, a 7x7
convolution to the image channels and Tanh. The paper's 9 blocks at 256 px (6 at 128 px) and width 64.
Discriminator (PatchGAN): 4x4 convolutions, stride 2 for the first `n_layers`, LeakyReLU(0.2), instance norm
on all but the first, then a 1-channel map of logits, one per image patch (70x70 patches with 3 layers at
256 px). The LSGAN loss lives in the method.
"""
from __future__ import annotations

import torch
from torch import nn

from .dcgan import init_weights


class ResidualBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """`residual`: the output is the input plus a learnt change, clamped to [-1, 1] (x + tanh(net(x))), so the
    generator starts as the identity and keeps what it does not need to change (not in Zhu et al.)."""

    def __init__(self, channels: int = 1, width: int = 64, n_blocks: int = 9, n_down: int = 2,
                 residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, width, 7), nn.InstanceNorm2d(width),
                                   nn.ReLU(True)]
        ch = width
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1), nn.InstanceNorm2d(ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResidualBlock(ch) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.net(x)).clamp(-1, 1) if self.residual else self.net(x)


class PatchDiscriminator(nn.Module):
    def __init__(self, channels: int = 1, width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = width
        for i in range(1, n_layers + 1):
            out = width * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(ch, out, 4, stride, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        layers += [nn.Conv2d(ch, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_cyclegan(channels: int, g_width: int, d_width: int, n_blocks: int, d_layers: int, *,
                   residual: bool = False, generator: torch.Generator | None = None) -> dict[str, nn.Module]:
    """G_ab (source -> target), G_ba, D_a (judges the source domain), D_b; N(0, 0.02) from `generator`."""
    nets = {"G_ab": ResnetGenerator(channels, g_width, n_blocks, residual=residual),
            "G_ba": ResnetGenerator(channels, g_width, n_blocks, residual=residual),
            "D_a": PatchDiscriminator(channels, d_width, d_layers),
            "D_b": PatchDiscriminator(channels, d_width, d_layers)}
    for net in nets.values():
        init_weights(net, generator)
    return nets
