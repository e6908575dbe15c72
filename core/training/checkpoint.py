"""Optimiser states flattened into tensors, so one safetensors file holds a whole training state (the file
I/O itself is core.files: atomic, a full disk raised as the OSError it is)."""
from __future__ import annotations

import torch

from ..files import load_tensors, read_metadata, save_tensors

__all__ = ["flatten_optimizer", "load_optimizer", "load_tensors", "prefixed", "read_metadata", "save_tensors",
           "sub"]


def flatten_optimizer(prefix: str, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for pid, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{prefix}.{pid}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return out


def load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """A state dict's tensors under `prefix` (e.g. "unet."), to keep several in one file; `sub` takes them back."""
    return {f"{prefix}{k}": v for k, v in state.items()}


def sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix` (e.g. "G."), with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
