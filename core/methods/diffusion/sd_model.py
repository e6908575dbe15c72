"""Where `stable_diffusion`'s pretrained model lives (DEFECTAUG_SD_MODEL) and whether the folder is usable: what
the registry says before any job starts, and the fingerprint a saved sampler keeps of its model; and the
method's settings (prompt template, mode, strength...).

Configure once per server: DEFECTAUG_SD_MODEL = a folder in diffusers' layout (model_index.json, unet/, vae/,
text_encoder/, tokenizer/, scheduler/, weights as .safetensors), e.g. written by
`StableDiffusionPipeline.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5").save_pretrained(folder)`
on a machine with the network. Nothing is downloaded: the folder is opened with `local_files_only=True`, and only
safetensors weights are read (a pickled .bin can run code). Without the folder the method is listed as
unavailable with what to set (`unavailable_reason`), so no job starts that would fail in its middle. The path
is the administrator's setting, not a form field: a web form must not point the server at arbitrary files.
"""
from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import dataclass
from pathlib import Path

from ...errors import ParamError
from ...params import param

MODEL_ENV = "DEFECTAUG_SD_MODEL"
HOW_TO = (f"set {MODEL_ENV} to a local Stable Diffusion 1.x/2.x folder in diffusers layout (model_index.json, "
          "unet/, vae/, text_encoder/, tokenizer/, scheduler/, .safetensors weights; e.g. save_pretrained of "
          "stable-diffusion-v1-5 on a machine with the network), then restart the app and its worker")
PIPELINES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


def model_folder() -> tuple[Path | None, str | None]:
    """The configured model folder and what is wrong with it (None when it looks like a usable pipeline)."""
    raw = os.environ.get(MODEL_ENV, "").strip()
    if not raw:
        return None, f"needs a local Stable Diffusion model: {HOW_TO}"
    path = Path(raw).expanduser()
    where = f"{MODEL_ENV} points to {raw}"
    if not path.is_dir():
        return path, f"{where}, which is not a folder; {HOW_TO}"
    try:
        kind = json.loads((path / "model_index.json").read_text(encoding="utf-8")).get("_class_name")
    except FileNotFoundError:
        return path, f"{where}, which holds no model_index.json (not a diffusers pipeline folder); {HOW_TO}"
    except (OSError, ValueError, AttributeError) as err:
        return path, f"{where}: its model_index.json cannot be read ({err}); {HOW_TO}"
    if kind not in PIPELINES:
        return path, f"{where}, which holds a {kind}, not a Stable Diffusion 1.x/2.x pipeline; {HOW_TO}"
    missing = [c for c in COMPONENTS if not (path / c).is_dir()]
    if missing:
        return path, f"{where}, which lacks the folder{'s' * (len(missing) > 1)} {', '.join(missing)}; {HOW_TO}"
    bad = config_problem(path)
    if bad:
        return path, f"{where}: {bad}; {HOW_TO}"
    pickled = [c for c in ("unet", "vae", "text_encoder") if not any((path / c).glob("*.safetensors"))]
    if pickled:
        return path, (f"{where}: {', '.join(pickled)} {'has' if len(pickled) == 1 else 'have'} no .safetensors "
                      "weights; only safetensors are loaded (pickled .bin files can run code): save the pipeline "
                      "again with save_pretrained(folder, safe_serialization=True)")
    return path, None


CONFIGS = {"unet": "config.json", "vae": "config.json", "text_encoder": "config.json",
           "scheduler": "scheduler_config.json"}
NETWORKS = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL", "text_encoder": "CLIPTextModel"}


def config_problem(path: Path) -> str | None:
    """What is wrong with the components' configuration files, read as JSON only (the listing imports neither
    diffusers nor transformers): missing, unreadable, not an object, or empty."""
    for comp, name in CONFIGS.items():
        f = path / comp / name
        try:
            cfg = json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"{comp}/{name} is missing"
        except (OSError, ValueError) as err:
            return f"{comp}/{name} cannot be read ({err})"
        if not isinstance(cfg, dict) or not {k: v for k, v in cfg.items() if not k.startswith("_")}:
            return f"{comp}/{name} holds no settings"
    return None


_PARAMETERS: dict[tuple[str, str], int] = {}


def pipeline_parameters(path: Path) -> int:
    """Parameters of the unet, vae and text encoder that the folder's configs describe, counted on networks
    built on the meta device (no weight read, nothing allocated), cached per configuration. Raises ParamError
    naming the component whose configuration does not build (an absurd or wrong setting)."""
    import torch
    raw = {comp: (path / comp / "config.json").read_bytes() for comp in NETWORKS}
    key = (str(path), hashlib.sha256(b"".join(raw.values())).hexdigest())
    if key in _PARAMETERS:
        return _PARAMETERS[key]
    total = 0
    for comp, cls_name in NETWORKS.items():
        cfg = json.loads(raw[comp])
        try:
            with torch.device("meta"):
                if comp == "text_encoder":
                    from transformers import CLIPTextConfig, CLIPTextModel
                    net = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in cfg.items() if not k.startswith("_")}))
                else:
                    import diffusers
                    net = getattr(diffusers, cls_name).from_config(cfg)
        except Exception as err:   # noqa: BLE001  any setting diffusers or transformers cannot build with
            raise ParamError(f"stable_diffusion: {MODEL_ENV} points to {path}: its {comp}/config.json does not "
                             f"describe a usable {cls_name} ({type(err).__name__}: {err}); {HOW_TO}") from None
        total += sum(p.numel() for p in net.parameters())
    _PARAMETERS[key] = total
    return total


