"""The adversarial training loop shared by every GAN method (`gan`, `dcgan`, `cgan`, `wgan_gp`, `acgan`).

    trainer = AdversarialTrainer(G, D, params, images, labels, device=..., seed=..., reporter=...,
                                 method="dcgan", class_name="MT_Crack", checkpoint=path)
    trainer.run()                       # trains; monitors, sample grids and checkpoints on the way
    images = generate(G, n, seed)       # uint8 [n, H, W, C] from a trained generator

One step is Goodfellow et al.'s Algorithm 1 with k = `d_steps`: k discriminator updates, each on a fresh real
batch and fresh noise, then one generator update (which reuses the fakes of the last D update, as the
PyTorch DCGAN example does; the fresh noise of Algorithm 1 would cost one more G forward per step).
`params` is the method's parameters dataclass; the fields read here are the ones every GAN method shares
(latent_dim, steps, epochs, batch_size, d_steps, loss, lr_g, lr_d, b1, b2, hflip, diffaugment, sample_every,
monitor_every, checkpoint_every, keep_train_state) plus gp_weight and aux_weight where a method has them.

Losses (on logits, in float32):
  saturating       D: -log D(x) - log(1 - D(G(z)))    G: log(1 - D(G(z)))  (vanishes when D wins: paper 000)
  non_saturating   D: as above                        G: -log D(G(z))
  hinge            D: relu(1 - D(x)) + relu(1 + D(G(z)))   G: -D(G(z))
  wasserstein_gp   D: D(G(z)) - D(x) + gp_weight * (|grad D(x_hat)| - 1)^2   G: -D(G(z))

What matters with 20-100 training images: the training set lives on the device as one tensor (no
DataLoader), `hflip` doubles it with mirror images (as paper 000 did), and `diffaugment` applies the same
random colour / translation / cutout to real and fake batches before D (Zhao et al. 2020, DiffAugment), so D
cannot memorise the few real images. Conditional training draws real batches class-balanced, so a minority
class is seen as often as the majority.

Monitors (event kind "monitor", every `monitor_every` steps): d_loss, g_loss, g_grad_norm (L2 norm of all
generator gradients), d_real / d_fake (mean D(x) and D(G(z)): probabilities for the two BCE losses, raw critic
scores for hinge and wasserstein_gp), diversity (mean pairwise RMS distance of a generated batch, in [-1, 1]
pixel units) beside diversity_real (the same for the real batch): a generator in mode collapse has diversity
far below diversity_real. ACGAN adds aux_acc (accuracy of D's class head on real images).

Checkpoints: with a `checkpoint` path, the full training state (G, D, both Adam states, the random
generator and the step) is written there as safetensors every `checkpoint_every` steps and when the run is
cancelled; a later trainer with the same settings and data resumes from it and continues the same run
(bit-identical on CPU). At the end only G is kept unless `keep_train_state` (then raising `steps` later
continues training).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import Cancelled, ParamError
from .events import Reporter
from .runtime import tune_allocator


class Stopped(Cancelled):
    """A model stopped because one trained beside it (same fit) failed or was interrupted."""


LOSSES = ("saturating", "non_saturating", "hinge", "wasserstein_gp")
BCE_LOSSES = ("saturating", "non_saturating")
DIFFAUGMENT_CHOICES = ("none", "color", "translation", "cutout", "color,translation", "color,cutout",
                       "translation,cutout", "color,translation,cutout")
# changing these does not change what is being trained, so a checkpoint stays valid for resuming
RESUME_FREE = ("steps", "epochs", "sample_every", "monitor_every", "checkpoint_every", "keep_train_state")
GRID_COLS = 8


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------
def d_loss_fn(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    if kind in BCE_LOSSES:
        return F.softplus(-real).mean() + F.softplus(fake).mean()   # BCE with targets 1 and 0
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wasserstein_gp":
        return fake.mean() - real.mean()
    raise ParamError(f"loss must be one of {list(LOSSES)}, got {kind!r}")


def g_loss_fn(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "saturating":
        return -F.softplus(fake).mean()                 # log(1 - sigmoid(l)) = -softplus(l)
    if kind == "non_saturating":
        return F.softplus(-fake).mean()                 # -log sigmoid(l)
    if kind in ("hinge", "wasserstein_gp"):
        return -fake.mean()
    raise ParamError(f"loss must be one of {list(LOSSES)}, got {kind!r}")


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None,
                     gen: torch.Generator) -> torch.Tensor:
    """Gulrajani et al.'s penalty on random interpolates between real and fake, in float32."""
    a = torch.rand(real.shape[0], 1, 1, 1, generator=gen, device=real.device)
    x_hat = (a * real.float() + (1 - a) * fake.detach().float()).requires_grad_(True)
    out, _ = D(x_hat, y)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020): differentiable, the same policy for real and fake
