"""Resource bombs that pass the byte and entry limits: a small zip that implies tens of thousands of folders
or nests them a thousand deep, and small images that decode to hundreds of megabytes. Each goes the user's
way in (Workspace.import_zip / import_folder, load_dataset as the Data page calls it, `python -m core
inspect`); the test states the bound it measured (disk bytes and folders written, peak RSS of a fresh
process) and that nothing outside the workspace changed, and that an earlier upload is still there.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import Limits, load_dataset
from core.errors import ArchiveError, DataError
from tests.conftest import REPO
from tests.robustness.conftest import png

GOOD = {**{f"set/normal/n{i}.png": png(i) for i in range(3)}, **{f"set/crack/c{i}.png": png(10 + i) for i in range(2)}}
DEPTH = Limits().max_depth


def folder_bomb() -> list[tuple[str, bytes]]:
    """The issue's 496 KB zip: 100 entries normal/x<i>/ + 900 nested d/ + f.png, beside real classes."""
    deep = "d/" * 900
    return [*GOOD.items(), *[(f"set/normal/x{i}/{deep}f.png", png(i)) for i in range(100)]]


def written(user) -> tuple[int, int]:
    """(folders, bytes) under the workspace's uploads (and its incoming copies)."""
    folders = size = 0
    for top in (user.ws.uploads, user.ws.root / ".incoming"):
        for dirpath, dirnames, filenames in os.walk(top):
            folders += len(dirnames)
            size += sum(os.lstat(os.path.join(dirpath, f)).st_size for f in filenames)
    return folders, size


# ---------------------------------------------------------------------------------------------------
# 1 + 7. Folders: the implied ones and their depth
# ---------------------------------------------------------------------------------------------------
def test_folder_bomb_zip_is_refused_before_a_folder_is_made(user):
    earlier = user.upload_zip(user.zip(GOOD, "earlier.zip"))
    before = written(user)
    bomb = user.zip(folder_bomb(), "bomb.zip")
    assert bomb.stat().st_size < 600_000
    with user.unchanged_outside():
        with pytest.raises(ArchiveError) as err:
            user.upload_zip(bomb)
    assert str(err.value) == (
        "bomb.zip is refused: 'set/normal/x0/d/d/d/d/d/d/d/d/d/d/d/d/d/.../d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/f.png' "
        f"is nested 903 folders deep, more than the limit of {DEPTH}; a dataset needs one folder "
        "per class (a few levels at most). Nothing was extracted.")
    assert written(user) == before                      # not one folder or byte more than the earlier upload
    assert load_dataset(earlier, image_size=16)[0].counts() == {"crack": 2, "normal": 3}


def test_many_implied_folders_under_the_depth_limit_are_refused(user):
    # 400 entries, each 30 folders deep on its own branch: 12,000 folders from a 100 KB zip
    entries = [*GOOD.items(), *[(f"set/normal/b{i}/" + "/".join(f"l{j}" for j in range(28)) + "/f.png", b"x")
                                for i in range(400)]]
    z = user.zip(entries)
    with user.unchanged_outside():
        message = user.refused_zip(z)
    assert message == ("upload.zip is refused: its paths make more than 10000 folders (the limit); a dataset needs "
                       "one folder per class. Zip the dataset folder itself and upload again. Nothing was extracted.")
    assert written(user) == (0, 0)


def test_folder_entries_alone_count_as_folders(user):
    """Entries that are only folders ('a/', 'a/b/'...) write no byte but make folders: they count too."""
    z = user.zip([*GOOD.items(), *[(f"set/normal/e{i}/", b"") for i in range(60)]])
    message = user.refused_zip(z, Limits(max_folders=50))
    assert message.startswith("upload.zip is refused: its paths make more than 50 folders (the limit)")


@pytest.mark.parametrize("depth", [DEPTH + 1, 1200])
def test_deep_folder_upload_is_refused_and_keeps_nothing(user, depth):
    """A picked folder nested past the limit (1200: deeper than Python's recursion limit, which once
    crashed the import half-way and left a partial dataset under My datasets)."""
    earlier = user.upload_folder(GOOD).root
    files = {**GOOD, "set/normal/" + "d/" * (depth - 2) + "f.png": png(5)}   # `depth` folders above f.png
    with user.unchanged_outside():
        with pytest.raises(DataError) as err:
            user.upload_folder(files)
    assert str(err.value).startswith("the uploaded folder is refused: 'set/normal/d/d/")
    assert f"is nested {depth} folders deep, more than the limit of {DEPTH}" in str(err.value)
    assert str(err.value).endswith("Nothing was kept.")
    assert user.ws.datasets() == [earlier]
    assert len(str(err.value)) < 400


def test_folder_upload_with_too_many_folders_is_refused(user):
    files = {**GOOD, **{f"set/normal/f{i}/a.png": b"x" for i in range(60)}}
    with user.unchanged_outside():
        with pytest.raises(DataError, match=r"^the uploaded folder is refused: its paths make more than 50 folders"):
            user.upload_folder(files, Limits(max_folders=50))
    assert user.kept() == []


