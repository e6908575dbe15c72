"""core.data: loading class folders, normalising images, reporting problems, split/imbalance/targets."""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import (REASON_EMPTY, REASON_EXTENSION, REASON_NESTED, REASON_NOT_IMAGE, REASON_ROOT,
                       DataReport, Limits, SkippedFile, balance_targets, detect_normal_class, load_dataset,
                       protocol_counts, resolve_data_path, simulate_imbalance, split)
from core.errors import DataError, ParamError
from core.imageset import ImageSet

MAGNETIC_TILE = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "magnetic_tile"


def reasons(report: DataReport) -> dict[str, str]:
    return {s.path: s.reason for s in report.skipped}


def toy(counts: dict[str, int]) -> ImageSet:
    """An in-memory ImageSet whose images encode their index (so subsets can be checked)."""
    classes = list(counts)
    labels = np.concatenate([np.full(n, i) for i, n in enumerate(counts.values())]).astype(np.int64)
    n = len(labels)
    images = (np.arange(n) % 256).astype(np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 1), np.uint8)
    sources = [f"{classes[lab]}/img_{i:04d}.png" for i, lab in enumerate(labels)]
    return ImageSet(images, labels, classes, sources)


# ---------------------------------------------------------------------------------------------------
# basic loading
# ---------------------------------------------------------------------------------------------------
def test_loads_grayscale_folder(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 6, "crack": 3}, size=16, mode="L")
    ds, report = load_dataset(root, image_size=12)
    assert ds.classes == ["crack", "normal"]
    assert ds.images.shape == (9, 12, 12, 1) and ds.images.dtype == np.uint8
    assert ds.counts() == {"crack": 3, "normal": 6} == report.counts
    assert ds.sources[:3] == ["crack/crack_0.png", "crack/crack_1.png", "crack/crack_2.png"]
    assert ds.sources[3] == "normal/normal_0.png"
    assert list(ds.labels) == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert report.channels == 1 and report.image_size == 12
    assert report.skipped == [] and report.duplicates == []
    assert report.root == str(root)


def test_loaded_pixels_match_the_file(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"a": 2, "b": 2}, size=16, mode="L")
    ds, _ = load_dataset(root, image_size=16)
    expected = np.asarray(Image.open(root / "a" / "a_1.png"))
    assert np.array_equal(ds.images[ds.sources.index("a/a_1.png"), :, :, 0], expected)


def test_rgb_folder_gives_three_channels(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 3, "crack": 2}, size=16, mode="RGB")
    ds, report = load_dataset(root, image_size=16)
    assert ds.images.shape == (5, 16, 16, 3) and report.channels == 3
    expected = np.asarray(Image.open(root / "crack" / "crack_0.png"))
    assert np.array_equal(ds.images[0], expected)


def test_mixed_gray_and_colour_is_three_channels_with_gray_repeated(tmp_path, make_dataset):
    make_dataset(tmp_path, {"normal": 3}, size=16, mode="L")
    root = make_dataset(tmp_path, {"crack": 2}, size=16, mode="RGB")
    ds, report = load_dataset(root, image_size=16)
    assert ds.channels == 3
    gray = ds.images[ds.sources.index("normal/normal_0.png")]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    assert any("channels auto: 3 (2 of 5 images are colour; 3 grayscale" in n for n in report.notes)


def test_rgb_with_equal_channels_still_counts_as_colour(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        Image.new("RGB", (16, 16), (90, 90, 90)).save(tmp_path / "d" / cls / "x.png")
        Image.new("RGB", (16, 16), (10, 10, 10)).save(tmp_path / "d" / cls / "y.png")
    ds, _ = load_dataset(tmp_path / "d", image_size=8)
    assert ds.channels == 3


def test_forced_channels(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 2, "crack": 2}, size=16, mode="RGB")
    ds1, report = load_dataset(root, image_size=16, channels=1)
    assert ds1.images.shape == (4, 16, 16, 1)
    expected = np.asarray(Image.open(root / "crack" / "crack_0.png").convert("L"))
    assert np.array_equal(ds1.images[0, :, :, 0], expected)
    assert any("4 colour images converted to grayscale" in n for n in report.notes)
    gray_root = make_dataset(tmp_path, {"normal": 2, "crack": 2}, size=16, mode="L", name="gray")
    ds3, report3 = load_dataset(gray_root, image_size=16, channels=3)
    assert ds3.images.shape == (4, 16, 16, 3) and report3.channels == 3
    assert np.array_equal(ds3.images[..., 0], ds3.images[..., 2])
    assert load_dataset(gray_root, image_size=16, channels="3")[0].channels == 3


