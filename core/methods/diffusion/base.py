"""What `ddpm_cfg` (ddpm.py) and `ddpm_translate` (translate.py) share: a class-conditional DDPM trained
from scratch with classifier-free guidance (Ho & Salimans 2022), its training process and the guided sampler.

Training (one model for all classes, normal included: the plentiful normal images teach the surface): a
diffusers `UNet2DModel` with one class embedding per class plus a null class (`models.diffusion`); each
step draws a batch with class weights n_c^balance (0: uniform over classes, 1: as the data), replaces a
`label_dropout` share of the labels by the null class, noises the images at random timesteps of a
`DDPMScheduler` and regresses the noise (MSE). AdamW with warm-up then cosine decay, gradient clipping at 1,
an EMA of the weights (`torch.optim.swa_utils.AveragedModel`, decay warmed up as in diffusers' EMAModel).
The model may train below the run's image size (`resolution`; 32 px in quick): `ddpm_cfg` then upsamples its
output, `ddpm_translate` adds the upsampled change to its full-size source, so the source's fine texture stays.

Sampling: DPM-Solver++ (or DDIM) from the training schedule, `sample_steps` steps, the guided noise
    eps = (1 + w) * eps(x, c) - w * eps(x, null)          (`guided_eps`; w = 0: the conditional model)
`ddpm_translate` noises a real normal *training* image to `strength` of the schedule and denoises it conditioned
on the defect class; its provenance is that normal file. Both methods train the same model: in one run it is
trained once (its checkpoint is shared under the run's shared training folder, keyed by the training settings).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ...params import param
from ...runtime import Placement
from ...training import TrainingProcess, to_uint8
from ...training.loop import LOOP_FIELDS

SAMPLING_FIELDS = ("guidance", "scheduler", "sample_steps", "sample_batch", "strength", "min_images")


@dataclass
class DDPMParams:
    steps: int = param(2000, "Training steps of the one model for all classes.", min=1, max=10_000_000)
    batch_size: int = param(32, "Images per training step (16 in the diffusers example).", min=1, max=1024)
    lr: float = param(5e-4, "Peak AdamW learning rate (1e-4 in the diffusers example, at 64 px and 10x the steps).",
                      min=1e-7, max=1e-1)
    warmup: int = param(200, "Steps of linear warm-up before the cosine decay.", min=0, max=100_000)
    weight_decay: float = param(1e-6, "AdamW weight decay.", min=0.0, max=1.0)
    resolution: int = param(32, "Side the model trains and samples at (0: the run's image size); outputs are "
                                "upsampled to the run's size. 32 in quick: a 64 px UNet costs 4x per step on a CPU.",
                            min=0, max=512)
    width: int = param(16, "UNet base channels (doubling per level, at most 4x); 16 in quick (0.7 M "
                                  "parameters at 3 levels: a CPU budget), 64 in paper.", min=4, max=512)
    levels: int = param(3, "UNet resolution levels (self-attention at the lowest).", min=2, max=6)
    layers_per_block: int = param(1, "Residual layers per UNet level (2 in the diffusers example).", min=1, max=4)
    attention: bool = param(True, "Self-attention at the UNet's lowest resolution.")
    label_dropout: float = param(0.1, "Share of training labels replaced by the null class, so the same model "
                                      "learns the unconditional prediction guidance needs (0.1 in the paper).",
                                 min=0.0, max=1.0)
    balance: float = param(0.5, "Class weights of the training batches, n_c^balance: 0 draws every class alike, "
                                "1 as in the data (the normal class then fills most batches).", min=0.0, max=1.0)
    ema_decay: float = param(0.999, "Decay of the EMA of the weights that samples (warmed up from 0).", min=0.0,
                             max=0.99999)
    schedule: str = param("squaredcos_cap_v2", "Noise schedule of training (cosine suits small images).",
                          choices=("squaredcos_cap_v2", "linear"))
    train_timesteps: int = param(1000, "Timesteps of the training schedule.", min=10, max=4000)
    hflip: bool = param(True, "Mirror copies of the training images.")
    guidance: float = param(0.1, "Guidance weight w in eps = (1 + w) eps(x, c) - w eps(x): 0 is the conditional "
                                 "model; the paper's two settings are 0.1 and 7.5.", min=0.0, max=50.0)
    scheduler: str = param("dpm", "Sampler: DPM-Solver++ (2nd order) or DDIM.", choices=("dpm", "ddim"))
    sample_steps: int = param(25, "Denoising steps per sampled image (50 in the paper preset; DPM-Solver++ "
                                        "is close to converged at 20-25).", min=1, max=1000)
    sample_batch: int = param(64, "Images denoised together when sampling.", min=1, max=4096)
    sample_every: int = param(1000, "Save a grid of samples (one row per class) every N steps.", min=0)
    monitor_every: int = param(20, "Write the loss every N steps.", min=1)
    checkpoint_every: int = param(500, "Write a resumable training checkpoint every N steps.", min=0)
    keep_train_state: bool = param(False, "Keep the raw weights and the optimiser after training (to continue).")



def training_settings(p: DDPMParams) -> dict:
    """The parameters that decide the trained model (the same for both methods: one model serves both)."""
    return {k: v for k, v in dataclasses.asdict(p).items() if k not in LOOP_FIELDS and k not in SAMPLING_FIELDS}


# ---------------------------------------------------------------------------------------------
# The schedule, guidance and the denoising loop
# ---------------------------------------------------------------------------------------------
def noise_schedule(arch: dict):
    from diffusers import DDPMScheduler
    return DDPMScheduler(num_train_timesteps=int(arch["train_timesteps"]), beta_schedule=arch["schedule"])


def sampling_scheduler(arch: dict, kind: str):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
    config = noise_schedule(arch).config
    if kind == "ddim":
        return DDIMScheduler.from_config(config)
    # thresholding clips each step's x0 prediction to the image range: without it the cosine schedule's tiny
    # alpha_bar at the first steps blew the samples up to black-and-white noise (measured on magnetic_tile)
    return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2,
                                                   lower_order_final=True, thresholding=True, sample_max_value=1.0)


def guided_eps(unet: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, null: int,
               w: float) -> torch.Tensor:
    """(1 + w) * eps(x, c) - w * eps(x, null); with w = 0 the conditional prediction alone (one pass)."""
    if w == 0:
        return unet(x, t, class_labels=labels).sample
    both = unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, torch.full_like(labels, null)])).sample
    e_c, e_u = both.chunk(2)
    return (1 + w) * e_c - w * e_u


@torch.no_grad()
def denoise(unet: nn.Module, arch: dict, labels: torch.Tensor, *, w: float, steps: int, kind: str = "dpm",
            generator: torch.Generator, x0: torch.Tensor | None = None, strength: float = 1.0) -> torch.Tensor:
    """Images of the classes `labels` in [-1, 1]: from noise, or (SDEdit) from `x0` noised to `strength`."""
    device = labels.device
    sched = sampling_scheduler(arch, kind)
    sched.set_timesteps(int(steps), device=device)
    timesteps = sched.timesteps
    shape = (len(labels), arch["channels"], arch["size"], arch["size"])
    noise = torch.randn(shape, generator=generator, device=device)
    if x0 is None or strength >= 1:
        x = noise * sched.init_noise_sigma
    else:
        run = round(len(timesteps) * strength)
        if run == 0:
            return x0.clone()
        start = len(timesteps) - run
        timesteps = timesteps[start:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(start)
        x = sched.add_noise(x0, noise, timesteps[:1].repeat(len(labels)))
    for t in timesteps:
        eps = guided_eps(unet, sched.scale_model_input(x, t), t, labels, arch["n_classes"], w)
        x = sched.step(eps, t, x).prev_sample
    return x.clamp(-1, 1)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    return F.interpolate(x, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


def unet_placement(device: torch.device | str) -> Placement:
    """Where the UNet trains: the GANs' placement (bf16 autocast on CUDA) in the default memory layout, since
    channels_last made this UNet's CPU steps (GroupNorm, attention reshapes) slower, not faster."""
    return dataclasses.replace(Placement.for_device(device), memory_format=torch.contiguous_format)


