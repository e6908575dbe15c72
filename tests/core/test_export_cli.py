"""Export zip and the command line (run as a real subprocess, as a user would)."""
import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from core.errors import RunError
from core.views.export import export_zip
from tests.support.manifest import manifest_counts
from core.methods import all_methods
from core.rundir import RunDir
from tests.conftest import write_dataset

REPO = Path(__file__).resolve().parents[2]
FAST = ["--set", "classifier.epochs=1", "--set", "classifier.width=4", "--image-size", "16",
        "--test-per-class", "4", "--ratio", "0.2", "--device", "cpu"]


def cli(*args, cwd=REPO):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_export_zip_is_balanced_imagefolder_with_manifest(finished_run, tmp_path):
    # every real image (30 + 12 + 9), each class topped up to the 30 normal images
    path = export_zip(finished_run, "smote", tmp_path / "b.zip").path
    counts = manifest_counts(path)
    assert counts == {"crack": {"real": 12, "synthetic": 18}, "normal": {"real": 30},
                      "spöt ü": {"real": 9, "synthetic": 21}}
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
        assert {"metrics.json", "config.json", "manifest.csv", "metadata.csv", "README.txt"} <= set(names)
        images = [n for n in names if n.endswith(".png")]
        assert len(images) == len(rows) == len(set(images)) == 90
        assert {r["file"] for r in rows} == set(images)
        assert all(r["seed"] == "0" for r in rows if r["origin"] == "synthetic")
        assert all(r["parents"] for r in rows if r["origin"] == "synthetic")
    # torchvision reads it as an ImageFolder
    from torchvision.datasets import ImageFolder
    zipfile.ZipFile(path).extractall(tmp_path / "x")
    ds = ImageFolder(str(tmp_path / "x"))
    assert len(ds) == 90 and ds.classes == ["crack", "normal", "spöt ü"]


def test_export_other_seed_and_errors(finished_run, tmp_path):
    p = export_zip(finished_run, "mixup", tmp_path / "m.zip", seed=1)
    with zipfile.ZipFile(p.path) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
    assert {r["seed"] for r in rows if r["origin"] == "synthetic"} == {"1"}
    with pytest.raises(RunError, match="it has: mixup, smote"):
        export_zip(finished_run, "adasyn", tmp_path / "x.zip")
    with pytest.raises(RunError, match="seed 7"):
        export_zip(finished_run, "smote", tmp_path / "x.zip", seed=7)
    with pytest.raises(RunError, match="not a finished run"):
        export_zip(tmp_path, "smote", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_cli_methods_lists_the_registry():
    r = cli("methods")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert list(rows) == [m.name for m in all_methods()]              # every method, in registry order
    for m in all_methods():
        assert m.family in rows[m.name] and (m.paper in rows[m.name]) == m.available


def test_cli_run_export_sample_inspect(tmp_path, make_dataset):
    data = make_dataset(tmp_path, {"normal": 30, "crack": 12}, size=16)
    out = tmp_path / "runs" / "x"
    two = ["--baselines", "equal_steps,class_weighted"]      # the six are the other tests' (test_baselines)
    r = cli("run", "--data", data, "--methods", "smote,augment", "--seeds", "0", "--out", out, *two, *FAST)
    assert r.returncode == 0, r.stderr
    assert "baseline:equal_steps" in r.stdout and "smote" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["methods"]) == {"smote", "augment"}
    r = cli("run", "--data", data, "--methods", "smote", "--out", out, *FAST)
    assert r.returncode == 2 and "already holds a finished run" in r.stderr
    r = cli("run", "--data", data, "--methods", "smote,augment", "--seeds", "0", "--out", out, "--resume",
            *two, *FAST)
    assert r.returncode == 0, r.stderr
    events = RunDir(out).events()
    # 2 baselines + 2 methods, none redone
    assert sum(e["kind"] == "stage" and e["stage"].startswith("train:") for e in events) == 4
    assert sum(bool(e.get("resumed")) for e in events) == 4
    assert json.loads((out / "metrics.json").read_text())["methods"]["smote"]["f1_macro"] == \
        m["methods"]["smote"]["f1_macro"]
    r = cli("run", "--data", data, "--methods", "smote", "--out", out, "--resume", "--force", *FAST)
    assert r.returncode == 2 and "choose one" in r.stderr
    r = cli("export", out, "--method", "augment", "--out", tmp_path / "b.zip")
    assert r.returncode == 0, r.stderr
    assert manifest_counts(tmp_path / "b.zip")["crack"] == {"real": 12, "synthetic": 18}
    assert "wrote" in r.stdout and "flat layout" in r.stdout
    r = cli("export", out, "--method", "smote", "--out", tmp_path / "s.zip", "--layout", "split", "--real", "train",
            "--size", "32")
    assert r.returncode == 0, r.stderr
    assert "split layout" in r.stdout and "upscaled from the run's 16 px to 32 px" in r.stdout
    split = json.loads((out / "split.json").read_text())
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
    assert {r["source"] for r in rows if r["origin"] == "real" and r["file"].startswith("train/")} == set(split["train"])
    assert {r["source"] for r in rows if r["file"].startswith("test/")} == set(split["test"])
    r = cli("export", out, "--method", "smote", "--out", tmp_path / "x.zip", "--size", "2")
    assert r.returncode == 2 and "size must be a whole number of pixels" in r.stderr and "Traceback" not in r.stderr
    r = cli("sample", out, "--method", "smote", "--class", "crack", "--n", "7", "--out", tmp_path / "more")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "more").glob("*.png"))) == 7
    r = cli("sample", out, "--method", "smote", "--class", "nope", "--n", "2")
    assert r.returncode == 2 and "unknown class" in r.stderr
    r = cli("inspect", data)
    assert r.returncode == 0 and "crack" in r.stdout and "normal" in r.stdout