def test_a_deep_server_folder_loads_its_shallow_images_and_says_what_it_skipped(tmp_path):
    """A data root the administrator filled can hold a tree deeper than any upload may: the loader does not
    enter it past the limit (Python 3.11's os.walk recursed once per level) and says so."""
    root = tmp_path / "set"
    for cls, n in (("normal", 3), ("crack", 2)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            (root / cls / f"{i}.png").write_bytes(png(i + 10 * len(cls)))
    fd = os.open(root / "normal", os.O_RDONLY)
    try:   # 1100 levels, made relative to an open folder (pathlib's mkdir(parents=True) would recurse)
        for _ in range(1100):
            os.mkdir("d", dir_fd=fd)
            fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
        with open(os.open("f.png", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as fh:
            fh.write(png(99))
    finally:
        os.close(fd)
    try:
        _check_deep_server_folder(root)
    finally:   # removed level by level: shutil.rmtree (and pytest's clean-up of tmp_path) recurse once per level
        remove_deep(root / "normal" / "d")


def remove_deep(top: Path) -> None:
    """Remove a chain of single folders of any depth (what the test made), two open folders at a time."""
    fd, depth = os.open(top, os.O_RDONLY), 0
    while True:
        entries = list(os.scandir(fd))
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                os.unlink(e.name, dir_fd=fd)
        sub = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        if sub:
            fd, old = os.open(sub[0], os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
            depth += 1
            continue
        if depth == 0:
            os.close(fd)
            os.rmdir(top)
            return
        fd, old = os.open("..", os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
        for e in os.scandir(fd):
            if e.is_dir(follow_symlinks=False):
                os.rmdir(e.name, dir_fd=fd)        # each level holds the one emptied folder
        depth -= 1


def _check_deep_server_folder(root: Path) -> None:
    ds, report = load_dataset(root, image_size=16)
    assert ds.counts() == {"crack": 2, "normal": 3}
    (skip,) = report.skipped
    assert skip.reason == f"nested more than {DEPTH} folders deep (not read)"
    assert len(skip.path) <= 83


def test_inspect_refuses_the_folder_bomb(tmp_path):
    """`python -m core inspect` on the bomb prints the refusal (the issue asks for it in under 2 s; the
    refusal comes from the zip's directory alone, before a byte is extracted)."""
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in folder_bomb():
            zf.writestr(name, data)
    out = subprocess.run([sys.executable, "-m", "core", "inspect", str(z)], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert "bomb.zip is refused: 'set/normal/x0/d/d/" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert list(tmp_path.iterdir()) == [z]


# ---------------------------------------------------------------------------------------------------
# 2. Memory: small files that decode big
# ---------------------------------------------------------------------------------------------------
def constant_png(w: int, h: int, color_type: int, bit_depth: int, pixel: bytes) -> bytes:
    """A PNG of one colour, compressed row by row: a few hundred KB however large, without ever holding the
    raw image (colour type 6: RGBA, 0: grey; `pixel`: one pixel's bytes, big-endian for 16 bits)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    comp, parts, row = zlib.compressobj(9), [], b"\x00" + pixel * w
    for _ in range(h):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


_PEAK = """
import json, sys
from core.data import load_dataset
def peak():   # this process's own high-water mark (ru_maxrss would carry the parent's over fork and exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
ds, report = load_dataset(sys.argv[1], image_size=64)
print(json.dumps({"peak": peak(),
                  "counts": ds.counts(), "skipped": [s.reason for s in report.skipped],
                  "pixel": ds.of_class("crack").images[0, 32, 32].tolist()}))
"""

BOMBS = {   # name: (w, h, colour type, bit depth, one pixel, the decoded pixel it must load as)
    "rgba 62 Mpx": (7900, 7900, 6, 8, bytes([10, 20, 30, 128]), None),
    "16-bit grey 62 Mpx": (7900, 7900, 0, 16, struct.pack(">H", 51400), None),
}
PEAK_BOUND = 900 * 1024 ** 2     # a fresh interpreter with numpy and Pillow is ~60 MB; the raw RGBA image 250 MB


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BOMBS))
def test_small_files_that_decode_big_load_in_bounded_memory(user, case):
    """The issue measured 3.4 GB (RGBA) and 1.7 GB (16-bit) peak RSS for these 237 KB / 118 KB files; the
    same image at 100x100 px gives the pixel value they must load as."""
    w, h, ctype, depth, pixel, _ = BOMBS[case]
    big = constant_png(w, h, ctype, depth, pixel)
    assert len(big) < 400_000
    tree = {"set/normal/n0.png": png(1, 64, "RGB"), "set/normal/n1.png": png(2, 64, "RGB"),
            "set/crack/big.png": big}
    root = user.upload_folder(tree).root
    small = user.upload_folder({**tree, "set/crack/big.png": constant_png(100, 100, ctype, depth, pixel)}).root
    with user.unchanged_outside():
        out = subprocess.run([sys.executable, "-c", _PEAK, str(root)], cwd=REPO, capture_output=True, text=True,
                             timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    ds, _ = load_dataset(small, image_size=64)
    assert got["counts"] == {"crack": 1, "normal": 2} and got["skipped"] == []
    assert got["pixel"] == ds.of_class("crack").images[0, 32, 32].tolist()
    assert got["peak"] < PEAK_BOUND, f"peak RSS {got['peak'] / 2 ** 20:.0f} MiB"


def test_a_decode_over_the_byte_bound_is_skipped_with_its_reason(user):
    big = constant_png(3000, 3000, 6, 8, bytes([1, 2, 3, 255]))
    root = user.upload_folder({**GOOD, "set/crack/big.png": big}).root
    with user.unchanged_outside():
        ds, report = load_dataset(root, image_size=16, limits=Limits(max_decode_bytes=16 * 1024 ** 2))
    assert ds.counts() == {"crack": 2, "normal": 3}
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("crack/big.png", "too large to decode: 3000x3000 px in mode RGBA needs 34.3 MiB of memory, more than the "
                          "limit of 16.0 MiB; downscale the image and upload it again")]


@pytest.mark.parametrize("mode", ["RGBA", "LA", "I;16", "P", "1", "RGB", "F"])
def test_large_images_reduced_first_match_a_full_resolution_resize(tmp_path, mode):
    """Reducing by a whole factor before the float work changes what a user sees by at most a level or two
    against resizing the full-resolution image (smooth gradients, every mode the reduce path converts)."""
    yy, xx = np.mgrid[0:640, 0:480]
    base = ((xx + yy) * 255 // (640 + 480)).astype(np.uint8)
    if mode == "I;16":
        img = Image.fromarray(base.astype(np.uint16) * 257)
    elif mode == "F":
        img = Image.fromarray(base.astype(np.float32) / 255.0)
    elif mode == "1":
        img = Image.fromarray(np.where(xx < 240, 255, 0).astype(np.uint8)).convert("1")
    elif mode == "P":
        img = Image.fromarray(np.stack([base, 255 - base, base // 2], -1)).quantize(64)
    else:
        bands = {"RGBA": [base, 255 - base, base, np.full_like(base, 200)], "LA": [base, np.full_like(base, 90)],
                 "RGB": [base, 255 - base, base // 3]}[mode]
        img = Image.fromarray(np.stack(bands, -1), mode)
    for cls in ("normal", "crack"):
        (tmp_path / "set" / cls).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "set" / "crack" / ("big.tif" if mode in ("I;16", "F") else "big.png")
    img.save(path)
    Image.fromarray(base).save(tmp_path / "set" / "normal" / "n.png")
    ds, _ = load_dataset(tmp_path / "set", image_size=32)
    from core.data import images
    full = images._normalise(img, {"rotated": 0, "high_depth": 0, "alpha": 0})[0]
    want = np.asarray(full.resize((32, 32), Image.Resampling.LANCZOS).convert("RGB"))
    got = ds.of_class("crack").images[0]
    got = np.repeat(got, 3, -1) if got.shape[-1] == 1 else got
    assert np.abs(got.astype(int) - want.astype(int)).max() <= (40 if mode == "1" else 3)


_APART = """
import json, sys
from core.data import load_dataset_apart
def peak():   # this process's own high-water mark (ru_maxrss would carry the parent's over fork and exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
ds, report = load_dataset_apart(sys.argv[1], image_size=64, memory=int(sys.argv[2]))
print(json.dumps({"peak": peak(), "counts": ds.counts(),
                  "skipped": [[s.path, s.reason] for s in report.skipped]}))
"""


@pytest.mark.slow
def test_the_app_previews_a_dataset_in_a_reader_process_of_bounded_memory(user):
    """What the Data page calls (ui.common.load_dataset -> core.data.load_dataset_apart): the app's process
    only receives the 64 px result, the 62 Mpx decode happens in the reader; with less memory than the
    decode needs, the reader skips the image with the reason, and the rest loads."""
    from core.data import REASON_NO_MEMORY
    w, h, ctype, depth, pixel, _ = BOMBS["rgba 62 Mpx"]
    tree = {"set/normal/n0.png": png(1, 64, "RGB"), "set/normal/n1.png": png(2, 64, "RGB"),
            "set/crack/c0.png": png(3, 64, "RGB"), "set/crack/big.png": constant_png(w, h, ctype, depth, pixel)}
    root = user.upload_folder(tree).root
    results = {}
    with user.unchanged_outside():
        for memory in (4 * 1024 ** 3, 300 * 1024 ** 2):
            out = subprocess.run([sys.executable, "-c", _APART, str(root), str(memory)], cwd=REPO, capture_output=True,
                                 text=True, timeout=300)
            assert out.returncode == 0, out.stderr[-2000:]
            results[memory] = json.loads(out.stdout)
    roomy, tight = results[4 * 1024 ** 3], results[300 * 1024 ** 2]
    assert roomy["counts"] == {"crack": 2, "normal": 2} and roomy["skipped"] == []
    assert roomy["peak"] < 200 * 1024 ** 2, f"the app's process peaked at {roomy['peak'] / 2 ** 20:.0f} MiB"
    assert tight["counts"] == {"crack": 1, "normal": 2}
    assert tight["skipped"] == [["crack/big.png", REASON_NO_MEMORY]]
