"""`RunDir`: the one owner of a run folder `runs/<id>/`. Every path and file format of a run is here.

    rd = RunDir("workspaces/<ws>/runs/<id>")
    rd.write_config(resolved); rd.config()
    rd.save_split("train", imageset); rd.load_split("test")
    rd.write_result("smote", 0, record); rd.result("baseline_paper", 0)
    rd.save_synthetic("smote", 0, synth, parents, png=True); rd.load_synthetic("smote", 0)
    rd.gallery("smote")              # synthetic images with their provenance
    rd.events()                      # events.jsonl, read incrementally (safe while the run writes)
    rd.read_metrics()                # metrics.json, checked; RunError saying what to do when damaged

The layout (ARCHITECTURE.md):

    config.json                    the resolved configuration (enough to reproduce the run)
    job.json                       what became of the job (mirror of the job store)
    job_end.json                   how the job ended, when its process could not write that to the job store
    job_process.log                the job process's own output (stdout and stderr; a crash's last words)
    CANCEL                         present while a cancel is requested
    events.jsonl, log.txt          progress events (core.events.Reporter writes them) and the log
    data_report.json               what loading the data found (skipped files, notes)
    split.json                     the train / test sources and counts, the sources the simulated imbalance held
                                   back, the normal class, what each class needs
    data/train.npz, data/test.npz  the images the run trained and tested on (uint8, with sources)
    fits/<method>_s<seed>.json     one method fitted for one seed: time, fallbacks, warnings (or why it failed)
    synthetic/<method>/s<seed>.npz the synthetic images of one seed, as the classifier trained on them
    synthetic/<method>/<class>/s<seed>_<i>.png and synthetic/<method>/provenance_s<seed>.csv
                                   the same images as files, and where each came from (when images are saved)
    quality/<method>_s<seed>.json and synthetic/<method>/quality_s<seed>.csv
                                   how good the synthetic images are (FD/KD-cls, SSIM, PRDC, copies, CAS), and per
                                   image its nearest real image and whether the quality gate keeps it
    checkpoints/<method>/seed<k>/  the fitted sampler (state.safetensors + meta.json); training/ inside it
                                   holds resumable training state while a generator trains
    samples/<method>/<class>/seed<k>_step<n>.png   the sample-grid timeline of a generator
    results/<model>_s<seed>.json   one trained classifier: its metrics and test predictions (class indexes)
    classifiers/<model>_s<seed>.safetensors and .json
                                   the trained (weight-averaged) classifier: the plain network's state dict (float32,
                                   a torchvision arch's loads into torchvision.models.<arch>(num_classes=K)), and
                                   the JSON of its arch, classes, settings and preprocessing (also in the
                                   safetensors header, key "defectaug", so the one file is self-describing); what
                                   `python -m core predict` and the Export page's weights download read. About
                                   160 KB for the default small_cnn; 43/81/90 MB for resnet18/34/50, 15/41 MB
                                   for efficientnet_b0/b3
    predictions/<model>_s<seed>.csv  per test image: true class, prediction, probability per class
    metrics.json                   the aggregate: baselines, methods, gains, verdicts, leaderboard
    folds/f<k>/                    with K folds: each fold's own run folder (split, data, fits, synthetic,
                                   results, predictions, metrics.json of that fold); the top folder's metrics.json
                                   and predictions/ pool them (every real image tested once), data/test.npz holds
                                   every test image and data/train.npz the first fold's training set

Every writer goes through `core.files` (`atomic_write`, `atomic_path` for files a library writes), so a crash
never leaves half a file under its final name. Readers tolerate a run that is still being written.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import RunError
from .files import atomic_path, atomic_write, csv_row, csv_value, load_tensors, read_json, save_tensors, write_json
from .imageset import ImageSet

__all__ = ["CANCEL_FILE", "GalleryItem", "RERUN_HINT", "RunDir", "atomic_path", "atomic_write", "read_json",
           "write_json"]

CANCEL_FILE = "CANCEL"
JOB_END_FILE = "job_end.json"      # how a job ended, when its process could not write that to the job store
PROCESS_LOG = "job_process.log"    # the job process's stdout and stderr
RERUN_HINT = "re-run it from the Jobs page"
PROVENANCE_COLUMNS = ("file", "class", "seed")
_PROVENANCE_FILE = re.compile(r"^provenance(?:_s(-?\d+))?\.csv$")


# ---------------------------------------------------------------------------------------------
# events.jsonl, read incrementally (a long GAN run writes thousands of events)
# ---------------------------------------------------------------------------------------------
class _EventCache:
    """Per-file cache: only the bytes appended since the last read are parsed."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[int, int, list[dict]]] = {}   # path -> (inode, offset, events)

    def read(self, path: Path) -> list[dict]:
        try:
            st = path.stat()
        except OSError:
            self._files.pop(str(path), None)
            return []
        inode, offset, events = self._files.get(str(path), (st.st_ino, 0, []))
        if inode != st.st_ino or st.st_size < offset:   # replaced or truncated: start over
            offset, events = 0, []
        if st.st_size > offset:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1        # a half-written last line waits for the next read
            events = list(events)
            for line in chunk[:end].splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line.decode("utf-8", errors="replace"))
                except ValueError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
            offset += end
        self._files[str(path)] = (st.st_ino, offset, events)
        if len(self._files) > 64:
            self._files.pop(next(iter(self._files)))
        return events


