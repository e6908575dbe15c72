"""`RunDir`: the one owner of a run folder `runs/<id>/`. Every path and file format of a run is here.

    rd = RunDir("workspaces/<ws>/runs/<id>")
    rd.write_config(resolved); rd.config()
    rd.save_split("train", imageset); rd.load_split("test")
    rd.write_result("smote", 0, record); rd.result("baseline_paper", 0)
    rd.save_synthetic("smote", 0, synth, parents, png=True); rd.load_synthetic("smote", 0)
    rd.gallery("smote")              # synthetic images with their provenance
    rd.events()                      # events.jsonl, read incrementally (safe while the run writes)
    rd.read_metrics()                # metrics.json, checked; RunError saying what to do when damaged
    rd.one_split(fold)               # the folder of one split (a K-fold run's fold, the first by default)
    RunDir.finished_runs(roots, n)   # the newest runs whose events end with `done`

One class, in parts: this file (paths, config, split, fits and checkpoints, results, classifiers, predictions,
metrics), records.py (job.json, job_end.json, job_process.log, CANCEL, events and log, the runs under a folder),
synthetic.py (synthetic images, provenance, quality, the gallery) and formats.py (incremental events, .npz,
the metrics.json check). Every path under a run folder is named here; the few writers elsewhere (`Sampler.save`,
the training loop's checkpoints) write where `RunDir` tells them.

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

import csv
import io
import json
from pathlib import Path

import numpy as np

from ..errors import ParamError, RunError
from ..files import atomic_path, atomic_write, csv_row, csv_value, load_tensors, read_json, save_tensors, write_json
from ..imageset import ImageSet
from .formats import RERUN_HINT, GalleryItem, load_npz, parse_metrics, save_npz, unreadable_message
from .records import CANCEL_FILE, JOB_END_FILE, PROCESS_LOG, RunRecords
from .synthetic import PROVENANCE_COLUMNS, TRANSPLANT_COLUMNS, SyntheticFiles

__all__ = ["CANCEL_FILE", "GalleryItem", "JOB_END_FILE", "PROCESS_LOG", "PROVENANCE_COLUMNS", "RERUN_HINT", "RunDir", "TRANSPLANT_COLUMNS",
           "atomic_path", "atomic_write", "read_json", "write_json"]

_PROBLEMS: dict[str, tuple[tuple[int, int], str | None]] = {}   # metrics_problem's cache: path -> (stamp, problem)


class RunDir(RunRecords, SyntheticFiles):
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

    def one_split(self, fold: int | None = None) -> "RunDir":
        """The folder of one split, where its split, synthetic images and classifiers are: this run for a single
        split, else fold `fold` of a K-fold run (the first by default). Raises ParamError for a fold the run lacks
        (what the export, the weights download and `core predict --fold` use)."""
        folds = self.folds()
        if not folds:
            if fold not in (None, 0):
                raise ParamError(f"{self.root} has one split, no folds; leave out the fold")
            return self
        k = 0 if fold is None else fold
        if not 0 <= k < len(folds):
            raise ParamError(f"{self.root} has {len(folds)} folds; choose fold 0 to {len(folds) - 1}")
        return folds[k]

    # -- the fixed files ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

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

    # -- the real images of the run ----------------------------------------------------------------
    def split_images_path(self, name: str) -> Path:
        return self.root / "data" / f"{name}.npz"

    def save_split(self, name: str, ds: ImageSet) -> None:
        save_npz(self.split_images_path(name), ds)

    def load_split(self, name: str) -> ImageSet | None:
        """The run's `train` or `test` images, or None when the run has not written them."""
        path = self.split_images_path(name)
        return load_npz(path) if path.exists() else None

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

    @staticmethod
    def training_checkpoint(folder: Path, model: str, seed: int, tag: str | None = None) -> Path:
        """One resumable training checkpoint in a `training_dir` or `shared_training_dir`:
        `<model>_seed<k>[_<tag>].safetensors` (tag: which of a method's models, e.g. `class2`, `lora`)."""
        return Path(folder) / f"{model}_seed{seed}{'_' + tag if tag else ''}.safetensors"

    @staticmethod
    def drop_training_checkpoints(folder: Path, model: str, seed: int) -> None:
        """Remove the tagged training checkpoints of one model and seed (once the fitted sampler holds it all)."""
        for p in Path(folder).glob(f"{model}_seed{seed}_*.safetensors"):
            p.unlink(missing_ok=True)

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
        """One classifier's predictions on the test images (`probs`: [n, classes])."""
        self.write_prediction_rows(model_id, [
            {"file": src, "true": test.classes[t], "pred": test.classes[int(pr.argmax())],
             "probs": dict(zip(test.classes, pr))} for src, t, pr in zip(test.sources, test.labels, probs)],
            test.classes)

    def write_prediction_rows(self, model_id: str, rows: list[dict], classes: list[str]) -> None:
        """Rows {file, true, pred, probs: {class: p}} (as `predictions` reads them) as predictions/<model_id>.csv:
        one classifier's, or with K folds every fold's pooled in the top folder."""
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        # every CSV of the run is written through csv_row (no cell a spreadsheet runs as a formula) and read
        # back through csv_value
        w.writerow(csv_row(["file", "true", "pred"] + [f"p_{c}" for c in classes]))
        for r in rows:
            w.writerow(csv_row([r["file"], r["true"], r["pred"]] + [f"{r['probs'].get(c, 0.0):.5f}" for c in classes]))
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
        data, problem = parse_metrics(self.metrics_path)
        if problem:
            raise RunError(unreadable_message("results are", problem))
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
        problem = parse_metrics(path)[1]
        _PROBLEMS[str(path)] = (stamp, problem)
        if len(_PROBLEMS) > 256:
            _PROBLEMS.pop(next(iter(_PROBLEMS)))
        return problem
