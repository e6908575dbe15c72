"""Local ImageNet weights for the classifier's torchvision backbones: where they are, and loading them.

Nothing is downloaded. The server's administrator puts torchvision's own files in one folder and names it in
`DEFECTAUG_WEIGHTS_DIR`, or names one file per arch (`DEFECTAUG_WEIGHTS_RESNET50=/models/r50.pth`); a CLI run
can also give `--set classifier.weights_path=FILE`. The expected names are torchvision's (the last part of its
download URL, read from its weights enums, e.g. `resnet50-11ad3fa6.pth`), or `<arch>.pth` / `<arch>.safetensors`.

    weights_file("resnet50")            # Path, or None when not configured
    unavailable_reason("resnet50")      # "" when pretrained is available, else what to put where
    load_imagenet(net, "resnet50", path)    # every backbone tensor from the file, the head left fresh

A `.pth` file is a pickle: it is read with `torch.load(..., weights_only=True)`, which only builds tensors.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ParamError

WEIGHTS_DIR_ENV = "DEFECTAUG_WEIGHTS_DIR"
# torchvision's ImageNet weights enum of each arch (their URLs name the files; reading them downloads nothing)
_ENUMS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "resnet50": "ResNet50_Weights",
          "efficientnet_b0": "EfficientNet_B0_Weights", "efficientnet_b3": "EfficientNet_B3_Weights"}
PRETRAINABLE = tuple(_ENUMS)


def arch_env(arch: str) -> str:
    """The environment variable naming one arch's weights file, e.g. DEFECTAUG_WEIGHTS_RESNET50."""
    return f"DEFECTAUG_WEIGHTS_{arch.upper()}"


def expected_files(arch: str) -> list[str]:
    """File names looked for in DEFECTAUG_WEIGHTS_DIR, newest torchvision weights first."""
    import torchvision.models as tvm
    if arch not in _ENUMS:
        return []
    urls = [w.url for w in getattr(tvm, _ENUMS[arch])]
    return [u.rsplit("/", 1)[-1] for u in reversed(urls)] + [f"{arch}.pth", f"{arch}.safetensors"]


def weights_file(arch: str, path: str = "") -> Path | None:
    """The weights file to start `arch` from: `path` if given, else DEFECTAUG_WEIGHTS_<ARCH>, else the first
    expected name found in DEFECTAUG_WEIGHTS_DIR; None when none is configured or found."""
    for given in (path, os.environ.get(arch_env(arch), "")):
        if given and given.strip():
            return Path(given.strip()).expanduser()
    folder = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if folder:
        for name in expected_files(arch):
            candidate = Path(folder).expanduser() / name
            if candidate.is_file():
                return candidate
    return None


def where_to_put(arch: str) -> str:
    names = expected_files(arch)
    return (f"put {names[0]} (torchvision's ImageNet file" + (f"; or {', '.join(names[1:])}" if names[1:] else "")
            + f") in the folder named by {WEIGHTS_DIR_ENV}, or set {arch_env(arch)} to the file")


def unavailable_reason(arch: str, path: str = "") -> str:
    """Why `arch` cannot start from ImageNet weights on this server ("" when it can). Checks the file exists,
    not its content (that is read when a job trains)."""
    if arch not in _ENUMS:
        return f"{arch} is trained from scratch only (no ImageNet weights exist for it)"
    found = weights_file(arch, path)
    if found is None:
        folder = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
        return (f"no ImageNet weights for {arch}" + (f" in {folder}" if folder else f" ({WEIGHTS_DIR_ENV} is not set)")
                + f": {where_to_put(arch)}. Nothing is downloaded.")
    if not found.is_file():
        return f"the ImageNet weights file {found} for {arch} does not exist: {where_to_put(arch)}"
    return ""


def read_state(path: Path) -> dict:
    """The tensors of a local weights file (.safetensors, or .pth/.pt read with weights_only=True)."""
    import torch
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to replace
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ParamError(f"could not read the weights file {path}: {first[:300]}. Give torchvision's ImageNet "
                         "file (a state dict saved with torch.save, or .safetensors)") from None
    for key in ("state_dict", "model"):              # checkpoints that wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ParamError(f"{path} does not hold a state dict (a mapping of tensor names to tensors)")
    return state


def load_imagenet(net, arch: str, path: Path, head_prefix: str) -> None:
    """Every tensor of the 3-channel torchvision `net` but its head (keys starting `head_prefix`, which keeps
    its fresh init for this run's classes) from `path`; a file that is not `arch`'s ImageNet weights is refused
    with what differs, never loaded in part."""
    if not path.is_file():
        raise ParamError(f"the ImageNet weights file {path} for {arch} does not exist: {where_to_put(arch)}")
    state = {k.removeprefix("module."): v for k, v in read_state(path).items()}
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(head_prefix)}
    missing = [k for k in own if k not in state]
    shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or shaped:
        what = (f"{len(missing)} of its {len(own)} tensors are missing (e.g. {missing[0]})" if missing else
                f"{len(shaped)} tensors have other shapes (e.g. {shaped[0]}: {tuple(state[shaped[0]].shape)} "
                f"in the file, {tuple(own[shaped[0]].shape)} in {arch})")
        raise ParamError(f"{path.name} does not hold {arch} weights: {what}. {where_to_put(arch)[0].upper()}"
                         f"{where_to_put(arch)[1:]}")
    net.load_state_dict({k: state[k] for k in own}, strict=False)
