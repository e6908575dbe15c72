"""The denoising network of the diffusion family: a class-conditional diffusers `UNet2DModel`.

One class embedding per training class plus one "null" class (index = number of classes) for classifier-free
guidance; the embedding is added to the time embedding (diffusers' `num_class_embeds`). Widths double after
the first level; self-attention only at the lowest resolution (the costly part on a CPU). Networks only: the
noise schedule, the training step and sampling live in core/methods/diffusion.
"""
from __future__ import annotations

import torch
from diffusers import UNet2DModel


def build_unet(channels: int, size: int, n_classes: int, width: int = 32, levels: int = 3,
               layers_per_block: int = 1, attention: bool = True, generator: torch.Generator | None = None
               ) -> UNet2DModel:
    """A UNet for `channels` x `size` x `size` images and `n_classes` classes (+1 null class)."""
    if size % (2 ** (levels - 1)):
        raise ValueError(f"a {levels}-level UNet needs a side divisible by {2 ** (levels - 1)}, got {size}")
    widths = tuple(width * min(2 ** i, 4) for i in range(levels))
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if attention:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    groups = min(32, width // 2) if width >= 8 else 1
    if generator is not None:                   # the same seed gives the same initial weights
        state = torch.random.get_rng_state()
        torch.manual_seed(int(torch.randint(2 ** 62, (1,), generator=generator)))
    try:
        return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                           down_block_types=tuple(down), up_block_types=tuple(up), block_out_channels=widths,
                           layers_per_block=layers_per_block, norm_num_groups=groups,
                           attention_head_dim=min(8, widths[-1]), num_class_embeds=n_classes + 1)
    finally:
        if generator is not None:
            torch.random.set_rng_state(state)
