"""Feature extractors for the distribution measures, named by what they are (every number names its
extractor): nothing is downloaded.

    cls        the evaluation classifier's penultimate layer, from a classifier the run trained on the real
               training images only (its class-weighted baseline): "FD-cls" / "KD-cls", never "FID"
    inception  torchvision's Inception-v3 (2048-d pool features) from a local weights file the user points to
               ($DEFECTAUG_INCEPTION_WEIGHTS): FID / KID. The file is a pickle, so before it is loaded its SHA-256
               must match the known file's (the prefix its published name carries, as torch.hub checks it, or
               the full hash in $DEFECTAUG_INCEPTION_SHA256 for another file the administrator vouches for), and
               it is loaded with torch.load(weights_only=True).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import ParamError

INCEPTION_ENV = "DEFECTAUG_INCEPTION_WEIGHTS"
INCEPTION_SHA_ENV = "DEFECTAUG_INCEPTION_SHA256"
# torchvision's ImageNet Inception-v3 (inception_v3_google-0cc3c7bd.pth): the SHA-256 prefix in its name
KNOWN_INCEPTION_SHA256_PREFIX = "0cc3c7bd"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the classifier has no linear layer to take features before")
    return linears[-1]


@torch.no_grad()
def penultimate(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The input of the classifier's last linear layer (its penultimate features) for uint8 [N,H,W,C]
    images, with the class probabilities: (features [N, d], probs [N, K])."""
    from ...classifier import to_tensor
    head = _last_linear(model)
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach().float().cpu()))
    dev = next(model.parameters()).device
    probs = []
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(images), batch_size):
            probs.append(torch.softmax(model(to_tensor(images[i:i + batch_size], dev)).float(), 1).cpu())
    finally:
        hook.remove()
        model.train(was_training)
    if not seen:
        return np.zeros((0, head.in_features), np.float64), np.zeros((0, head.out_features), np.float32)
    return torch.cat(seen).numpy().astype(np.float64), torch.cat(probs).numpy()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inception_path() -> Path | None:
    raw = os.environ.get(INCEPTION_ENV, "").strip()
    return Path(raw).expanduser() if raw else None


class InceptionFeatures(nn.Module):
    """Inception-v3's 2048-d pool features of uint8 [N,H,W,C] images (grey repeated to RGB, resized to
    299 px, ImageNet normalisation), from a checked local weights file."""
    num_features = 2048

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        from torchvision.models import inception_v3
        path = Path(path)
        if not path.is_file():
            raise ParamError(f"Inception-v3 weights not found at {path}; set {INCEPTION_ENV} to a local copy of "
                             f"torchvision's inception_v3_google-{KNOWN_INCEPTION_SHA256_PREFIX}.pth")
        digest = file_sha256(path)
        vouched = os.environ.get(INCEPTION_SHA_ENV, "").strip().lower()
        if not (digest == vouched or (not vouched and digest.startswith(KNOWN_INCEPTION_SHA256_PREFIX))):
            want = f"the SHA-256 set in {INCEPTION_SHA_ENV}" if vouched else \
                f"the known file's (starting {KNOWN_INCEPTION_SHA256_PREFIX})"
            raise ParamError(f"{path.name} is not the known Inception-v3 weights file: its SHA-256 {digest[:16]}... "
                             f"is not {want}. It was not loaded (a weights file is a pickle).")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  an unreadable file is the user's to replace
            raise ParamError(f"could not read the Inception-v3 weights {path}: {err}") from None
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError) as err:
            raise ParamError(f"{path.name} does not hold Inception-v3 weights ({str(err).splitlines()[0]})") from None
        net.fc = nn.Identity()
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> [B, 2048]."""
        x = x.float() / 255.0
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std)

    def features(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).permute(0, 3, 1, 2)
            out.append(self.forward(x).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2048))