@pytest.mark.parametrize("bad", [2, 0, "rgb", 1.5, None, True])
def test_bad_channels_is_a_param_error(tmp_path, make_dataset, bad):
    root = make_dataset(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(ParamError, match=r"channels must be 'auto', 1 or 3"):
        load_dataset(root, channels=bad)


@pytest.mark.parametrize("bad", [4, 0, -1, 5000, 16.0, "64", True])
def test_bad_image_size_is_a_param_error(tmp_path, make_dataset, bad):
    root = make_dataset(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(ParamError, match=r"image_size must be a whole number of pixels between 8 and 4096"):
        load_dataset(root, image_size=bad)


def test_resize_squashes_to_square(tmp_path):
    # 40 x 20: left half black, right half white; squashed to 16 x 16 the halves stay left and right.
    a = np.zeros((20, 40), np.uint8)
    a[:, 20:] = 255
    for cls in ("a", "b"):
        (tmp_path / "d" / cls).mkdir(parents=True)
        Image.fromarray(a).save(tmp_path / "d" / cls / "wide.png")
        Image.fromarray(a.T.copy()).resize((9, 30)).save(tmp_path / "d" / cls / "tall.png")
    ds, report = load_dataset(tmp_path / "d", image_size=16)
    assert ds.images.shape == (4, 16, 16, 1)
    wide = ds.images[ds.sources.index("a/wide.png"), :, :, 0]
    assert wide[:, :6].max() < 10 and wide[:, 10:].min() > 245
    assert any("squashed to 16x16" in n for n in report.notes)


def test_upscaling_small_images(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"a": 2, "b": 2}, size=(8, 12))
    ds, _ = load_dataset(root, image_size=32)
    assert ds.images.shape == (4, 32, 32, 1)


def test_sources_include_subfolders_and_are_sorted(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 2, "crack": 2})
    (root / "crack" / "batch 2" / "deep").mkdir(parents=True)
    Image.new("L", (16, 16), 7).save(root / "crack" / "batch 2" / "deep" / "z.PNG")
    Image.new("L", (16, 16), 9).save(root / "crack" / "batch 2" / "a.JpEg")
    ds, _ = load_dataset(root, image_size=8)
    assert ds.sources[:4] == ["crack/batch 2/a.JpEg", "crack/batch 2/deep/z.PNG",
                              "crack/crack_0.png", "crack/crack_1.png"]
    assert ds.counts() == {"crack": 4, "normal": 2}


@pytest.mark.parametrize("ext", ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp", "PNG", "Tiff"])
def test_every_image_extension(tmp_path, make_dataset, ext):
    root = make_dataset(tmp_path, {"a": 2, "b": 1}, size=16, mode="RGB", ext=ext)
    ds, report = load_dataset(root, image_size=8)
    assert len(ds) == 3 and report.skipped == []


def test_progress_is_reported_per_file(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"a": 3, "b": 2})
    (root / "a" / "notes.txt").write_text("x")  # not a candidate: not counted
    calls = []
    load_dataset(root, image_size=8, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


# ---------------------------------------------------------------------------------------------------
# datasets that cannot be used: DataError with what to do
# ---------------------------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    with pytest.raises(DataError, match=r"dataset not found: .*nowhere; give a folder of class folders or a .zip"):
        load_dataset(tmp_path / "nowhere")


def test_a_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"data.csv is a file but not a .zip archive; give a folder with one "
                                        r"sub-folder per class"):
        load_dataset(tmp_path / "data.csv")


def test_no_class_folders(tmp_path):
    (tmp_path / "d").mkdir()
    for i in range(3):
        Image.new("L", (16, 16), i).save(tmp_path / "d" / f"{i}.png")
    with pytest.raises(DataError, match=r"no class folders found in .*d \(3 images lie directly in it; move them "
                                        r"into class folders\): DefectAug expects one sub-folder per class"):
        load_dataset(tmp_path / "d")


def test_empty_folder(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match=r"no class folders found in .*d: DefectAug expects one sub-folder per class"):
        load_dataset(tmp_path / "d")


def test_only_one_class(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"x": 3})
    with pytest.raises(DataError) as err:
        load_dataset(root)
    assert str(err.value) == ("found only one class 'x'; DefectAug needs at least two, e.g. normal/ and crack/")


def test_only_one_class_that_holds_the_class_folders(tmp_path, make_dataset):
    make_dataset(tmp_path / "outer", {"normal": 2, "crack": 2}, name="inner")
    with pytest.raises(DataError, match=r"found only one class 'inner'; .* \(if 'inner' holds the class folders, "
                                        r"load 'inner' itself\)"):
        load_dataset(tmp_path / "outer")


