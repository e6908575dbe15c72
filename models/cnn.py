"""The evaluation classifiers: the papers' small CNN (3 conv blocks + 2 FC) and ResNet-18.

Both take float images [B, C, H, W] scaled to [-1, 1] and return class logits.
"""
from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """3 x (conv3x3 - BatchNorm - ReLU - maxpool 2) then FC - ReLU - dropout - FC, as in the papers.

    `stem_stride=2` lets the first conv work at half resolution: 4x less compute on CPU for a
    negligible loss on 64 px defects. Adaptive pooling before the first FC keeps the head the same
    size for any image size.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, hidden: int = 64,
                 dropout: float = 0.3, stem_stride: int = 2) -> None:
        super().__init__()
        chans = [in_channels, width, width * 2, width * 4]
        blocks = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            stride = stem_stride if i == 0 else 1
            blocks += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * 4, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision ResNet-18, random init, first conv adapted to the channel count."""
    from torchvision.models import resnet18 as tv_resnet18
    net = tv_resnet18(weights=None, num_classes=num_classes)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net
