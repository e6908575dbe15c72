"""Dataset layouts as users arrange them: no class folders, one class, an empty class, a class of one
image, 50+ classes, class names with spaces and unicode. Uploaded into a real workspace (zip or
picked folder) and loaded as the Data page does; the exact message, nothing outside the workspace.
"""
from __future__ import annotations

import pytest

from core.data import IMAGE_EXTENSIONS, REASON_NOT_IMAGE, REASON_ROOT, Limits, split
from core.errors import DataError
from tests.robustness.conftest import png

VIA = pytest.mark.parametrize("via", ["zip", "folder"])
EXTS = ", ".join(sorted(IMAGE_EXTENSIONS))


def refused_load(user, tree: dict[str, bytes], via: str, **load) -> tuple[str, object]:
    """Upload `tree`, then load it: the message of the DataError and the dataset root."""
    upload = user.prepare(tree, via)
    with user.unchanged_outside():
        root = upload()
        with pytest.raises(DataError) as err:
            user.load(root, **load)
    return str(err.value), root


def test_images_without_class_folders_in_a_zip(user):
    message, root = refused_load(user, {f"img_{i}.png": png(i) for i in range(3)}, "zip")
    assert message == (f"no class folders found in {root} (3 images lie directly in it; move them into class "
                       "folders): DefectAug expects one sub-folder per class, e.g. normal/*.png and crack/*.png")


def test_a_picked_folder_of_loose_images(user):
    # The browser always sends the picked folder's name: loose images in it read as one class.
    message, _ = refused_load(user, {f"photos/img_{i}.png": png(i) for i in range(3)}, "folder")
    assert message == "found only one class 'photos'; DefectAug needs at least two, e.g. normal/ and crack/"


@VIA
def test_one_class(user, via):
    message, _ = refused_load(user, {f"set/normal/n{i}.png": png(i) for i in range(3)}, via)
    assert message == "found only one class 'normal'; DefectAug needs at least two, e.g. normal/ and crack/"


@VIA
def test_stray_files_beside_the_class_folders_are_skipped(user, via):
    tree = {"set/normal/a.png": png(1), "set/crack/b.png": png(2), "set/overview.png": png(3)}
    upload = user.prepare(tree, via)
    with user.unchanged_outside():
        ds, report = user.load(upload())
    assert ds.counts() == {"crack": 1, "normal": 1}
    assert [(s.path, s.reason) for s in report.skipped] == [("overview.png", REASON_ROOT)]


def test_an_empty_class_folder_in_a_zip(user):
    tree = {**{f"set/normal/n{i}.png": png(i) for i in range(3)}, "set/crack/": b""}
    message, _ = refused_load(user, tree, "zip")
    assert message == (f"class folder 'crack' has no readable image: the folder is empty. Put images ({EXTS}) in it, "
                       "or remove the folder.")


@VIA
def test_a_class_whose_only_file_is_unreadable(user, via):
    # A folder upload cannot hold an empty folder (the browser sends files only): this is its empty class.
    tree = {**{f"set/normal/n{i}.png": png(i) for i in range(3)}, "set/crack/scan.png": b"not an image"}
    message, _ = refused_load(user, tree, via)
    assert message == (f"class folder 'crack' has no readable image: its 1 file was skipped: crack/scan.png "
                       f"({REASON_NOT_IMAGE}). Put images ({EXTS}) in it, or remove the folder.")


@VIA
def test_more_than_fifty_classes(user, via):
    tree = {f"set/class_{c:02d}/{i}.png": png(100 * c + i, size=8) for c in range(55) for i in range(1 + c % 2)}
    upload = user.prepare(tree, via)
    with user.unchanged_outside():
        ds, report = user.load(upload(), image_size=8)
    assert len(ds.classes) == 55 and report.classes == [f"class_{c:02d}" for c in range(55)]
    assert ds.counts() == {f"class_{c:02d}": 1 + c % 2 for c in range(55)}


def test_more_classes_than_the_limit(user):
    message, root = refused_load(user, {f"set/c{c}/a.png": png(c) for c in range(4)}, "zip",
                                 limits=Limits(max_classes=3))
    assert message == (f"found 4 class folders in {root}, more than the limit of 3; check that it is the dataset "
                       "folder (one sub-folder per class) and not a folder above or below it")