def test_class_with_no_readable_image_names_it_and_why(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 3})
    (root / "crack").mkdir()
    (root / "crack" / "a.png").write_text("this is not a picture")
    (root / "crack" / "b.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_dataset(root)
    msg = str(err.value)
    assert msg.startswith("class folder 'crack' has no readable image: its 2 files were skipped: ")
    assert f"crack/a.png ({REASON_NOT_IMAGE})" in msg and f"crack/b.png ({REASON_EMPTY})" in msg
    assert msg.endswith("or remove the folder.")


def test_empty_class_folder(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 3})
    (root / "crack").mkdir()
    with pytest.raises(DataError, match=r"class folder 'crack' has no readable image: the folder is empty\. "
                                        r"Put images \(.bmp, .jpeg, .jpg, .png, .tif, .tiff, .webp\) in it"):
        load_dataset(root)


def test_too_many_classes(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {f"c{i}": 1 for i in range(4)}, size=8)
    with pytest.raises(DataError, match=r"found 4 class folders in .*, more than the limit of 3; check that it is "
                                        r"the dataset folder"):
        load_dataset(root, limits=Limits(max_classes=3))


# ---------------------------------------------------------------------------------------------------
# files that cannot be used are skipped with a reason
# ---------------------------------------------------------------------------------------------------
def test_unusable_files_are_skipped_with_reasons(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 3, "crack": 2}, size=16)
    (root / "crack" / "zero.png").write_bytes(b"")
    (root / "crack" / "text.png").write_text("hello, I am not a PNG")
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(jpeg, "JPEG")
    (root / "crack" / "cut.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    Image.new("L", (7, 20)).save(root / "crack" / "thin.png")
    Image.new("L", (8, 8), 3).save(root / "crack" / "just_big_enough.png")
    (root / "crack" / "readme.txt").write_text("notes")
    (root / "crack" / "inner.zip").write_bytes(b"PK")
    Image.new("L", (16, 16)).save(root / "stray.png")
    (root / ".DS_Store").write_bytes(b"\0\0")
    (root / "normal" / "._normal_0.png").write_bytes(b"\0\0")
    ds, report = load_dataset(root, image_size=8)
    assert ds.counts() == {"crack": 3, "normal": 3}
    assert "crack/just_big_enough.png" in ds.sources
    r = reasons(report)
    assert r["crack/zero.png"] == REASON_EMPTY
    assert r["crack/text.png"] == REASON_NOT_IMAGE
    assert r["crack/cut.jpg"].startswith("truncated or corrupt image (OSError: image file is truncated")
    assert r["crack/thin.png"] == "too small: 7x20 px (at least 8 px on a side)"
    assert r["crack/readme.txt"] == REASON_EXTENSION
    assert r["crack/inner.zip"] == REASON_NESTED
    assert r["stray.png"] == REASON_ROOT
    assert ".DS_Store" not in r and "normal/._normal_0.png" not in r  # OS droppings are ignored silently
    assert len(report.skipped) == 7


def test_truncated_png_is_skipped(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"a": 2, "b": 2}, size=32)
    data = (root / "a" / "a_0.png").read_bytes()
    (root / "a" / "a_0.png").write_bytes(data[: len(data) - 200])
    ds, report = load_dataset(root, image_size=8)
    assert ds.counts() == {"a": 1, "b": 2}
    assert reasons(report)["a/a_0.png"].startswith("truncated or corrupt image (")


@pytest.mark.parametrize("side", [1200, 2000])  # over the limit (Pillow warns) and over twice it (Pillow raises)
def test_decompression_bomb_is_skipped_and_guard_restored(tmp_path, make_dataset, side):
    root = make_dataset(tmp_path, {"a": 2, "b": 2})
    Image.new("L", (side, side)).save(root / "a" / "bomb.png")  # a few KiB on disk, `side`^2 pixels decoded
    before = Image.MAX_IMAGE_PIXELS
    ds, report = load_dataset(root, image_size=8, limits=Limits(max_image_pixels=1_000_000))
    assert Image.MAX_IMAGE_PIXELS == before
    assert "a/bomb.png" not in ds.sources
    assert reasons(report)["a/bomb.png"].startswith("decompression bomb: ")
    assert f"{side * side}" in reasons(report)["a/bomb.png"]


def test_folder_symlinks_are_not_followed(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"a": 2, "b": 2})
    outside = make_dataset(tmp_path, {"secret": 2}, name="elsewhere")
    os.symlink(outside / "secret", root / "a" / "linked")
    os.symlink(outside / "secret" / "secret_0.png", root / "b" / "out.png")
    os.symlink(root / "a" / "a_0.png", root / "b" / "in.png")
    ds, report = load_dataset(root, image_size=8)
    r = reasons(report)
    assert r["a/linked/"] == "symbolic link to a folder (not followed)"
    assert r["b/out.png"] == "symbolic link pointing outside the dataset folder (not followed)"
    assert "b/in.png" in ds.sources


