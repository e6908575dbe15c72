"""The export for real use: the user's original files byte for byte, every real image with its role, the flat and
split layouts, the synthetic top-up against what is exported, Hugging Face imagefolder metadata, bounded memory.

One real run (tiny, 16 px, one epoch) on a dataset of three kinds of file: grey PNGs, colour JPEGs with EXIF of a
size other than the run's, and 16-bit PNGs; the run is grey (channels=1) with a simulated imbalance of 0.1."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ParamError, RunError
from core.views.export import export_zip
from tests.support.manifest import manifest_counts
from core.rundir import RunDir
from tests.conftest import make_image, write_dataset, zip_folder

RUN = dict(methods=["smote"], seeds=[0], ratio=0.1, image_size=16, test_per_class=4, channels=1, quality=False,
           overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu", num_threads=1)


def _exif_jpeg(path: Path, seed: int) -> None:
    exif = Image.Exif()
    exif[0x010F] = "DefectAug test camera"      # Make
    exif[0x0132] = "2026:12:01 10:00:00"        # DateTime
    make_image((20, 14), "RGB", seed=seed).save(path, format="JPEG", quality=90, exif=exif)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = write_dataset(tmp_path_factory.mktemp("data"), {"normal": 60}, size=16)
    (root / "crack").mkdir()
    for i in range(14):
        _exif_jpeg(root / "crack" / f"crack_{i}.jpg", 100 + i)
    write_dataset(root.parent, {"spot": 10}, size=(18, 16), mode="I;16")     # 16-bit grey PNGs
    return root


@pytest.fixture(scope="module")
def run_dir(dataset, tmp_path_factory) -> Path:
    from core.experiment import run
    out = tmp_path_factory.mktemp("run") / "r"
    run(dict(RUN, data=str(dataset)), out)
    return out


def _rows(zp: Path, name: str = "manifest.csv") -> list[dict]:
    with zipfile.ZipFile(zp) as zf:
        return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"))))


def _all_images(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_every_real_image_is_the_original_file_byte_for_byte(run_dir, dataset, tmp_path):
    r = export_zip(run_dir, "smote", tmp_path / "b.zip")
    rows = [row for row in _rows(r.path) if row["origin"] == "real"]
    assert {row["source"] for row in rows} == _all_images(dataset)          # every real image, none twice
    with zipfile.ZipFile(r.path) as zf:
        for row in rows:
            assert zf.read(row["file"]) == (dataset / row["source"]).read_bytes(), row
            assert row["file"] == row["source"]                            # names kept: <class>/<file>
        jpeg = Image.open(io.BytesIO(zf.read("crack/crack_3.jpg")))
        assert jpeg.format == "JPEG" and jpeg.mode == "RGB" and jpeg.size == (20, 14)
        assert jpeg.getexif()[0x010F] == "DefectAug test camera"
        png16 = Image.open(io.BytesIO(zf.read("spot/spot_0.png")))
        assert png16.mode.startswith("I") and png16.size == (18, 16)
        assert np.array_equal(np.asarray(png16), np.asarray(Image.open(dataset / "spot" / "spot_0.png")))


def test_with_ratio_0_1_the_export_holds_every_real_image_with_its_role(run_dir, dataset, tmp_path):
    split = json.loads((run_dir / "split.json").read_text())
    assert split["held_back"] and split["train_counts"]["crack"] == 5         # 0.1 x 56 normal: 5 per defect
    rows = [row for row in _rows(export_zip(run_dir, None, tmp_path / "a.zip").path)]
    roles = {row["source"]: row["role"] for row in rows}
    assert set(roles) == _all_images(dataset) and len(rows) == 84
    assert {s for s, role in roles.items() if role == "train"} == set(split["train"])
    assert {s for s, role in roles.items() if role == "test"} == set(split["test"])
    assert {s for s, role in roles.items() if role == "held_back"} == set(split["held_back"])
    assert sum(role == "held_back" for role in roles.values()) == (10 - 5) + (6 - 5)
    # only what the run trained on
    only = _rows(export_zip(run_dir, None, tmp_path / "t.zip", real="train").path)
    assert {row["source"] for row in only} == set(split["train"]) and {row["role"] for row in only} == {"train"}


def test_split_layout_puts_exactly_the_run_test_split_under_test_and_no_synthetic_image(run_dir, tmp_path):
    split = json.loads((run_dir / "split.json").read_text())
    r = export_zip(run_dir, "smote", tmp_path / "s.zip", layout="split")
    rows = _rows(r.path)
    test_rows = [row for row in rows if row["file"].startswith("test/")]
    assert {row["source"] for row in test_rows} == set(split["test"])
    assert {row["origin"] for row in test_rows} == {"real"} and {row["role"] for row in test_rows} == {"test"}
    assert all(row["file"].startswith("train/") for row in rows if row["origin"] == "synthetic")
    with zipfile.ZipFile(r.path) as zf:
        images = [n for n in zf.namelist() if n.startswith(("train/", "test/")) and not n.endswith(".csv")]
    assert sorted(images) == sorted(row["file"] for row in rows)
    # with real="train" the test part is still the run's test split
    t = _rows(export_zip(run_dir, None, tmp_path / "t.zip", layout="split", real="train").path)
    assert {row["source"] for row in t if row["file"].startswith("test/")} == set(split["test"])
    assert {row["source"] for row in t if row["file"].startswith("train/")} == set(split["train"])


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_top_up_counts_match_the_target_of_the_exported_real_counts(run_dir, tmp_path, layout):
    r = export_zip(run_dir, "smote", tmp_path / "b.zip", layout=layout)
    rows = _rows(r.path)
    part = [row for row in rows if not row["file"].startswith("test/")]
    per_class = {c: sum(row["class"] == c for row in part) for c in ("normal", "crack", "spot")}
    real = {c: sum(row["class"] == c and row["origin"] == "real" for row in part) for c in per_class}
    assert per_class == {c: max(real.values()) for c in per_class}               # target ratio 1.0: balanced
    assert all(r.counts[c]["synthetic"] + r.counts[c]["sampled"] == per_class[c] - real[c] for c in per_class)
    assert not r.missing and len({row["file"] for row in rows}) == len(rows)
    # the run made 56 - 5 per defect class; the held-back and test images exported lower that
    assert r.counts["crack"]["synthetic"] == (60 if layout == "flat" else 56) - (14 if layout == "flat" else 10) < 51


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    """A run whose synthetic images fall short of a flat export: 6 test images of normal, only 4 of crack."""
    from core.experiment import run
    tmp = tmp_path_factory.mktemp("short")
    data = write_dataset(tmp, {"normal": 40, "crack": 8}, size=16)
    run(dict(RUN, data=str(data), ratio=None, test_per_class=6), tmp / "run")
    return tmp / "run"


def test_the_top_up_samples_the_rest_from_the_saved_generator(short_run, tmp_path):
    assert json.loads((short_run / "split.json").read_text())["needed"] == {"crack": 34 - 4, "normal": 0}
    r = export_zip(short_run, "smote", tmp_path / "b.zip")
    assert r.counts["crack"] == {"train": 4, "test": 4, "held_back": 0, "synthetic": 30, "sampled": 2, "missing": 0}
    assert any("2 synthetic images were sampled now" in n for n in r.notes)
    rows = _rows(r.path)
    sampled = [row for row in rows if row["role"] == "sampled"]
    assert len(sampled) == 2 and all(row["parents"] and row["method"] == "smote" for row in sampled)
    with zipfile.ZipFile(r.path) as zf:
        made = [np.asarray(Image.open(io.BytesIO(zf.read(row["file"]))))
                for row in rows if row["origin"] == "synthetic"]
    assert all(m.shape == (16, 16) for m in made)
    assert len({m.tobytes() for m in made}) == len(made)              # the new ones are not the run's again
    assert manifest_counts(r.path) == {"crack": {"real": 8, "synthetic": 32}, "normal": {"real": 40}}


def test_a_method_without_a_saved_generator_says_how_many_are_missing(short_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(short_run, copy)
    shutil.rmtree(copy / "checkpoints")
    r = export_zip(copy, "smote", tmp_path / "b.zip")
    assert r.missing == {"crack": 2} and r.counts["crack"]["synthetic"] == 30
    assert any("2 synthetic images are missing" in n and "no generator" in n for n in r.notes)
    assert "missing" in zipfile.ZipFile(r.path).read("README.txt").decode()
    # a damaged checkpoint: the same, saying why
    shutil.copytree(short_run / "checkpoints", copy / "checkpoints")
    (copy / "checkpoints" / "smote" / "seed0" / "state.safetensors").write_bytes(b"cut short")
    r = export_zip(copy, "smote", tmp_path / "c.zip")
    assert r.missing == {"crack": 2} and any("cannot be loaded" in n for n in r.notes)


def test_a_target_ratio_below_one_tops_up_to_that_share(dataset, tmp_path):
    from core.experiment import run
    out = tmp_path / "half"
    run(dict(RUN, data=str(dataset), target_ratio=0.5, seeds=[0]), out)
    r = export_zip(out, "smote", tmp_path / "h.zip", layout="split")
    target = math.ceil(0.5 * 56)
    for c in ("crack", "spot"):
        real = r.counts[c]["train"] + r.counts[c]["held_back"]
        assert real + r.counts[c]["synthetic"] + r.counts[c]["sampled"] == target


def _imagefolder(data_dir: Path) -> dict[str, list[dict]]:
    """The rows Hugging Face's imagefolder builder gives for a local folder, following its documented format
    (docs/source/image_dataset.mdx and folder_based_builder.py of huggingface/datasets): a folder named train/
    or test/ is a split, else everything is one train split; a split's metadata.csv links each image by
    `file_name`, a path relative to the metadata file's folder; every other column is a feature; only the
    images a metadata file names are examples."""
    splits = [d for d in ("train", "test") if (data_dir / d).is_dir()] or [""]
    out = {}
    for s in splits:
        base = data_dir / s if s else data_dir
        metas = sorted(base.rglob("metadata.csv"))
        assert len(metas) == 1, f"one metadata file per split, found {metas}"
        rows = list(csv.DictReader(metas[0].open(encoding="utf-8", newline="")))
        for row in rows:
            name = row["file_name"]
            assert not name.startswith("/") and ".." not in Path(name).parts and "://" not in name
            row["image"] = Path(metas[0].parent, name).resolve()
            assert row["image"].is_file(), name
        out[s or "train"] = rows
    return out


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_metadata_csv_is_a_hugging_face_imagefolder_with_labels(run_dir, tmp_path, layout):
    r = export_zip(run_dir, "smote", tmp_path / "b.zip", layout=layout)
    root = tmp_path / "x"
    zipfile.ZipFile(r.path).extractall(root)
    got = _imagefolder(root)
    assert set(got) == ({"train"} if layout == "flat" else {"train", "test"})
    for split, rows in got.items():
        base = root / split if layout == "split" else root
        images = {p.resolve() for p in base.rglob("*") if p.suffix in (".png", ".jpg")}
        assert {row["image"] for row in rows} == images and len(rows) == len(images)     # each image once
        assert all(row["label"] == row["image"].parent.name for row in rows)              # the class folder
        assert {row["origin"] for row in rows} <= {"real", "synthetic"}
        assert list(rows[0]) == ["file_name", "label", "origin", "role", "image"]
    # torchvision reads the same folders as an ImageFolder
    from torchvision.datasets import ImageFolder
    for part in ([root] if layout == "flat" else [root / "train", root / "test"]):
        ds = ImageFolder(str(part))
        assert ds.classes == ["crack", "normal", "spot"] and len(ds) == len(got["test" if part.name == "test"
                                                                              else "train"])


def test_synthetic_images_at_a_chosen_size_and_the_notes_that_say_so(run_dir, dataset, tmp_path):
    r = export_zip(run_dir, "smote", tmp_path / "b.zip", size=32)
    assert any("upscaled from the run's 16 px to 32 px" in n for n in r.notes)
    assert any("run was grey" in n and "14 of the exported real images are colour" in n for n in r.notes)
    with zipfile.ZipFile(r.path) as zf:
        for row in _rows(r.path):
            im = Image.open(io.BytesIO(zf.read(row["file"])))
            if row["origin"] == "synthetic":
                assert im.size == (32, 32) and im.mode == "L"
            else:
                assert zf.read(row["file"]) == (dataset / row["source"]).read_bytes()
    plain = export_zip(run_dir, "smote", tmp_path / "p.zip")
    with zipfile.ZipFile(plain.path) as zf:
        syn = next(row for row in _rows(plain.path) if row["origin"] == "synthetic" and row["role"] == "synthetic")
        assert zf.read(syn["file"]) == (run_dir / syn["source"]).read_bytes()           # the run's PNG as it is
    assert not any("upscaled" in n for n in plain.notes)


def test_a_dataset_given_as_a_zip_exports_its_entries_byte_for_byte(tmp_path):
    from core.experiment import run
    folder = write_dataset(tmp_path, {"normal": 12, "crack": 6}, size=16)
    zp = zip_folder(folder, tmp_path / "upload.zip", prefix="dataset/")
    out = tmp_path / "run"
    run(dict(RUN, data=str(zp), ratio=None), out)
    r = export_zip(out, "smote", tmp_path / "b.zip")
    rows = [row for row in _rows(r.path) if row["origin"] == "real"]
    assert len(rows) == 18
    with zipfile.ZipFile(zp) as src, zipfile.ZipFile(r.path) as dst:
        for row in rows:
            assert dst.read(row["file"]) == src.read("dataset/" + row["source"])


def test_names_that_collide_are_suffixed_and_csv_cells_never_start_a_formula(tmp_path):
    from core.experiment import run
    root = write_dataset(tmp_path, {"normal": 12, "-5 dent": 6}, size=16)
    (root / "normal" / "sub").mkdir()
    make_image(16, seed=999).save(root / "normal" / "sub" / "normal_0.png")       # same name, another folder
    make_image(16, seed=998).save(root / "normal" / "sub" / "NORMAL_1.png")       # differs only by case
    out = tmp_path / "run"
    run(dict(RUN, data=str(root), ratio=None), out)
    flat = _rows(export_zip(out, "smote", tmp_path / "f.zip").path)
    real = {row["source"]: row["file"] for row in flat if row["origin"] == "real"}
    assert real["normal/normal_0.png"] == "normal/normal_0.png" and real["normal/normal_1.png"] == "normal/normal_1.png"
    assert real["normal/sub/normal_0.png"] == "normal/normal_0_1.png"
    assert real["normal/sub/NORMAL_1.png"] == "normal/NORMAL_1_1.png"          # normal_1.png on Windows and macOS
    r = export_zip(out, "smote", tmp_path / "b.zip", layout="split")
    rows = _rows(r.path)
    with zipfile.ZipFile(r.path) as zf:
        texts = [zf.read(n).decode() for n in ("manifest.csv", "train/metadata.csv", "test/metadata.csv")]
        names = set(zf.namelist())
    for text in texts:
        for row in csv.reader(io.StringIO(text)):
            assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    assert {row["class"] for row in rows} == {"'-5 dent", "normal"}     # shown as text, never run
    meta = _rows(r.path, "train/metadata.csv")
    dent = [row for row in meta if row["label"] == "'-5 dent"]
    assert dent and all(row["file_name"].startswith("./-5 dent/") for row in dent)
    assert all("train/" + row["file_name"][2:] in names for row in dent)   # './' + the path: the same file
    flat_dent = [row for row in flat if row["class"] == "'-5 dent"]
    assert flat_dent and all(row["file"].startswith("./-5 dent/") for row in flat_dent)


def test_the_zip_streams_entry_by_entry(tmp_path):
    """Python-level allocations during the export stay far below the bytes it writes: no entry list in memory."""
    from core.experiment import run
    root = write_dataset(tmp_path, {"normal": 8, "crack": 4}, size=300)        # noise PNGs of ~90 KB each
    out = tmp_path / "run"
    run(dict(RUN, data=str(root), ratio=None, image_size=16), out)
    tracemalloc.start()
    try:
        r = export_zip(out, None, tmp_path / "b.zip")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    written = sum(p.stat().st_size for p in root.rglob("*.png"))
    assert written > 1_000_000 and peak < written / 3, (peak, written)
    assert manifest_counts(r.path) == {"crack": {"real": 4}, "normal": {"real": 8}}


def test_bad_options_and_a_missing_dataset_are_clear_messages(run_dir, tmp_path):
    with pytest.raises(ParamError, match="layout must be one of flat, split"):
        export_zip(run_dir, "smote", tmp_path / "x.zip", layout="nested")
    with pytest.raises(ParamError, match="real must be 'all'"):
        export_zip(run_dir, "smote", tmp_path / "x.zip", real="some")
    with pytest.raises(ParamError, match="size must be a whole number of pixels between 8 and 4096"):
        export_zip(run_dir, "smote", tmp_path / "x.zip", size=2)
    with pytest.raises(ParamError, match="size must be a whole number"):
        export_zip(run_dir, "smote", tmp_path / "x.zip", size="big")
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["data"] = str(tmp_path / "moved-away")
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="is no longer there; the export copies the original image files"):
        export_zip(copy, "smote", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists() and not list(tmp_path.glob(".x.zip.*"))


def test_a_run_prepared_before_held_back_was_recorded_finds_them_in_the_dataset(run_dir, dataset, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    split = json.loads((copy / "split.json").read_text())
    held = split.pop("held_back")
    RunDir(copy).write_split(split)
    r = export_zip(copy, None, tmp_path / "b.zip")
    rows = _rows(r.path)
    assert {row["source"] for row in rows if row["role"] == "held_back"} == set(held)
    assert {row["source"] for row in rows} == _all_images(dataset)
    assert any("prepared before it recorded" in n for n in r.notes)
