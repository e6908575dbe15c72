"""`GANTraining`: what every GAN's training step works on (G, D, their Adam optimisers, one random stream, the
training images on the device) and what the loop asks of it (monitor numbers, the fixed-noise grid, mode
collapse and vanishing-gradient warnings, the resume fingerprint). A method subclasses it with its `step`;
`sampler.GANSampler` fits and samples it."""
from __future__ import annotations

import contextlib
import hashlib
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ParamError
from ...runtime import Placement
from ...training import TrainingProcess, Who, mean_pairwise_distance, settings_fingerprint, to_signed, to_uint8
from ...training.images import GRID_COLS
from .common import BCE_LOSSES, DIVERGENCE_HINT, LOSSES, diff_augment, parse_policy


def training_tensors(images: np.ndarray, labels: np.ndarray | None, hflip: bool, placement: Placement
                     ) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    """The training images once on the device: uint8 -> [-1, 1] float NCHW, mirror copies when `hflip`,
    sorted by class when labelled. Returns (a SHA-1 of the images for resume fingerprints, x, y)."""
    sha = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()
    x = to_signed(images, placement.device)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=placement.device) if labels is not None else None
    if hflip:
        x = torch.cat([x, x.flip(3)])
        y = torch.cat([y, y]) if y is not None else None
    if y is not None:
        order = torch.argsort(y, stable=True)
        x, y = x[order], y[order]
    return sha, x.contiguous(memory_format=placement.memory_format), y