# ---------------------------------------------------------------------------------------------------
# image normalisation
# ---------------------------------------------------------------------------------------------------
def _two_class(tmp_path: Path, img: Image.Image, name: str = "x.png", **save) -> Path:
    """Dataset with `img` in class a and a plain L image in class b."""
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir(parents=True)
    img.save(root / "a" / name, **save)
    Image.new("L", (16, 16), 0).save(root / "b" / "plain.png")
    return root


def test_16_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([0, 257 * 10, 257 * 128, 65535], np.uint16)
    img = Image.fromarray(np.tile(values.repeat(4), (16, 1)))  # 16x16, four vertical bands
    assert img.mode == "I;16"
    root = _two_class(tmp_path, img)
    ds, report = load_dataset(root, image_size=16)
    row = ds.images[ds.sources.index("a/x.png"), 0, ::4, 0]
    assert list(row) == [0, 10, 128, 255]
    assert ds.channels == 1
    assert any("1 high bit-depth images scaled to 8 bits" in n for n in report.notes)


def test_32_bit_integer_tiff(tmp_path):
    img = Image.fromarray(np.full((16, 16), 257 * 50, np.int32))
    root = _two_class(tmp_path, img, "x.tif")
    ds, _ = load_dataset(root, image_size=16)
    assert ds.images[ds.sources.index("a/x.tif")].max() == 50


def test_palette_becomes_rgb(tmp_path):
    img = Image.new("RGB", (16, 16), (200, 30, 40)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert img.mode == "P"
    root = _two_class(tmp_path, img)
    ds, _ = load_dataset(root, image_size=16)
    assert ds.channels == 3
    assert tuple(ds.images[ds.sources.index("a/x.png"), 5, 5]) == (200, 30, 40)


def test_palette_transparency_is_composited_on_white(tmp_path):
    img = Image.new("P", (16, 16), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 16, 8))  # top half red, bottom half index 0 = transparent
    root = _two_class(tmp_path, img, transparency=0)
    ds, _ = load_dataset(root, image_size=16)
    x = ds.images[ds.sources.index("a/x.png")]
    assert tuple(x[2, 2]) == (255, 0, 0) and tuple(x[12, 2]) == (255, 255, 255)


def test_cmyk_becomes_rgb(tmp_path):
    root = _two_class(tmp_path, Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "x.tif")
    ds, _ = load_dataset(root, image_size=16)
    assert ds.channels == 3
    assert tuple(ds.images[ds.sources.index("a/x.tif"), 3, 3]) == (0, 255, 255)  # pure cyan


def test_rgba_alpha_is_composited_on_white(tmp_path):
    a = np.zeros((16, 16, 4), np.uint8)  # black
    a[:, :8, 3] = 0     # left: fully transparent -> white
    a[:, 8:, 3] = 255   # right: opaque black
    a[0, 8, 3] = 128    # one half-transparent pixel -> mid gray
    root = _two_class(tmp_path, Image.fromarray(a, "RGBA"))
    ds, report = load_dataset(root, image_size=16)
    x = ds.images[ds.sources.index("a/x.png")]
    assert tuple(x[5, 2]) == (255, 255, 255) and tuple(x[5, 12]) == (0, 0, 0)
    assert 125 <= x[0, 8, 0] <= 129
    assert any("1 images with transparency composited on white" in n for n in report.notes)


def test_gray_with_alpha_stays_one_channel(tmp_path):
    a = np.zeros((16, 16, 2), np.uint8)
    a[..., 0] = 40
    a[:8, :, 1] = 255
    root = _two_class(tmp_path, Image.fromarray(a, "LA"))
    ds, _ = load_dataset(root, image_size=16)
    x = ds.images[ds.sources.index("a/x.png"), :, :, 0]
    assert ds.channels == 1 and x[2, 2] == 40 and x[12, 2] == 255


def test_one_bit_images(tmp_path):
    a = np.zeros((16, 16), bool)
    a[:, 8:] = True
    root = _two_class(tmp_path, Image.fromarray(a).convert("1"))
    ds, _ = load_dataset(root, image_size=16)
    x = ds.images[ds.sources.index("a/x.png"), :, :, 0]
    assert ds.channels == 1 and set(np.unique(x)) == {0, 255} and x[0, 15] == 255 and x[0, 0] == 0