def _ema(decay: float):
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        d = min(decay, (1 + n) / (10 + n))          # diffusers' EMAModel warm-up
        torch._foreach_lerp_(averaged, current, 1 - d)
    return update


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
class DiffusionTraining(TrainingProcess):
    """The UNet, its EMA, AdamW and the training images (with labels) on the device."""
    keep = ("ema",)
    shared_as = "ddpm"            # ddpm_cfg and ddpm_translate train this same model: checkpoints interchange
    divergence_hint = "Lower lr."

    def __init__(self, unet: nn.Module, arch: dict, params: DDPMParams, images: torch.Tensor, labels: torch.Tensor,
                 *, placement: Placement, seed: int) -> None:
        self.p, self.arch, self.place, self.seed = params, arch, placement, int(seed)
        self.unet = placement.module(unet).train()
        self.ema = AveragedModel(self.unet, multi_avg_fn=_ema(params.ema_decay), use_buffers=True)
        fused = {"fused": True} if placement.device.type == "cuda" else {}
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=params.lr, weight_decay=params.weight_decay, **fused)
        self.rng = torch.Generator(device=placement.device).manual_seed(self.seed)
        self.x, self.y = images.to(placement.device), labels.to(placement.device)
        counts = torch.bincount(self.y, minlength=arch["n_classes"]).float()
        self.weights = counts[self.y] ** (params.balance - 1.0)
        self.sched = noise_schedule(arch)
        self.sched.alphas_cumprod = self.sched.alphas_cumprod.to(placement.device)
        self.networks = {"unet": self.unet, "ema": self.ema}
        self.optimizers = {"unet": self.opt}
        self.total = int(params.steps)
        self._sha = hashlib.sha1(images.numpy().tobytes() + labels.numpy().tobytes()).hexdigest()

    def _lr(self) -> float:
        state = self.opt.state.get(next(self.unet.parameters()), {})
        t = float(state.get("step", 0))             # steps done: AdamW counts them, checkpoints keep them
        if t < self.p.warmup:
            return self.p.lr * (t + 1) / self.p.warmup
        frac = (t - self.p.warmup) / max(1.0, self.total - self.p.warmup)
        return self.p.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    def step(self, monitor: bool) -> dict[str, float] | None:
        p, lr = self.p, self._lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        idx = torch.multinomial(self.weights, p.batch_size, replacement=True, generator=self.rng)
        x0, y = self.x[idx], self.y[idx].clone()
        drop = torch.rand(len(y), generator=self.rng, device=y.device) < p.label_dropout
        y[drop] = self.arch["n_classes"]
        noise = torch.randn(x0.shape, generator=self.rng, device=x0.device)
        t = torch.randint(0, self.arch["train_timesteps"], (len(y),), generator=self.rng, device=x0.device)
        xt = self.sched.add_noise(x0, noise, t).contiguous(memory_format=self.place.memory_format)
        with self.place.autocast():
            pred = self.unet(xt, t, class_labels=y).sample
        loss = F.mse_loss(pred.float(), noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad = nn.utils.clip_grad_norm_(self.unet.parameters(), 1.0)
        self.opt.step()
        self.ema.update_parameters(self.unet)
        return {"loss": float(loss.detach()), "grad_norm": float(grad), "lr": lr} if monitor else None

    @torch.no_grad()
    def grid(self) -> np.ndarray:
        """Four EMA samples per class (20 steps, fixed noise, the quick guidance), one row per class."""
        labels = torch.arange(self.arch["n_classes"], device=self.x.device).repeat_interleave(4)
        g = torch.Generator(device=self.x.device).manual_seed(self.seed)
        model = self.ema.module.eval()
        return to_uint8(denoise(model, self.arch, labels, w=self.p.guidance, steps=20, generator=g))

    def fingerprint(self) -> dict:
        return {"settings": training_settings(self.p), "arch": self.arch, "seed": self.seed, "data": self._sha}




PAPER = {"steps": 50_000, "batch_size": 64, "lr": 1e-4, "warmup": 500, "resolution": 0, "width": 64, "levels": 4,
         "layers_per_block": 2, "ema_decay": 0.9999, "sample_every": 5000, "checkpoint_every": 5000,
         "monitor_every": 50, "sample_batch": 256, "sample_steps": 50}
TINY = {"steps": 2, "batch_size": 2, "width": 8, "levels": 2, "resolution": 0, "sample_steps": 2, "warmup": 1,
        "sample_every": 0}
