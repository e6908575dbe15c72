"""The evaluation classifiers: the papers' small CNN (3 conv blocks + 2 FC) and torchvision backbones.

Every network here takes float images [B, C, H, W] scaled to [-1, 1] and returns class logits. A torchvision
backbone trained from scratch gets its first conv rebuilt for the channel count; one that starts from ImageNet
weights keeps its 3-channel first conv and sits behind `ImageNetInput` (grey repeated to RGB, ImageNet mean and
std), so every caller feeds the same tensors. Loading weights is not done here (no I/O in models/).
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


TORCHVISION_ARCHS = ("resnet18", "resnet34", "resnet50", "efficientnet_b0", "efficientnet_b3")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def torchvision_net(arch: str, in_channels: int, num_classes: int) -> nn.Module:
    """A torchvision classifier, random init (never a download), with `num_classes` outputs and its first conv
    rebuilt for `in_channels` when that is not 3 (same kernel, stride and padding; fresh weights)."""
    import torchvision.models as tvm
    if arch not in TORCHVISION_ARCHS:
        raise ValueError(f"unknown torchvision arch {arch!r}; one of {', '.join(TORCHVISION_ARCHS)}")
    net = getattr(tvm, arch)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        parent, name = first_conv(net)
        old = getattr(parent, name)
        setattr(parent, name, nn.Conv2d(in_channels, old.out_channels, old.kernel_size, stride=old.stride,
                                        padding=old.padding, bias=old.bias is not None))
    return net


def resnet18(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision ResNet-18, random init, first conv adapted to the channel count."""
    return torchvision_net("resnet18", in_channels, num_classes)


def first_conv(net: nn.Module) -> tuple[nn.Module, str]:
    """(parent module, attribute name) of a torchvision backbone's first conv."""
    if hasattr(net, "conv1"):                      # ResNets
        return net, "conv1"
    return net.features[0], "0"                    # EfficientNets: features[0] is Conv2dNormActivation


def head(net: nn.Module) -> nn.Linear:
    """The final linear layer of a torchvision classifier (what fine-tuning replaces and trains fastest)."""
    if hasattr(net, "fc"):
        return net.fc
    return net.classifier[-1]


def head_prefix(net: nn.Module) -> str:
    """The state-dict prefix of `head(net)` ("fc." or "classifier.1.")."""
    return "fc." if hasattr(net, "fc") else f"classifier.{len(net.classifier) - 1}."


class ImageNetInput(nn.Module):
    """[-1, 1] images of 1 or 3 channels -> what an ImageNet-trained backbone was trained on: [0, 1], grey
    repeated to RGB, ImageNet mean and std. Holds no weights (its constants are not in the state dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 1.0) * 0.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std


class Pretrained(nn.Module):
    """A torchvision backbone started from ImageNet weights, behind `ImageNetInput`. `net` is the plain
    torchvision network: its state dict is what an exported weights file holds."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.input = ImageNetInput()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input(x))
