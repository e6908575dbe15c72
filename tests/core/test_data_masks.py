"""User masks in an uploaded dataset: beside the image (NAME_mask.png, or NAME.png beside NAME.jpg) or in a masks/
tree mirroring the class folders. They are read as masks, never as images of a class, and reach the run."""
from __future__ import annotations

import numpy as np
from PIL import Image

from core.data import load_dataset, simulate_imbalance


def _img(path, value=120, spot=None, mode="L", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.full((40, 40), value, np.uint8)
    if spot is not None:
        y, x = spot
        a[y:y + 10, x:x + 10] = 255
    Image.fromarray(a, mode).save(path, format=fmt)


def test_masks_beside_images_and_in_a_masks_tree(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        _img(root / "normal" / f"n{i}.png")
    _img(root / "crack" / "a.png", 60)
    _img(root / "crack" / "a_mask.png", 0, spot=(0, 0))            # NAME_mask.png beside NAME.png
    _img(root / "crack" / "b.jpg", 60, fmt="JPEG")
    _img(root / "crack" / "b.png", 0, spot=(20, 20))               # NAME.png beside NAME.jpg
    _img(root / "crack" / "c.png", 60)                              # no mask
    _img(root / "spot" / "sub" / "d.png", 90)
    _img(root / "masks" / "spot" / "sub" / "d.png", 0, spot=(30, 30))   # the masks/ tree
    ds, rep = load_dataset(root, image_size=20)
    assert ds.classes == ["crack", "normal", "spot"]                # masks/ is not a class
    assert sorted(ds.of_class("crack").sources) == ["crack/a.png", "crack/b.jpg", "crack/c.png"]
    assert rep.masks == 3 and ds.has_masks() == 3
    m = dict(zip(ds.sources, ds.masks))
    assert m["crack/a.png"][:5, :5].all() and not m["crack/a.png"][10:].any()
    assert m["crack/b.jpg"][10:15, 10:15].all() and not m["crack/b.jpg"][:9].any()
    assert m["spot/sub/d.png"][15:, 15:].all()
    assert not m["crack/c.png"].any()
    assert any("defect mask" in n for n in rep.notes)
    kept = simulate_imbalance(ds, 1.0, 0, "normal")                 # masks follow their images through the protocol
    assert kept.has_masks() == 3


def test_a_folder_named_masks_without_class_subfolders_stays_a_class(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        _img(root / "normal" / f"n{i}.png")
        _img(root / "masks" / f"m{i}.png", 40)
    ds, rep = load_dataset(root, image_size=16)
    assert ds.classes == ["masks", "normal"] and rep.masks == 0 and ds.masks is None
