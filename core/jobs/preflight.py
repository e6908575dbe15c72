"""What is checked before a job is queued: one call, `preflight(config, workspace, counts)`, made once per launch.

    checked = preflight(config, workspace, counts)   # raises ParamError / DataError saying what to change
    checked.estimate                                 # what will run, how long, how much memory (the page shows it)
    JobStore(workspace).submit(checked)              # queued as checked, not checked again

It checks the config (`ExperimentConfig`), the runner setting, the classifier's weights, the data path (inside the
workspace or the data roots), that every method can train on these counts (`Sampler.check_data`), the memory
the methods' networks and the synthetic images need, and adds the duration calibrated on this machine's
finished runs (`core.estimate`).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ParamError
from ..workspace import Workspace
from .locks import default_max_parallel


@dataclass(frozen=True)
class Checked:
    """A job config that passed `preflight`, and what the check found: submit it as it is."""
    config: dict                                   # the plain-JSON config that was checked
    estimate: dict = field(default_factory=dict)   # core.experiment.estimate + seconds (calibrated) + memory_bytes


def memory_limit() -> int:
    """Bytes one job may use for images: $DEFECTAUG_MAX_JOB_MEMORY (e.g. 2e9), else half of the
    memory available now, shared between the jobs allowed to run at once."""
    raw = os.environ.get("DEFECTAUG_MAX_JOB_MEMORY", "").strip()
    if raw:
        try:
            return int(float(raw))
        except ValueError:
            raise ParamError("DEFECTAUG_MAX_JOB_MEMORY must be a number of bytes, e.g. 2e9") from None
    from ..runtime import available_memory
    return available_memory() // 2 // default_max_parallel()


def _human_bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def memory_check(estimate: dict) -> None:
    """Refuse a job whose images would not fit in memory, saying what to change."""
    need = estimate.get("memory_bytes")
    if not need:
        return
    limit = memory_limit()
    if need > limit:
        synthetic = estimate.get("synthetic_per_method") or 0
        total = estimate.get("balanced_size") or 0
        what = (f"{total:,} training images ({synthetic:,} of them synthetic) per method and seed" if total
                else "its images")
        if total and need * (total - synthetic) / total > limit:
            # fewer synthetic images would not help: the real ones alone are over the limit
            fix = "Even the real images alone do not fit: lower the image size, or use fewer images"
        else:
            fix = ("Lower the target balance ratio or the image size, or simulate a stronger imbalance "
                   "(a smaller ratio)")
        raise ParamError(
            f"this job would need about {_human_bytes(need)} of memory for {what}, more than the "
            f"{_human_bytes(limit)} a job may use here. {fix}, then launch again.")


def quick_counts(data: str | Path) -> dict[str, int]:
    """Image files per class folder, counted without decoding (a folder or a .zip); {} if unknown.
    Good enough to bound memory before a job starts; the job itself reports the exact counts."""
    from ..data import IMAGE_EXTENSIONS
    path = Path(data)
    counts: dict[str, int] = {}
    try:
        if path.is_dir():
            names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        elif path.is_file() and path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/")]
        else:
            return {}
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile):
        return {}
    for name in names:
        parts = name.split("/")
        if len(parts) >= 2 and Path(name).suffix.lower() in IMAGE_EXTENSIONS \
                and not any(p.startswith(".") or p == "__MACOSX" for p in parts):
            counts[parts[-2]] = counts.get(parts[-2], 0) + 1
    return counts


def quick_protocol(cfg):
    """The run's split and imbalance counts (`core.data.protocol_counts`) from its files counted without
    decoding (`quick_counts`); None when they cannot be counted."""
    from ..data import protocol_counts
    found = quick_counts(cfg.data)
    return protocol_counts(found, cfg.test_split, cfg.ratio, cfg.normal_class, cfg.target_ratio) if found else None


def check_methods(cfg, counts: dict[str, int]) -> None:
    """Refuse a run whose methods cannot train on these training counts (`Sampler.check_data`)."""
    from ..data import balance_targets, normal_class_guessed, resolve_normal_class
    from ..methods import get_method
    normal = resolve_normal_class(counts, cfg.normal_class) if counts else None
    needed = balance_targets(counts, cfg.target_ratio)
    for name in cfg.methods:
        spec = get_method(name)
        if spec.sampler_cls.translates_normal_images and normal_class_guessed(counts, cfg.normal_class):
            raise ParamError(
                f"{name} turns images of the normal (defect-free) class into defects, and no class is named like "
                f"normal, good, ok, free or pass: the largest class, {normal}, was only taken as normal. Name the "
                f"normal class (normal_class; --normal-class on the command line; on the Synthesize page, choose "
                f"or confirm it), then launch again.")
        why = spec.sampler_cls.check_data(cfg.method_params(name), counts, normal, needed)
        if why:
            raise ParamError(f"{name} {why}")


def check_classifier(cfg, from_app: bool = False) -> None:
    """Refuse a run whose classifier cannot start: pretrained weights not configured or not found (what to put
    where). From the app a weights file path is refused: the server's configured files are the ones it uses."""
    from ..classifier import pretrained_reason
    cp = cfg.classifier_params()
    if from_app and cp.weights_path:
        raise ParamError("classifier.weights_path is a command-line setting; the app starts from the weights "
                         "the server's administrator configured (DEFECTAUG_WEIGHTS_DIR)")
    if cp.pretrained:
        why = pretrained_reason(cp)
        if why:
            raise ParamError(f"the classifier cannot start pretrained: {why} Or set classifier.pretrained=false "
                             f"to train {cp.arch} from scratch.")


