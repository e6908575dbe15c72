"""`ddpm_cfg`'s training step against a plain diffusers loop of the same UNet and scheduler, in one process;
and seconds per sampled image at 20 and 50 denoising steps.

    .venv/bin/python benchmarks/diffusion_throughput.py              # quick preset: 32 px, grey, batch 32
    .venv/bin/python benchmarks/diffusion_throughput.py --write      # + benchmarks/RESULTS.md

The plain loop is the diffusers example `train_unconditional.py`'s step (random timesteps, `add_noise`, MSE on
the noise, AdamW, gradient clip 1.0, EMA) on the same UNet with class labels; ours runs `Trainer.run()` with
core/methods/diffusion/ddpm.py's `DiffusionTraining` (class-weighted batches, label dropout, warm-up/cosine lr,
EMA via AveragedModel, monitors, cancellation checks). Rounds alternate ours / plain and the median is kept, so
a busy shared machine slows both alike. Sampling: DPM-Solver++ with the quick guidance (w = 0.1: two UNet
passes per step), a batch of 64. Exit status 1 when ours is below 0.95x the plain loop.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from benchmarks._results import machine, write_section
from core.methods import get_method
from core.methods.diffusion.base import (
    DiffusionTraining,
    denoise,
    noise_schedule,
    unet_placement,
)
from core.training import LoopSettings, Trainer, Who
from models.diffusion import build_unet

N_CLASSES = 6


def arch_of(p, channels: int) -> dict:
    return {"channels": channels, "size": p.resolution, "n_classes": N_CLASSES, "width": p.width,
            "levels": p.levels, "layers_per_block": p.layers_per_block, "attention": p.attention,
            "schedule": p.schedule, "train_timesteps": p.train_timesteps, "run_size": p.resolution}


def unet(a: dict):
    return build_unet(a["channels"], a["size"], a["n_classes"], a["width"], a["levels"], a["layers_per_block"],
                      a["attention"], generator=torch.Generator().manual_seed(0))


def plain(a: dict, p, x, y, device):
    model = unet(a).to(device).train()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(p.ema_decay), use_buffers=True)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    sched = noise_schedule(a)

    def run(steps: int) -> None:
        for _ in range(steps):
            idx = torch.randint(len(x), (p.batch_size,))
            x0, labels = x[idx], y[idx]
            noise = torch.randn_like(x0)
            t = torch.randint(0, a["train_timesteps"], (len(x0),))
            loss = F.mse_loss(model(sched.add_noise(x0, noise, t), t, class_labels=labels).sample, noise)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            ema.update_parameters(model)
    return run


def ours(a: dict, p, x, y, device):
    process = DiffusionTraining(unet(a), a, p, x, y, placement=unet_placement(device), seed=0)

    def run(steps: int) -> None:       # a Trainer without a checkpoint runs its `steps` from the process's state
        Trainer(process, LoopSettings(steps, p.monitor_every), who=Who("ddpm_cfg", "all", 0)).run()
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--write", action="store_true")
    a_ = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    p = get_method("ddpm_cfg").make_params("quick")
    a = arch_of(p, a_.channels)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(512, a_.channels, p.resolution, p.resolution, generator=g) * 2 - 1
    y = torch.randint(N_CLASSES, (512,), generator=g)
    x, y = x.to(device), y.to(device)
    runs = {"plain": plain(a, p, x, y, device), "ours": ours(a, p, x, y, device)}
    for r in runs.values():
        r(2)                                           # warm-up
    times = {k: [] for k in runs}
    for _ in range(a_.rounds):
        for k, r in runs.items():
            t0 = time.perf_counter()
            r(a_.steps)
            times[k].append((time.perf_counter() - t0) / a_.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["plain"] / med["ours"]
    model = unet(a).to(device).eval()
    n_params = sum(q.numel() for q in model.parameters())
    per_image = {}
    for steps in (20, 50):
        labels = torch.zeros(64, dtype=torch.long, device=device)
        t0 = time.perf_counter()
        denoise(model, a, labels, w=p.guidance, steps=steps, generator=torch.Generator(device=device).manual_seed(0))
        per_image[steps] = (time.perf_counter() - t0) / 64
    body = (f"## Diffusion: training-step throughput and sampling cost (benchmarks/diffusion_throughput.py)\n\n"
            f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}.\n"
            f"`ddpm_cfg` quick preset: {p.resolution} px, {a_.channels} channel(s), UNet width {p.width}, {p.levels} "
            f"levels, {p.layers_per_block} layer per block, attention at the lowest level ({n_params / 1e6:.2f} M "
            f"parameters), batch {p.batch_size}; median of {a_.rounds} alternating rounds of {a_.steps} steps.\n\n"
            f"| loop | ms per training step | images/s |\n|---|---|---|\n"
            f"| plain diffusers loop | {med['plain'] * 1e3:.1f} | {p.batch_size / med['plain']:.0f} |\n"
            f"| ours (Trainer + DiffusionTraining) | {med['ours'] * 1e3:.1f} | {p.batch_size / med['ours']:.0f} |\n\n"
            f"Ours / plain throughput: **{ratio:.2f}x** (target at least 0.95x).\n\n"
            f"Sampling (DPM-Solver++, w = {p.guidance}: two UNet passes per step, batch 64): "
            f"**{per_image[20]:.3f} s per image at 20 steps, {per_image[50]:.3f} s at 50 steps**.\n")
    print(body)
    if a_.write:
        write_section("diffusion_throughput", body)
    return 0 if ratio >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
