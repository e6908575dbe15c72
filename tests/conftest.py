"""Shared test fixtures: tiny generated datasets written to disk, and the real magnetic-tile dataset.

    def test_something(tmp_path, make_dataset):
        root = make_dataset(tmp_path, {"normal": 12, "crack": 3}, size=16, mode="L")
        ds, report = load_dataset(root, image_size=16)

Generated images are seeded noise, so every image differs from every other (no accidental duplicates)
and the same call always writes the same bytes.

    def test_upload(tmp_path, outside_unchanged):
        with outside_unchanged(tmp_path, ws.root):    # fails if anything under tmp_path but outside
            ws.import_zip(data, "x.zip")              # ws.root was created, removed or modified
"""
from __future__ import annotations

import os
import zipfile
import zlib
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pytest
from PIL import Image

# The real dataset lives next to the repository, in the shared folder (never copied into the repo).
MAGNETIC_TILE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "magnetic_tile"
REPO = Path(__file__).resolve().parents[1]

# The test-only "sleep" job kind (tests/support/sleep_job.py) is a plugin: this process and every worker and
# job process the tests start import it (they run with the repository on their Python path).
SLEEP_PLUGIN = "tests.support.sleep_job"
_plugins = [m for m in os.environ.get("DEFECTAUG_PLUGINS", "").split(",") if m.strip()]
os.environ["DEFECTAUG_PLUGINS"] = ",".join(_plugins + [SLEEP_PLUGIN] * (SLEEP_PLUGIN not in _plugins))
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] * (str(REPO) not in _paths) + _paths)
import tests.support.sleep_job  # noqa: E402,F401  (registers the kind in this process)

# The finished run most result tests read (built once per session by `finished_run`).
FINISHED_RUN = dict(methods=["smote", "mixup"], seeds=[0, 1], ratio=0.2, image_size=16, test_per_class=4,
                    overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu", num_threads=1)
FINISHED_CLASSES = {"normal": 30, "crack": 12, "spöt ü": 9}


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


def _snapshot(roots: list[Path], inside: list[Path]) -> dict[Path, tuple[str, int, int]]:
    """(kind, size, mtime_ns) of every path under `roots`, not following links, skipping `inside`."""
    seen: dict[Path, tuple[str, int, int]] = {}

    def record(p: Path) -> None:
        st = p.lstat()
        kind = "link" if p.is_symlink() else "dir" if p.is_dir() else "file"
        seen[p] = (kind, st.st_size if kind != "dir" else 0, st.st_mtime_ns)

    for root in roots:
        if not root.exists():
            continue
        record(root)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            d = Path(dirpath)
            dirnames[:] = [n for n in dirnames if d / n not in inside]
            for n in dirnames + filenames:
                if d / n not in inside:
                    record(d / n)
    return seen


@contextmanager
def nothing_changes_outside(roots: str | Path | Iterable[str | Path],
                            inside: str | Path | Iterable[str | Path]) -> Iterator[None]:
    """Fail if the block creates, removes or modifies (size or mtime) any path under `roots` that is not
    in one of the `inside` folders (each workspace the block may write to). A folder's mtime changes
    when an entry is added to or removed from it, so a stray file beside the workspace is caught too."""
    def paths(x) -> list[Path]:
        return [Path(p).resolve() for p in ([x] if isinstance(x, (str, Path)) else x)]

    roots_, inside_ = paths(roots), paths(inside)
    before = _snapshot(roots_, inside_)
    yield
    after = _snapshot(roots_, inside_)
    created = sorted(str(p) for p in after.keys() - before.keys())
    removed = sorted(str(p) for p in before.keys() - after.keys())
    modified = sorted(str(p) for p in before.keys() & after.keys() if before[p] != after[p])
    assert not (created or removed or modified), (
        f"changed outside {[str(p) for p in inside_]}: created {created}, removed {removed}, modified {modified}")


@pytest.fixture
def outside_unchanged() -> Callable[..., AbstractContextManager[None]]:
    """`with outside_unchanged(tmp_path, ws.root): ...` fails the test if the block changed anything under
    tmp_path outside the workspace folder (see `nothing_changes_outside`)."""
    return nothing_changes_outside


@pytest.fixture
def make_dataset() -> Callable[..., Path]:
    """`make_dataset(tmp_path, {"normal": 12, "crack": 3}, size=16, mode="L", ext="png")` -> dataset root."""
    return write_dataset


@pytest.fixture
def make_zip() -> Callable[..., Path]:
    """`make_zip(folder, zip_path, prefix="")` -> the zip path."""
    return zip_folder


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One real finished run for the tests that read results (runs, report, export, CLI, the app's pages):
    noise images of three classes (one with a non-ASCII name), smote and mixup, two seeds, one epoch.
    Read it, never change it: a test that damages a run works on a copy."""
    from core.experiment import run
    tmp = tmp_path_factory.mktemp("finished")
    data = write_dataset(tmp, FINISHED_CLASSES, size=16)
    run(dict(FINISHED_RUN, data=str(data)), tmp / "run")
    return tmp / "run"


@pytest.fixture
def toy_plugins(tmp_path, monkeypatch) -> dict:
    """Methods from outside the project (tests/support/toy_plugins.py) in a folder of their own, named in
    DEFECTAUG_PLUGINS for this process and any it starts; returns the environment for a subprocess. The
    registry forgets them afterwards."""
    import sys
    from core import plugins
    from core.methods import registry
    from tests.support import toy_plugins as toy
    folder = tmp_path / "plugins"
    modules = toy.write(folder)
    names = ",".join([os.environ.get("DEFECTAUG_PLUGINS", ""), *modules]).strip(",")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("DEFECTAUG_PLUGINS", names)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), os.environ["PYTHONPATH"]]))
    yield env
    for name in [n for n in registry._REGISTRY if n.startswith("toy_")]:
        del registry._REGISTRY[name]
    for module in modules:
        plugins._IMPORTED.pop(module, None)
        sys.modules.pop(module, None)


@pytest.fixture
def magnetic_tile() -> Path:
    """The real magnetic-tile dataset (6 classes, 1344 grayscale JPEGs); skips when it is not there."""
    if not MAGNETIC_TILE.is_dir():
        pytest.skip(f"real dataset not found at {MAGNETIC_TILE}")
    return MAGNETIC_TILE
