"""Scoring new images with a classifier a run trained, and its weights as files to take elsewhere.

    python -m core predict runs/x --model smote --seed 0 new_images/ [--out scores.csv]

    scores = predict_folder("runs/x", "smote", 0, "new_images/")   # rows: file, pred, probability per class
    write_scores_csv(scores, "scores.csv")
    weights_files("runs/x", "baseline_equal_steps", 0)             # (safetensors path, JSON path) to download

A model is named as the run names it: a baseline (`baseline_equal_steps`, also `baseline:equal_steps` or
`equal_steps`) or a method (`smote`, `smote+gate`). The images are read exactly as the run read its own
(`core.data.iter_images`: same decoding, size and channels, a chunk at a time), so the run's test images get the run's
predictions. With K folds, the classifier of one fold (the first by default).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RunError
from ..rundir import RunDir


@dataclass
class Scores:
    model_id: str
    classes: list[str]
    files: list[str]
    probs: np.ndarray                                   # [N, K]
    skipped: list = field(default_factory=list)        # core.data.SkippedFile

    def rows(self) -> list[dict]:
        return [{"file": f, "pred": self.classes[int(p.argmax())], **{f"p_{c}": float(v) for c, v in
                                                                       zip(self.classes, p)}}
                for f, p in zip(self.files, self.probs)]


def model_name(model: str) -> str:
    """`baseline:equal_steps` / `equal_steps` -> `baseline_equal_steps`; method names unchanged."""
    from ..experiment.config import BASELINES
    name = model.strip()
    if name.startswith("baseline:"):
        name = "baseline_" + name.split(":", 1)[1]
    return f"baseline_{name}" if name in BASELINES else name


def _fold_dir(run: RunDir, fold: int | None) -> RunDir:
    return run.one_split(fold)


def trained_models(run_dir: str | Path, fold: int | None = None) -> list[str]:
    """The model ids whose classifier the run kept (e.g. baseline_equal_steps_s0, smote_s1)."""
    run = RunDir(run_dir)
    return _fold_dir(run, fold).classifier_models() if run.exists() else []


def weights_files(run_dir: str | Path, model: str, seed: int, fold: int | None = None) -> tuple[Path, Path]:
    """(weights .safetensors, its .json of arch, classes and preprocessing) of one trained classifier."""
    run = RunDir(run_dir)
    rd = _fold_dir(run, fold)
    model_id = RunDir.model_id(model_name(model), int(seed))
    path, meta = rd.classifier_path(model_id), rd.classifier_meta_path(model_id)
    if not (path.exists() and meta.exists()):
        kept = rd.classifier_models()
        raise RunError(f"{run.root} kept no classifier {model_id!r}" +
                       (f"; it has {', '.join(kept)}" if kept else
                        " (it trained none yet, or was made before classifiers were kept: run it again)"))
    return path, meta


def weights_download(run_dir: str | Path, model: str, seed: int, fold: int | None = None) -> tuple[Path, dict, bytes]:
    """(weights .safetensors path, its meta as a dict, the meta file's bytes) of one trained classifier: what the
    Export page shows and offers for download."""
    path, meta_path = weights_files(run_dir, model, seed, fold)
    raw = meta_path.read_bytes()
    return path, json.loads(raw.decode("utf-8")), raw


MAX_WEIGHTS_BYTES = 2 << 30     # the largest kept classifier (resnet50) is about 100 MB
MAX_META_BYTES = 1 << 20


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, opened once without blocking (a FIFO in place of the file would wait forever for a
    writer) and checked to be a regular file of at most `limit` bytes before a byte is read."""
    import os
    import stat
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise RunError(f"{what} {path.name} cannot be opened: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RunError(f"{what} {path.name} is not a regular file; run the experiment again to rebuild it")
        if st.st_size > limit:
            raise RunError(f"{what} {path.name} is {st.st_size / 2**20:,.0f} MB, more than a classifier's "
                           f"{limit / 2**20:,.0f} MB; it is not one this program wrote")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)
    finally:
        os.close(fd)


def check_meta(meta: object, name: str) -> dict:
    """The classifier's JSON as `rebuild` needs it, or a RunError saying what is wrong: a list of two or more
    distinct class names, 1 or 3 channels, an image size the runs use (a size of 20000 would decode every image
    to gigabytes), a params object, a whole-number seed."""
    from ..experiment.config import SUPPORTED_SIZES

    def bad(what: str) -> RunError:
        return RunError(f"{name} is not a classifier this program wrote: {what}")

    if not isinstance(meta, dict):
        raise bad("not a JSON object")
    classes = meta.get("classes")
    if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) and c for c in classes)
            and len(set(classes)) == len(classes)):
        raise bad("'classes' must list two or more distinct class names")
    for key, allowed in (("channels", (1, 3)), ("image_size", SUPPORTED_SIZES)):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise bad(f"'{key}' must be one of {', '.join(map(str, allowed))}, got {value!r}")
    if not isinstance(meta.get("params"), dict):
        raise bad("'params' must be an object of classifier settings")
    if isinstance(meta.get("seed", 0), bool) or not isinstance(meta.get("seed", 0), int):
        raise bad(f"'seed' must be a whole number, got {meta.get('seed')!r}")
    return meta


