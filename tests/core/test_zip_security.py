"""core.data.safe_extract_zip against hostile and broken archives.

Every attack test checks the message and that nothing was written outside the extraction folder (the
folder sits three levels below tmp_path, so '../../..' entries would land inside tmp_path and be seen),
and that an aborted extraction leaves nothing behind.
"""
from __future__ import annotations

import io
import stat
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import REASON_NESTED, Limits, load_dataset, safe_extract_zip
from core.errors import ArchiveError, DataError


def png(value: int = 0, size: int = 16) -> bytes:
    b = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(b, "PNG")
    return b.getvalue()


def make_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]],
             method: int = zipfile.ZIP_DEFLATED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names, which one test wants
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    return path


def good_entries(prefix: str = "") -> list[tuple[str, bytes]]:
    return [(f"{prefix}normal/n{i}.png", png(i)) for i in range(3)] + \
           [(f"{prefix}crack/c{i}.png", png(100 + i)) for i in range(2)]


class Box:
    """tmp_path/zips holds the archives; extraction goes to tmp_path/a/b/dest."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.zips = tmp_path / "zips"
        self.zips.mkdir()
        self.dest = tmp_path / "a" / "b" / "dest"
        self.before: set[Path] = set()

    def zip(self, entries, name: str = "upload.zip", **kw) -> Path:
        return make_zip(self.zips / name, entries, **kw)

    def snapshot(self) -> None:
        self.before = set(self.tmp.rglob("*"))

    def written_outside(self) -> list[Path]:
        new = set(self.tmp.rglob("*")) - self.before
        return sorted(p for p in new if self.dest not in p.parents and p not in (self.dest, *self.dest.parents))

    def files_in_dest(self) -> list[Path]:
        return sorted(p for p in self.dest.rglob("*") if p.is_file()) if self.dest.exists() else []

    def refuse(self, zip_path: Path, match: str, limits: Limits | None = None) -> str:
        self.snapshot()
        with pytest.raises(ArchiveError, match=match) as err:
            safe_extract_zip(zip_path, self.dest, limits)
        assert self.written_outside() == []
        assert self.files_in_dest() == []
        return str(err.value)


@pytest.fixture
def box(tmp_path) -> Box:
    return Box(tmp_path)


# ---------------------------------------------------------------------------------------------------
# path escapes and links
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("evil", ["../evil.png", "../../../evil.png", "normal/../../../../evil.png",
                                  "..\\..\\..\\evil.png", "normal/..\\..\\..\\evil.png"])
def test_zip_slip_dotdot(box, evil):
    z = box.zip(good_entries() + [(evil, png(9))])
    msg = box.refuse(z, r"points outside the extraction folder")
    assert msg == (f"unsafe archive upload.zip: entry {evil!r} points outside the extraction folder ('..'); "
                   "nothing was extracted. Zip the dataset folder itself and upload again.")


@pytest.mark.parametrize("kind", ["posix", "drive", "drive-backslash"])
def test_zip_slip_absolute(box, kind):
    target = box.tmp / "absolute_evil.png"
    name = {"posix": str(target), "drive": "C:/evil.png", "drive-backslash": "C:\\evil.png"}[kind]
    z = box.zip(good_entries() + [(name, png(9))])
    msg = box.refuse(z, r"has an absolute path")
    assert msg.startswith(f"unsafe archive upload.zip: entry {name!r} has an absolute path; nothing was extracted.")
    assert not target.exists()


def test_symlink_entry(box):
    link = zipfile.ZipInfo("normal/link.png")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = box.zip(good_entries() + [(link, b"/etc/passwd")])
    msg = box.refuse(z, r"is a symbolic link")
    assert msg == ("unsafe archive upload.zip: entry 'normal/link.png' is a symbolic link; links are not extracted "
                   "for safety. Replace links with the real files and zip again.")


def test_special_file_entry(box):
    fifo = zipfile.ZipInfo("normal/pipe")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    z = box.zip(good_entries() + [(fifo, b"")])
    box.refuse(z, r"entry 'normal/pipe' is a special file \(device, pipe or socket\)")


# ---------------------------------------------------------------------------------------------------
# size limits and bombs
# ---------------------------------------------------------------------------------------------------
def test_bomb_by_ratio(box):
    z = box.zip(good_entries() + [("normal/bomb.png", bytes(4 * 1024 * 1024))])  # 4 MiB of zeros -> ~4 KiB
    msg = box.refuse(z, r"looks like a zip bomb")
    assert msg.startswith("upload.zip looks like a zip bomb: entry 'normal/bomb.png' expands ")
    assert msg.endswith(":1 (limit 200:1) to 4.0 MiB; nothing was extracted.")


def test_small_highly_compressible_entries_are_fine(box):
    # Under 1 MiB the ratio is not checked: a blank 512 KiB file is not a bomb.
    z = box.zip(good_entries() + [("normal/blank.bmp", bytes(512 * 1024))])
    root = safe_extract_zip(z, box.dest)
    assert (root / "normal" / "blank.bmp").stat().st_size == 512 * 1024


def test_total_size_over_limit(box):
    rng = np.random.default_rng(0)
    z = box.zip([(f"c{i}/x.png", rng.bytes(600)) for i in range(2)], method=zipfile.ZIP_STORED)
    msg = box.refuse(z, r"would expand to more than", Limits(max_total_bytes=1000))
    assert msg == ("upload.zip would expand to more than 1000 B (the limit); upload a smaller dataset, or resize "
                   "the images before zipping.")


def test_entry_count_over_limit(box):
    z = box.zip([(f"c{i % 2}/{i}.png", png(i)) for i in range(6)])
    msg = box.refuse(z, r"has 6 entries", Limits(max_entries=5))
    assert msg == ("upload.zip has 6 entries, more than the limit of 5; upload fewer files (or ask the "
                   "administrator to raise the limit)")


def test_archive_file_over_limit(box):
    z = box.zip(good_entries())
    msg = box.refuse(z, r"more than the limit of 100 B", Limits(max_archive_bytes=100))
    assert msg.startswith("upload.zip is ") and msg.endswith("more than the limit of 100 B; upload a smaller archive.")


def test_header_that_lies_about_size(box):
    # A 256 KiB entry whose headers (local and central) claim 100 bytes: the ratio and total checks pass
    # on the lie, so extraction must stop at 100 bytes and refuse the entry (its CRC cannot match).
    payload = np.random.default_rng(1).integers(0, 4, 256 * 1024, dtype=np.uint8).tobytes()
    z = box.zip(good_entries() + [("normal/liar.png", payload)])
    data = bytearray(z.read_bytes())
    local = data.rfind(b"PK\x03\x04")   # the last local header is the liar's
    central = data.rfind(b"PK\x01\x02")  # and so is the last central header
    data[local + 22: local + 26] = (100).to_bytes(4, "little")
    data[central + 24: central + 28] = (100).to_bytes(4, "little")
    z.write_bytes(bytes(data))
    assert zipfile.ZipFile(z).getinfo("normal/liar.png").file_size == 100
    msg = box.refuse(z, r"is corrupt: entry 'normal/liar.png' cannot be extracted")
    assert "Bad CRC-32" in msg and msg.endswith("re-create the zip and upload it again. Nothing was kept.")


def test_header_that_lies_cannot_exceed_the_total_limit(box):
    payload = bytes(range(256)) * 4096  # 1 MiB, compressible but under the ratio limit
    z = box.zip([("a/x.bin", payload), ("b/y.bin", b"tiny")])
    data = bytearray(z.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 24: central + 28] = (10).to_bytes(4, "little")
    z.write_bytes(bytes(data))
    # The lie fits a 1 KiB budget; what is read back is capped at the declared 10 bytes and refused.
    box.refuse(z, r"is corrupt: entry 'a/x.bin' cannot be extracted", Limits(max_total_bytes=1024))


# ---------------------------------------------------------------------------------------------------
# broken archives
# ---------------------------------------------------------------------------------------------------
def test_corrupt_entry_data(box):
    entries = good_entries() + [("normal/last.png", png(7, size=64))]
    z = box.zip(entries, method=zipfile.ZIP_STORED)
    data = bytearray(z.read_bytes())
    info = zipfile.ZipFile(z).getinfo("normal/last.png")
    start = info.header_offset + 30 + len(info.filename)
    data[start + 40: start + 60] = b"\xff" * 20
    z.write_bytes(bytes(data))
    msg = box.refuse(z, r"is corrupt: entry 'normal/last.png' cannot be extracted \(Bad CRC-32")
    assert msg.endswith("Nothing was kept.")  # the four good entries written before it were removed


def test_corrupt_deflate_stream(box):
    z = box.zip(good_entries() + [("normal/last.png", png(7, size=64) * 20)])
    data = bytearray(z.read_bytes())
    info = zipfile.ZipFile(z).getinfo("normal/last.png")
    start = info.header_offset + 30 + len(info.filename)
    data[start + 5: start + 25] = bytes(range(20))
    z.write_bytes(bytes(data))
    box.refuse(z, r"is corrupt: entry 'normal/last.png' cannot be extracted")


def test_corrupt_central_directory(box):
    z = box.zip(good_entries())
    data = bytearray(z.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central: central + 4] = b"XXXX"
    z.write_bytes(bytes(data))
    box.refuse(z, r"upload.zip is not a zip archive, or it is corrupt or truncated \(")


def test_truncated_zip(box):
    z = box.zip(good_entries())
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])
    msg = box.refuse(z, r"is not a zip archive, or it is corrupt or truncated")
    assert msg.endswith("re-create it with a zip tool and upload it again.")


def test_not_a_zip(box):
    z = box.zips / "upload.zip"
    z.write_text("name,label\na.png,crack\n")
    box.refuse(z, r"^upload.zip is not a zip archive, or it is corrupt or truncated \(File is not a zip file\)")


def test_zero_byte_zip(box):
    z = box.zips / "upload.zip"
    z.write_bytes(b"")
    box.refuse(z, r"^upload.zip is an empty file \(0 bytes\), not a zip archive; upload it again\.$")


def test_missing_zip(box):
    box.refuse(box.zips / "gone.zip", r"^archive not found: .*gone.zip$")


def test_encrypted_entry(box):
    z = box.zip(good_entries() + [("normal/secret.png", png(3))])
    data = bytearray(z.read_bytes())  # zipfile cannot write encrypted entries: set the flag bit by hand
    local, central = data.rfind(b"PK\x03\x04"), data.rfind(b"PK\x01\x02")
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    z.write_bytes(bytes(data))
    assert zipfile.ZipFile(z).getinfo("normal/secret.png").flag_bits & 0x1
    box.refuse(z, r"upload.zip is encrypted \(entry 'normal/secret.png'\); password-protected archives are not "
                  r"supported")


def test_duplicate_names(box):
    z = box.zip(good_entries() + [("normal/n0.png", png(200))])
    box.refuse(z, r"^upload.zip holds two entries named 'normal/n0.png'")


def test_file_and_folder_with_one_name(box):
    z = box.zip(good_entries() + [("normal", b"a file where a folder is")])
    box.refuse(z, r"^upload.zip holds 'normal' both as a file and as a folder")


def test_name_too_long_for_the_file_system(box):
    z = box.zip(good_entries() + [("normal/" + "é" * 130 + ".png", png(1))])
    box.refuse(z, r"has a name longer than the file system allows \(255 bytes per name\)")


# ---------------------------------------------------------------------------------------------------
# nested, empty, junk, unwrapping
# ---------------------------------------------------------------------------------------------------
def test_nested_zip_is_skipped_with_a_note(box):
    inner = make_zip(box.zips / "inner.zip", good_entries())
    z = box.zip(good_entries("dataset/") + [("dataset/normal/more.zip", inner.read_bytes())])
    root = safe_extract_zip(z, box.dest)
    assert (root / "normal" / "more.zip").read_bytes() == inner.read_bytes()  # written, never opened
    assert not (root / "normal" / "normal").exists()
    for ds, report in (load_dataset(z, image_size=8), load_dataset(root, image_size=8)):
        assert ds.counts() == {"crack": 2, "normal": 3}
        assert {"path": "normal/more.zip", "reason": REASON_NESTED} in report.to_dict()["skipped"]
        assert "normal/more.zip: nested archive: not supported, unzip it first" in report.summary()


def test_zip_of_only_a_zip(box):
    inner = make_zip(box.zips / "inner.zip", good_entries())
    z = box.zip([("dataset.zip", inner.read_bytes())])
    msg = box.refuse(z, r"holds only other archives")
    assert msg == ("upload.zip holds only other archives (dataset.zip); nested archives are not supported: unzip "
                   "it and upload the inner archive, or zip the class folders themselves.")


def test_empty_zip(box):
    z = box.zip([])
    msg = box.refuse(z, r"is empty")
    assert msg == ("upload.zip is empty: it holds no files. Zip the dataset folder (one sub-folder per class, "
                   "e.g. normal/ and crack/) and upload again.")


def test_zip_of_only_junk_and_folders_is_empty(box):
    z = box.zip([("__MACOSX/._x.png", b"\0"), (".DS_Store", b"\0"), ("dataset/", b""), ("dataset/normal/", b"")])
    box.refuse(z, r"^upload.zip is empty: it holds no files")


def test_single_top_folder_is_unwrapped(box):
    z = box.zip(good_entries("my dataset/"))
    root = safe_extract_zip(z, box.dest)
    assert root == box.dest / "my dataset"
    assert sorted(p.name for p in root.iterdir()) == ["crack", "normal"]


def test_class_folders_at_the_top_are_not_unwrapped(box):
    root = safe_extract_zip(box.zip(good_entries()), box.dest)
    assert root == box.dest
    assert (root / "normal" / "n0.png").read_bytes() == png(0)


def test_single_folder_of_loose_images_is_not_unwrapped(box):
    # A lone class folder stays, so loading says "only one class 'normal'" rather than "no class folders".
    z = box.zip([("normal/a.png", png(1)), ("normal/b.png", png(2))])
    assert safe_extract_zip(z, box.dest) == box.dest
    with pytest.raises(DataError, match=r"found only one class 'normal'"):
        load_dataset(z)


def test_macos_junk_is_ignored(box):
    junk = [("__MACOSX/", b""), ("__MACOSX/dataset/normal/._n0.png", b"\0\5\26\7"), ("dataset/.DS_Store", b"\0"),
            ("dataset/normal/._n0.png", b"\0\5\26\7"), ("dataset/crack/Thumbs.db", b"\0")]
    z = box.zip(junk + good_entries("dataset/"))
    root = safe_extract_zip(z, box.dest)
    assert root == box.dest / "dataset"  # __MACOSX does not count as a second top folder
    names = sorted(p.relative_to(box.dest).as_posix() for p in box.dest.rglob("*") if p.is_file())
    assert names == ["dataset/crack/c0.png", "dataset/crack/c1.png", "dataset/normal/n0.png",
                     "dataset/normal/n1.png", "dataset/normal/n2.png"]


def test_non_empty_destination_gets_a_fresh_folder(box):
    box.dest.mkdir(parents=True)
    (box.dest / "normal").mkdir()
    (box.dest / "normal" / "n0.png").write_bytes(b"keep me")
    root = safe_extract_zip(box.zip(good_entries()), box.dest)
    assert root.parent == box.dest and root.name.startswith("extract-")
    assert (box.dest / "normal" / "n0.png").read_bytes() == b"keep me"
    assert (root / "normal" / "n0.png").read_bytes() == png(0)


def test_unicode_names_and_backslash_separators(box):
    z = box.zip([("données\\défaut 裂纹\\a.png", png(1)), ("données\\normal\\b.png", png(2))])
    root = safe_extract_zip(z, box.dest)
    assert root == box.dest / "données"
    assert (root / "défaut 裂纹" / "a.png").read_bytes() == png(1)


def test_attack_through_load_dataset_leaves_no_temp_folder(box, monkeypatch):
    import tempfile
    scratch = box.tmp / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    z = box.zip(good_entries() + [("../../evil.png", png(1))])
    box.snapshot()
    with pytest.raises(ArchiveError, match=r"points outside the extraction folder"):
        load_dataset(z)
    assert list(scratch.iterdir()) == []
    assert not (box.tmp / "evil.png").exists()
