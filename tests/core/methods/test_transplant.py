"""defect_paste and cmo beyond the common checks: the localiser finds a planted defect, the paste puts it where
it should, soft targets and masks reach the run folder, and the Gallery's views undo the flips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.views import runs
from core.imageset import ImageSet, synthetic_source
from core.methods import Context, get_method
from core.methods.transplant import clean_mask, localise, paste
from core.rundir import RunDir


def planted(n_normal=30, n_defect=6, size=32, seed=0, corner=False):
    """Textured normal images; defect images are normal ones with a dark 4x4 spot (at a corner edge, or inside)."""
    rng = np.random.default_rng(seed)
    imgs = rng.normal(128, 12, (n_normal + n_defect, size, size, 1))
    imgs[:, ::4] += 15                                   # a stripe texture every image shares
    spots = []
    for k in range(n_defect):
        y, x = (0, 3 + 4 * k) if corner else (6 + 3 * k, 20 - 2 * k)
        imgs[n_normal + k, y:y + 4, x:x + 4] = 20
        spots.append((y, x))
    labels = np.array([0] * n_normal + [1] * n_defect)
    sources = [f"normal/n{i}.png" for i in range(n_normal)] + [f"spot/d{i}.png" for i in range(n_defect)]
    return ImageSet(np.clip(imgs, 0, 255).astype(np.uint8), labels, ["normal", "spot"], sources), spots


@pytest.mark.parametrize("localiser", ["patch_nn", "nearest_normal"])
def test_localisers_find_a_planted_spot(localiser):
    ds, spots = planted()
    p = get_method("defect_paste").make_params("quick", {"localiser": localiser})
    scores, masks = localise(ds.images[ds.labels == 1], ds.images[ds.labels == 0], p)
    for (y, x), s, m in zip(spots, scores, masks):
        py, px = np.unravel_index(s.argmax(), s.shape)
        assert y - 1 <= py <= y + 4 and x - 1 <= px <= x + 4
        truth = np.zeros_like(m, bool)
        truth[y:y + 4, x:x + 4] = True
        iou = (truth & (m > 0)).sum() / (truth | (m > 0)).sum()
        assert iou > 0.3, iou


def test_clean_mask_keeps_the_peak_and_caps_the_area():
    score = np.zeros((32, 32), np.float32)
    score[10:13, 10:13] = 5.0
    score[25, 25] = 1.0
    m = clean_mask(score, threshold=3.0, max_area=0.25, dilate=0)
    assert m[11, 11] == 255 and m[25, 25] == 0
    flat = clean_mask(np.ones((32, 32), np.float32), 3.0, 0.05, 0)   # no evidence anywhere: never empty
    assert 0 < (flat > 0).sum() <= 0.05 * 1024


@pytest.mark.parametrize("blend", ["poisson", "feather"])
def test_paste_changes_only_around_the_mask_and_brings_the_defect(blend):
    ds, spots = planted()
    defect, background = ds.images[-1], ds.images[0]
    y, x = spots[-1]
    mask = np.zeros((32, 32), np.uint8)
    mask[y - 1:y + 5, x - 1:x + 5] = 255
    out = paste(defect, mask, background, blend)
    assert out.shape == background.shape and out.dtype == np.uint8
    far = np.ones((32, 32), bool)
    far[max(0, y - 4):y + 8, max(0, x - 4):x + 8] = False
    np.testing.assert_array_equal(out[far], background[far])
    assert out[y:y + 4, x:x + 4].mean() < background[y:y + 4, x:x + 4].mean() - 40   # the dark spot arrived


def _sampler(name, ds, **over):
    spec = get_method(name)
    s = spec.sampler_cls(spec.make_params("tiny", over), Context(device=torch.device("cpu"), normal_class="normal"))
    return s.fit(ds, {"normal": 0, "spot": 8})


def test_own_position_keeps_edge_defects_at_the_edge_and_random_moves_them():
    ds, _ = planted(corner=True)
    still = _sampler("defect_paste", ds, hflip=False, vflip=False, rot90=False).sample("spot", 12, seed=0)
    assert all(d["position"].split(",")[1] == "0" for d in still.details)    # touching the top edge, as found
    assert all(m[0].any() for m in still.masks)
    moved = _sampler("defect_paste", ds, position="random", hflip=False, vflip=False, rot90=False)
    rows = {d["position"].split(",")[1] for d in moved.sample("spot", 12, seed=0).details}
    assert len(rows) > 1


def test_user_masks_are_used_and_said(tmp_path):
    ds, spots = planted()
    user = {}
    for k, (y, x) in enumerate(spots):
        m = np.zeros((32, 32), np.uint8)
        m[y:y + 4, x:x + 4] = 1
        user[f"spot/d{k}.png"] = m
    user["spot/d0.png"] = np.zeros((32, 32), np.uint8)       # an empty one: found automatically instead
    spec = get_method("defect_paste")
    from core.events import Reporter
    rep = Reporter()
    s = spec.sampler_cls(spec.make_params("tiny"), Context(device=torch.device("cpu"), normal_class="normal",
                                                            user_masks=user, reporter=rep)).fit(ds, {"spot": 4})
    froms = dict(zip(ds.sources, s.mask_from_))
    assert froms["spot/d1.png"] == "user" and froms["spot/d0.png"] == "automatic"
    assert (s.masks_[ds.sources.index("spot/d1.png")] > 0).sum() == 16
    assert any("own masks for 5 of 6" in w for w in rep.warnings), rep.warnings


def test_cmo_targets_and_a_transplant_run_folder_round_trip(tmp_path):
    ds, _ = planted()
    rd = RunDir(tmp_path / "run")
    rd.save_split("train", ds)
    for name in ("cmo", "defect_paste"):
        batch = _sampler(name, ds).sample("spot", 6, seed=1)
        par = batch.parents
        synth = ImageSet(batch.images, np.ones(6, int), ds.classes, [synthetic_source(name, 0, p) for p in par],
                         batch.targets)
        rd.save_synthetic(name, 0, synth, par, masks=batch.masks, details=batch.details)
        back = rd.load_synthetic(name, 0)
        if name == "cmo":                     # labelled by area: the box's share on spot, the rest on normal
            np.testing.assert_allclose(back.targets[:, 1], (batch.masks > 0).mean(axis=(1, 2)), atol=1e-6)
        else:
            assert back.targets is None
        items = rd.gallery(name)
        assert len(items) == 6 and (items[0].path.parent / (items[0].path.stem + "_mask.png")).exists()
        views = runs.transplant_views(rd.root, items[0])
        assert views["background"] is not None and views["result"].shape == (32, 32, 3)
        red = (views["defect"] == (255, 0, 0)).all(axis=2)
        if name == "defect_paste":            # the outline lies around where the defect was found, undone flips
            i = ds.sources.index(items[0].details["defect_source"])
            sx, sy, sw, sh = (int(v) for v in items[0].details["source_box"].split(","))
            ys, xs = np.nonzero(red)
            assert ys.min() == sy and xs.min() == sx and ys.max() == sy + sh - 1 and xs.max() == sx + sw - 1
            assert i >= 30


def test_a_run_trains_cmo_on_shares_and_exports_the_transplant_provenance(tmp_path):
    """The whole path in the product: a run with the dataset's own masks for some defects, the Gallery's items,
    the export's manifest columns and masks, which the loader reads back as masks."""
    import csv
    import io
    import zipfile

    from PIL import Image

    from core.data import load_dataset
    from core.experiment import run
    from core.views.export import export_zip
    ds, spots = planted(n_normal=40, n_defect=12)
    root = tmp_path / "data"
    for img, src in zip(ds.images, ds.sources):
        (root / src).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[..., 0]).save(root / src)
    for k, (y, x) in enumerate(spots[:5]):         # five defects come with the user's masks
        m = np.zeros((32, 32), np.uint8)
        m[y:y + 4, x:x + 4] = 255
        Image.fromarray(m).save(root / "spot" / f"d{k}_mask.png")
    out = tmp_path / "run"
    run(dict(data=str(root), methods=["cmo", "defect_paste"], seeds=[0], ratio=None, image_size=32, test_per_class=3,
             channels=1, quality=False, overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu",
             num_threads=1), out)
    rd = RunDir(out)
    assert rd.load_synthetic("cmo", 0).targets is not None
    assert rd.load_synthetic("defect_paste", 0).targets is None
    fit = rd.fit("defect_paste", 0)
    assert 0 < fit["user_masks"] and any("own masks" in w for w in fit["warnings"])
    assert {"cmo_s0", "defect_paste_s0"} <= set(rd.prediction_models())
    item = rd.gallery("defect_paste")[0]
    assert item.details["mask_from"] in ("user", "automatic") and item.details["background"].startswith("normal/")
    zp = tmp_path / "x.zip"
    export_zip(out, "defect_paste", zp)
    with zipfile.ZipFile(zp) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))
        names = set(zf.namelist())
        zf.extractall(tmp_path / "x")
    syn = [r for r in rows if r["origin"] == "synthetic"]
    assert syn and all(r["defect_source"].startswith("spot/") and r["background"].startswith("normal/") for r in syn)
    assert all(r["mask"] in names and r["mask"] == r["file"][:-4] + "_mask.png" for r in syn)
    back, rep = load_dataset(tmp_path / "x", image_size=32)
    assert rep.masks >= len(syn) and back.counts()["spot"] == 12 + len(syn)    # masks never counted as images