_EVENTS = _EventCache()
_PROBLEMS: dict[str, tuple[tuple[int, int], str | None]] = {}


# ---------------------------------------------------------------------------------------------
# Synthetic images and their provenance
# ---------------------------------------------------------------------------------------------
@dataclass
class GalleryItem:
    path: Path
    file: str        # relative to synthetic/<method>/
    cls: str
    seed: int
    parents: list[str]
    index: int = 0   # running number of the image within its class and seed


def _unreadable(what: str, why: str) -> str:
    return f"This run's {what} unreadable ({why}); {RERUN_HINT}."


# ---------------------------------------------------------------------------------------------
# The run folder
# ---------------------------------------------------------------------------------------------
class RunDir:
    """Paths and file formats of one run folder. Cheap to create; holds no state but its root."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __fspath__(self) -> str:
        return str(self.root)

    @property
    def id(self) -> str:
        return self.root.name

    def exists(self) -> bool:
        return self.root.is_dir()

    def mkdir(self) -> "RunDir":
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def relative(self, path: str | Path) -> str:
        """`path` relative to the run folder (posix), as events record files of the run."""
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def resolve(self, rel: str) -> Path:
        """A path recorded relative to the run (an event's `path`) as a path on disk."""
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    # -- folds: with K-fold runs each fold is a run folder of its own under folds/ -----------------------
    def fold(self, k: int | None) -> "RunDir":
        """The run folder of fold `k` (folds/f<k>/, the same layout), or this one for a single split (None)."""
        return self if k is None else RunDir(self.root / "folds" / f"f{k}")

    def folds(self) -> list["RunDir"]:
        """The fold folders of a K-fold run, in order; [] for a single split."""
        base = self.root / "folds"
        found = sorted((p for p in base.glob("f*") if p.is_dir() and p.name[1:].isdigit()),
                       key=lambda p: int(p.name[1:])) if base.is_dir() else []
        return [RunDir(p) for p in found]

    # -- the fixed files ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def job_path(self) -> Path:
        return self.root / "job.json"

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def log_path(self) -> Path:
        return self.root / "log.txt"

    @property
    def cancel_path(self) -> Path:
        return self.root / CANCEL_FILE

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.json"

    @property
    def split_path(self) -> Path:
        return self.root / "split.json"

    @property
    def data_report_path(self) -> Path:
        return self.root / "data_report.json"

    @property
    def groups_path(self) -> Path:
        return self.root / "groups.json"

    def groups(self) -> dict:
        """The run's grouping (`core.data.groups.Grouping.record()`), {} when it has none."""
        return read_json(self.groups_path) or {}

    def write_groups(self, record: dict) -> None:
        self.mkdir()
        write_json(self.groups_path, record)

    def config(self) -> dict:
        return read_json(self.config_path) or {}

    def write_config(self, config: dict) -> None:
        self.mkdir()
        write_json(self.config_path, config)

    def job_info(self) -> dict:
        return read_json(self.job_path) or {}

    def write_job_info(self, info: dict) -> None:
        """Best effort: the job store is the record, so a full disk must not hide a status change."""
        if not self.exists():
            return
        with contextlib.suppress(OSError):
            write_json(self.job_path, info)

    def job_end(self) -> dict | None:
        """What the job process left in job_end.json ({status, reason, finished}) when it could not record its end in
        the job store, or None."""
        end = read_json(self.root / JOB_END_FILE)
        return end if isinstance(end, dict) else None

    def write_job_end(self, status: str, reason: str) -> None:
        """Best effort: the worker still sees the process end (its exit code) and, for an experiment, its results."""
        with contextlib.suppress(OSError):
            write_json(self.root / JOB_END_FILE, {"status": status, "reason": reason, "finished": time.time()})

    def open_process_log(self):
        """The job process's log, opened for appending (binary), for a child process's stdout and stderr."""
        return open(self.root / PROCESS_LOG, "ab")

    def log_traceback(self) -> None:
        """The exception being handled, at the end of log.txt (a bug's details, for the report)."""
        with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())

    def record_error(self, message: str) -> None:
        """An `error` event at the end of the run's events (and its log line), unless the run already ended with
        one. Best effort, and nothing for a run folder that does not exist."""
        if not self.exists():
            return
        events = self.events()
        if events and events[-1].get("kind") == "error":
            return
        with contextlib.suppress(OSError):
            self.append_event({"t": round(time.time(), 3), "kind": "error", "message": message})
            self.append_log(f"[error]  {message}".strip())   # as Reporter.emit logs it

    def create(self) -> None:
        """The run folder of a job just queued (its parents too)."""
        self.root.mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Delete the run folder and everything in it (a deleted job, a job that could not be queued)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def split(self) -> dict:
        return read_json(self.split_path) or {}

    def write_split(self, split: dict) -> None:
        write_json(self.split_path, split)

    def write_data_report(self, report: dict) -> None:
        write_json(self.data_report_path, report)

    def data_report(self) -> dict:
        return read_json(self.data_report_path) or {}

    def real_images(self) -> tuple[list[tuple[str, str]], bool]:
        """([(source, role)], complete) for the real images of the run, from split.json: role `train` (what the
        run trained on), `test` (its real test split) or `held_back` (left out of training by the simulated
        imbalance). `complete` is False for a run prepared before split.json recorded the held-back images:
        only train and test are known then. Raises `RunError` when the run has no split."""
        split = self.split()
        if not isinstance(split.get("train"), list) or not isinstance(split.get("test"), list):
            raise RunError(f"{self.root} is not a finished run directory (no split.json); run an experiment first")
        held = split.get("held_back")
        out = [(str(s), "train") for s in split["train"]] + [(str(s), "test") for s in split["test"]]
        out += [(str(s), "held_back") for s in held or []]
        return out, isinstance(held, list)

    # -- cancellation ------------------------------------------------------------------------------
    def cancel_requested(self) -> bool:
        return self.cancel_path.exists()

    def request_cancel(self, stamp: str = "") -> None:
        self.mkdir()
        self.cancel_path.write_text(stamp, encoding="utf-8")

    def clear_cancel(self) -> None:
        self.cancel_path.unlink(missing_ok=True)

    # -- events and log ----------------------------------------------------------------------------
    def events(self) -> list[dict]:
        """All complete events so far (cached per file; a half-written last line waits)."""
        return _EVENTS.read(self.events_path)

    def append_event(self, event: dict) -> None:
        """One event (a JSON-safe dict) as the next line of events.jsonl (`core.events.Reporter` writes through this)."""
        with open(self.events_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, ensure_ascii=False) + "\n")

    def append_log(self, line: str) -> None:
        """One line of log.txt, stamped with the local time."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {line}\n")

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - 64 * 1024))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- the real images of the run ----------------------------------------------------------------
    def split_images_path(self, name: str) -> Path:
        return self.root / "data" / f"{name}.npz"

    def save_split(self, name: str, ds: ImageSet) -> None:
        _save_npz(self.split_images_path(name), ds)

    def load_split(self, name: str) -> ImageSet | None:
        """The run's `train` or `test` images, or None when the run has not written them."""
        path = self.split_images_path(name)
        return _load_npz(path) if path.exists() else None

    def require_split(self, name: str) -> ImageSet:
        ds = self.load_split(name)
        if ds is None:
            raise RunError(f"{self.root} has no data/{name}.npz: its data was not prepared; run it first")
        return ds

    # -- method fits -------------------------------------------------------------------------------
    def fit_path(self, method: str, seed: int) -> Path:
        return self.root / "fits" / f"{method}_s{seed}.json"

    def write_fit(self, method: str, seed: int, record: dict) -> None:
        write_json(self.fit_path(method, seed), record)

    def fit(self, method: str, seed: int) -> dict | None:
        return read_json(self.fit_path(method, seed))

    def checkpoint_dir(self, method: str, seed: int) -> Path:
        """The fitted sampler of one method and seed (`Sampler.save` writes it)."""
        return self.root / "checkpoints" / method / f"seed{seed}"

    def shared_training_dir(self, seed: int) -> Path:
        """Models that several methods of the run train alike (e.g. the diffusion family's UNet), kept once."""
        return self.root / "checkpoints" / "_shared" / f"seed{seed}"

    def training_dir(self, method: str, seed: int) -> Path:
        """Resumable training state of a generator while it trains (removed once it is fitted)."""
        return self.checkpoint_dir(method, seed) / "training"

    def has_sampler(self, method: str, seed: int) -> bool:
        return (self.checkpoint_dir(method, seed) / "meta.json").exists()

    def latent_codes(self, method: str, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
        """(codes, class indexes, class names) of the training images, as a pre-trained GAN kept them with
        its sampler (codes.z and codes.y in its state file); None for a method without them."""
        folder = self.checkpoint_dir(method, seed)
        path = folder / "state.safetensors"
        if not path.exists():
            return None
        from safetensors import safe_open
        with safe_open(str(path), framework="np") as f:
            if not {"codes.z", "codes.y"} <= set(f.keys()):
                return None
            z, y = f.get_tensor("codes.z"), f.get_tensor("codes.y")
        return z, y, list((read_json(folder / "meta.json") or {}).get("classes", []))

    def latent_map_path(self, method: str, seed: int) -> Path:
        """The 2-D t-SNE of those codes, computed once when first shown."""
        return self.checkpoint_dir(method, seed) / "latent_tsne.json"

    def latent_map(self, method: str, seed: int) -> list[dict] | None:
        got = read_json(self.latent_map_path(method, seed))
        return got["points"] if isinstance(got, dict) and isinstance(got.get("points"), list) else None

    def write_latent_map(self, method: str, seed: int, points: list[dict]) -> None:
        write_json(self.latent_map_path(method, seed), {"points": points})

    def latent_methods(self) -> list[tuple[str, int]]:
        """(method, seed) of every fitted sampler that kept latent codes."""
        out = []
        for meta in sorted((self.root / "checkpoints").glob("*/seed*/meta.json")):
            method, seed = meta.parent.parent.name, meta.parent.name[4:]
            if seed.isdigit() and self.latent_codes(method, int(seed)) is not None:
                out.append((method, int(seed)))
        return out

    def samples_dir(self, method: str, cls: str | None) -> Path:
        return self.root / "samples" / method / (cls or "all")

    def grid_path(self, method: str, cls: str | None, seed: int, step: int) -> Path:
        return self.samples_dir(method, cls) / f"seed{seed}_step{step:06d}.png"

    # -- classifier results ------------------------------------------------------------------------
    @staticmethod
    def model_id(model: str, seed: int) -> str:
        return f"{model}_s{seed}"

    def result_path(self, model: str, seed: int) -> Path:
        return self.root / "results" / f"{self.model_id(model, seed)}.json"

    def write_result(self, model: str, seed: int, record: dict) -> None:
        write_json(self.result_path(model, seed), record)

    def result(self, model: str, seed: int) -> dict | None:
        return read_json(self.result_path(model, seed))

    def classifier_path(self, model_id: str) -> Path:
        """The weights of one trained classifier (safetensors)."""
        return self.root / "classifiers" / f"{model_id}.safetensors"

    def classifier_meta_path(self, model_id: str) -> Path:
        """What rebuilds and feeds it (JSON): arch, classes, channels, image size, settings, preprocessing."""
        return self.classifier_path(model_id).with_suffix(".json")

    def save_classifier(self, model_id: str, tensors: dict, meta: dict) -> None:
        """A trained classifier's weights and what rebuilds it; the JSON is written last, so a classifier with
        its JSON present is whole."""
        save_tensors(tensors, self.classifier_path(model_id),
                     metadata={"defectaug": json.dumps(meta, ensure_ascii=False)})
        write_json(self.classifier_meta_path(model_id), meta)

    def classifier(self, model_id: str) -> tuple[dict, dict] | None:
        """(tensors, meta) of a saved classifier, or None when the run did not keep it."""
        path = self.classifier_path(model_id)
        meta = read_json(self.classifier_meta_path(model_id))
        if meta is None or not path.exists():
            return None
        return load_tensors(path), meta

    def classifier_models(self) -> list[str]:
        """Model ids with kept classifier weights (e.g. baseline_equal_steps_s0, smote_s1), sorted."""
        base = self.root / "classifiers"
        return sorted(p.stem for p in base.glob("*.json")
                      if self.classifier_path(p.stem).exists()) if base.is_dir() else []

    def predictions_path(self, model_id: str) -> Path:
        return self.root / "predictions" / f"{model_id}.csv"

    def write_predictions(self, model_id: str, test: ImageSet, probs: np.ndarray) -> None:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        # every CSV of the run is written through csv_row (no cell a spreadsheet runs as a formula) and read
        # back through csv_value
        w.writerow(csv_row(["file", "true", "pred"] + [f"p_{c}" for c in test.classes]))
        for src, t, pr in zip(test.sources, test.labels, probs):
            w.writerow(csv_row([src, test.classes[t], test.classes[int(pr.argmax())]] + [f"{v:.5f}" for v in pr]))
        atomic_write(self.predictions_path(model_id), buf.getvalue())

    def prediction_models(self) -> list[str]:
        """Model ids with a predictions file, e.g. baseline_paper_s0, smote_s0."""
        base = self.root / "predictions"
        return sorted(p.stem for p in base.glob("*.csv")) if base.is_dir() else []

    def predictions(self, model_id: str) -> list[dict]:
        """Rows {file, true, pred, probs: {class: p}} of one model, in test order."""
        path = self.predictions_path(model_id)
        if not path.exists():
            raise RunError(f"no predictions of {model_id!r} in this run")
        rows = []
        with open(path, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                probs = {k[2:]: float(v) for k, v in r.items() if k.startswith("p_") and v not in ("", None)}
                rows.append({"file": csv_value(r["file"]), "true": csv_value(r["true"]),
                             "pred": csv_value(r["pred"]), "probs": probs})
        return rows

    # -- metrics -----------------------------------------------------------------------------------
    def write_metrics(self, metrics: dict) -> None:
        write_json(self.metrics_path, metrics)

    def has_metrics(self) -> bool:
        return self.metrics_path.exists()

    def metrics(self) -> dict | None:
        """metrics.json as it is, None when missing or not JSON (no shape check: see `read_metrics`)."""
        return read_json(self.metrics_path)

    def read_metrics(self) -> dict:
        """metrics.json of a finished run, checked to hold what the result pages read. Raises `RunError`
        saying it is unreadable and what to do (re-run) when it is missing, cut short or incomplete."""
        data, problem = _parse_metrics(self.metrics_path)
        if problem:
            raise RunError(_unreadable("results are", problem))
        return data

    def metrics_problem(self) -> str | None:
        """Why metrics.json cannot be shown, or None when the result pages can read it. Cached per file
        version: a run list asks it for every run."""
        path = self.metrics_path
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return "metrics.json is missing"
        cached = _PROBLEMS.get(str(path))
        if cached and cached[0] == stamp:
            return cached[1]
        problem = _parse_metrics(path)[1]
        _PROBLEMS[str(path)] = (stamp, problem)
        if len(_PROBLEMS) > 256:
            _PROBLEMS.pop(next(iter(_PROBLEMS)))
        return problem

    # -- synthetic images ------------------------------------------------------------------------
    def synthetic_dir(self, method: str) -> Path:
        return self.root / "synthetic" / method

    def synthetic_npz(self, method: str, seed: int) -> Path:
        return self.synthetic_dir(method) / f"s{seed}.npz"

    def provenance_path(self, method: str, seed: int) -> Path:
        return self.synthetic_dir(method) / f"provenance_s{seed}.csv"

    def save_synthetic(self, method: str, seed: int, synth: ImageSet, parents: list[list[str]],
                       png: bool = True) -> None:
        """The synthetic images of one method and seed: always as `s<seed>.npz` (what the classifier
        trains on); with `png`, also as image files with a provenance row each (Gallery, export).
        Writing a seed again replaces what that seed wrote before."""
        base = self.synthetic_dir(method)
        base.mkdir(parents=True, exist_ok=True)
        for old in base.glob(f"*/s{seed}_*.png"):     # a resumed run writes this seed anew
            old.unlink(missing_ok=True)
        _save_npz(self.synthetic_npz(method, seed), synth)
        if not png:
            self.provenance_path(method, seed).unlink(missing_ok=True)
            return
        from PIL import Image
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["file", "class", "seed", "parents"])
        for img, lab, par, rel in zip(synth.images, synth.labels, parents, self.synthetic_files(synth, seed)):
            cls = synth.classes[lab]
            (base / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(base / rel)
            w.writerow(csv_row([rel, cls, seed, "|".join(par)]))
        atomic_write(self.provenance_path(method, seed), buf.getvalue())

    @staticmethod
    def synthetic_files(synth: ImageSet, seed: int) -> list[str]:
        """The file name (relative to synthetic/<method>/) of each synthetic image, in the set's order."""
        counters: dict[int, int] = {}
        out = []
        for lab in synth.labels:
            i = counters.get(int(lab), 0)
            counters[int(lab)] = i + 1
            out.append(f"{synth.classes[lab]}/s{seed}_{i:05d}.png")
        return out

    # -- the quality of the synthetic images (core.metrics.generative) ----------------------------
    def quality_path(self, method: str, seed: int) -> Path:
        return self.root / "quality" / f"{method}_s{seed}.json"

    def write_quality(self, method: str, seed: int, record: dict, rows: list[dict]) -> None:
        """The quality report of one method and seed, and its per-image table (nearest real image, copy,
        predicted class, kept by the gate) as synthetic/<method>/quality_s<seed>.csv."""
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        cols = ["file", "class", "nearest", "distance", "copy", "predicted", "confidence", "kept"]
        w.writerow(cols)
        for r in rows:
            w.writerow(csv_row([r.get(c, "") for c in cols]))
        atomic_write(self.quality_table_path(method, seed), buf.getvalue())
        write_json(self.quality_path(method, seed), record)

    def quality(self, method: str, seed: int) -> dict | None:
        return read_json(self.quality_path(method, seed))

    def quality_table_path(self, method: str, seed: int) -> Path:
        return self.synthetic_dir(method) / f"quality_s{seed}.csv"

    def quality_table(self, method: str, seed: int) -> dict[str, dict]:
        """{file: row} of one seed's per-image quality table ({} when the run measured none)."""
        try:
            with open(self.quality_table_path(method, seed), newline="", encoding="utf-8") as fh:
                rows = [{k: csv_value(v) if isinstance(v, str) else v for k, v in r.items()}
                        for r in csv.DictReader(fh)]
            return {r["file"]: r for r in rows}
        except (OSError, KeyError, csv.Error):
            return {}

    def load_synthetic(self, method: str, seed: int) -> ImageSet:
        path = self.synthetic_npz(method, seed)
        if not path.exists():
            raise RunError(f"{method} has no synthetic images for seed {seed} in this run; fit it first")
        return _load_npz(path)

    def synthetic_methods(self) -> list[str]:
        """Methods of this run with synthetic images to show or export (the one rule): a provenance file
        or image files in synthetic/<method>/ (images without provenance are shown as unreadable)."""
        base = self.root / "synthetic"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if p.is_dir() and (self._provenance_files(p) or next(p.glob("*/*.png"), None)))

    @staticmethod
    def _provenance_files(base: Path) -> list[tuple[int | None, Path]]:
        out = []
        with contextlib.suppress(OSError):
            for p in base.iterdir():
                m = _PROVENANCE_FILE.match(p.name)
                if m and p.is_file():
                    out.append((int(m.group(1)) if m.group(1) is not None else None, p))
        return sorted(out, key=lambda t: (t[0] is not None, t[0] or 0))

    def gallery(self, method: str, cls: str | None = None, seed: int | None = None) -> list[GalleryItem]:
        """Synthetic images of one method (and class, seed) with their provenance, in file order.

        A provenance file still being written may end with half a line: that part waits for the next
        read. A file that is not text, lacks its columns, has a malformed row or names a path outside
        the folder raises `RunError` saying the images are unreadable and to re-run."""
        base = self.synthetic_dir(method)
        if not base.is_dir():
            raise RunError(f"this run has no synthetic images of {method!r}")
        files = self._provenance_files(base)
        if not files:
            raise RunError(_unreadable(f"synthetic images of {method} are",
                                       f"synthetic/{method} has no provenance file"))
        items: list[GalleryItem] = []
        for _, path in files:
            items += self._read_provenance(base, path, method)
        return [it for it in items if (cls is None or it.cls == cls) and (seed is None or it.seed == seed)
                and it.path.exists()]

    def _read_provenance(self, base: Path, path: Path, method: str) -> list[GalleryItem]:
        where = f"synthetic/{method}/{path.name}"

        def unreadable(why: str) -> RunError:
            return RunError(_unreadable(f"synthetic images of {method} are", f"{where} {why}"))

        try:
            raw = path.read_bytes()
        except OSError as err:
            raise unreadable(f"cannot be read: {err.strerror or err}") from None
        try:
            text = raw[: raw.rfind(b"\n") + 1].decode("utf-8")   # complete lines only
        except UnicodeDecodeError:
            raise unreadable("is not text") from None
        if not text:
            status = self.job_info().get("status")
            writing = status in ("running", "queued") or (status is None and not self.has_metrics())
            if writing or not any(base.glob("*/*.png")):
                return []     # being written: its rows are not on disk yet
            raise unreadable("is empty although the folder holds images")
        try:
            rows = [[csv_value(cell) for cell in row] for row in csv.reader(io.StringIO(text, newline=""))]
        except csv.Error as err:
            raise unreadable(f"is not a CSV table ({err})") from None
        header = rows[0]
        if not set(PROVENANCE_COLUMNS) <= set(header):
            raise unreadable(f"lacks the columns {', '.join(c for c in PROVENANCE_COLUMNS if c not in header)}")
        col = {name: header.index(name) for name in (*PROVENANCE_COLUMNS, "parents") if name in header}
        items: list[GalleryItem] = []
        counters: dict[tuple[str, int], int] = {}
        for line, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise unreadable(f"has {len(row)} fields instead of {len(header)} at line {line}")
            file, klass, seed_text = row[col["file"]], row[col["class"]], row[col["seed"]]
            parts = PurePosixPath(file).parts
            if not file or file.startswith("/") or "\\" in file or "\x00" in file or ".." in parts or len(parts) < 2:
                raise unreadable(f"names an image outside its folder at line {line} ({file[:60]!r})")
            try:
                s = int(seed_text)
            except ValueError:
                raise unreadable(f"has the seed {seed_text[:20]!r} (not a number) at line {line}") from None
            if not klass:
                raise unreadable(f"has no class at line {line}")
            parents = row[col["parents"]] if "parents" in col else ""
            n = counters.get((klass, s), 0)
            counters[(klass, s)] = n + 1
            items.append(GalleryItem(base / file, file, klass, s, [p for p in parents.split("|") if p], n))
        return items

    def images_by_source(self, sources: list[str]) -> dict[str, np.ndarray]:
        """Real images of the run by their source id (train and test splits), for provenance parents."""
        want, out = set(sources), {}
        for name in ("train", "test"):
            if not want - set(out):
                break
            ds = self.load_split(name)
            if ds is None:
                continue
            for i, s in enumerate(ds.sources):
                if s in want and s not in out:
                    out[s] = ds.images[i]
        return out

    def has_quality_filter(self, method: str) -> bool:
        """Whether the quality gate was measured for this method (the export can then keep only what passed)."""
        return any(self.synthetic_dir(method).glob("quality_s*.csv"))


# ---------------------------------------------------------------------------------------------
# npz image sets
# ---------------------------------------------------------------------------------------------
def _save_npz(path: Path, ds: ImageSet) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, images=ds.images, labels=ds.labels, classes=np.array(ds.classes),
                                sources=np.array(ds.sources))


