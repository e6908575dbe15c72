"""Images as users have them: broken, odd formats, tiny, huge, strangely named, duplicated.

Each case is uploaded both ways the app offers (a zip, a picked folder) into a real workspace and loaded
as the Data page loads it. A file that cannot be used is skipped with the exact reason shown in the
"Problems found" table while the good images load; an odd format is normalised and the note says so;
nothing outside the workspace changes.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.data import REASON_EMPTY, REASON_EXTENSION, REASON_NOT_IMAGE, Limits
from core.workspace import REFUSED_TOO_LONG
from tests.robustness.conftest import png

GOOD = {**{f"set/normal/n{i}.png": png(i) for i in range(3)}, **{f"set/crack/c{i}.png": png(10 + i) for i in range(2)}}
GOOD_COUNTS = {"crack": 2, "normal": 3}
VIA = pytest.mark.parametrize("via", ["zip", "folder"])


def encode(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def noise(size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(size).integers(0, 256, (size, size), dtype=np.uint8))


def damage(data: bytes, start: int, stop: int) -> bytes:
    """`data` with the bytes from `start` to `stop` zeroed (a bad sector, a broken transfer)."""
    return data[:start] + bytes(stop - start) + data[stop:]


def upload_and_load(user, via: str, extra: dict[str, bytes], **load) -> tuple:
    upload = user.prepare({**GOOD, **extra}, via)
    with user.unchanged_outside():
        return user.load(upload(), **load)


# ---------------------------------------------------------------------------------------------------
# Files that cannot be used: skipped with their reason, the rest loads
# ---------------------------------------------------------------------------------------------------
UNUSABLE = {
    "zero-byte": (b"", "set/crack/zero.png", REASON_EMPTY),
    "text with .png": (b"hello, I am a text file", "set/crack/notes.png", REASON_NOT_IMAGE),
    "pdf with .jpg": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n", "set/crack/scan.jpg", REASON_NOT_IMAGE),
    "truncated png": (encode(noise(32))[:-200], "set/crack/cut.png", "truncated or corrupt image (OSError: image "
                                                                      "file is truncated)"),
    "truncated jpeg": (encode(noise(64), "JPEG")[:700], "set/crack/cut.jpg",
                       "truncated or corrupt image (OSError: image file is truncated (12 bytes not processed))"),
    "damaged png data": (damage(encode(noise(32)), 100, 140), "set/crack/bad.png",
                         "truncated or corrupt image (OSError: broken data stream when reading image file)"),
    "damaged png header": (damage(encode(noise(32)), 40, 70), "set/crack/head.png", REASON_NOT_IMAGE),
    "too small": (encode(Image.new("L", (7, 20))), "set/crack/thin.png", "too small: 7x20 px (at least 8 px on a "
                                                                          "side)"),
    "one pixel": (encode(Image.new("L", (1, 1))), "set/crack/dot.png", "too small: 1x1 px (at least 8 px on a side)"),
    "not an image extension": (b"defect list", "set/crack/readme.txt", REASON_EXTENSION),
}


@VIA
@pytest.mark.parametrize("case", list(UNUSABLE))
def test_unusable_file_is_skipped_with_its_reason(user, via, case):
    data, name, reason = UNUSABLE[case]
    ds, report = upload_and_load(user, via, {name: data})
    assert ds.counts() == GOOD_COUNTS
    assert [(s.path, s.reason) for s in report.skipped] == [(name.removeprefix("set/"), reason)]


@VIA
@pytest.mark.parametrize("side", [1200, 2000])
def test_decompression_bomb_is_skipped(user, via, side):
    # a few KiB on disk, 1.44 (over the limit: Pillow warns) or 4 (over twice it: Pillow raises) million pixels
    bomb = encode(Image.new("L", (side, side)))
    ds, report = upload_and_load(user, via, {"set/crack/bomb.png": bomb}, limits=Limits(max_image_pixels=1_000_000))
    assert ds.counts() == GOOD_COUNTS
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("crack/bomb.png", f"decompression bomb: {side}x{side} = {side * side} pixels is over the limit of 1000000; "
                           "downscale the image and upload it again")]
    assert Image.MAX_IMAGE_PIXELS != 1_000_000   # Pillow's global guard is restored


# ---------------------------------------------------------------------------------------------------
# Odd formats: normalised, and the report says what was done
# ---------------------------------------------------------------------------------------------------
def _16_bit() -> tuple[bytes, np.ndarray]:
    values = np.array([0, 257 * 10, 257 * 128, 65535], np.uint16)
    img = Image.fromarray(np.tile(values.repeat(4), (16, 1)))
    assert img.mode == "I;16"
    return encode(img), np.tile(np.array([0, 10, 128, 255], np.uint8).repeat(4), (16, 1))


def _palette() -> tuple[bytes, np.ndarray]:
    img = Image.new("RGB", (16, 16), (200, 30, 40)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert img.mode == "P"
    return encode(img), np.full((16, 16, 3), (200, 30, 40), np.uint8)


def _cmyk() -> tuple[bytes, np.ndarray]:
    return encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "TIFF"), np.full((16, 16, 3), (0, 255, 255), np.uint8)


def _alpha() -> tuple[bytes, np.ndarray]:
    a = np.zeros((16, 16, 4), np.uint8)   # black; left half fully transparent
    a[:, 8:, 3] = 255
    expected = np.zeros((16, 16, 3), np.uint8)
    expected[:, :8] = 255                 # transparent composited on white
    return encode(Image.fromarray(a, "RGBA")), expected


def _exif_rotated() -> tuple[bytes, np.ndarray]:
    a = np.zeros((16, 16), np.uint8)
    a[0, :] = 255       # top row white
    a[:, 0] = 128       # left column gray
    exif = Image.Exif()
    exif[0x0112] = 6    # "rotate 90 degrees clockwise to view"
    return encode(Image.fromarray(a), exif=exif), np.rot90(a, k=-1)


ODD = {
    "16-bit": ("set/crack/deep.png", _16_bit, 1, "1 high bit-depth images scaled to 8 bits"),
    "palette": ("set/crack/pal.png", _palette, 3, "channels auto: 3 (1 of 6 images are colour; 5 grayscale ones "
                                                  "repeated on 3 channels)"),
    "cmyk": ("set/crack/print.tif", _cmyk, 3, "channels auto: 3 (1 of 6 images are colour; 5 grayscale ones "
                                              "repeated on 3 channels)"),
    "alpha": ("set/crack/cutout.png", _alpha, 3, "1 images with transparency composited on white"),
    "exif-rotated": ("set/crack/phone.png", _exif_rotated, 1, "1 images rotated upright from their EXIF orientation"),
}


@VIA
@pytest.mark.parametrize("case", list(ODD))
def test_odd_formats_are_normalised(user, via, case):
    name, build, channels, note = ODD[case]
    data, expected = build()
    ds, report = upload_and_load(user, via, {name: data})
    assert ds.counts() == {"crack": 3, "normal": 3} and report.skipped == []
    assert ds.channels == channels and note in report.notes
    got = ds.images[ds.sources.index(name.removeprefix("set/"))]
    assert np.array_equal(got[..., 0] if channels == 1 else got, expected)


# ---------------------------------------------------------------------------------------------------
# Names and duplicates
# ---------------------------------------------------------------------------------------------------
LONG = "ü" * 20 + "a" * 176 + ".png"      # 200 characters, 220 bytes: fine on every file system
TOO_LONG = "é" * 130 + ".png"            # 134 characters but 264 bytes: over ext4's 255 bytes per name


@VIA
def test_non_ascii_and_long_file_names_load(user, via):
    extra = {f"set/crack/{LONG}": png(50), "set/crack/défaut 裂纹 №1.png": png(51), "set/normal/ファイル.PNG": png(52)}
    ds, report = upload_and_load(user, via, extra)
    assert ds.counts() == {"crack": 4, "normal": 4} and report.skipped == []
    assert {f"crack/{LONG}", "crack/défaut 裂纹 №1.png", "normal/ファイル.PNG"} <= set(ds.sources)


def test_name_over_255_bytes_in_a_zip_refuses_the_zip(user):
    z = user.zip({**GOOD, f"set/crack/{TOO_LONG}": png(50)})
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == (f"upload.zip: entry 'set/crack/{TOO_LONG}' has a name longer than the file system allows "
                       "(255 bytes per name); rename it and zip again.")


def test_name_over_255_bytes_in_a_folder_upload_is_ignored_and_said(user):
    with user.unchanged_outside():
        result = user.upload_folder({**GOOD, f"set/crack/{TOO_LONG}": png(50)})
        ds, _ = user.load(result.root)
    assert result.refused == [(f"set/crack/{TOO_LONG}", REFUSED_TOO_LONG)]
    assert result.warnings == [f"Ignored 1 file(s) with a name longer than the server's file system allows (255 "
                               f"bytes per name); rename them and upload again: set/crack/{TOO_LONG}"]
    assert ds.counts() == GOOD_COUNTS


@VIA
def test_the_same_image_in_two_classes_is_reported(user, via):
    same = GOOD["set/normal/n1.png"]
    as_bmp = encode(Image.open(io.BytesIO(same)), "BMP")   # same pixels, another format
    ds, report = upload_and_load(user, via, {"set/crack/copy.bmp": as_bmp, "set/normal/n1_again.png": same})
    assert ds.counts() == {"crack": 3, "normal": 4}       # loaded anyway: the user decides
    assert report.duplicates == [("crack/copy.bmp", "normal/n1.png")]
    assert "1 images are exact copies of another image in the same class" in report.notes
    assert "crack/copy.bmp == normal/n1.png" in report.summary()