@pytest.mark.parametrize("orientation,turn", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    a = np.zeros((16, 16), np.uint8)
    a[0, :] = 255          # top row white
    a[:, 0] = 128          # left column gray
    exif = Image.Exif()
    exif[0x0112] = orientation
    root = _two_class(tmp_path, Image.fromarray(a), exif=exif)
    ds, report = load_dataset(root, image_size=16)
    x = ds.images[ds.sources.index("a/x.png"), :, :, 0]
    assert np.array_equal(x, np.rot90(a, k=turn))  # rot90 k=-1 is 90 degrees clockwise
    assert not np.array_equal(x, a)
    assert any("1 images rotated upright from their EXIF orientation" in n for n in report.notes)


# ---------------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------------
def test_unicode_and_long_file_names(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 2, "crack": 2})
    long_name = "ü" * 20 + "a" * 176 + ".png"
    assert len(long_name) == 200
    Image.new("L", (16, 16), 1).save(root / "crack" / long_name)
    Image.new("L", (16, 16), 2).save(root / "crack" / "défaut 裂纹 №1.png")
    ds, report = load_dataset(root, image_size=8)
    assert f"crack/{long_name}" in ds.sources and "crack/défaut 裂纹 №1.png" in ds.sources
    json.dumps(report.to_dict(), ensure_ascii=False)


def test_class_names_with_spaces_and_unicode(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal tile": 2, "fissure é": 2, "裂纹": 1, "Blow Hole": 1})
    ds, report = load_dataset(root, image_size=8)
    assert ds.classes == sorted(["normal tile", "fissure é", "裂纹", "Blow Hole"])
    assert ds.counts()["裂纹"] == 1
    assert "裂纹/裂纹_0.png" in ds.sources
    assert "fissure é" in report.summary()


def test_more_than_fifty_classes(tmp_path, make_dataset):
    names = {f"class_{i:02d}": 1 + i % 3 for i in range(55)}
    root = make_dataset(tmp_path, names, size=8)
    ds, report = load_dataset(root, image_size=8)
    assert len(ds.classes) == 55 and ds.counts() == names
    assert report.classes == sorted(names)


# ---------------------------------------------------------------------------------------------------
# duplicates and the report
# ---------------------------------------------------------------------------------------------------
def test_identical_images_in_two_classes_are_reported(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 3, "crack": 2})
    img = Image.open(root / "normal" / "normal_1.png")
    img.save(root / "crack" / "copy.bmp")                       # same pixels, other format
    img.save(root / "normal" / "same_class_copy.png")           # a copy inside its own class
    ds, report = load_dataset(root, image_size=8)
    assert "crack/copy.bmp" in ds.sources and len(ds) == 7     # loaded anyway
    assert report.duplicates == [("crack/copy.bmp", "normal/normal_1.png")]
    assert any("1 images are exact copies of another image in the same class" in n for n in report.notes)
    assert "crack/copy.bmp == normal/normal_1.png" in report.summary()


def test_report_to_dict_and_summary(tmp_path, make_dataset):
    root = make_dataset(tmp_path, {"normal": 4, "crack": 2})
    (root / "crack" / "bad.png").write_text("nope")
    _, report = load_dataset(root, image_size=8)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["counts"] == {"crack": 2, "normal": 4} and d["total"] == 6
    assert d["skipped"] == [{"path": "crack/bad.png", "reason": REASON_NOT_IMAGE}]
    assert d["channels"] == 1 and d["image_size"] == 8 and d["classes"] == ["crack", "normal"]
    text = report.summary()
    lines = text.splitlines()
    assert lines[1] == "2 classes, 6 images, 8x8 px, 1 channel"
    assert "  crack        2" in lines and "  normal       4" in lines
    assert "Skipped 1 file:" in lines and f"  crack/bad.png: {REASON_NOT_IMAGE}" in lines


def test_summary_of_a_hand_made_report():
    r = DataReport("x", ["a", "b"], {"a": 1, "b": 2}, [SkippedFile("a/q.txt", REASON_EXTENSION)],
                   [], 3, 64, [])
    assert "3 images, 64x64 px, 3 channels" in r.summary()
    assert r.to_dict()["skipped"][0]["reason"] == REASON_EXTENSION


# ---------------------------------------------------------------------------------------------------
# zips through load_dataset (attacks are in test_zip_security.py)
# ---------------------------------------------------------------------------------------------------
def test_zip_is_loaded_and_its_temp_folder_removed(tmp_path, make_dataset, make_zip, monkeypatch):
    root = make_dataset(tmp_path, {"normal": 3, "crack": 2})
    z = make_zip(root, tmp_path / "upload.zip", prefix="my data/")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ds, report = load_dataset(z, image_size=8)
    assert ds.counts() == {"crack": 2, "normal": 3}
    assert ds.sources[0] == "crack/crack_0.png"
    assert report.root == str(z)
    assert "extracted from upload.zip" in report.notes
    assert list(scratch.iterdir()) == []