def check_model_memory(cfg, n_classes: int) -> None:
    """Refuse a run whose methods' networks would not fit in a job's memory: parameters, gradients, Adam's
    state and one batch's activations, counted on the networks built on the meta device from the method's
    settings (`core.methods.base.training_memory`); the message names the settings to lower."""
    import dataclasses
    from ..methods import get_method
    from ..methods.base import training_memory
    channels = 1 if str(cfg.channels) == "1" else 3
    size = int(cfg.image_size)
    limit = None
    for name in cfg.methods:
        spec = get_method(name)
        params = cfg.method_params(name)
        loaded = spec.sampler_cls.model_memory(params, _device_type(cfg.device))
        if loaded is not None:          # a pretrained model it loads (stable_diffusion): its weights, not Adam's
            limit = memory_limit() if limit is None else limit
            if loaded[0] > limit:
                raise ParamError(f"{name} would need about {_human_bytes(loaded[0])} of memory to load {loaded[1]}, "
                                 f"more than the {_human_bytes(limit)} a job may use here. Configure a smaller "
                                 f"model, or run it where there is more memory.")
        need = training_memory(spec.sampler_cls, params, (size, size, channels), n_classes)
        if need is None:
            continue
        limit = memory_limit() if limit is None else limit
        if need.bytes <= limit:
            continue
        values = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}
        widths = [k for k in values if k.endswith("width") or k.endswith("_dim") or k == "n_blocks"]
        shown = ", ".join(f"{k}={values[k]}" for k in widths)
        if need.activation_bytes > need.parameters * need.BYTES_PER_PARAMETER and "batch_size" in values:
            fix = f"Lower {name}.batch_size (now {values['batch_size']}) or the image size"
        else:
            fix = f"Lower {' and '.join(f'{name}.{k}' for k in widths if 'width' in k) or 'its network size'}"
            fix += " or the image size"
        raise ParamError(
            f"{name} would need about {_human_bytes(need.bytes)} of memory to train its networks at {size} px "
            f"({need.parameters / 1e6:,.1f} million parameters{' with ' + shown if shown else ''}: weights, "
            f"gradients and Adam's two moments, plus one batch's activations), more than the "
            f"{_human_bytes(limit)} a job may use here. {fix}, then launch again.")


def _device_type(device: str) -> str:
    from ..runtime import pick_device
    try:
        return pick_device(device).type
    except Exception:   # noqa: BLE001  a bad device is reported where the run starts
        return "cpu"


def preflight(config: dict, workspace: Workspace | None = None, counts: dict[str, int] | None = None) -> Checked:
    """Validate an experiment config before it is queued; returns it as `Checked`, with its estimate
    (`core.experiment.estimate` plus memory_bytes and, when the counts are known, the calibrated duration).
    `counts`: images per class after the simulated imbalance when the caller knows them (the app does), else
    counted from the files. Raises ParamError / DataError saying what to change."""
    from ..experiment import ExperimentConfig, estimate
    from ..experiment.cluster import runner_settings
    try:
        config = json.loads(json.dumps(dict(config)))   # a plain-JSON copy, as it will be stored
    except (TypeError, ValueError) as err:
        raise ParamError(f"a job config holds only numbers, text, lists and dicts ({err})") from None
    cfg = ExperimentConfig.from_dict(dict(config))
    runner_settings()           # a bad DEFECTAUG_RUNNER is said now, not deep in the job
    check_classifier(cfg, from_app=workspace is not None)
    if workspace is not None:
        workspace.check_data_path(str(cfg.data))
    from ..data.groups import check_on_files
    check_on_files(cfg.groups, cfg.data)     # a regex matching nothing, a CSV naming missing files: said now
    proto = quick_protocol(cfg)
    if proto is not None and cfg.folds == 1 and not sum(proto.test.values()):
        # what `prepare` would stop at once the job ran: said now, before it is queued
        raise ParamError("the test split is empty: every class needs at least 2 images")
    if counts is None:
        counts = proto.train if proto is not None else None
    if counts:
        check_methods(cfg, counts)
    check_model_memory(cfg, len(counts) if counts else 2)
    est = dict(estimate(dict(config), counts or None) or {})
    if counts:      # the duration on this machine, calibrated from its finished runs (core.estimate)
        from ..estimate import estimate as timed, machine_rates
        t = timed(cfg, counts, rates=machine_rates())
        est.update(seconds=round(t.seconds, 1), seconds_low=round(t.low, 1), seconds_high=round(t.high, 1),
                   calibrated_runs=t.runs, uncalibrated=t.uncalibrated, slowdown=round(t.slowdown, 2))
    if est.get("balanced_size"):
        channels = 1 if str(cfg.channels) == "1" else 3
        pixels = int(cfg.image_size) ** 2 * channels
        # the synthetic set, the augmented copy for the classifier and float32 rows for interpolation
        est["memory_bytes"] = int(est["balanced_size"] * pixels * 10)
    memory_check(est)
    return Checked(config, est)