@VIA
def test_class_names_with_spaces_and_unicode(user, via):
    names = ["normal tile", "fissure é", "裂纹", "Blow Hole"]
    tree = {f"set/{c}/{c} {i}.png": png(10 * k + i) for k, c in enumerate(names) for i in range(2)}
    upload = user.prepare(tree, via)
    with user.unchanged_outside():
        ds, report = user.load(upload())
    assert ds.classes == sorted(names) and ds.counts() == {c: 2 for c in names}
    assert "裂纹/裂纹 0.png" in ds.sources and "fissure é" in report.summary()


# ---------------------------------------------------------------------------------------------------
# A class of a single image: it loads, stays in training, and interpolation and mixing methods fall back
# and say so
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, why", [("smote", "too few to interpolate"),
                                         ("borderline_smote", "too few to interpolate"),
                                         ("adasyn", "too few to interpolate"),
                                         ("mixup", "nothing to mix with"),
                                         ("cutmix", "nothing to mix with")])
def test_a_class_of_one_image_makes_interpolation_fall_back_and_say_so(user, method, why):
    from core.data import balance_targets
    from core.events import Reporter
    from core.methods import Context, get_method

    tree = {**{f"set/normal/n{i}.png": png(i) for i in range(6)}, "set/crack/only.png": png(50)}
    upload = user.prepare(tree, "zip")
    with user.unchanged_outside():
        ds, _ = user.load(upload(), image_size=8)
        train, test = split(ds, test_per_class=2, seed=0)
        assert train.counts() == {"crack": 1, "normal": 4} and test.counts() == {"crack": 0, "normal": 2}
        spec = get_method(method)
        reporter = Reporter()   # the job's reporter writes these to the run's events (the Jobs page shows them)
        sampler = spec.sampler_cls(spec.make_params("quick"), Context(reporter=reporter, seed=0, method=method))
        needed = balance_targets(train.counts())
        sampler.fit(train, needed)
        batch = sampler.sample("crack", needed["crack"], seed=0)
    assert needed == {"crack": 3, "normal": 0} and len(batch.images) == 3
    assert batch.parents == [["crack/only.png"]] * 3
    assert reporter.warnings == [f"{method} on class 'crack': only 1 image(s), {why}; "
                                 "random_oversample made the remaining 3 of 3 images"]
    assert sampler.fallbacks_ == [{"method": method, "class": "crack", "requested": 3, "achieved_by_method": 0,
                                   "fallback": "random_oversample", "reason": f"only 1 image(s), {why}"}]
    assert (batch.images == ds.images[ds.sources.index("crack/only.png")]).all()   # copies, said to be copies


def test_class_folders_named_with_a_backslash_are_not_loaded_and_said(user, tmp_path, monkeypatch):
    """Only a server folder can hold such a name (uploads take a backslash as a separator). The Gallery once
    refused the whole run, and the export wrote 'a\\..\\..\\..\\evil/...', which Windows tools unpack outside
    the folder: the class is left out at load, with the reason, and the rest loads."""
    from core.data import REASON_CLASS_NAME
    srv = tmp_path / "srv"
    monkeypatch.setenv("DEFECTAUG_DATA_ROOTS", str(srv))
    tree = {"normal": 3, "crack": 2, "a\\..\\..\\..\\evil": 2, "tab\there": 1}
    for cls, n in tree.items():
        (srv / "set" / cls).mkdir(parents=True)
        for i in range(n):
            (srv / "set" / cls / f"{i}.png").write_bytes(png(i + 7 * len(cls)))
    with user.unchanged_outside():
        ds, report = user.load(user.ws.resolve_data("set"))
    assert ds.classes == ["crack", "normal"]
    assert [(s.path, s.reason) for s in report.skipped] == [("a\\\\..\\\\..\\\\..\\\\evil/", REASON_CLASS_NAME),
                                                            ("tab\\there/", REASON_CLASS_NAME)]
    assert "\\" not in "".join(ds.sources)
    for cls in ("crack", "normal"):
        (srv / "set" / cls / "0.png").rename(srv / "set" / "a\\..\\..\\..\\evil" / f"moved_{cls}.png")
        for p in (srv / "set" / cls).iterdir():
            p.unlink()
        (srv / "set" / cls).rmdir()
    (srv / "set" / "only").mkdir()
    (srv / "set" / "only" / "x.png").write_bytes(png(1))
    with pytest.raises(DataError) as err:
        user.load(user.ws.resolve_data("set"))
    assert str(err.value) == ("found only one class 'only'; DefectAug needs at least two, e.g. normal/ and crack/; "
                              "2 folder(s) were not loaded because their names hold a backslash or a control "
                              "character (a\\\\..\\\\..\\\\..\\\\evil/, tab\\there/): rename them")
