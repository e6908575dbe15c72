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


GRID_MIN_SIDE = 64      # each image of a saved grid is enlarged (nearest neighbour) to at least this many pixels
LABEL_WIDTH = 90        # pixels left of each row for its label


def save_grid(images: np.ndarray, path: Path, cols: int = GRID_COLS, row_labels: list[str] | None = None) -> None:
    """A PNG of uint8 [N,H,W,C] images, `cols` per row, 2 px gaps, each image enlarged to `GRID_MIN_SIDE`;
    with `row_labels` one labelled row each (e.g. one row per class)."""
    from PIL import Image, ImageDraw
    n, h, w, c = images.shape
    scale = max(1, math.ceil(GRID_MIN_SIDE / max(1, min(h, w))))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    if row_labels:
        cols = max(1, math.ceil(n / len(row_labels)))
    rows = max(1, math.ceil(n / cols))
    left = LABEL_WIDTH if row_labels else 0
    canvas = np.full((rows * (h + 2) + 2, left + cols * (w + 2) + 2, c), 128, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        canvas[2 + r * (h + 2):2 + r * (h + 2) + h, left + 2 + k * (w + 2):left + 2 + k * (w + 2) + w] = images[i]
    img = Image.fromarray(canvas[..., 0] if c == 1 else canvas, "L" if c == 1 else "RGB")
    if row_labels:
        draw = ImageDraw.Draw(img)
        ink = 255 if c == 1 else (255, 255, 255)
        for r, label in enumerate(row_labels[:rows]):
            draw.text((4, 2 + r * (h + 2) + h // 2 - 5), str(label)[:14], fill=ink)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
