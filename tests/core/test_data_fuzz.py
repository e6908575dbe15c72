"""Property tests: whatever a user uploads, core.data ends in a dataset or a DefectAugError, never another
exception, and never writes outside the extraction folder.

DEFECTAUG_FUZZ_EXAMPLES=2000 runs a deeper search than the default 80 examples per property.
"""
from __future__ import annotations

import io
import os
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.data import load_dataset, safe_extract_zip
from core.errors import ArchiveError, DefectAugError
from core.imageset import ImageSet

FUZZ = settings(max_examples=int(os.environ.get("DEFECTAUG_FUZZ_EXAMPLES", "80")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEPTH = 6  # the extraction folder sits this deep in the temp folder, deeper than any '..' chain drawn below


def _image_bytes(fmt: str, value: int, size: int = 12, mode: str = "L") -> bytes:
    b = io.BytesIO()
    Image.new(mode, (size, size), value if mode == "L" else (value, 255 - value, 7)).save(b, fmt)
    return b.getvalue()


VALID = [_image_bytes("PNG", 10), _image_bytes("PNG", 200, mode="RGB"), _image_bytes("JPEG", 90),
         _image_bytes("BMP", 30), _image_bytes("TIFF", 60), _image_bytes("WEBP", 120, mode="RGB")]


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """`base` with a few bytes overwritten and maybe cut short: damaged but plausible files."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


contents = st.one_of(
    st.sampled_from(VALID),
    st.binary(max_size=300),
    st.sampled_from(VALID).flatmap(mutated),
)

# Mostly ordinary names, so that many archives get past the safety checks and reach the image loader.
segment = st.one_of(
    st.sampled_from(["normal", "crack", "sub", "défaut", "裂纹", "a b", "x.png", "y.JPG", "z.txt", "normal",
                     "crack", "sub", "..", ".", "", "__MACOSX", "._a.png", ".DS_Store", "Thumbs.db", "C:",
                     "x.zip", "a" * 120]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"), min_size=1, max_size=12),
)
image_name = st.tuples(st.text("abcdé裂 _-", min_size=1, max_size=8),
                       st.sampled_from([".png", ".jpg", ".JPEG", ".bmp", ".tif", ".webp", ".txt", ".zip", ""]))


@st.composite
def entry_name(draw) -> str:
    parts = draw(st.lists(segment, min_size=1, max_size=DEPTH - 2))
    if draw(st.booleans()):
        parts.append("".join(draw(image_name)))
    name = draw(st.sampled_from(["/", "\\"])).join(parts)
    prefix = draw(st.sampled_from([""] * 16 + ["/", "./", "../"]))
    suffix = draw(st.sampled_from(["", "", "", "/"]))  # a trailing '/' makes a directory entry
    return prefix + name + suffix


@st.composite
def archive(draw) -> list[tuple[zipfile.ZipInfo, bytes]]:
    """A zip's entries: mostly a plausible dataset, plus random names, links and contents."""
    entries = []
    top = draw(st.sampled_from(["", "", "dataset/", "my data/"]))
    for cls in draw(st.lists(st.sampled_from(["normal", "crack", "défaut 裂纹"]), max_size=3, unique=True)):
        for i in range(draw(st.integers(1, 3))):
            entries.append((f"{top}{cls}/{i}.png", draw(st.one_of(st.sampled_from(VALID), contents))))
    for _ in range(draw(st.integers(0, 3))):
        entries.append((draw(entry_name()), draw(contents)))
    out = [(zipfile.ZipInfo(name), data) for name, data in entries]
    if out and draw(st.integers(0, 9)) == 0:  # now and then, one entry is a link or a pipe
        info = draw(st.sampled_from(out))[0]
        info.create_system = 3
        info.external_attr = (draw(st.sampled_from([stat.S_IFLNK, stat.S_IFIFO])) | 0o777) << 16
    return out


def _write_zip(path: Path, entries, method: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(path, "w", method) as zf:
            for info, data in entries:
                info.compress_type = method
                zf.writestr(info, data)


def _all_paths(base: Path) -> set[Path]:
    return set(base.rglob("*"))


def _check_result(result) -> None:
    ds, report = result
    assert isinstance(ds, ImageSet) and len(ds.classes) >= 2
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:3] == (8, 8)
    assert sum(report.counts.values()) == len(ds)
    assert all(s.split("/", 1)[0] == ds.classes[lab] for s, lab in zip(ds.sources, ds.labels))


def _load_in_box(zip_bytes: bytes | None = None, entries=None, method: int = zipfile.ZIP_DEFLATED) -> None:
    """Load an archive in a fresh temp folder; check the outcome and that nothing escaped."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        base = Path(tmp)
        z = base / "upload.zip"
        if entries is not None:
            _write_zip(z, entries, method)
        else:
            z.write_bytes(zip_bytes)
        dest = base.joinpath(*[f"d{i}" for i in range(DEPTH)])
        before = _all_paths(base)
        try:
            result = load_dataset(z, image_size=8, extract_dir=dest)
        except ArchiveError as err:
            event(f"ArchiveError: {str(err).split(':')[0][:40]}")
            assert not dest.exists() or not any(p.is_file() for p in dest.rglob("*")), "aborted extraction left files"
        except DefectAugError as err:
            event(f"{type(err).__name__}: {str(err)[:30]}")
        else:
            event("loaded")
            _check_result(result)
        escaped = [p for p in _all_paths(base) - before if dest not in p.parents and p not in dest.parents
                   and p != dest]
        assert escaped == [], f"written outside the extraction folder: {escaped}"


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_as_zip(data):
    _load_in_box(zip_bytes=data)


@FUZZ
@given(st.binary(max_size=600).map(lambda b: b"PK\x03\x04" + b))
def test_random_bytes_with_a_zip_signature(data):
    _load_in_box(zip_bytes=data)


@FUZZ
@given(archive(), st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
def test_random_archive_trees(entries, method):
    _load_in_box(entries=entries, method=method)


@FUZZ
@given(archive().filter(bool), st.data())
def test_damaged_archives(entries, data):
    with tempfile.TemporaryDirectory() as tmp:
        z = Path(tmp) / "z.zip"
        _write_zip(z, entries, zipfile.ZIP_DEFLATED)
        damaged = data.draw(mutated(z.read_bytes()))
    _load_in_box(zip_bytes=damaged)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["normal", "crack"]), image_name, contents), max_size=8))
def test_random_files_in_class_folders(files):
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        root = Path(tmp) / "data"
        for cls in ("normal", "crack"):
            (root / cls).mkdir(parents=True)
        for i, (cls, (stem, ext), data) in enumerate(files):
            (root / cls / f"{i}_{stem}{ext}").write_bytes(data)
        try:
            result = load_dataset(root, image_size=8)
        except DefectAugError:
            return
        _check_result(result)
        assert len(result[0]) + sum(1 for s in result[1].skipped) == len(files)


@FUZZ
@given(st.lists(st.tuples(entry_name(), contents), max_size=6))
def test_safe_extract_zip_directly(named):
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        base = Path(tmp)
        z = base / "x.zip"
        _write_zip(z, [(zipfile.ZipInfo(n), d) for n, d in named], zipfile.ZIP_DEFLATED)
        dest = base.joinpath(*[f"d{i}" for i in range(DEPTH)])
        before = _all_paths(base)
        try:
            root = safe_extract_zip(z, dest)
        except ArchiveError:
            pass
        else:
            assert root == dest or root.parent == dest
            assert all(p.resolve().is_relative_to(dest.resolve()) for p in dest.rglob("*"))
        assert all(dest in p.parents or p == dest or p in dest.parents for p in _all_paths(base) - before)
