"""The `linear` baseline's network: a fitted logistic regression on standardised pixels, as a torch module.

It takes what every classifier here takes (float images [B, C, H, W] in [-1, 1]) and returns class logits:
flatten in NCHW order, `(x - mean) / scale` per pixel, then `x @ weight.T + bias`. Its tensors are the only state,
so it is stored as the other classifiers are (a .safetensors of tensors + a JSON), nothing pickled.
"""
from __future__ import annotations

import torch
from torch import nn


class PixelLogistic(nn.Module):
    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("scale", torch.ones(num_features))
        self.linear = nn.Linear(num_features, num_classes)
        self.linear.requires_grad_(False)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "PixelLogistic":
        """The module of a state dict (its sizes read from the weight's shape)."""
        k, d = tensors["linear.weight"].shape
        model = cls(int(d), int(k))
        model.load_state_dict(tensors)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.reshape(len(x), -1).float() - self.mean) / self.scale
        return self.linear(z)
