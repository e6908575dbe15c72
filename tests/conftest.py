"""Shared test fixtures: tiny generated datasets written to disk, and the real magnetic-tile dataset.

    def test_something(tmp_path, make_dataset):
        root = make_dataset(tmp_path, {"normal": 12, "crack": 3}, size=16, mode="L")
        ds, report = load_dataset(root, image_size=16)

Generated images are seeded noise, so every image differs from every other (no accidental duplicates)
and the same call always writes the same bytes.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

# The real dataset lives next to the repository, in the shared folder (never copied into the repo).
MAGNETIC_TILE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "magnetic_tile"


def pytest_configure(config: pytest.Config) -> None:
    for line in ("slow: takes more than a few seconds",
                 "integration: reads the real dataset under ../shared/datasets",
                 "gpu: needs a CUDA device",
                 "e2e: drives the app through a browser"):
        config.addinivalue_line("markers", line)


def make_image(size: int | tuple[int, int] = 16, mode: str = "L", seed: int = 0) -> Image.Image:
    """One seeded noise image. `size` is an int (square) or (width, height); modes L, RGB, RGBA, LA, I;16, 1."""
    w, h = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    bands = {"L": 1, "1": 1, "RGB": 3, "RGBA": 4, "LA": 2}
    if mode not in bands:
        raise ValueError(f"make_image: unsupported mode {mode!r}")
    a = rng.integers(0, 256, (h, w, bands[mode]), dtype=np.uint8)
    if mode == "1":
        return Image.fromarray(a[..., 0]).convert("1")
    return Image.fromarray(a[..., 0] if bands[mode] == 1 else a, mode)


def write_dataset(parent: str | Path, classes: dict[str, int], size: int | tuple[int, int] = 16,
                  mode: str = "L", ext: str = "png", name: str = "dataset", seed: int = 0) -> Path:
    """Write `parent/name/<class>/<class>_<i>.<ext>` with the given number of images per class; returns the root.

    Calling it again on the same root adds the classes given (handy to add a class of another mode).
    """
    root = Path(parent) / name
    for ci, (cls, n) in enumerate(classes.items()):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = make_image(size, mode, seed=zlib.crc32(f"{seed}/{cls}/{i}".encode()))
            if ext.lower() in ("jpg", "jpeg") and img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            img.save(folder / f"{cls}_{i}.{ext}")
    return root


def zip_folder(folder: str | Path, zip_path: str | Path, prefix: str = "") -> Path:
    """Zip every file under `folder` with names relative to it, each prefixed by `prefix` (e.g. "dataset/")."""
    folder, zip_path = Path(folder), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return zip_path


@pytest.fixture
def make_dataset() -> Callable[..., Path]:
    """`make_dataset(tmp_path, {"normal": 12, "crack": 3}, size=16, mode="L", ext="png")` -> dataset root."""
    return write_dataset


@pytest.fixture
def make_zip() -> Callable[..., Path]:
    """`make_zip(folder, zip_path, prefix="")` -> the zip path."""
    return zip_folder


@pytest.fixture
def magnetic_tile() -> Path:
    """The real magnetic-tile dataset (6 classes, 1344 grayscale JPEGs); skips when it is not there."""
    if not MAGNETIC_TILE.is_dir():
        pytest.skip(f"real dataset not found at {MAGNETIC_TILE}")
    return MAGNETIC_TILE
