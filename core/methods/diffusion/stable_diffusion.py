"""`stable_diffusion`: defect images from a pretrained Stable Diffusion 1.x/2.x model in a local folder.

The model folder (DEFECTAUG_SD_MODEL, administrator-set, never downloaded): sd_model.py.

Each defect class c gets the prompt `prompt.format(class=<c in words>, domain=domain)` and the negative prompt.
- img2img (default): a real training image of c, resized to the model's resolution, noised to `strength` and
  denoised with the prompt (SDEdit, as DA-Fusion does with SD): the image keeps the user's surface, and its
  source file is its provenance (parents). Every training image of c is used once before any twice.
- text: from noise and the prompt alone (parents empty); a pretrained model knows little of a plant's parts.
Images come out at the model's resolution and are resized to the run's size; grey runs get grey images.
On CUDA the model runs in float16 (or bfloat16) with attention slicing; on a CPU in float32.
`lora_steps` > 0 fine-tunes LoRA adapters (rank `lora_rank`) on the attention projections of the UNet, on the
minority training images with their class prompts, by the standard denoising loss, through the project's
Trainer (progress, cancel, resumable checkpoints); on a GPU only (on a CPU it is skipped with a warning).
"""
from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ParamError
from ...imageset import ImageSet
from ...runtime import available_memory, cpu_threads
from ...training import (
    LoopSettings,
    Trainer,
    Who,
    to_uint8,
)
from ...training.checkpoint import sub
from ..base import MethodSpec, SampleBatch, Sampler, each_once
from ..registry import register
from .lora import LoRATraining, add_lora
from .sd_model import (
    HOW_TO,
    MODEL_ENV,
    StableDiffusionParams,
    model_fingerprint,
    model_folder,
    pipeline_parameters,
)

LUMA = (0.299, 0.587, 0.114)                    # ITU-R BT.601, as PIL's convert("L")


class StableDiffusionSpec(MethodSpec):
    """The registry entry, whose unavailable_reason also checks the model folder (what to set, what is wrong)."""

    def unavailable_reason(self) -> str | None:
        return super().unavailable_reason() or model_folder()[1]