def test_cli_run_dcgan_then_sample_more_from_its_saved_generator(tmp_path, make_dataset):
    from PIL import Image
    data = make_dataset(tmp_path, {"normal": 30, "crack": 12}, size=16)
    out = tmp_path / "runs" / "gan"
    r = cli("run", "--data", data, "--methods", "dcgan", "--seeds", "0", "--out", out, "--set", "dcgan.steps=2",
            "--set", "dcgan.g_width=4", "--set", "dcgan.d_width=4", "--baselines", "equal_steps", *FAST)
    assert r.returncode == 0, r.stderr
    assert (out / "checkpoints" / "dcgan" / "seed0" / "meta.json").is_file()
    r = cli("sample", out, "--method", "dcgan", "--class", "crack", "--n", "5")
    assert r.returncode == 0, r.stderr
    wrote = r.stdout.strip().splitlines()[-1]
    assert wrote.startswith("wrote 5 images of crack to ")
    folder = Path(wrote.removeprefix("wrote 5 images of crack to "))
    assert folder == out / "sampled" / "dcgan" / "crack"                # inside the run, by default
    files = sorted(folder.glob("*.png"))
    assert len(files) == 5
    for f in files:
        with Image.open(f) as img:
            assert img.size == (16, 16) and img.mode == "L"              # the run's size and channels