# ---------------------------------------------------------------------------------------------
def diff_augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Random colour / translation (1/8 of the side) / cutout (half the side) of a [B,C,H,W] batch."""
    if not policy:
        return x
    B, C, H, W = x.shape
    dev, dt = x.device, x.dtype

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, device=dev, dtype=torch.float32).to(dt)

    if "color" in policy:
        x = x + (rand(B, 1, 1, 1) - 0.5)                                   # brightness
        if C > 1:
            m = x.mean(1, keepdim=True)
            x = (x - m) * (rand(B, 1, 1, 1) * 2) + m                       # saturation
        m = x.mean((1, 2, 3), keepdim=True)
        x = (x - m) * (rand(B, 1, 1, 1) + 0.5) + m                         # contrast
    if "translation" in policy:
        sh, sw = int(H * 0.125 + 0.5), int(W * 0.125 + 0.5)
        ty = torch.randint(-sh, sh + 1, (B, 1, 1), generator=gen, device=dev)
        tx = torch.randint(-sw, sw + 1, (B, 1, 1), generator=gen, device=dev)
        gy = (torch.arange(H, device=dev)[None, :, None] + ty + 1).clamp(0, H + 1)
        gx = (torch.arange(W, device=dev)[None, None, :] + tx + 1).clamp(0, W + 1)
        xp = F.pad(x, [1, 1, 1, 1])                                        # zeros where it shifts in
        b = torch.arange(B, device=dev)[:, None, None]
        x = xp[b, :, gy, gx].permute(0, 3, 1, 2)
    if "cutout" in policy:
        ch, cw = int(H * 0.5 + 0.5), int(W * 0.5 + 0.5)
        oy = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), generator=gen, device=dev)
        ox = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), generator=gen, device=dev)
        ys = torch.arange(H, device=dev)[None, :, None]
        xs = torch.arange(W, device=dev)[None, None, :]
        top, left = oy - ch // 2, ox - cw // 2
        inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
        x = x * (~inside).to(dt)[:, None]
    return x.contiguous(memory_format=torch.channels_last)


def parse_policy(text: str) -> tuple[str, ...]:
    if text not in DIFFAUGMENT_CHOICES:
        raise ParamError(f"diffaugment must be one of {list(DIFFAUGMENT_CHOICES)}, got {text!r}")
    return () if text == "none" else tuple(text.split(","))


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
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
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """`torch.set_num_threads(n)` for the duration (CPU only), restoring the previous value."""
    if not n or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def generate(G: nn.Module, n: int, seed: int, labels: torch.Tensor | None = None, latent_dim: int = 100,
             device: torch.device | str = "cpu", chunk: int = 256) -> np.ndarray:
    """n images (uint8 [n,H,W,C]) from G in eval mode. The noise is drawn on the CPU from `seed`, so the
    same seed gives the same images whatever the batch chunking, and the same noise on every device."""
    device = torch.device(device)
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(int(seed)))
    was_training = G.training
    G.eval()
    out = []
    try:
        for i in range(0, n, chunk):
            y = labels[i:i + chunk].to(device) if labels is not None else None
            out.append(to_uint8(G(z[i:i + chunk].to(device), y)))
    finally:
        G.train(was_training)
    return np.concatenate(out) if out else np.zeros((0,), np.uint8)


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for pid, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{prefix}.{pid}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def _load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------
class AdversarialTrainer:
    """Trains one G/D pair on one image set. `mode`: "none" (unconditional), "cgan" (labels into G and
    D), "acgan" (labels into G, class head on D). `labels` are class indices (needed unless "none")."""

    def __init__(self, G: nn.Module, D: nn.Module, params: Any, images: np.ndarray,
                 labels: np.ndarray | None = None, *, device: torch.device | str = "cpu", seed: int = 0,
                 reporter: Reporter | None = None, method: str = "gan", class_name: str | None = None,
                 mode: str = "none", checkpoint: str | Path | None = None, grid_labels: list[int] | None = None,
                 run_seed: int | None = None, stop: threading.Event | None = None) -> None:
        if mode not in ("none", "cgan", "acgan"):
            raise ValueError(f"mode must be none, cgan or acgan, got {mode!r}")
        if mode != "none" and labels is None:
            raise ValueError(f"mode {mode} needs labels")
        if len(images) == 0:
            raise ParamError(f"{method}: no training images for {class_name or 'any class'}")
        tune_allocator()                      # same numbers, no page faults per step (core.runtime)
        self.stop = stop                      # set when a model trained beside this one failed
        self.p = params
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.mem = torch.channels_last       # the fast layout for convs on CUDA and on CPU (oneDNN): 1.12x on CPU
        self.amp = self.cuda and torch.cuda.is_bf16_supported()
        self.reporter = reporter or Reporter()
        self.method, self.class_name, self.mode = method, class_name, mode
        self.seed = int(seed)
        self.run_seed = self.seed if run_seed is None else int(run_seed)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.policy = parse_policy(getattr(params, "diffaugment", "none"))
        self.loss = params.loss
        if self.loss not in LOSSES:
            raise ParamError(f"{method}.loss must be one of {list(LOSSES)}, got {self.loss!r}")
        self.gp_weight = float(getattr(params, "gp_weight", 10.0))
        self.aux_weight = float(getattr(params, "aux_weight", 1.0))

        self.G = G.to(self.device, memory_format=self.mem)
        self.D = D.to(self.device, memory_format=self.mem)
        self.G.train()
        self.D.train()
        fused = {"fused": True} if self.cuda else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=params.lr_g, betas=(params.b1, params.b2), **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=params.lr_d, betas=(params.b1, params.b2), **fused)
        self.gen = torch.Generator(device=self.device).manual_seed(self.seed)

        # the data, once, on the device: uint8 -> [-1, 1] float, NCHW; mirror copies when hflip
        self._fingerprint_data = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float()
        x = x.div_(127.5).sub_(1)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self.device) if labels is not None else None
        if params.hflip:
            x = torch.cat([x, x.flip(3)])
            y = torch.cat([y, y]) if y is not None else None
        if y is not None:                       # sorted by class: balanced draws index into class blocks
            order = torch.argsort(y, stable=True)
            x, y = x[order], y[order]
            present, counts = torch.unique_consecutive(y, return_counts=True)
            self.present, self.counts = present, counts
            self.offsets = torch.cumsum(counts, 0) - counts
        self.x = x.contiguous(memory_format=self.mem)
        self.y = y
        self.n_train = int(x.shape[0])
        steps_per_epoch = math.ceil(self.n_train / params.batch_size)
        self.total = int(params.epochs) * steps_per_epoch if getattr(params, "epochs", 0) else int(params.steps)
        self.step = 0

        # fixed noise for the sample grids (its own generator: grids never change the training stream)
        if grid_labels is None and y is not None:
            grid_labels = [int(c) for c in self.present.tolist()[:8] for _ in range(GRID_COLS)]
        n_grid = len(grid_labels) if grid_labels else 4 * GRID_COLS
        g = torch.Generator().manual_seed(self.seed + 7919)
        self.grid_z = torch.randn(n_grid, params.latent_dim, generator=g).to(self.device)
        self.grid_y = torch.tensor(grid_labels, device=self.device) if grid_labels else None
        self._warned: set[str] = set()
        self._streak: dict[str, int] = {}
        self.last_monitor: dict[str, float] = {}

    # -- batches ---------------------------------------------------------------------------------
    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.p.latent_dim, generator=self.gen, device=self.device)

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        B = self.p.batch_size
        if self.y is None:
            idx = torch.randint(self.n_train, (B,), generator=self.gen, device=self.device)
        else:
            k = torch.randint(len(self.present), (B,), generator=self.gen, device=self.device)
            u = torch.rand(B, generator=self.gen, device=self.device)
            cnt = self.counts[k]
            idx = self.offsets[k] + torch.minimum((u * cnt).long(), cnt - 1)
        x = self.x[idx].contiguous(memory_format=self.mem)
        return x, (self.y[idx] if self.y is not None else None)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy, self.gen)

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()

    # -- one training step -------------------------------------------------------------------------
    def train_step(self, monitor: bool = False) -> dict[str, float] | None:
        G, D, p = self.G, self.D, self.p
        g_cond = self.mode != "none"
        d_cond = self.mode == "cgan"
        aux = self.mode == "acgan"
        for k in range(p.d_steps):
            x, y = self._real_batch()
            yg = y if g_cond else None
            yd = y if d_cond else None
            z = self._noise(x.shape[0])
            with self._autocast():
                if k == p.d_steps - 1:
                    fake = G(z, yg)             # kept with its graph for the generator update below
                else:
                    with torch.no_grad():
                        fake = G(z, yg)
                x_aug, f_aug = self._aug(x), self._aug(fake.detach())
                real_out, real_aux = D(x_aug, yd)
                fake_out, fake_aux = D(f_aug, yd)
            loss_d = d_loss_fn(self.loss, real_out, fake_out)
            if aux:
                loss_d = loss_d + self.aux_weight * (F.cross_entropy(real_aux.float(), y)
                                                     + F.cross_entropy(fake_aux.float(), y))
            if self.loss == "wasserstein_gp":
                loss_d = loss_d + self.gp_weight * gradient_penalty(D, x_aug, f_aug, yd, self.gen)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()

        D.requires_grad_(False)                 # no D weight gradients in the G update
        try:
            with self._autocast():
                out, out_aux = D(self._aug(fake), yd)
            loss_g = g_loss_fn(self.loss, out)
            if aux:
                loss_g = loss_g + self.aux_weight * F.cross_entropy(out_aux.float(), y)
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        finally:
            D.requires_grad_(True)
        stats = None
        if monitor:
            with torch.no_grad():
                grads = [q.grad for q in G.parameters() if q.grad is not None]
                gnorm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float())
                                                              for g in grads])) if grads else torch.zeros(())
                prob = self.loss in BCE_LOSSES
                r = torch.sigmoid(real_out.float()) if prob else real_out.float()
                f = torch.sigmoid(fake_out.float()) if prob else fake_out.float()
                stats = {"d_loss": loss_d.detach().item(), "g_loss": loss_g.detach().item(),
                         "g_grad_norm": float(gnorm),
                         "d_real": float(r.mean()), "d_fake": float(f.mean()),
                         "diversity": mean_pairwise_distance(fake), "diversity_real": mean_pairwise_distance(x)}
                if aux:
                    stats["aux_acc"] = float((real_aux.argmax(1) == y).float().mean())
        self.opt_g.step()
        return stats

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train to `total` steps (resuming from the checkpoint when it fits). Returns a summary."""
        p = self.p
        start = self._resume()
        t0 = time.time()
        stage = f"train {self.method}" + (f" [{self.class_name}]" if self.class_name else "")
        try:
            for step in range(start + 1, self.total + 1):
                self.reporter.check_cancel()
                if self.stop is not None and self.stop.is_set():
                    raise Stopped("stopped: a model trained beside this one failed or was interrupted")
                monitor = step == 1 or step == self.total or (p.monitor_every and step % p.monitor_every == 0)
                stats = self.train_step(bool(monitor))
                self.step = step
                if stats is not None:
                    self._report(stats, stage)
                if p.sample_every and step % p.sample_every == 0 and step < self.total:
                    self.save_grid()
                if self.checkpoint and p.checkpoint_every and step % p.checkpoint_every == 0 \
                        and step < self.total:
                    self._save(final=False)
        except (Cancelled, KeyboardInterrupt):
            if self.checkpoint and self.step > start:
                self._save(final=False)         # a cancelled job continues from here next time
            raise
        if self.total > start:
            self.save_grid()
        if self.checkpoint:
            self._save(final=True)
        return {"steps": self.total, "resumed_from": start, "seconds": round(time.time() - t0, 3),
                "images": self.n_train, **self.last_monitor}

    def _report(self, stats: dict[str, float], stage: str) -> None:
        bad = [k for k in ("d_loss", "g_loss") if not math.isfinite(stats[k])]
        if bad:
            raise ParamError(f"{self.method}{' [' + self.class_name + ']' if self.class_name else ''} diverged at "
                             f"step {self.step} ({', '.join(bad)} is not finite). Lower lr_d / lr_g, or use "
                             f"loss=non_saturating.")
        self.last_monitor = stats
        self.reporter.emit("monitor", method=self.method, **{"class": self.class_name}, seed=self.run_seed,
                           step=self.step, total=self.total, **stats)
        self.reporter.progress(stage, self.step, self.total)
        # flags raised only when a pathology persists in the second half (early collapse often recovers)
        late = self.step >= max(10, self.total // 2)
        who = f"{self.method}" + (f" [{self.class_name}]" if self.class_name else "")
        low = stats["diversity_real"] > 0 and stats["diversity"] < 0.2 * stats["diversity_real"]
        self._streak["collapse"] = self._streak.get("collapse", 0) + 1 if low else 0
        wins = self.loss in BCE_LOSSES and stats["d_real"] > 0.99 and stats["d_fake"] < 0.01
        self._streak["vanish"] = self._streak.get("vanish", 0) + 1 if wins else 0
        if late and self._streak["collapse"] >= 3 and "collapse" not in self._warned:
            self._warned.add("collapse")
            self.reporter.warn(f"{who}: generated images are far less varied than real ones (diversity "
                               f"{stats['diversity']:.3f} vs {stats['diversity_real']:.3f}) at step {self.step}: "
                               f"likely mode collapse. Try diffaugment, a lower lr_d, fewer d_steps"
                               f"{'' if self.method in ('cgan', 'wgan_gp') else ', cgan or wgan_gp'}.")
        if late and self._streak["vanish"] >= 3 and "vanish" not in self._warned:
            self._warned.add("vanish")
            self.reporter.warn(f"{who}: D separates real from fake almost perfectly (D(x) {stats['d_real']:.3f}, "
                               f"D(G(z)) {stats['d_fake']:.3f}) at step {self.step}: the generator gets little "
                               f"signal (vanishing gradients). Use loss=non_saturating, fewer d_steps or a lower "
                               f"lr_d.")

    def save_grid(self) -> Path | None:
        """Write the fixed-noise sample grid of the current step under samples/<method>/<class>."""
        folder = self.reporter.path("samples", self.method, self.class_name or "all")
        if folder is None:
            return None
        imgs = generate_fixed(self.G, self.grid_z, self.grid_y)
        path = folder / f"seed{self.run_seed}_step{self.step:06d}.png"
        save_grid(imgs, path)
        rel = path.relative_to(self.reporter.run_dir) if self.reporter.run_dir else path
        self.reporter.emit("image", method=self.method, **{"class": self.class_name}, seed=self.run_seed,
                           path=rel.as_posix(), step=self.step)
        return path

    # -- checkpoints ---------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        settings = {k: v for k, v in dataclasses.asdict(self.p).items() if k not in RESUME_FREE}
        return json.dumps({"settings": settings, "method": self.method, "class": self.class_name,
                           "seed": self.seed, "mode": self.mode, "data": self._fingerprint_data,
                           "device": self.device.type,
                           "G": sum(q.numel() for q in self.G.parameters()),
                           "D": sum(q.numel() for q in self.D.parameters())}, sort_keys=True)

    def _save(self, final: bool) -> None:
        from .methods.base import save_tensors   # a failed write raises OSError (disk full), not SafetensorError
        assert self.checkpoint is not None
        full = not final or bool(getattr(self.p, "keep_train_state", False))
        tensors = {f"G.{k}": v for k, v in self.G.state_dict().items()}
        if full:
            tensors.update({f"D.{k}": v for k, v in self.D.state_dict().items()})
            tensors.update(_flatten_optimizer("optG", self.opt_g))
            tensors.update(_flatten_optimizer("optD", self.opt_d))
            tensors["rng"] = self.gen.get_state()
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        meta = {"fingerprint": self.fingerprint(), "step": str(self.step), "full": "1" if full else "0"}
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        save_tensors(tensors, tmp, metadata=meta)
        os.replace(tmp, self.checkpoint)       # atomic: a crash never leaves half a checkpoint

    def _resume(self) -> int:
        """The step to continue after: 0 for a fresh start."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return 0
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(str(self.checkpoint), "pt") as fh:
            meta = fh.metadata() or {}
        step, full = int(meta.get("step", 0)), meta.get("full") == "1"
        if meta.get("fingerprint") != self.fingerprint():
            self.reporter.log(f"{self.checkpoint.name}: other settings or data; training anew")
            return 0
        if step > self.total or (not full and step != self.total):
            self.reporter.log(f"{self.checkpoint.name}: at step {step}, cannot continue to {self.total}; "
                              f"training anew")
            return 0
        tensors = load_file(str(self.checkpoint))
        self.G.load_state_dict(_sub(tensors, "G."))
        if full:
            self.D.load_state_dict(_sub(tensors, "D."))
            _load_optimizer("optG", self.opt_g, tensors)
            _load_optimizer("optD", self.opt_d, tensors)
            self.gen.set_state(tensors["rng"])
        self.step = step
        self.reporter.log(f"{self.method} {self.class_name or ''}: resumed at step {step} of {self.total}")
        return step


@torch.no_grad()
def generate_fixed(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> np.ndarray:
    was_training = G.training
    G.eval()
    try:
        return to_uint8(G(z, y))
    finally:
        G.train(was_training)
