"""An image pool of past generated images (Shrivastava et al. 2017, used by CycleGAN): a discriminator shown
older fakes beside the newest ones oscillates less. The pool is a module of buffers, so the loop's
checkpoints hold it and a resumed run continues with the same pool."""
from __future__ import annotations

import torch
from torch import nn


class ImagePool(nn.Module):
    """The last `size` generated images of one domain, as buffers (so a checkpoint holds them)."""

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def query(self, fakes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return fakes
        out = []
        for img in fakes.detach():
            n = int(self.filled)
            if n < self.size:                    # filling up: keep it, show it
                self.images[n] = img
                self.filled += 1
                out.append(img)
            elif float(torch.rand((), generator=gen, device=gen.device)) < 0.5:   # show an old one, keep the new
                j = int(torch.randint(self.size, (), generator=gen, device=gen.device))
                out.append(self.images[j].clone())
                self.images[j] = img
            else:
                out.append(img)
        return torch.stack(out)