def _load_npz(path: Path) -> ImageSet:
    try:
        with np.load(path, allow_pickle=False) as z:
            return ImageSet(z["images"], z["labels"], [str(c) for c in z["classes"]],
                            [str(s) for s in z["sources"]])
    except (OSError, ValueError, KeyError) as err:
        raise RunError(_unreadable("images are", f"{path.name} cannot be read: {err}")) from None


# ---------------------------------------------------------------------------------------------
# metrics.json: the shape the result pages read
# ---------------------------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _matrix_problem(cm, n: int) -> str | None:
    if not (isinstance(cm, list) and len(cm) == n
            and all(isinstance(row, list) and len(row) == n and all(_is_number(v) for v in row) for row in cm)):
        return f"is not a {n}x{n} matrix of counts"
    return None


def _metrics_shape_problem(m) -> str | None:
    """What a parsed metrics.json lacks for the result pages, or None. Checks the parts the pages read."""
    if not isinstance(m, dict):
        return "metrics.json does not hold an object"
    classes = m.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        return "metrics.json has no list of classes"
    n = len(classes)
    for table in ("baselines", "methods"):
        if not isinstance(m.get(table), dict):
            return f"metrics.json has no {table!r} results"
    if not m["baselines"]:
        return "metrics.json has no baseline results"
    for table in ("baselines", "methods"):
        for name, block in m[table].items():
            where = f"metrics.json: {table[:-1]} {name!r}"
            if not isinstance(block, dict):
                return f"{where} is not an object"
            if "confusion_matrix" not in block and not block.get("seeds"):
                return f"{where} has no confusion matrix"
            if "confusion_matrix" in block and (bad := _matrix_problem(block["confusion_matrix"], n)):
                return f"{where}: the confusion matrix {bad}"
            seeds = block.get("seeds", {})
            if not isinstance(seeds, dict) or not all(isinstance(v, dict) for v in seeds.values()):
                return f"{where}: the per-seed results are not objects"
            for seed, res in seeds.items():
                if "confusion_matrix" in res and (bad := _matrix_problem(res["confusion_matrix"], n)):
                    return f"{where}, seed {seed}: the confusion matrix {bad}"
            if "verdict" in block and not isinstance(block["verdict"], dict):
                return f"{where}: the verdict is not an object"
    strongest = m.get("strongest_baseline")
    if strongest is not None and strongest not in m["baselines"]:
        return f"metrics.json names {strongest!r} as the strongest baseline but has no results for it"
    board = m.get("leaderboard", [])
    if not isinstance(board, list):
        return "metrics.json: the leaderboard is not a list"
    for row in board:
        if not (isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("kind"), str)
                and all(_is_number(row.get(k)) for k in ("f1_macro", "precision_macro", "recall_macro", "accuracy"))):
            return "metrics.json: a leaderboard row lacks its name, kind or scores"
    for key in ("failed", "protocol"):
        if m.get(key) is not None and not isinstance(m[key], dict):
            return f"metrics.json: {key!r} is not an object"
    return None


def _parse_metrics(path: Path) -> tuple[dict | None, str | None]:
    """(metrics, None) when metrics.json can be shown, else (None, why not)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, "metrics.json is missing"
    except UnicodeDecodeError:
        return None, "metrics.json is not text"
    except OSError as err:
        return None, f"metrics.json cannot be read: {err.strerror or err}"
    if not text.strip():
        return None, "metrics.json is empty"
    try:
        data = json.loads(text)
    except ValueError as err:
        where = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        return None, f"metrics.json is not valid JSON{where}; it may have been cut short"
    problem = _metrics_shape_problem(data)
    return (None, problem) if problem else (data, None)