# ---------------------------------------------------------------------------------------------
# The training state a GAN step works on
# ---------------------------------------------------------------------------------------------
class GANTraining(TrainingProcess):
    """G, D, their Adam optimisers, one random stream and the training images on the device; each method
    subclasses it with its `step`. `labels` (class indexes) make real batches class-balanced; without
    them every batch is drawn from all images alike (one model per class)."""
    keep = ("G",)
    divergence_hint = DIVERGENCE_HINT

    def __init__(self, G: nn.Module, D: nn.Module, params: Any, images: np.ndarray,
                 labels: np.ndarray | None = None, *, placement: Placement, seed: int, who: Who,
                 grid_labels: list[int] | None = None) -> None:
        if len(images) == 0:
            raise ParamError(f"{who.method}: no training images for {who.cls or 'any class'}")
        if params.loss not in LOSSES:
            raise ParamError(f"{who.method}.loss must be one of {list(LOSSES)}, got {params.loss!r}")
        self.p, self.place, self.seed, self.who = params, placement, int(seed), who
        self.device = placement.device
        self.policy = parse_policy(getattr(params, "diffaugment", "none"))
        self.loss = params.loss
        self.G = placement.module(G)
        self.D = placement.module(D)
        self.G.train()
        self.D.train()
        self.opt_g = placement.adam(self.G.parameters(), params.lr_g, (params.b1, params.b2))
        self.opt_d = placement.adam(self.D.parameters(), params.lr_d, (params.b1, params.b2))
        self.rng = torch.Generator(device=self.device).manual_seed(self.seed)
        self.networks = {"G": self.G, "D": self.D}
        self.optimizers = {"G": self.opt_g, "D": self.opt_d}

        self._data_sha, self.x, self.y = training_tensors(images, labels, params.hflip, placement)
        if self.y is not None:                  # sorted by class: balanced draws index into class blocks
            present, counts = torch.unique_consecutive(self.y, return_counts=True)
            self.present, self.counts = present, counts
            self.offsets = torch.cumsum(counts, 0) - counts
        self.n_train = int(self.x.shape[0])
        steps_per_epoch = math.ceil(self.n_train / params.batch_size)
        self.total = int(params.epochs) * steps_per_epoch if getattr(params, "epochs", 0) else int(params.steps)

        # fixed noise for the sample grids (its own generator: grids never change the training stream)
        if grid_labels is None and self.y is not None:
            grid_labels = [int(c) for c in self.present.tolist()[:8] for _ in range(GRID_COLS)]
        n_grid = len(grid_labels) if grid_labels else 4 * GRID_COLS
        g = torch.Generator().manual_seed(self.seed + 7919)
        self.grid_z = torch.randn(n_grid, params.latent_dim, generator=g).to(self.device)
        self.grid_y = torch.tensor(grid_labels, device=self.device) if grid_labels else None
        self._warned: set[str] = set()
        self._streak: dict[str, int] = {}

    # -- what a step draws -------------------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.p.latent_dim, generator=self.rng, device=self.device)

    def real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch of real images (with their labels when conditional), drawn with replacement."""
        B = self.p.batch_size
        if self.y is None:
            idx = torch.randint(self.n_train, (B,), generator=self.rng, device=self.device)
        else:
            k = torch.randint(len(self.present), (B,), generator=self.rng, device=self.device)
            u = torch.rand(B, generator=self.rng, device=self.device)
            cnt = self.counts[k]
            idx = self.offsets[k] + torch.minimum((u * cnt).long(), cnt - 1)
        x = self.x[idx].contiguous(memory_format=self.place.memory_format)
        return x, (self.y[idx] if self.y is not None else None)

    def aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy, self.rng)

    def autocast(self):
        return self.place.autocast()

    def fakes(self, z: torch.Tensor, y: torch.Tensor | None = None, keep_graph: bool = True) -> torch.Tensor:
        """G(z | y); without its graph (no_grad) when no generator update will use these fakes."""
        with contextlib.nullcontext() if keep_graph else torch.no_grad():
            return self.G(z) if y is None else self.G(z, y)

    @staticmethod
    def update(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @contextlib.contextmanager
    def frozen(self, net: nn.Module):
        """No weight gradients for `net` inside (D while G learns to fool it)."""
        net.requires_grad_(False)
        try:
            yield
        finally:
            net.requires_grad_(True)

    def stats(self, loss_d: torch.Tensor, loss_g: torch.Tensor, real_out: torch.Tensor, fake_out: torch.Tensor,
              fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
        """The monitor numbers of a step (call after G's backward, before its optimiser step)."""
        with torch.no_grad():
            grads = [q.grad for q in self.G.parameters() if q.grad is not None]
            gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float())
                                                          for g in grads])) if grads else torch.zeros(())
            prob = self.loss in BCE_LOSSES
            r = torch.sigmoid(real_out.float()) if prob else real_out.float()
            f = torch.sigmoid(fake_out.float()) if prob else fake_out.float()
            return {"d_loss": loss_d.detach().item(), "g_loss": loss_g.detach().item(),
                    "g_grad_norm": float(gnorm), "d_real": float(r.mean()), "d_fake": float(f.mean()),
                    "diversity": mean_pairwise_distance(fake), "diversity_real": mean_pairwise_distance(real)}

    def step(self, monitor: bool) -> dict[str, float] | None:
        raise NotImplementedError

    # -- what the loop asks --------------------------------------------------------------------------
    @torch.no_grad()
    def grid(self) -> np.ndarray:
        was_training = self.G.training
        self.G.eval()
        try:
            return to_uint8(self.G(self.grid_z, self.grid_y))
        finally:
            self.G.train(was_training)

    def watch(self, stats: dict[str, float], step: int, total: int) -> list[str]:
        """Mode collapse and vanishing gradients, flagged once each, and only when they persist in the
        second half (an early collapse often recovers)."""
        out = []
        late = step >= max(10, total // 2)
        low = stats["diversity_real"] > 0 and stats["diversity"] < 0.2 * stats["diversity_real"]
        self._streak["collapse"] = self._streak.get("collapse", 0) + 1 if low else 0
        wins = self.loss in BCE_LOSSES and stats["d_real"] > 0.99 and stats["d_fake"] < 0.01
        self._streak["vanish"] = self._streak.get("vanish", 0) + 1 if wins else 0
        if late and self._streak["collapse"] >= 3 and "collapse" not in self._warned:
            self._warned.add("collapse")
            out.append(f"{self.who}: generated images are far less varied than real ones (diversity "
                       f"{stats['diversity']:.3f} vs {stats['diversity_real']:.3f}) at step {step}: likely mode "
                       f"collapse. Try diffaugment, a lower lr_d, fewer d_steps"
                       f"{'' if self.who.method in ('cgan', 'wgan_gp') else ', cgan or wgan_gp'}.")
        if late and self._streak["vanish"] >= 3 and "vanish" not in self._warned:
            self._warned.add("vanish")
            out.append(f"{self.who}: D separates real from fake almost perfectly (D(x) {stats['d_real']:.3f}, "
                       f"D(G(z)) {stats['d_fake']:.3f}) at step {step}: the generator gets little signal "
                       f"(vanishing gradients). Use loss=non_saturating, fewer d_steps or a lower lr_d.")
        return out

    def fingerprint(self) -> dict:
        return {"settings": settings_fingerprint(self.p), "seed": self.seed, "data": self._data_sha,
                "conditional": self.y is not None}

    def summary(self) -> dict:
        return {"images": self.n_train}
