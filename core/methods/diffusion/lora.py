"""LoRA for `stable_diffusion`: low-rank updates of a pretrained UNet's attention projections (Hu et al. 2021),
the rest of the model frozen, trained by the denoising loss through the project's Trainer."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...training import TrainingProcess, settings_fingerprint


# -- LoRA: low-rank updates of the UNet's attention projections, the rest of the model frozen ----------------
class LoRA(nn.Module):
    def __init__(self, base: nn.Linear, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(base.in_features, rank, bias=False, device=base.weight.device)
        self.up = nn.Linear(rank, base.out_features, bias=False, device=base.weight.device)
        nn.init.kaiming_uniform_(self.down.weight, a=5 ** 0.5)
        nn.init.zeros_(self.up.weight)                  # starts as the pretrained model exactly


class WithLoRA(nn.Module):
    def __init__(self, base: nn.Linear, lora: LoRA) -> None:
        super().__init__()
        self.base, self.lora = base, lora

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora.up(self.lora.down(x.to(self.lora.down.weight.dtype))).to(x.dtype)


def add_lora(unet: nn.Module, rank: int) -> nn.ModuleDict:
    """Wrap to_q, to_k, to_v and to_out[0] of every attention block; returns the adapters (all that trains)."""
    from diffusers.models.attention_processor import Attention
    adapters = nn.ModuleDict()
    for name, attn in list(unet.named_modules()):
        if isinstance(attn, Attention):
            for key, holder, attr in (("q", attn, "to_q"), ("k", attn, "to_k"), ("v", attn, "to_v"),
                                      ("out", attn.to_out, "0")):
                base = getattr(holder, attr)
                adapters[f"{name}.{key}".replace(".", "__")] = lora = LoRA(base, rank)
                setattr(holder, attr, WithLoRA(base, lora))
    return adapters


class LoRATraining(TrainingProcess):
    """One step: a batch of minority images' latents, noised at random timesteps, and the UNet with adapters
    predicting the noise (or v) given each image's class prompt: MSE, AdamW on the adapters only."""
    keep = ("lora",)
    divergence_hint = "Lower lora_lr."

    def __init__(self, pipe, adapters: nn.ModuleDict, latents: torch.Tensor, embeds: torch.Tensor,
                 params: Any, seed: int, data_sha: str) -> None:
        from diffusers import DDPMScheduler
        self.pipe, self.p, self.seed, self._sha = pipe, params, int(seed), data_sha
        self.latents, self.embeds = latents, embeds
        self.noise = DDPMScheduler.from_config(pipe.scheduler.config)
        self.networks = {"lora": adapters.float().train()}
        self.optimizers = {"lora": torch.optim.AdamW(adapters.parameters(), lr=params.lora_lr)}
        self.rng = torch.Generator(device=latents.device).manual_seed(self.seed)
        self.total = int(params.lora_steps)
        # a float16 UNet's gradients underflow without loss scaling; bfloat16 and float32 need none
        self.scaler = torch.amp.GradScaler("cuda", enabled=pipe.unet.dtype == torch.float16)

    def step(self, monitor: bool) -> dict[str, float] | None:
        dev, n = self.latents.device, len(self.latents)
        idx = torch.randint(n, (self.p.lora_batch_size,), generator=self.rng, device=dev)
        x0 = self.latents[idx]
        eps = torch.randn(x0.shape, generator=self.rng, device=dev)
        t = torch.randint(self.noise.config.num_train_timesteps, (len(idx),), generator=self.rng, device=dev)
        xt = self.noise.add_noise(x0, eps, t)
        target = self.noise.get_velocity(x0, eps, t) if self.noise.config.prediction_type == "v_prediction" else eps
        unet = self.pipe.unet
        pred = unet(xt.to(unet.dtype), t, encoder_hidden_states=self.embeds[idx]).sample
        loss = F.mse_loss(pred.float(), target.float())
        opt = self.optimizers["lora"]
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()
        return {"loss": float(loss.detach())} if monitor else None

    def fingerprint(self) -> dict:     # what the adapters learn from: not the sampling settings
        keys = ("prompt", "domain", "class_words", "resolution", "lora_rank", "lora_lr", "lora_batch_size")
        return {"settings": {k: v for k, v in settings_fingerprint(self.p).items() if k in keys},
                "seed": self.seed, "data": self._sha}