def load_classifier(run_dir: str | Path, model: str, seed: int, fold: int | None = None, device: str = "cpu"):
    """(model in eval mode, meta) of one trained classifier of the run. The files are treated as untrusted (a
    shared drive, a restored backup): anything but a classifier this program wrote is a RunError saying what
    is wrong, never a hang, a traceback or an allocation the size a tampered JSON asks for."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    from .. import classifier as clf
    path, meta_path = weights_files(run_dir, model, seed, fold)
    try:
        meta = json.loads(_read_regular(meta_path, MAX_META_BYTES, "the classifier's JSON").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RunError(f"{meta_path.name} is not valid JSON; run the experiment again to rebuild its "
                       "classifiers") from None
    check_meta(meta, meta_path.name)
    try:
        tensors = load_safetensors(_read_regular(path, MAX_WEIGHTS_BYTES, "the weights file"))
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise RunError(f"{path.name} is not a readable safetensors file ({_first_line(err)}); run the "
                       "experiment again to rebuild its classifiers") from None
    try:
        return clf.rebuild(tensors, meta, device=device), meta
    except (RuntimeError, ValueError, TypeError, KeyError) as err:   # shapes or names that do not fit the JSON
        raise RunError(f"{path.name} does not fit the classifier {meta_path.name} describes: "
                       f"{_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def predict_folder(run_dir: str | Path, model: str, seed: int, images_dir: str | Path, fold: int | None = None,
                   device: str = "cpu") -> Scores:
    """The class probabilities of every image under `images_dir`, from one trained classifier of the run. The
    images are decoded and scored a chunk at a time (`core.data.iter_images`): memory does not grow with their
    number (benchmarks/RESULTS.md, predict_memory)."""
    from .. import classifier as clf
    from ..data import iter_images
    net, meta = load_classifier(run_dir, model, seed, fold, device)
    files, parts, skipped = [], [], []
    for images, names in iter_images(images_dir, int(meta["image_size"]), int(meta["channels"]), skipped=skipped):
        parts.append(clf.predict(net, images))
        files += names
    probs = np.concatenate(parts) if parts else np.zeros((0, len(meta["classes"])), np.float32)
    return Scores(RunDir.model_id(model_name(model), int(seed)), list(meta["classes"]), files, probs, skipped)


def scores_csv(scores: Scores) -> str:
    """The CSV a user downloads: file, pred, p_<class> per class (cells a spreadsheet would run kept as text)."""
    from ..files import csv_row
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(csv_row(["file", "pred"] + [f"p_{c}" for c in scores.classes]))
    for f, p in zip(scores.files, scores.probs):
        w.writerow(csv_row([f, scores.classes[int(p.argmax())]] + [f"{v:.5f}" for v in p]))
    return buf.getvalue()


def write_scores_csv(scores: Scores, out: str | Path) -> Path:
    from ..files import atomic_write
    return atomic_write(out, scores_csv(scores))