def test_zip_into_extract_dir_is_kept(tmp_path, make_dataset, make_zip):
    root = make_dataset(tmp_path, {"normal": 3, "crack": 2})
    z = make_zip(root, tmp_path / "upload.zip")
    ds, report = load_dataset(z, image_size=8, extract_dir=tmp_path / "x")
    assert report.root == str(tmp_path / "x")
    assert (tmp_path / "x" / "crack" / "crack_0.png").is_file()
    # Loading again into the same (now non-empty) folder extracts into a fresh folder inside it.
    ds2, report2 = load_dataset(z, image_size=8, extract_dir=tmp_path / "x")
    assert Path(report2.root).parent == tmp_path / "x" and ds2.sources == ds.sources


def test_zip_with_one_class_says_so(tmp_path, make_dataset, make_zip):
    root = make_dataset(tmp_path, {"normal": 3})
    z = make_zip(root, tmp_path / "one.zip", prefix="dataset/")
    with pytest.raises(DataError, match=r"found only one class 'normal'; DefectAug needs at least two"):
        load_dataset(z)


def test_zip_without_zip_suffix_is_recognised(tmp_path, make_dataset, make_zip):
    root = make_dataset(tmp_path, {"a": 2, "b": 2})
    z = make_zip(root, tmp_path / "upload.bin")
    assert zipfile.is_zipfile(z)
    assert len(load_dataset(z, image_size=8)[0]) == 4


# ---------------------------------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------------------------------
def test_split_int_per_class_and_disjoint():
    ds = toy({"a": 50, "b": 30, "c": 9, "d": 1})
    train, test = split(ds, test_per_class=10, seed=0)
    assert test.counts() == {"a": 10, "b": 10, "c": 4, "d": 0}
    assert train.counts() == {"a": 40, "b": 20, "c": 5, "d": 1}
    assert set(train.sources).isdisjoint(test.sources)
    assert sorted(train.sources + test.sources) == sorted(ds.sources)
    assert train.sources == [s for s in ds.sources if s in set(train.sources)]  # original order kept
    assert test.sources == [s for s in ds.sources if s in set(test.sources)]


def test_split_fraction():
    ds = toy({"a": 50, "b": 7, "c": 2})
    _, test = split(ds, test_per_class=0.3, seed=1)
    assert test.counts() == {"a": 15, "b": 2, "c": 1}
    _, test = split(ds, test_per_class=0.9, seed=1)
    assert test.counts() == {"a": 25, "b": 3, "c": 1}  # capped at n // 2


def test_split_is_fixed_by_seed():
    ds = toy({"a": 40, "b": 40})
    _, t1 = split(ds, 10, seed=3)
    _, t2 = split(ds, 10, seed=3)
    _, t3 = split(ds, 10, seed=4)
    assert t1.sources == t2.sources and t1.sources != t3.sources
    assert np.array_equal(t1.images, t2.images)


def test_split_of_one_class_does_not_depend_on_other_classes():
    _, t1 = split(toy({"a": 40, "b": 40}), 10, seed=0)
    _, t2 = split(toy({"a": 40, "b": 40, "c": 5}), 10, seed=0)
    assert [s for s in t1.sources if s.startswith("a/")] == [s for s in t2.sources if s.startswith("a/")]


@pytest.mark.parametrize("bad,msg", [
    (0, "test_per_class must be at least 1 image per class, got 0"),
    (-3, "test_per_class must be at least 1 image per class, got -3"),
    (1.0, "a fractional test_per_class must be between 0 and 1 (exclusive), got 1.0"),
    (2.5, "a fractional test_per_class must be between 0 and 1 (exclusive), got 2.5"),
    (0.0, "a fractional test_per_class must be between 0 and 1 (exclusive), got 0.0"),
    (True, "test_per_class must be a count (e.g. 20) or a fraction in (0, 1), got True"),
    ("20", "test_per_class must be a count (e.g. 20) or a fraction in (0, 1), got '20'"),
])
def test_split_bad_parameter(bad, msg):
    with pytest.raises(ParamError) as err:
        split(toy({"a": 4, "b": 4}), bad)
    assert str(err.value).startswith(msg)


# ---------------------------------------------------------------------------------------------------
# simulate_imbalance
# ---------------------------------------------------------------------------------------------------
def test_imbalance_cuts_minorities():
    ds = toy({"a": 50, "b": 30, "c": 3, "d": 1})
    out = simulate_imbalance(ds, 0.1, seed=0)
    assert out.counts() == {"a": 50, "b": 5, "c": 3, "d": 1}
    assert out.sources == [s for s in ds.sources if s in set(out.sources)]  # order stable
    assert out.classes == ds.classes


def test_imbalance_edge_ratios():
    ds = toy({"a": 100, "b": 40, "c": 1})
    assert simulate_imbalance(ds, 1.0).counts() == {"a": 100, "b": 40, "c": 1}
    assert simulate_imbalance(ds, 0.001).counts() == {"a": 100, "b": 1, "c": 1}  # at least one image
    assert simulate_imbalance(ds, 0.29).counts()["b"] == 29                    # not 28 from 28.999...
    assert simulate_imbalance(ds, 0.4).counts()["b"] == 40


