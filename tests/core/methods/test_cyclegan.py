"""cyclegan (core/methods/translation/cyclegan.py) on tiny real images with real torch: monitors and
source / translated / reconstructed grids, the translation learnt on two constructed domains, provenance
from normal training files only, resume, seeds, and the refusal of data it cannot translate."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.errors import Cancelled, ParamError
from core.events import CANCEL_FILE, Reporter
from core.imageset import ImageSet
from core.jobs import preflight
from core.methods import Context, get_method
from core.rundir import RunDir

TINY = {"steps": 3, "batch_size": 2, "g_width": 4, "d_width": 4, "n_blocks": 1, "pool_size": 3,
        "monitor_every": 1, "sample_every": 2, "min_images": 1}
KEYS = {"g_loss", "g_ab_loss", "g_ba_loss", "cycle_loss", "d_loss", "d_a_loss", "d_b_loss"}


def squares(n_bright: int = 10, n_dark: int = 6, size: int = 16, seed: int = 0, third: int = 0) -> ImageSet:
    """normal: bright squares on grey; crack: dark squares; spot (optional): a mid-grey stripe."""
    rng = np.random.default_rng(seed)
    imgs, labels, sources = [], [], []
    for c, (n, level) in enumerate(((n_bright, 220), (n_dark, 30), (third, 128))):
        for i in range(n):
            img = np.full((size, size, 1), 128.0) + rng.normal(0, 6, (size, size, 1))
            y, x = rng.integers(2, size // 2, 2)
            img[y:y + size // 2, x:x + size // 2] = level
            imgs.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(c)
            sources.append(f"{['normal', 'crack', 'spot'][c]}/{i:03d}.png")
    return ImageSet(np.stack(imgs), np.array(labels), ["normal", "crack", "spot"], sources)


def fit(train, reporter=None, work_dir=None, seed=0, needed=None, **over):
    spec = get_method("cyclegan")
    ctx = Context(reporter=reporter or Reporter(), device=torch.device("cpu"), seed=seed, method="cyclegan",
                  work_dir=work_dir, normal_class="normal")
    return spec.sampler_cls(spec.make_params("quick", {**TINY, **over}), ctx).fit(train, needed or {"crack": 4})


def test_trains_with_both_losses_of_each_side_and_triples_in_the_grid(tmp_path):
    rep = Reporter(run_dir=tmp_path)
    sampler = fit(squares(third=4), rep, needed={"crack": 3, "spot": 2})
    events = RunDir(tmp_path).events()
    monitors = [e for e in events if e["kind"] == "monitor"]
    assert sorted({m["class"] for m in monitors}) == ["crack", "spot"] and len(monitors) == 6
    for m in monitors:
        assert KEYS <= set(m) and all(math.isfinite(m[k]) for k in KEYS)
    grids = [e for e in events if e["kind"] == "image"]
    assert len(grids) == 4                                          # step 2 and the end, two classes
    from PIL import Image
    with Image.open(tmp_path / grids[0]["path"]) as im:
        assert im.size[1] == 3 * (64 + 2) + 2          # source, translated, reconstructed rows (cells shown at 64 px)
    batch = sampler.sample("spot", 5, seed=0)
    assert batch.images.shape == (5, 16, 16, 1)


@pytest.mark.parametrize("residual", [False, True])
def test_the_cycle_loss_falls_and_bright_squares_come_out_dark(residual):
    """The published generator learns bright -> dark; the residual one (quick preset) darkens the square and
    leaves the grey surface around it as it was."""
    train = squares(n_bright=12, n_dark=12)
    rep = Reporter()
    sampler = fit(train, rep, steps=200, monitor_every=10, g_width=8, d_width=8, batch_size=4, lr=1e-3,
                  hflip=False, pool_size=10, residual=residual)
    cycle = [e["cycle_loss"] for e in rep.events if e["kind"] == "monitor"]
    assert np.mean(cycle[-3:]) < 0.5 * np.mean(cycle[:2]), cycle
    out = sampler.sample("crack", 12, seed=0)
    inside, outside = [], []
    for img, parent in zip(out.images, out.parents):
        src = train.images[train.sources.index(parent[0])].astype(float)
        square = src > 200                                   # the bright square of the source image
        assert square.any()
        change = np.abs(img.astype(float) - src)
        inside.append(change[square].mean())
        outside.append(change[~square].mean())
        if residual:                                         # at most -1 in [-1, 1] units: 220 -> 92 at best
            assert img[square].mean() < 180, (parent, img[square].mean())
        else:
            assert img[square].mean() < 128, (parent, img[square].mean())
    if residual:             # the square changed, the rest far less (per image 0.15-0.58 of it, by threads)
        assert np.mean(outside) < 0.5 * np.mean(inside), (outside, inside)


def test_provenance_names_normal_training_files_and_never_a_test_file(tmp_path):
    from core.experiment import run
    from tests.conftest import write_dataset
    data = write_dataset(tmp_path, {"normal": 30, "crack": 12, "spot": 9}, size=16)
    run({"data": str(data), "methods": ["cyclegan"], "seeds": [0], "ratio": 0.5, "image_size": 16,
         "test_per_class": 4, "device": "cpu", "num_threads": 1,
         "overrides": {"classifier": {"epochs": 1, "width": 4}, "cyclegan": dict(TINY, sample_every=0)}},
        tmp_path / "run")
    rd = RunDir(tmp_path / "run")
    split = rd.split()
    train_normal = {s for s in split["train"] if s.startswith("normal/")}
    parents = [p for item in rd.gallery("cyclegan") for p in item.parents]
    assert parents and all(len(item.parents) == 1 for item in rd.gallery("cyclegan"))
    assert set(parents) <= train_normal and not set(parents) & set(split["test"])


@pytest.mark.parametrize("stop_at", [2, 3])
def test_resume_after_a_cancel_equals_an_uninterrupted_run(stop_at, tmp_path):
    train = squares()
    straight = fit(train, seed=1, steps=4)
    run, work = tmp_path / "run", tmp_path / "work"

    def cancel(event):
        if event["kind"] == "progress" and event["step"] == stop_at:
            (run / CANCEL_FILE).write_text("")

    with pytest.raises(Cancelled):
        fit(train, Reporter(run, callback=cancel), work_dir=work, seed=1, steps=4)
    (run / CANCEL_FILE).unlink()
    resumed = fit(train, Reporter(run), work_dir=work, seed=1, steps=4)
    want, got = straight.get_state()[0], resumed.get_state()[0]
    assert list(want) == list(got)
    for key in want:
        torch.testing.assert_close(want[key], got[key], rtol=0, atol=0, msg=key)


def test_seeds_reproduce_and_differ():
    train = squares()
    a, b, c = fit(train, seed=2), fit(train, seed=2), fit(train, seed=3)
    np.testing.assert_array_equal(a.sample("crack", 6, 0).images, b.sample("crack", 6, 0).images)
    assert not np.array_equal(a.sample("crack", 6, 0).images, c.sample("crack", 6, 0).images)
    # each normal training image is used once before any is used twice
    parents = [p[0] for p in a.sample("crack", 10, 1).parents]
    assert len(set(parents)) == 10


def test_data_it_cannot_translate_is_refused_before_the_run_with_the_reason(tmp_path):
    cfg = {"data": str(tmp_path), "methods": ["cyclegan"], "seeds": [0]}
    with pytest.raises(ParamError, match=r"at least 5 training images per defect class.*crack \(3\)"):
        preflight(cfg, counts={"normal": 40, "crack": 3, "spot": 12})
    preflight(dict(cfg, overrides={"cyclegan": {"min_images": 3}}), counts={"normal": 40, "crack": 3, "spot": 12})
    spec = get_method("cyclegan")
    sampler = spec.sampler_cls(spec.make_params("tiny"), Context(device=torch.device("cpu")))   # no normal class
    with pytest.raises(ParamError, match="normal class"):
        sampler.fit(squares(), {"crack": 2})


def test_the_cli_refuses_it_before_anything_trains(tmp_path, capsys):
    from core.cli import main
    from tests.conftest import write_dataset
    data = write_dataset(tmp_path, {"normal": 30, "crack": 5, "spot": 9}, size=16)
    code = main(["run", "--data", str(data), "--methods", "cyclegan", "--ratio", "0.1", "--out", str(tmp_path / "r")])
    assert code != 0
    assert "at least 5 training images per defect class" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()                     # refused before a run folder was made