def model_fingerprint(path: Path) -> str:
    """What identifies the model cheaply: every config file's bytes and each weights file's name and size."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        h.update(rel.encode())
        h.update(f.read_bytes() if f.suffix in (".json", ".txt") else str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


@dataclass
class StableDiffusionParams:
    mode: str = param("img2img", "img2img: start from a real training image of the class, noised to `strength`, "
                                 "and denoise it with the prompt (the image keeps your surface; its source is its "
                                 "provenance). text: from noise and the prompt alone.", choices=("img2img", "text"))
    prompt: str = param("a photo of {class} defect on {domain} surface", "Prompt per class: {class} becomes the "
                        "class name in words (class_words), {domain} the domain.")
    domain: str = param("metal", "The surface, as the prompt's {domain} names it (magnetic tile, steel, fabric...).")
    class_words: str = param("", "How the prompt names classes, e.g. 'MT_Crack=crack, MT_Blowhole=blow hole'; a "
                                 "class not listed is its folder name with _ and - read as spaces.")
    negative_prompt: str = param("blurry, low quality, cartoon, drawing, text, watermark",
                                 "What the images should not look like (empty: none).")
    strength: float = param(0.5, "img2img: how far the source is noised before denoising (0.05: nearly the "
                                 "source; 1: its layout is lost); strength x steps denoising steps run.",
                            min=0.05, max=1.0)
    steps: int = param(25, "Denoising steps of the scheduler.", min=1, max=500)
    guidance_scale: float = param(7.5, "Classifier-free guidance scale (1 or less: no guidance, the negative "
                                       "prompt is ignored; 7.5: Stable Diffusion's default).", min=0.0, max=30.0)
    resolution: int = param(0, "Side in pixels the model generates at, before resizing to the run's size (0: the "
                               "model's own, 512 for SD 1.5; a multiple of 8).", min=0, max=2048)
    batch_size: int = param(2, "Images per pipeline call.", min=1, max=64)
    precision: str = param("auto", "auto: float16 on CUDA, float32 on a CPU; fp16 / bf16: that on CUDA (a CPU "
                                   "always uses float32); fp32: float32 everywhere.",
                           choices=("auto", "fp16", "bf16", "fp32"))
    attention_slicing: bool = param(True, "On CUDA, compute attention in slices (less GPU memory).")
    lora_steps: int = param(0, "LoRA fine-tuning steps on the minority training images before sampling, on a "
                               "CUDA GPU only (on a CPU skipped with a warning); 0: off.", min=0, max=100_000)
    lora_rank: int = param(4, "Rank of the LoRA adapters on the UNet's attention projections.", min=1, max=128)
    lora_lr: float = param(1e-4, "AdamW learning rate of the LoRA adapters.", min=1e-7, max=1e-1)
    lora_batch_size: int = param(4, "Images per LoRA training step.", min=1, max=64)
    monitor_every: int = param(10, "LoRA: write the loss every N steps.", min=1)
    checkpoint_every: int = param(100, "LoRA: write a resumable checkpoint every N steps.", min=0)

    def validate(self) -> None:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(self.prompt) if f is not None}
        except ValueError as err:
            raise ParamError(f"stable_diffusion.prompt is not a template ({err}); write e.g. "
                             "'a photo of {class} defect on {domain} surface'") from None
        if fields - {"class", "domain"}:
            raise ParamError(f"stable_diffusion.prompt may name {{class}} and {{domain}} only, not "
                             f"{', '.join('{' + f + '}' for f in sorted(fields - {'class', 'domain'}))}")
        if self.mode == "img2img" and int(self.steps * self.strength) < 1:
            raise ParamError(f"stable_diffusion: img2img runs strength x steps = {self.strength} x {self.steps} "
                             "denoising steps, fewer than one; raise steps or strength")
        if self.resolution % 8:
            raise ParamError(f"stable_diffusion.resolution must be 0 or a multiple of 8, got {self.resolution}")
        self.words()

    def words(self) -> dict[str, str]:
        out = {}
        for item in filter(str.strip, self.class_words.split(",")):
            name, sep, words = item.partition("=")
            if not sep or not name.strip() or not words.strip():
                raise ParamError(f"stable_diffusion.class_words: {item.strip()!r} is not class=words "
                                 "(e.g. 'MT_Crack=crack, MT_Blowhole=blow hole')")
            out[name.strip()] = words.strip()
        return out

    def prompt_for(self, class_name: str) -> str:
        words = self.words().get(class_name) or " ".join(class_name.replace("_", " ").replace("-", " ").split())
        return self.prompt.format_map({"class": words, "domain": self.domain})
