"""Images in and out of training: uint8 to [-1, 1] tensors and back, sample grids as PNG, a diversity measure."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_path

GRID_COLS = 8


def to_signed(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [N,H,W,C] -> float32 [N,C,H,W] in [-1, 1] on `device` (x / 127.5 - 1; `to_uint8` undoes it). Every
    network of the project (classifier, GANs, translation, diffusion) takes its images this way."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[B,C,H,W] in [-1, 1] -> uint8 [B,H,W,C]."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def mean_pairwise_distance(x: torch.Tensor, limit: int = 64) -> float:
    """Mean pairwise RMS pixel distance of a batch (0 = all images identical)."""
    x = x[:limit].detach().float().flatten(1)
    if x.shape[0] < 2:
        return 0.0
    return float(torch.pdist(x).mean() / math.sqrt(x.shape[1]))


def save_grid(images: np.ndarray, path: Path, cols: int = GRID_COLS) -> None:
    """A PNG of uint8 [N,H,W,C] images, `cols` per row, 2 px gaps."""
    from PIL import Image
    n, h, w, c = images.shape
    rows = max(1, math.ceil(n / cols))
    canvas = np.full((rows * (h + 2) + 2, cols * (w + 2) + 2, c), 128, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + k * (w + 2):2 + k * (w + 2) + w] = images[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas, "L" if c == 1 else "RGB")
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
