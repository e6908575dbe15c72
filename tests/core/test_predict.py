"""`python -m core predict`: a run's trained classifier on a folder of new images (core/views/predict.py), and the
weights files the Export page offers."""
import csv
import json
import shutil

import numpy as np
import pytest

from core.errors import RunError
from core.views.predict import model_name, predict_folder, weights_files
from core.rundir import RunDir
from tests.core.test_export_cli import cli


def _test_images(run, tmp_path):
    """The run's test images as the files they were read from, under their own relative paths."""
    data = RunDir(run).config()["data"]
    rows = RunDir(run).predictions("smote_s1")
    folder = tmp_path / "new"
    for r in rows:
        (folder / r["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f"{data}/{r['file']}", folder / r["file"])
    (folder / "notes.txt").write_text("not an image")
    return folder, rows


def test_core_predict_gives_the_runs_own_predictions_for_its_test_images(finished_run, tmp_path):
    folder, rows = _test_images(finished_run, tmp_path)
    out = tmp_path / "scores.csv"
    res = cli("predict", finished_run, "--model", "smote", "--seed", "1", folder, "--out", out, "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert "skipped notes.txt: not an image extension" in res.stderr
    got = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert len(got) == len(rows) == len({r["file"] for r in got})          # one row per image
    classes = RunDir(finished_run).classifier("smote_s1")[1]["classes"]
    assert list(got[0]) == ["file", "pred"] + [f"p_{c}" for c in classes]
    by_file = {r["file"]: r for r in got}
    for r in rows:
        mine = by_file[r["file"]]
        assert mine["pred"] == r["pred"]
        np.testing.assert_allclose([float(mine[f"p_{c}"]) for c in classes], [r["probs"][c] for c in classes],
                                   atol=2e-5)


def test_predict_names_models_as_the_run_does_and_says_what_it_kept(finished_run, tmp_path):
    assert model_name("baseline:equal_steps") == model_name("equal_steps") == "baseline_equal_steps"
    assert model_name("smote+gate") == "smote+gate"
    folder, rows = _test_images(finished_run, tmp_path)
    a = predict_folder(finished_run, "equal_steps", 0, folder)
    b = predict_folder(finished_run, "baseline_equal_steps", 0, folder)
    assert a.files == b.files and np.array_equal(a.probs, b.probs) and len(a.files) == len(rows)
    with pytest.raises(RunError, match="kept no classifier 'adasyn_s0'; it has .*smote_s0"):
        predict_folder(finished_run, "adasyn", 0, folder)
    res = cli("predict", finished_run, "--model", "smote", "--seed", "7", folder)
    assert res.returncode == 2 and "smote_s7" in res.stderr


def test_weights_files_are_safetensors_with_classes_and_preprocessing(finished_run):
    from safetensors import safe_open
    path, meta_path = weights_files(finished_run, "smote", 0)
    meta = json.loads(meta_path.read_text())
    assert meta["arch"] == "small_cnn" and meta["classes"] == ["crack", "normal", "spöt ü"]
    assert meta["preprocessing"]["resize"] == [16, 16] and meta["preprocessing"]["mean"] == [0.5]
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["defectaug"]) == meta          # the one file describes itself too
    # small: the default classifier must not grow a run folder
    assert path.stat().st_size < 200_000


def test_the_linear_baseline_round_trips_through_predict(finished_run, tmp_path):
    """The linear baseline is stored as tensors + JSON (nothing pickled) and `core predict` gives the run's own
    predictions of it; it has no seed, so every seed's is the same model."""
    from safetensors import safe_open
    folder, rows = _test_images(finished_run, tmp_path)
    path, meta_path = weights_files(finished_run, "linear", 1)
    meta = json.loads(meta_path.read_text())
    assert meta["arch"] == "linear" and meta["params"]["class_weight"] == "balanced"
    assert meta["preprocessing"]["resize"] == [16, 16] and "standardise" in meta["preprocessing"]
    with safe_open(str(path), "pt") as f:
        assert sorted(f.keys()) == ["linear.bias", "linear.weight", "mean", "scale"]
    out = tmp_path / "linear.csv"
    res = cli("predict", finished_run, "--model", "linear", "--seed", "1", folder, "--out", out, "--device", "cpu")
    assert res.returncode == 0, res.stderr
    got = {r["file"]: r for r in csv.DictReader(out.open(newline="", encoding="utf-8"))}
    mine = RunDir(finished_run).predictions("baseline_linear_s1")
    assert len(got) == len(mine) == len(rows)
    for r in mine:
        assert got[r["file"]]["pred"] == r["pred"]
        np.testing.assert_allclose([float(got[r["file"]][f"p_{c}"]) for c in meta["classes"]],
                                   [r["probs"][c] for c in meta["classes"]], atol=2e-5)
    other = predict_folder(finished_run, "baseline:linear", 0, folder)
    np.testing.assert_allclose(other.probs, predict_folder(finished_run, "linear", 1, folder).probs, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Untrusted classifier files (issue 37, item 6): a shared drive or a restored backup may hold anything
# ---------------------------------------------------------------------------------------------
def _tamper_weights_shape(path, meta_path):
    from core.files import load_tensors, save_tensors
    tensors = load_tensors(path)
    name = next(iter(tensors))
    tensors[name] = np.zeros((3, 3), np.float32)
    import torch
    save_tensors({k: torch.as_tensor(v) for k, v in tensors.items()}, path)


def _set_meta(**changes):
    def tamper(path, meta_path):
        meta = json.loads(meta_path.read_text())
        meta.update(changes)
        meta = {k: v for k, v in meta.items() if v is not _DROP}
        meta_path.write_text(json.dumps(meta))
    return tamper


_DROP = object()


def _fifo(which):
    def tamper(path, meta_path):
        import os
        target = path if which == "weights" else meta_path
        target.unlink()
        os.mkfifo(target)
    return tamper


TAMPERED = {
    "damaged safetensors": (lambda p, m: p.write_bytes(p.read_bytes()[:40]), "not a readable safetensors file"),
    "random bytes": (lambda p, m: p.write_bytes(b"\xff" * 64), "not a readable safetensors file"),
    "shape mismatch": (_tamper_weights_shape, "does not fit the classifier"),
    "json without classes": (_set_meta(classes=_DROP), "'classes' must list"),
    "classes not a list": (_set_meta(classes="crack"), "'classes' must list"),
    "channels a string": (_set_meta(channels="3"), "'channels' must be one of 1, 3"),
    "params not an object": (_set_meta(params=[1]), "'params' must be an object"),
    "bad param value": (_set_meta(params={"width": "wide"}), "classifier.width"),
    "json not an object": (lambda p, m: m.write_text("[1, 2]"), "not a JSON object"),
    "json not json": (lambda p, m: m.write_text("{"), "not valid JSON"),
    "image_size 4096": (_set_meta(image_size=4096), "'image_size' must be one of 16, 32, 64, 128, 256"),
    "image_size 20000": (_set_meta(image_size=20000), "'image_size' must be one of"),
    "fifo weights": (_fifo("weights"), "is not a regular file"),
    "fifo json": (_fifo("json"), "is not a regular file"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_predict_with_an_untrusted_classifier_file_exits_2_with_one_line(finished_run, tmp_path, case, capsys):
    """`core predict` (its main, in this process; in its own process where a hang is possible: a FIFO)."""
    from core.cli import main
    tamper, says = TAMPERED[case]
    run = shutil.copytree(finished_run, tmp_path / "run")
    folder, _ = _test_images(finished_run, tmp_path)
    path, meta_path = weights_files(run, "smote", 0)
    tamper(path, meta_path)
    args = ["predict", str(run), "--model", "smote", "--seed", "0", str(folder), "--device", "cpu"]
    if case.startswith("fifo"):
        res = cli(*args)      # its timeout only stops a hang (on main it waited for a writer forever)
        code, out, err = res.returncode, res.stdout, res.stderr
    else:
        code = main(args)
        out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and not out, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err


# ---------------------------------------------------------------------------------------------
# Memory (issue 37, item 3): the images are scored a chunk at a time
# ---------------------------------------------------------------------------------------------
def _flat_pngs(folder, start: int, stop: int, size: int = 256):
    """256x256 RGB PNGs of one flat colour each: small files, 192 KiB each once decoded."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, stop):
        Image.fromarray(np.full((size, size, 3), (i * 7) % 256, np.uint8)).save(folder / f"img_{i:05d}.png")


def _peak_mb_of_predict(run, images, out) -> float:
    """Peak resident memory (MB) of `core predict` in a fresh process."""
    import subprocess
    import sys
    from tests.conftest import REPO
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    res = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "core", "predict", str(run), "--model",
                          "random_oversample", "--seed", "0", str(images), "--out", str(out), "--device", "cpu"],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return int(res.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_predict_memory_does_not_grow_with_the_number_of_images(tmp_path):
    from core.experiment import run
    from tests.conftest import write_dataset
    data = write_dataset(tmp_path, {"normal": 6, "crack": 6, "spot": 6}, size=256, mode="RGB")
    run({"data": str(data), "methods": ["random_oversample"], "seeds": [0], "ratio": None, "image_size": 256,
         "test_per_class": 2, "quality": False, "device": "cpu",
         "overrides": {"classifier": {"epochs": 1, "width": 4}}}, tmp_path / "run")
    _flat_pngs(tmp_path / "few", 0, 300)
    _flat_pngs(tmp_path / "many", 0, 1300)
    few = _peak_mb_of_predict(tmp_path / "run", tmp_path / "few", tmp_path / "few.csv")
    many = _peak_mb_of_predict(tmp_path / "run", tmp_path / "many", tmp_path / "many.csv")
    assert len((tmp_path / "many.csv").read_text().splitlines()) == 1301
    # 1,000 more images are 188 MiB decoded (twice that while stacked, as before): none of it is held at once
    assert many - few < 60, (few, many)


# ---------------------------------------------------------------------------------------------
# The command line's outputs and a tampered config.json (issue 37, item 8)
# ---------------------------------------------------------------------------------------------
def _device_or_fifo(path):
    """A character device like /dev/full where this process may make one (root), else a FIFO."""
    import os
    import stat
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, OSError):
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("out", ["folder", "device"])
def test_predict_out_naming_a_folder_or_a_device_is_refused_and_left_alone(finished_run, tmp_path, out, capsys):
    import os
    from core.cli import main
    folder, _ = _test_images(finished_run, tmp_path)
    target = tmp_path / "target"
    target.mkdir() if out == "folder" else _device_or_fifo(target)
    before = os.lstat(target)
    code = main(["predict", str(finished_run), "--model", "smote", str(folder), "--out", str(target),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "name a file to write" in lines[0], err
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (before.st_mode, before.st_ino, before.st_rdev)


@pytest.mark.parametrize("seeds", ["abc", {}])
def test_predict_on_a_run_whose_config_seeds_are_tampered_says_so(finished_run, tmp_path, seeds, capsys):
    from core.cli import main
    run = shutil.copytree(finished_run, tmp_path / "run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "seeds": seeds}))
    folder, _ = _test_images(finished_run, tmp_path)
    code = main(["predict", str(run), "--model", "smote", str(folder), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "config.json is damaged: " in err and "Traceback" not in err, err
