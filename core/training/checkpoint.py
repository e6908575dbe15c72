"""Checkpoint files (safetensors): tensors plus string metadata, written atomically, and optimiser states
flattened into tensors so one file holds a whole training state."""
from __future__ import annotations

import contextlib
import errno
import re
from pathlib import Path

import torch

from ..rundir import atomic_path

_OS_ERROR = re.compile(r"os error (\d+)")


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """`safetensors.torch.save_file` into `path` atomically, with a failed write raised as the `OSError` it
    is (safetensors raises its own `SafetensorError`): a full disk while saving a checkpoint then reads "the
    disk is full", like any other write, instead of an internal error. Nothing is left at `path`."""
    import safetensors.torch
    from safetensors import SafetensorError
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        try:
            safetensors.torch.save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as err:
            text = str(err)
            code = _OS_ERROR.search(text)
            if code is None and "No space left" not in text and "I/O error" not in text:
                raise   # not a write failure (a bad tensor): a bug, reported as such
            if code:
                number = int(code.group(1))
            else:
                number = errno.ENOSPC if "No space left" in text else errno.EIO
            with contextlib.suppress(OSError):
                Path(path).unlink()
            raise OSError(number, text, str(path)) from err


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open
    with safe_open(str(path), "pt") as fh:
        return dict(fh.metadata() or {})


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(path))


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


def sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix` (e.g. "G."), with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