# -- the sampler ------------------------------------------------------------------------------------------
class StableDiffusionSampler(Sampler):
    NAME = "stable_diffusion"

    def _dtype(self, device: torch.device) -> torch.dtype:
        if device.type != "cuda" or self.params.precision == "fp32":
            return torch.float32
        return torch.bfloat16 if self.params.precision == "bf16" else torch.float16

    @classmethod
    def model_memory(cls, params, device_type: str) -> tuple[int, str] | None:
        """The pipeline's weights at the precision they load in (its unet, vae and text encoder, counted from
        their configs on the meta device); None when no usable folder is configured (the listing says why)."""
        path, why = model_folder()
        if why:
            return None
        n = pipeline_parameters(path)
        fp32 = device_type != "cuda" or params.precision == "fp32"
        return n * (4 if fp32 else 2), (f"the Stable Diffusion model in {path.name} ({n / 1e6:,.0f} million "
                                        f"parameters in {'float32' if fp32 else 'half precision'})")

    def _load(self) -> None:
        """The pipeline from the configured folder (text and img2img share its components), after checking that
        its weights fit in the memory available now."""
        path, why = model_folder()
        if why:
            raise ParamError(f"stable_diffusion {why}")
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline
        device = torch.device(self.ctx.device)
        need, what = self.model_memory(self.params, device.type)
        have = available_memory()
        if need > have:
            raise ParamError(f"stable_diffusion would need about {need / 1e9:.1f} GB of memory to load {what}, "
                             f"more than the {have / 1e9:.1f} GB available now; configure a smaller model or run "
                             "it where there is more memory")
        t0 = time.perf_counter()
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                path, local_files_only=True, use_safetensors=True, dtype=self._dtype(device),
                safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as err:
            raise ParamError(f"stable_diffusion: the model in {path} ({MODEL_ENV}) could not be loaded: "
                             f"{type(err).__name__}: {err}; {HOW_TO}") from None
        pipe = pipe.to(device)
        if device.type == "cuda" and self.params.attention_slicing:
            pipe.enable_attention_slicing()
        pipe.set_progress_bar_config(disable=True)
        pipe.unet.requires_grad_(False)
        pipe.vae.requires_grad_(False)
        pipe.text_encoder.requires_grad_(False)
        self.pipe_ = pipe
        # the same modules in an img2img pipeline (not from_pipe, which casts them all to float32 unless told)
        self.img2img_ = None
        if self.params.mode == "img2img":
            self.img2img_ = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
            self.img2img_.set_progress_bar_config(disable=True)
        self.model_path_, self.fingerprint_ = str(path), model_fingerprint(path)
        self.resolution_ = self.params.resolution or int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        self.load_seconds_ = round(time.perf_counter() - t0, 2)

    def fit(self, train: ImageSet, needed: dict[str, int]) -> StableDiffusionSampler:
        self._remember(train)
        p, rep = self.params, self.ctx.reporter
        rep.stage("load stable_diffusion", f"the model in {os.environ.get(MODEL_ENV, '')}")
        self._load()
        counts = train.counts()
        todo = [c for c in train.classes if needed.get(c, 0) > 0]
        tunes = bool(p.lora_steps) and torch.device(self.ctx.device).type == "cuda"
        self.sources_, self.images_ = {}, {}
        for c in todo:
            if p.mode == "img2img" and counts[c] == 0:
                rep.warn(f"stable_diffusion: class {c!r} has no training image to start img2img from; skipped")
                continue
            part = train.of_class(c)
            self.images_[c], self.sources_[c] = part.images, list(part.sources)
            if counts[c] < 5 and (p.mode == "img2img" or tunes):
                rep.warn(f"stable_diffusion: class {c!r} has only {counts[c]} training image"
                         f"{'s' * (counts[c] != 1)}; every image of it starts from or learns from "
                         f"{'that one' if counts[c] == 1 else 'those'}")
        self.lora_, self.fit_info_ = None, {"model": self.model_path_, "model_fingerprint": self.fingerprint_,
                                            "load_seconds": self.load_seconds_, "resolution": self.resolution_}
        if p.lora_steps and any(len(v) for v in self.images_.values()):
            if not tunes:
                rep.warn(f"stable_diffusion: LoRA fine-tuning (lora_steps={p.lora_steps}) needs a CUDA GPU; "
                         "generating from the pretrained model as it is")
                self.fit_info_["lora"] = "skipped: no CUDA GPU"
            else:
                self.fit_info_["lora"] = self._fit_lora()
        if p.mode == "text":       # the text pipeline needs no training images: keep none in the checkpoint
            self.images_ = {c: v[:0] for c, v in self.images_.items()}
            self.sources_ = {c: [] for c in self.images_}
        return self

    @torch.no_grad()
    def _encode(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [n,H,W,C] -> [n,3,R,R] in [0, 1] at the model's resolution (grey repeated to RGB)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
        r = self.resolution_
        return F.interpolate(x, size=(r, r), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)

    def _fit_lora(self, device: torch.device | None = None) -> dict:
        """Fine-tune adapters on every fitted class's images and prompt (`_fit_lora(cpu)` in the tests only)."""
        pipe, p = self.pipe_, self.params
        device = device or torch.device(self.ctx.device)
        classes = list(self.images_)
        images = np.concatenate([self.images_[c] for c in classes])
        labels = torch.cat([torch.full((len(self.images_[c]),), k) for k, c in enumerate(classes)]).to(device)
        with torch.no_grad():
            x = self._encode(images).to(device, pipe.vae.dtype) * 2 - 1
            latents = torch.cat([pipe.vae.encode(x[i:i + 8]).latent_dist.mean for i in range(0, len(x), 8)])
            latents = (latents * pipe.vae.config.scaling_factor).float()
            embeds = torch.cat([pipe.encode_prompt(p.prompt_for(c), device, 1, False)[0] for c in classes])[labels]
        sha = hashlib.sha256(images.tobytes()).hexdigest()[:16] + self.fingerprint_
        self.lora_ = add_lora(pipe.unet, p.lora_rank)
        process = LoRATraining(pipe, self.lora_, latents, embeds, p, self.ctx.seed, sha)
        ckpt = self.ctx.checkpoint(self.NAME, "lora")
        pipe.unet.train()
        try:
            info = Trainer(process, LoopSettings.from_params(p, process.total), who=Who(self.NAME, None, self.ctx.seed),
                           reporter=self.ctx.reporter, checkpoint=ckpt, stage="fine-tune stable_diffusion (LoRA)").run()
        finally:
            pipe.unet.eval()
            self.lora_.eval()
        return {"steps": process.total, "rank": p.lora_rank, "images": len(images), **{
            k: v for k, v in info.items() if isinstance(v, (int, float, str))}}

    def sample(self, class_name: str, n: int, seed: int) -> SampleBatch:
        if n <= 0:
            return self._empty()
        if class_name not in self.images_:
            raise ParamError(f"stable_diffusion has no images of {class_name!r} to start from (it needed no images "
                             f"when fitted, or has no training image); fitted: {sorted(self.images_)}")
        p, ci = self.params, self.classes_.index(class_name)
        img2img = p.mode == "img2img"
        k = len(self.images_[class_name])
        rng = np.random.default_rng([int(seed), ci])          # every source once before any twice
        order = each_once(rng, k, n) if img2img else []
        # one generator per image, seeded by (seed, class, index): image i is the same in any batch size
        seeds = np.random.SeedSequence([int(seed), ci, 5]).generate_state(n, np.uint64) >> np.uint64(1)
        prompt, negative = p.prompt_for(class_name), (p.negative_prompt.strip() or None)
        device, rep = torch.device(self.ctx.device), self.ctx.reporter
        h, w, c = self.shape_
        stage, out = f"generate stable_diffusion [{class_name}]", []

        def cancel(_pipe, _i, _t, kwargs):
            rep.check_cancel()
            return kwargs

        with cpu_threads(self.ctx.num_threads, device), torch.no_grad():
            for i in range(0, n, p.batch_size):
                b = min(p.batch_size, n - i)
                common = dict(prompt=[prompt] * b, negative_prompt=[negative] * b if negative else None,
                              num_inference_steps=p.steps, guidance_scale=p.guidance_scale, output_type="pt",
                              generator=[torch.Generator().manual_seed(int(s)) for s in seeds[i:i + b]],
                              callback_on_step_end=cancel)
                if img2img:
                    x = self._encode(self.images_[class_name][order[i:i + b]])
                    y = self.img2img_(image=x, strength=p.strength, **common).images
                else:
                    y = self.pipe_(height=self.resolution_, width=self.resolution_, **common).images
                y = F.interpolate(y.float().cpu(), size=(h, w), mode="bicubic", antialias=True, align_corners=False)
                if c == 1:
                    y = (y * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
                out.append(to_uint8(y.clamp(0, 1) * 2 - 1))
                rep.progress(stage, i + b, n)
        parents = [[self.sources_[class_name][j]] for j in order] if img2img else [[] for _ in range(n)]
        return SampleBatch(np.concatenate(out), parents)

    def get_state(self):  # the source images img2img starts from, the LoRA adapters; the model stays in its folder
        classes = list(self.images_)
        tensors = {f"c{self.classes_.index(c)}.images": torch.from_numpy(np.ascontiguousarray(self.images_[c]))
                   for c in classes}
        if self.lora_ is not None:
            tensors.update({f"lora.{k}": v.detach().float().cpu() for k, v in self.lora_.state_dict().items()})
        return tensors, {"fitted": classes, "sources": self.sources_, "fit": self.fit_info_,
                         "model_fingerprint": self.fingerprint_, "lora": self.lora_ is not None}

    def set_state(self, tensors, meta):
        self._load()
        if self.fingerprint_ != meta["model_fingerprint"]:
            raise ParamError(f"this stable_diffusion checkpoint was made with another model (fingerprint "
                             f"{meta['model_fingerprint']}, {meta['fit'].get('model')}) than the one {MODEL_ENV} "
                             f"names now ({self.fingerprint_}, {self.model_path_}); set {MODEL_ENV} to that model")
        self.fit_info_ = meta.get("fit", {})
        self.images_ = {c: tensors[f"c{self.classes_.index(c)}.images"].numpy() for c in meta["fitted"]}
        self.sources_ = {c: list(v) for c, v in meta["sources"].items()}
        self.lora_ = None
        if meta.get("lora"):
            self.lora_ = add_lora(self.pipe_.unet, self.params.lora_rank)
            self.lora_.load_state_dict(sub(tensors, "lora."))
            self.lora_.to(torch.device(self.ctx.device)).eval()


PAPER = {"steps": 50, "lora_steps": 500, "batch_size": 8, "lora_batch_size": 4}

register(StableDiffusionSpec(
    name="stable_diffusion", family="diffusion",
    paper="Rombach et al. 2022, latent diffusion (Stable Diffusion) driven by class-name prompts; SDEdit img2img",
    summary="A pretrained Stable Diffusion model from a local folder (DEFECTAUG_SD_MODEL), prompted per class "
            "('a photo of {class} defect on {domain} surface'). img2img (default) redraws real minority "
            "training images at a chosen strength, so each image keeps a real surface and names its source; "
            "text mode draws from the prompt alone. Optional LoRA fine-tuning on the minority images (GPU).",
    params_cls=StableDiffusionParams, sampler_cls=StableDiffusionSampler, conditional=True, provenance="parents",
    packages=("transformers",),
    presets={"paper": PAPER, "tiny": {"steps": 2, "batch_size": 4, "strength": 0.5}}))
