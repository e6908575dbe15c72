"""The evaluation classifier: trains the same network on the baseline and on each augmented set.

Architectures (`arch`): the papers' small CNN (the default: fast on CPU) and torchvision's ResNet-18/34/50 and
EfficientNet-B0/B3, the classifiers the CycleGAN and diffusion papers measured with. A torchvision arch trains
from scratch (its first conv rebuilt for grey images) or, with `pretrained`, fine-tunes from a local ImageNet
weights file (`core.backbones`: nothing is downloaded): ImageNet normalisation and grey repeated to RGB (an input
layer inside the model, so every caller feeds the same [-1, 1] tensors), the backbone at a lower learning rate than
the new last layer. `RECIPES` holds the papers' settings (the CycleGAN paper: AdamW, lr 0.001, batch 4).

Fairness and stability, which decide whether a verdict can be trusted:
- Same architecture, same initial weights (built under `torch.manual_seed(seed)`), same data-order
  seed for the baseline and every augmented run of one seed; only the data differs.
- `steps` can be set explicitly, so the imbalanced baseline can get as many gradient steps as a
  balanced run (the `equal_steps` baseline), and `class_weights` gives the `class_weighted` one; with
  `weights_from_epoch` the weights apply from that epoch on (deferred re-weighting, the `drw` baseline), and
  `logit_offsets` are added to the logits inside the loss only (logit adjustment, the `logit_adjusted` one).
- The learning rate decays to zero (cosine) and the model evaluated is an exponential moving
  average of the weights: with a constant rate and the last-epoch model, test F1 on a small real
  set swings by tens of points from one epoch to the next, so a last-epoch comparison ranks noise.
- Label smoothing (0.1) by default: with hard labels the imbalanced baselines trained for as many
  steps as a balanced run grow overconfident in the majority class; smoothing raised the equal-steps
  baseline's macro F1 on magnetic_tile from 0.65 to 0.77 (20 seeds), so a method now has to beat a
  baseline that is trained well, not one that is easy to beat (benchmarks/RESULTS.md).
- bfloat16 autocast where the hardware has it (CUDA, CPUs with AMX/AVX512-BF16): 1.4x faster on a
  2-core Xeon; float32 elsewhere (emulated bf16 would be slower).
- The whole training set lives on the device as one tensor (no DataLoader per step).
- Soft targets: a training set with class shares (`ImageSet.targets`, e.g. `cmo`'s defect boxes on normal images,
  labelled by area) trains on them with the same cross-entropy (probability targets; real images one-hot rows).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .errors import ParamError
from .imageset import ImageSet
from .params import param
from .runtime import pick_device, tune_allocator


ARCHS = ("small_cnn", "resnet18", "resnet34", "resnet50", "efficientnet_b0", "efficientnet_b3")


@dataclass
class ClassifierParams:
    arch: str = param("small_cnn", "small_cnn: the papers' 3-conv + 2-FC CNN (fast on CPU); resnet18/34/50, "
                                   "efficientnet_b0/b3: torchvision's networks, the papers' classifiers (from "
                                   "scratch, or from local ImageNet weights with pretrained).", choices=list(ARCHS))
    pretrained: bool = param(False, "Fine-tune from local ImageNet weights (the server's DEFECTAUG_WEIGHTS_DIR, or "
                                    "DEFECTAUG_WEIGHTS_<ARCH>; nothing is downloaded): ImageNet normalisation, grey "
                                    "images repeated to RGB, the backbone at backbone_lr_scale x lr.")
    backbone_lr_scale: float = param(0.1, "With pretrained: the backbone's learning rate as a fraction of lr (the "
                                          "new last layer trains at lr).", min=0.0, max=1.0)
    stem_stride: int = param(2, "Stride of small_cnn's first conv (2 = 4x faster on CPU; 1 = full resolution).",
                             min=1, max=4)
    width: int = param(16, "Channels of the first conv block of small_cnn (doubled per block).", min=4, max=256)
    epochs: int = param(35, "Passes over the training set (35 in the papers' protocol).", min=1, max=1000)
    batch_size: int = param(64, "Images per gradient step.", min=2, max=4096)
    lr: float = param(3e-3, "Peak learning rate of AdamW.", min=1e-6, max=1.0)
    weight_decay: float = param(1e-4, "AdamW weight decay.", min=0.0, max=1.0)
    schedule: str = param("cosine", "cosine decays the rate to zero (stable); constant reproduces the "
                                    "unstable last-epoch protocol.", choices=["cosine", "constant"])
    ema_halflife: float = param(0.05, "Half-life of the weight average, as a fraction of all steps "
                                      "(0 = evaluate the last weights).", min=0.0, max=1.0)
    label_smoothing: float = param(0.1, "Label smoothing of the cross-entropy loss (0 = hard labels, as the "
                                        "papers). 0.1 keeps the imbalanced baselines from overconfidence: "
                                        "+0.12 macro F1 for equal_steps on magnetic_tile.", min=0.0, max=0.5)
    amp: str = param("auto", "auto: bfloat16 autocast where the hardware computes it natively (CUDA with bf16, "
                             "CPUs with AMX or AVX512-BF16), float32 elsewhere; off: always float32.",
                     choices=["auto", "off"])
    weights_path: str = param("", "With pretrained: this local ImageNet weights file instead of the server's "
                                  "configured one (command line; the app uses the configured files).")

    def validate(self) -> None:
        if self.pretrained and self.arch == "small_cnn":
            raise ParamError("small_cnn has no ImageNet weights: set classifier.pretrained=false, or choose a "
                             f"torchvision arch ({', '.join(ARCHS[1:])})")
        if self.weights_path and not self.pretrained:
            raise ParamError("classifier.weights_path is only read with classifier.pretrained=true: add it, or "
                             "leave weights_path empty")


PRESETS = {"quick": {}, "paper": {"epochs": 35, "width": 32}}
# Classifier settings from a paper, applied over the experiment preset (`--set classifier.recipe=cyclegan_paper`,
# the Synthesize page's "Settings from"); values set explicitly win.
RECIPES = {"cyclegan_paper": {"arch": "resnet50", "pretrained": True, "lr": 1e-3, "batch_size": 4}}
RECIPE_HELP = {"cyclegan_paper": "the CycleGAN defect-augmentation paper's fine-tuning: an ImageNet backbone "
                                 "(ResNet-50; it also measured ResNet-34 and EfficientNet-B3), AdamW, lr 0.001, "
                                 "batch 4"}
# CPU time per training image relative to small_cnn, 64 px (benchmarks/RESULTS.md, classifier_archs: the fastest
# of 5 steps at batch 64 on a contended 2-core Xeon): what `core.experiment.estimate` scales its rough time by.
STEP_COST = {"small_cnn": 1, "resnet18": 40, "resnet34": 70, "resnet50": 130, "efficientnet_b0": 80,
             "efficientnet_b3": 150}
# Fields added after runs were made: left out of a run's key while at their default, so the results of those
# runs still match (resume, `core.experiment.config.ExperimentConfig.key`).
NEW_FIELDS = {"pretrained": False, "backbone_lr_scale": 0.1}


def params_values(preset: str, overrides: dict) -> dict:
    """The values `build_params(ClassifierParams, ...)` takes for an experiment preset and the user's
    overrides, with a `recipe` override expanded (its values first, the explicit ones over them)."""
    overrides = dict(overrides)
    recipe = overrides.pop("recipe", "") or ""
    if recipe and recipe not in RECIPES:
        raise ParamError(f"unknown classifier recipe {recipe!r}; known: {', '.join(RECIPES)}")
    return {**PRESETS[preset], **RECIPES.get(recipe, {}), **overrides}


def pretrained_reason(p: ClassifierParams | str) -> str:
    """Why this arch cannot start from ImageNet weights here ("" when it can): what to put where."""
    from .backbones import unavailable_reason
    arch, path = (p, "") if isinstance(p, str) else (p.arch, p.weights_path)
    return unavailable_reason(arch, path)


def make_model(p: ClassifierParams, channels: int, num_classes: int, seed: int,
               load_weights: bool = True) -> nn.Module:
    """The classifier with initial weights fixed by `seed` (same seed = same start): random, or with
    `p.pretrained` ImageNet's for the backbone and a head drawn from the seed. `load_weights=False` builds the
    same network without reading the file (to load a trained classifier's own weights into)."""
    from models.cnn import Pretrained, SmallCNN, head_prefix, torchvision_net
    torch.manual_seed(seed)
    if p.arch == "small_cnn":
        return SmallCNN(channels, num_classes, width=p.width, stem_stride=p.stem_stride)
    if p.arch not in ARCHS:
        raise ParamError(f"unknown classifier arch {p.arch!r}; use one of {', '.join(ARCHS)}")
    if not p.pretrained:
        return torchvision_net(p.arch, channels, num_classes)
    net = torchvision_net(p.arch, 3, num_classes)
    if load_weights:
        from .backbones import load_imagenet, weights_file, where_to_put
        path = weights_file(p.arch, p.weights_path)
        if path is None:
            raise ParamError(f"{p.arch} with pretrained needs local ImageNet weights: {where_to_put(p.arch)}; or "
                             "set classifier.pretrained=false to train it from scratch")
        load_imagenet(net, p.arch, path, head_prefix(net))
    return Pretrained(net)


def network(model: nn.Module) -> nn.Module:
    """The plain network inside a classifier (the torchvision one behind a pretrained model's input layer):
    what a weights file holds."""
    from models.cnn import Pretrained
    return model.net if isinstance(model, Pretrained) else model


def param_groups(model: nn.Module, p: ClassifierParams) -> list[dict]:
    """AdamW's parameter groups: one at lr, or with pretrained the new head at lr (first: the rate the
    curve reports) and the backbone at backbone_lr_scale x lr."""
    if not p.pretrained:
        return [{"params": list(model.parameters()), "lr": p.lr}]
    from models.cnn import head
    head_params = list(head(network(model)).parameters())
    ids = {id(t) for t in head_params}
    rest = [t for t in model.parameters() if id(t) not in ids]
    return [{"params": head_params, "lr": p.lr}, {"params": rest, "lr": p.lr * p.backbone_lr_scale}]


def preprocessing(p: ClassifierParams, channels: int, image_size: int) -> dict:
    """How an image becomes the network's input, for a user applying the exported weights elsewhere."""
    from models.cnn import IMAGENET_MEAN, IMAGENET_STD
    steps = {"resize": [int(image_size), int(image_size)], "resize_note": "squashed (aspect ratio not kept), "
             "LANCZOS when shrinking, bilinear when enlarging", "color": "L (grey)" if channels == 1 else "RGB",
             "scale": "pixel / 255 (to [0, 1])", "layout": "NCHW float32"}
    if p.pretrained:
        steps.update(repeat_grey_to_rgb=channels == 1, network_channels=3, mean=list(IMAGENET_MEAN),
                     std=list(IMAGENET_STD))
    else:
        steps.update(network_channels=int(channels), mean=[0.5] * int(channels), std=[0.5] * int(channels))
    steps["normalise"] = "(x - mean) / std per channel"
    return steps


def saved_form(model: nn.Module, p: ClassifierParams, classes: list[str], channels: int, image_size: int,
               seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) that `rebuild` turns back into the trained classifier. The tensors are the plain network's
    state dict (a torchvision arch's loads into `torchvision.models.<arch>(num_classes=len(classes))`, its first
    conv rebuilt for grey when from scratch); the meta says the classes and the preprocessing."""
    import dataclasses
    tensors = {k: v.detach().cpu() for k, v in network(model).state_dict().items()}
    return tensors, {"format": "defectaug-classifier/1", "arch": p.arch, "pretrained": bool(p.pretrained),
                     "params": dataclasses.asdict(p), "classes": list(classes), "channels": int(channels),
                     "image_size": int(image_size), "seed": int(seed),
                     "preprocessing": preprocessing(p, channels, image_size)}


def rebuild(tensors: dict[str, torch.Tensor], meta: dict, device: torch.device | str = "cpu") -> nn.Module:
    """A trained classifier back from `saved_form` (in eval mode); reads no ImageNet file. The `linear` baseline's
    (`core.linear`) comes back as the module it was saved from."""
    from .params import build_params
    if meta.get("arch") == "linear":
        from models.linear import PixelLogistic
        return PixelLogistic.from_tensors(tensors).to(device).eval()
    p = build_params(ClassifierParams, {**meta["params"], "weights_path": ""}, "classifier")
    with torch.random.fork_rng(devices=[]):          # building seeds torch's stream: leave the caller's alone
        model = make_model(p, int(meta["channels"]), len(meta["classes"]), int(meta.get("seed", 0)),
                           load_weights=False)
    network(model).load_state_dict(tensors)
    return model.to(device).eval()


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [N,H,W,C] -> float [N,C,H,W] in [-1, 1] on `device`."""
    from .training.images import to_signed
    # channels_last: the NHWC layout we already have is the fast one for convs on CPU and CUDA
    return to_signed(images, device).contiguous(memory_format=torch.channels_last)


def steps_for(n_images: int, p: ClassifierParams) -> int:
    """Gradient steps of `p.epochs` passes over `n_images` (what equal_steps baselines are matched to)."""
    return p.epochs * max(1, math.ceil(n_images / p.batch_size))


def use_bf16(p: ClassifierParams, device: torch.device) -> bool:
    """bfloat16 autocast only where it is native (fast); emulated bf16 on an older CPU is slower than fp32."""
    if p.amp != "auto":
        return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        return bool(torch.backends.mkldnn.is_available() and cpu is not None
                    and (getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                         or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()))
    return False


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


def class_balanced_weights(labels: np.ndarray, num_classes: int, beta: float = 0.9999) -> np.ndarray:
    """Cui et al.'s class-balanced weights (1 - beta) / (1 - beta^n_c), normalised to sum to the number of
    classes (as LDAM-DRW re-weights with); a class without training images gets 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, (1 - beta) / (1 - beta ** np.maximum(counts, 1)), 0.0)
    return (w * num_classes / w.sum()).astype(np.float32)


def drw_start_epoch(epochs: int, share: float = 0.25) -> int:
    """The first epoch of deferred re-weighting's weighted phase: the last `share` of the epochs (at least one)."""
    return epochs - max(1, round(epochs * share)) + 1


def logit_adjustment(labels: np.ndarray, num_classes: int, tau: float = 1.0) -> np.ndarray:
    """tau * log(class prior) of the training labels, what the logit-adjusted loss adds to the logits (Menon et
    al., ICLR 2021): rare classes must win by a margin while training, so the raw logits favour them after."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (tau * np.log(np.maximum(counts, 0.5) / max(counts.sum(), 1.0))).astype(np.float32)


class WeightAverage:
    """Exponential moving average of parameters (BatchNorm statistics copied), with fused
    `_foreach` ops: torch's AveragedModel costs more than the training step of a small CNN on CPU."""

    def __init__(self, model: nn.Module, halflife_steps: float) -> None:
        import copy
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.decay = 0.5 ** (1.0 / max(1.0, halflife_steps))
        self.n = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        mine = [p for p in self.module.parameters()]
        theirs = [p.detach() for p in model.parameters()]
        # warm-up: average uniformly at first, so the start weights do not linger in short runs
        self.n += 1
        weight = max(1.0 - self.decay, 1.0 / self.n)
        torch._foreach_lerp_(mine, theirs, weight)
        for b_mine, b_theirs in zip(self.module.buffers(), model.buffers()):
            b_mine.copy_(b_theirs)


@dataclass
class TrainResult:
    model: nn.Module          # the evaluated (weight-averaged) model
    steps: int
    seconds: float
    curve: list[dict]


def train(train_set: ImageSet, p: ClassifierParams, seed: int, *, steps: int | None = None,
          class_weights: np.ndarray | None = None, weights_from_epoch: int = 1,
          logit_offsets: np.ndarray | None = None, device: torch.device | str | None = None,
          eval_set: ImageSet | None = None, name: str = "model",
          on_epoch: Callable[[dict], None] | None = None,
          check_cancel: Callable[[], None] | None = None) -> TrainResult:
    """Train a classifier from the seed's initial weights; return the weight-averaged model.

    `class_weights` weight the loss from epoch `weights_from_epoch` on (1: throughout); `logit_offsets` [K] are
    added to the logits inside the loss only (prediction uses the raw logits). `eval_set` only feeds the
    monitoring curve (`on_epoch`); it never chooses anything.
    """
    dev = pick_device(device) if isinstance(device, (str, type(None))) else device
    tune_allocator()                          # same numbers, no page faults per step (core.runtime)
    if len(train_set) == 0:
        raise ParamError("the training set is empty")
    k = len(train_set.classes)
    model = make_model(p, train_set.channels, k, seed).to(dev, memory_format=torch.channels_last)
    total = int(steps) if steps is not None else steps_for(len(train_set), p)
    per_epoch = max(1, math.ceil(total / p.epochs))
    x = to_tensor(train_set.images, dev)
    # class indexes, or class shares when the set has them: the same loss takes either
    y = torch.from_numpy(train_set.labels if train_set.targets is None else train_set.targets).to(dev)
    n = len(x)
    bs = min(p.batch_size, n)
    opt = torch.optim.AdamW(param_groups(model, p), lr=p.lr, weight_decay=p.weight_decay)
    sched = (torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
             if p.schedule == "cosine" else None)
    weight = torch.as_tensor(class_weights, device=dev) if class_weights is not None else None
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=p.label_smoothing)
    plain_loss = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
    weighted_from = (weights_from_epoch - 1) * per_epoch + 1 if weight is not None else 1   # the step it starts
    offsets = torch.as_tensor(logit_offsets, device=dev) if logit_offsets is not None else None
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if use_bf16(p, dev) else contextlib.nullcontext
    avg = WeightAverage(model, halflife_steps=p.ema_halflife * total) if p.ema_halflife > 0 else None
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    order, pos = torch.randperm(n, generator=gen), 0
    curve: list[dict] = []
    t0 = time.time()
    run_loss, run_n = 0.0, 0
    model.train()
    for step in range(1, total + 1):
        if pos + bs > n:                      # a fresh permutation; every batch is full-size
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + bs].to(dev)
        pos += bs
        with autocast():
            out = model(x[idx])
        out = out.float() if offsets is None else out.float() + offsets
        loss = (loss_fn if step >= weighted_from else plain_loss)(out, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if avg is not None:
            avg.update(model)
        run_loss += float(loss.detach()) * bs
        run_n += bs
        if step % per_epoch == 0 or step == total:
            point = {"model": name, "epoch": math.ceil(step / per_epoch), "epochs": p.epochs, "step": step,
                     "steps": total, "loss": run_loss / max(run_n, 1),
                     "lr": opt.param_groups[0]["lr"], "seconds": round(time.time() - t0, 2)}
            if weight is not None:
                point["class_weighted"] = step >= weighted_from
            run_loss, run_n = 0.0, 0
            if eval_set is not None and len(eval_set):
                from .metrics import macro_f1
                point["test_f1_raw"] = macro_f1(eval_set.labels, predict(model, eval_set, dev).argmax(1), k)
                if avg is not None:
                    point["test_f1"] = macro_f1(eval_set.labels, predict(avg.module, eval_set, dev).argmax(1), k)
                else:
                    point["test_f1"] = point["test_f1_raw"]
                model.train()
            curve.append(point)
            if on_epoch is not None:
                on_epoch(point)
            if check_cancel is not None:
                check_cancel()
    final = avg.module if avg is not None else model
    final.eval()
    return TrainResult(final, total, time.time() - t0, curve)


@torch.no_grad()
def predict(model: nn.Module, images: ImageSet | np.ndarray, device: torch.device | str | None = None,
            batch_size: int = 256) -> np.ndarray:
    """Class probabilities [N, K] (softmax), in eval mode."""
    arr = images.images if isinstance(images, ImageSet) else images
    dev = next(model.parameters()).device if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(arr), batch_size):
        out.append(torch.softmax(model(to_tensor(arr[i:i + batch_size], dev)).float(), 1).cpu())
    if was_training:
        model.train()
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
