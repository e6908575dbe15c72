"""The robustness suite: what real users upload, through the path the app takes.

    def test_something(user):
        z = user.zip({"set/normal/a.png": png(1), "../../evil.png": png(2)})   # a file on their desktop
        with user.unchanged_outside():            # nothing under tmp_path outside the workspace changes
            message = user.refused_zip(z)         # Workspace.import_zip, as the Data page calls it
        upload = user.prepare(tree, via="zip")    # or via="folder"; a zip is written to the desktop now
        with user.unchanged_outside():
            ds, report = user.load(upload())      # import, then core.data.load_dataset, as the Data page

Layout of tmp_path: `home/<workspace id>/` (DEFECTAUG_HOME), `desktop/` (the user's own files) and
`systemp/` (tempfile's folder during the test, so a temporary file left behind is seen too).
"""
from __future__ import annotations

import errno
import io
import tempfile
import zipfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

import core.data.archive
import core.uploads
import core.workspace
from core.data import Limits, load_dataset
from core.errors import DefectAugError
from core.workspace import FolderImport, Workspace


def png(seed: int = 0, size: int | tuple[int, int] = 16, mode: str = "L") -> bytes:
    """A seeded noise image as PNG bytes (every seed gives different pixels)."""
    w, h = (size, size) if isinstance(size, int) else size
    bands = {"L": 1, "RGB": 3}[mode]
    a = np.random.default_rng(seed).integers(0, 256, (h, w, bands), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a[..., 0] if bands == 1 else a, mode).save(buf, "PNG")
    return buf.getvalue()


class User:
    """One user with a fresh workspace, uploading files from their desktop."""

    def __init__(self, tmp_path: Path, outside_unchanged: Callable[..., AbstractContextManager[None]]):
        self.tmp = tmp_path
        self.ws = Workspace.create()
        self.desktop = tmp_path / "desktop"
        self.desktop.mkdir()
        self._outside_unchanged = outside_unchanged

    # -- building what the user has on their disk --------------------------------------------
    def zip(self, entries: dict[str | zipfile.ZipInfo, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]],
            name: str = "upload.zip", method: int = zipfile.ZIP_DEFLATED) -> Path:
        path = self.desktop / name
        with zipfile.ZipFile(path, "w", method) as zf:
            for entry, data in (entries.items() if isinstance(entries, dict) else entries):
                zf.writestr(entry, data)
        return path

    # -- uploading, as the Data page does --------------------------------------------------------
    def upload_zip(self, path: Path, limits: Limits | None = None) -> Path:
        with open(path, "rb") as fh:
            return self.ws.import_zip(fh, path.name, limits)

    def refused_zip(self, path: Path, limits: Limits | None = None) -> str:
        """The message the user sees for a zip that is refused; nothing may be kept."""
        with pytest.raises(DefectAugError) as err:
            self.upload_zip(path, limits)
        assert self.kept() == []
        return str(err.value)

    def upload_folder(self, files: dict[str, bytes], limits: Limits | None = None) -> FolderImport:
        return self.ws.import_folder(list(files.items()), limits)

    def prepare(self, tree: dict[str, bytes], via: str) -> Callable[[], Path]:
        """The upload of `tree` ({"set/normal/a.png": bytes}) as a zip (written to the desktop now) or as
        a picked folder: call it to upload; it returns the dataset root."""
        if via == "zip":
            z = self.zip(tree)
            return lambda: self.upload_zip(z)

        def upload_folder() -> Path:
            result = self.upload_folder(tree)
            assert result.refused == []
            return result.root
        return upload_folder

    def load(self, root: Path, **kw) -> tuple:
        return load_dataset(root, image_size=kw.pop("image_size", 16), **kw)

    # -- checks --------------------------------------------------------------------------------
    def unchanged_outside(self) -> AbstractContextManager[None]:
        """Nothing under tmp_path (home, desktop, temp folder) but this workspace may change."""
        return self._outside_unchanged(self.tmp, self.ws.root)

    def kept(self) -> list[str]:
        """Files the workspace holds from uploads (datasets and incoming copies)."""
        return sorted(p.relative_to(self.ws.root).as_posix()
                      for folder in (self.ws.uploads, self.ws.root / ".incoming") if folder.exists()
                      for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def user(tmp_path, monkeypatch, outside_unchanged) -> User:
    monkeypatch.setenv("DEFECTAUG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEFECTAUG_SHARED_WORKSPACE", raising=False)
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", "")
    monkeypatch.delenv("DEFECTAUG_MAX_JOB_MEMORY", raising=False)
    (tmp_path / "systemp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systemp"))
    return User(tmp_path, outside_unchanged)


class _FullDisk:
    """A file opened for writing on a full disk: every write fails with ENOSPC."""

    def __init__(self, fh):
        self._fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def full_disk(monkeypatch) -> Callable[[], None]:
    """`full_disk()`: from now on, files that core.workspace and core.data create cannot be written."""
    def fill() -> None:
        def full_open(path, mode="r", *args, **kw):
            fh = open(path, mode, *args, **kw)
            return _FullDisk(fh) if any(m in mode for m in "wxa") else fh
        for module in (core.workspace, core.uploads, core.data.archive):
            monkeypatch.setattr(module, "open", full_open, raising=False)
    return fill