def test_imbalance_named_normal_class_and_ties():
    ds = toy({"a": 20, "b": 20, "c": 10})
    assert simulate_imbalance(ds, 0.5).counts() == {"a": 20, "b": 10, "c": 10}   # no name says normal: largest, first on ties
    assert simulate_imbalance(ds, 0.5, normal_class="c").counts() == {"a": 5, "b": 5, "c": 10}


def test_imbalance_keeps_the_normal_class_whole_even_when_defects_outnumber_it():
    """A set with 166 defect and 161 normal images (seen on a real 3D-printing set): the normal class is
    kept and the defect class is cut, never the other way round."""
    ds = toy({"failure": 166, "normal": 161})
    assert simulate_imbalance(ds, 0.1).counts() == {"failure": 16, "normal": 161}
    assert detect_normal_class({"failure": 166, "normal": 161}) == "normal"


@pytest.mark.parametrize("counts, normal", [
    ({"MT_Blowhole": 115, "MT_Free": 952, "MT_Crack": 57}, "MT_Free"),
    ({"crack": 300, "good": 40}, "good"),
    ({"OK": 10, "NG": 50}, "OK"),
    ({"not_ok": 90, "ok": 10}, "ok"),
    ({"fail": 90, "success": 10}, "success"),
    ({"no_defect": 5, "scratch": 9}, "no_defect"),
    ({"defect-free": 5, "dent": 9}, "defect-free"),
    ({"pass": 3, "normal": 7, "dent": 9}, "normal"),        # two names say normal: the larger of them
    ({"dent": 5, "scratch": 9}, "scratch"),                 # none does: the largest class
])
def test_the_normal_class_is_detected_from_names_else_the_largest(counts, normal):
    assert detect_normal_class(counts) == normal


def test_imbalance_is_fixed_by_seed():
    ds = toy({"a": 30, "b": 30})
    s0 = simulate_imbalance(ds, 0.2, seed=0).sources
    assert s0 == simulate_imbalance(ds, 0.2, seed=0).sources
    assert s0 != simulate_imbalance(ds, 0.2, seed=1).sources


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, math.nan, math.inf, "0.1", True])
def test_imbalance_bad_ratio(bad):
    with pytest.raises(ParamError, match=r"ratio must be in \(0, 1\], e\.g\. 0\.1 .* got "):
        simulate_imbalance(toy({"a": 4, "b": 4}), bad)


def test_imbalance_unknown_normal_class():
    with pytest.raises(ParamError, match=r"unknown normal class 'z'; the classes are a, b"):
        simulate_imbalance(toy({"a": 4, "b": 4}), 0.5, normal_class="z")


@settings(max_examples=60, deadline=None)
@given(counts=st.dictionaries(st.sampled_from(["normal", "crack", "spot", "dent", "OK"]),
                              st.integers(0, 40), min_size=2),
       tpc=st.one_of(st.integers(1, 25), st.floats(0.05, 0.9)), ratio=st.one_of(st.none(), st.floats(0.01, 1.0)),
       target=st.floats(0.05, 1.0))
def test_protocol_counts_are_what_split_and_imbalance_do(counts, tpc, ratio, target):
    """The preview the Data and Synthesize pages show (and the memory check uses) is the run's protocol."""
    ds = toy(counts)
    preview = protocol_counts(counts, tpc, ratio, target_ratio=target)
    pool, test = split(ds, tpc, seed=3)
    train = simulate_imbalance(pool, ratio, seed=3, normal_class=preview.normal_class) if ratio else pool
    assert preview.test == test.counts() and preview.pool == pool.counts() and preview.train == train.counts()
    assert preview.needed == balance_targets(train.counts(), target)


# ---------------------------------------------------------------------------------------------------
# balance_targets
# ---------------------------------------------------------------------------------------------------
def test_balance_targets():
    assert balance_targets({"a": 100, "b": 10, "c": 0}) == {"a": 0, "b": 90, "c": 100}
    assert balance_targets({"a": 100, "b": 10, "c": 60}, 0.5) == {"a": 0, "b": 40, "c": 0}
    assert balance_targets({"a": 10, "b": 1}, 0.7) == {"a": 0, "b": 6}      # ceil(7.000000000000001) is 7
    assert balance_targets({"a": 9, "b": 1}, 0.5) == {"a": 0, "b": 4}       # ceil(4.5) = 5
    assert balance_targets({}) == {}


@pytest.mark.parametrize("bad", [0, 1.01, -1, math.nan])
def test_balance_targets_bad_ratio(bad):
    with pytest.raises(ParamError, match=r"target_ratio must be in \(0, 1\]"):
        balance_targets({"a": 3, "b": 1}, bad)