@pytest.mark.parametrize("args, message", [
    (["--set", "smote.k_neighbors"], "--set takes METHOD.PARAM=VALUE"),
    (["--set", "smote.k_neighbors=abc"], "expects int"),
    (["--ratio", "3"], "imbalance ratio must be in"),
    (["--methods", "smote,wat"], "unknown method 'wat'"),
    (["--baselines", "equal_steps,magic"], "unknown baseline 'magic'; use paper, equal_steps, class_weighted, "
                                           "logit_adjusted, drw, linear"),
])
def test_cli_bad_settings_exit_2_with_message(tmp_path, make_dataset, args, message):
    data = make_dataset(tmp_path, {"normal": 6, "crack": 3}, size=16)
    r = cli("run", "--data", data, "--methods", "smote", "--out", tmp_path / "o", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_cli_missing_data_is_a_message_not_a_traceback(tmp_path):
    r = cli("inspect", tmp_path / "nothing-here")
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip()


def test_cli_inspect_lists_each_bad_file_with_its_reason_and_loads_the_rest(tmp_path, make_dataset):
    data = make_dataset(tmp_path, {"normal": 4, "crack": 3}, size=20)
    (data / "crack" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    (data / "crack" / "empty.jpg").write_bytes(b"")
    (data / "normal" / "notes.txt").write_text("hi")
    from PIL import Image
    Image.new("L", (4, 4)).save(data / "normal" / "tiny.png")
    r = cli("inspect", data)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "7 images" in out
    for name, reason in (("crack/broken.png", "not an image"), ("crack/empty.jpg", "empty file"),
                         ("normal/notes.txt", "not an image extension"), ("normal/tiny.png", "too small")):
        line = next(line for line in out.splitlines() if name in line)
        assert reason in line


# ---------------------------------------------------------------------------------------------
# Class names that only a case-insensitive or normalising file system tells apart (issue 37, item 2)
# ---------------------------------------------------------------------------------------------
COLLIDING = {"normal": 20, "Crack": 6, "crack": 6, "caf\u00e9": 6, "cafe\u0301": 6, "spot": 6, "sp\u200bot": 6}


def test_colliding_class_names_are_warned_by_inspect_and_refused_by_export(tmp_path):
    from core.experiment import run
    data = write_dataset(tmp_path, COLLIDING, size=16)
    res = cli("inspect", data, "--image-size", "16")
    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stdout.splitlines() if line.startswith("Warning: classes")]
    assert len(warnings) == 3, res.stdout
    assert any("'Crack', 'crack'" in w for w in warnings)
    assert any("'caf\\xe9'" in w and "'cafe\\u0301'" in w for w in warnings)
    assert any("'sp\\u200bot'" in w for w in warnings) and all("merge into one" in w for w in warnings)
    run({"data": str(data), "methods": ["random_oversample"], "seeds": [0], "image_size": 16, "test_per_class": 2,
         "quality": False, "device": "cpu", "overrides": {"classifier": {"epochs": 1, "width": 4}}}, tmp_path / "run")
    out = tmp_path / "balanced.zip"
    res = cli("export", tmp_path / "run", "--method", "random_oversample", "--out", out)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert "the export refuses this run: classes 'Crack', 'crack' differ only by case" in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("tamper", [{"metrics": {"f1_macro": "abc"}}, {"pred": "0101"}])
def test_resume_over_a_result_with_wrong_value_types_trains_that_model_again(tmp_path, tamper):
    """`--resume` on a results/<model>.json whose values have the wrong types ended in a TypeError (issue 37,
    item 7): that model is trained again, and the run says so."""
    data = write_dataset(tmp_path, {"normal": 12, "crack": 6, "spot": 6}, size=16)
    args = ["run", "--data", data, "--methods", "random_oversample", "--seeds", "0", "--no-quality", *FAST,
            "--baselines", "equal_steps", "--out", tmp_path / "run"]
    assert cli(*args).returncode == 0
    path = tmp_path / "run" / "results" / "random_oversample_s0.json"
    rec = json.loads(path.read_text())
    for k, v in tamper.items():
        rec[k] = {**rec[k], **v} if isinstance(v, dict) and isinstance(rec[k], dict) else v
    path.write_text(json.dumps(rec))
    res = cli(*args, "--resume")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    said = res.stdout + res.stderr + (tmp_path / "run" / "log.txt").read_text()
    assert "results/random_oversample_s0.json is damaged (values of the wrong type): random_oversample_s0 is " \
           "trained again" in said
    fixed = json.loads(path.read_text())
    assert isinstance(fixed["metrics"]["f1_macro"], float) and isinstance(fixed["pred"], list)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["methods"]["random_oversample"]