def test_balance_targets_bad_counts():
    with pytest.raises(ParamError, match=r"class counts must be whole numbers >= 0, got -1 for 'b'"):
        balance_targets({"a": 3, "b": -1})


# ---------------------------------------------------------------------------------------------------
# resolve_data_path
# ---------------------------------------------------------------------------------------------------
def test_resolve_data_path(tmp_path):
    roots = [tmp_path / "data", tmp_path / "more"]
    (tmp_path / "data" / "tiles").mkdir(parents=True)
    (tmp_path / "more" / "parts").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "data" / "sneaky")
    assert resolve_data_path(str(tmp_path / "data" / "tiles"), roots) == (tmp_path / "data" / "tiles").resolve()
    assert resolve_data_path("tiles", roots) == (tmp_path / "data" / "tiles").resolve()
    assert resolve_data_path("parts/", roots) == (tmp_path / "more" / "parts").resolve()
    assert resolve_data_path(str(tmp_path / "data" / "x" / ".." / "tiles"), roots).name == "tiles"
    for bad in [str(tmp_path / "secret"), str(tmp_path / "data" / ".." / "secret"), "../secret",
                str(tmp_path / "data" / "sneaky"), "/etc"]:
        with pytest.raises(DataError) as err:
            resolve_data_path(bad, roots)
        assert str(err.value) == f"{bad} is outside the allowed data folders: data, more"   # names, not paths


def test_resolve_data_path_missing_and_empty(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match=r"^nope does not exist in the allowed data folders: data$"):
        resolve_data_path("nope", [tmp_path / "data"])
    with pytest.raises(DataError, match=r"^give the path of a dataset folder inside the allowed data folders"):
        resolve_data_path("  ", [tmp_path / "data"])
    with pytest.raises(DataError, match=r"^no data folders are configured"):
        resolve_data_path("x", [])


# ---------------------------------------------------------------------------------------------------
# the real dataset
# ---------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_magnetic_tile_loads():
    if not MAGNETIC_TILE.is_dir():
        pytest.skip(f"real dataset not found at {MAGNETIC_TILE}")
    ds, report = load_dataset(MAGNETIC_TILE, image_size=32)
    assert ds.counts() == {"MT_Blowhole": 115, "MT_Break": 85, "MT_Crack": 57, "MT_Fray": 32, "MT_Free": 952,
                           "MT_Uneven": 103}
    assert ds.images.shape == (1344, 32, 32, 1) and report.channels == 1
    assert report.skipped == []
    assert all(s.startswith(f"{ds.classes[lab]}/") for s, lab in zip(ds.sources, ds.labels))
    train, test = split(ds, 20, seed=0)
    assert test.counts()["MT_Fray"] == 16 and test.counts()["MT_Free"] == 20


# ---------------------------------------------------------------------------------------------
# DatasetFiles: the original files by their source path (what the export copies)
# ---------------------------------------------------------------------------------------------
def test_dataset_files_reads_the_original_bytes_of_a_folder_and_of_a_zip(tmp_path, make_dataset, make_zip):
    from core.data import DatasetFiles, load_dataset
    root = make_dataset(tmp_path, {"normal": 3, "crack": 2}, size=16)
    (root / "crack" / "deep").mkdir()
    (root / "crack" / "deep" / "c.png").write_bytes((root / "crack" / "crack_0.png").read_bytes())
    (root / "crack" / "notes.txt").write_text("no image")
    (root / "crack" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    ds, report = load_dataset(root, image_size=16)
    assert "crack/deep/c.png" in ds.sources
    assert sorted(s.path for s in report.skipped) == ["crack/broken.png", "crack/notes.txt"]
    zp = make_zip(root, tmp_path / "d.zip", prefix="dataset/")
    for path in (root, zp):
        with DatasetFiles(path) as files:
            assert files.sources() == sorted([*ds.sources, "crack/broken.png"])    # what the loader tries
            for s in ds.sources:
                with files.open(s) as fh:
                    assert fh.read() == (root / s).read_bytes()
                assert files.size(s) == (root / s).stat().st_size
            assert (files.path("normal/normal_0.png") is None) == (path == zp)
            for bad in ("../outside.png", "/etc/passwd", "normal", "normal/../crack/crack_0.png", "normal/nope.png"):
                with pytest.raises(FileNotFoundError):
                    files.open(bad)


def test_dataset_files_refuses_a_link_leading_out_of_the_dataset(tmp_path, make_dataset):
    from core.data import DatasetFiles
    root = make_dataset(tmp_path, {"normal": 2, "crack": 2}, size=16)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    (root / "crack" / "link.png").symlink_to(secret)
    with DatasetFiles(root) as files, pytest.raises(FileNotFoundError):
        files.open("crack/link.png")
