"""The GANs pre-trained on every class (bagan, bagan_gp, ida_gan, three_player_gan), on tiny real images
with real torch: both stages end to end, BAGAN's hand-over of the autoencoder's weights, conditional sampling,
seeds, resume after a stop in either stage, the class Gaussians and the latent codes kept with the run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.errors import Cancelled
from core.events import CANCEL_FILE, Reporter
from core.methods import Context, get_method
from core.methods.gan.pretrained import PRETRAIN, class_gaussians
from core.rundir import RunDir
from core.views import runs

from .test_gan import fit as fit_dcgan
from .test_gan import tiny_set

PRETRAINED = ["bagan", "bagan_gp", "ida_gan", "three_player_gan"]
TINY = {"steps": 3, "pretrain_steps": 3, "batch_size": 4, "monitor_every": 1, "sample_every": 2, "g_width": 4,
        "d_width": 4, "latent_dim": 8}
NEEDED = {"normal": 0, "crack": 4, "spot": 6}


def sampler_for(name: str, reporter=None, work_dir=None, seed: int = 0, **over):
    spec = get_method(name)
    ctx = Context(reporter=reporter or Reporter(), device=torch.device("cpu"), seed=seed, method=name,
                  work_dir=work_dir)
    return spec.sampler_cls(spec.make_params("quick", {**TINY, **over}), ctx)


def fit(name, train, reporter=None, work_dir=None, seed=0, **over):
    return sampler_for(name, reporter, work_dir, seed, **over).fit(train, NEEDED)


def assert_same_state(a, b):
    want, got = a.get_state()[0], b.get_state()[0]
    assert list(want) == list(got)
    for key in want:
        torch.testing.assert_close(want[key], got[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("name", PRETRAINED)
def test_both_stages_train_end_to_end_and_sample_each_class(name, tmp_path):
    rep = Reporter(run_dir=tmp_path)
    sampler = fit(name, tiny_set(channels=3), rep)
    for cls, n in (("normal", 2), ("crack", 5), ("spot", 7)):
        batch = sampler.sample(cls, n, seed=1)
        assert batch.images.shape == (n, 16, 16, 3) and batch.images.dtype == np.uint8
    events = RunDir(tmp_path).events()
    pre = [e for e in events if e["kind"] == "monitor" and e["class"] == PRETRAIN]
    adv = [e for e in events if e["kind"] == "monitor" and e["class"] is None]
    assert [e["step"] for e in pre] == [1, 2, 3] and [e["step"] for e in adv] == [1, 2, 3]
    assert all(math.isfinite(e["recon_loss"]) for e in pre)
    assert all(math.isfinite(e["d_loss"]) and math.isfinite(e["g_loss"]) for e in adv)
    assert ("kl" in pre[0]) == (name == "ida_gan")
    # the pre-training stage is its own stage, with its own grid of real vs reconstructed images
    stages = {e["stage"] for e in events if e["kind"] == "progress"}
    assert any(s.startswith(f"pre-train {name}") for s in stages) and any("adversarial" in s for s in stages)
    grids = [e["path"] for e in events if e["kind"] == "image"]
    assert sum(p.startswith(f"samples/{name}/{PRETRAIN}/") for p in grids) == 2      # step 2 and the end
    assert sum(p.startswith(f"samples/{name}/all/") for p in grids) == 2


def test_bagan_generator_starts_as_the_decoder_and_the_discriminator_as_the_encoder():
    train = tiny_set()
    sampler = sampler_for("bagan")
    sampler._remember(train)
    sampler.arch_ = sampler.arch(train.shape, len(train.classes))
    E, Dec, embed = sampler.build_autoencoder(seed=3)
    codes = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    labels = np.repeat([0, 1, 2, 2], 5)
    G, D = sampler.from_autoencoder(E, Dec, embed, codes, labels, seed=3)
    for want, got in ((Dec.state_dict(), G.decoder.state_dict()), (E.state_dict(), D.encoder.state_dict())):
        assert list(want) == list(got)
        for key in want:
            torch.testing.assert_close(want[key], got[key], rtol=0, atol=0, msg=key)
    assert D.head.out_features == 4                     # three classes + "fake"
    torch.testing.assert_close(G.mean[1], torch.from_numpy(codes[5:10].mean(0)))
    # G(z | c) is the decoder at the class Gaussian's point mu_c + L_c z
    z, y = torch.randn(3, 8), torch.tensor([0, 1, 2])
    G.eval()
    Dec.eval()
    code = G.mean[y] + (G.chol[y] @ z[..., None])[..., 0]
    torch.testing.assert_close(G(z, y), Dec(code))


@pytest.mark.parametrize("name", PRETRAINED)
def test_same_seed_same_generator_other_seed_other(name):
    train = tiny_set()
    a, b = fit(name, train, seed=4), fit(name, train, seed=4)
    assert_same_state(a, b)
    np.testing.assert_array_equal(a.sample("crack", 4, 0).images, b.sample("crack", 4, 0).images)
    c = fit(name, train, seed=5)
    assert not np.array_equal(a.sample("crack", 4, 0).images, c.sample("crack", 4, 0).images)


@pytest.mark.parametrize("stage,step", [(PRETRAIN, 2), (None, 2)])
@pytest.mark.parametrize("name", PRETRAINED)
def test_resume_after_a_stop_in_either_stage_equals_an_uninterrupted_run(name, stage, step, tmp_path):
    train = tiny_set()
    over = {"steps": 4, "pretrain_steps": 4}
    straight = fit(name, train, seed=1, **over)
    run, work = tmp_path / "run", tmp_path / "work"

    def stop_there(event):
        if event["kind"] == "monitor" and event["class"] == stage and event["step"] == step:
            (run / CANCEL_FILE).write_text("")

    with pytest.raises(Cancelled):
        fit(name, train, Reporter(run, callback=stop_there), work_dir=work, seed=1, **over)
    (run / CANCEL_FILE).unlink()
    assert list(work.glob("*.safetensors")), "a stopped run leaves a checkpoint"
    resumed = fit(name, train, Reporter(run), work_dir=work, seed=1, **over)
    assert_same_state(straight, resumed)
    monitors = [e for e in RunDir(run).events() if e["kind"] == "monitor" and e["class"] == stage]
    assert [e["step"] for e in monitors][-2:] == [3, 4]        # the stopped stage went on from its checkpoint


@pytest.mark.parametrize("name", PRETRAINED)
def test_saved_sampler_keeps_the_generator_and_the_latent_codes(name, tmp_path):
    train = tiny_set()
    sampler = fit(name, train, seed=2)
    sampler.save(tmp_path / "ck")
    again = get_method(name).load_sampler(tmp_path / "ck", Context(device=torch.device("cpu")))
    np.testing.assert_array_equal(sampler.sample("spot", 5, 9).images, again.sample("spot", 5, 9).images)
    z, y = again.codes_
    assert z.shape == (2 * len(train), 8) and sorted(np.unique(y)) == [0, 1, 2]   # mirror copies included


def test_class_gaussians_follow_each_class_and_stay_usable_with_few_codes():
    rng = np.random.default_rng(0)
    d = 6
    big = rng.normal(size=(4000, d)) @ np.diag([3, 2, 1, 1, 0.5, 0.5]) + 5
    few = rng.normal(size=(3, d)) - 2
    codes = np.concatenate([big, few]).astype(np.float32)
    labels = np.array([0] * len(big) + [1] * len(few))
    mean, chol = class_gaussians(codes, labels, 3)
    np.testing.assert_allclose(mean[0], 5, atol=0.15)
    cov = chol[0] @ chol[0].T
    np.testing.assert_allclose(np.diag(cov), [9, 4, 1, 1, 0.25, 0.25], rtol=0.15)
    np.testing.assert_allclose(mean[1], few.mean(0), rtol=1e-5)
    assert np.all(np.isfinite(chol[1])) and np.all(np.diag(chol[1]) > 0)   # 3 codes in 6-d: shrunk, not singular
    np.testing.assert_array_equal(chol[2], np.eye(d))                      # a class without codes: N(0, I)


def test_pretraining_learns_to_reconstruct():
    rep = Reporter()
    fit("bagan", tiny_set(), rep, pretrain_steps=300, steps=1, monitor_every=10, g_width=8, d_width=8)
    losses = [e["recon_loss"] for e in rep.events if e["kind"] == "monitor" and e["class"] == PRETRAIN]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2])


def test_three_player_trains_its_classifier_beside_g_and_d():
    rep = Reporter()
    fit("three_player_gan", tiny_set(), rep, steps=30, monitor_every=10, lr_c=1e-2)
    adv = [e for e in rep.events if e["kind"] == "monitor" and e["class"] is None]
    assert {"c_loss", "class_acc", "class_acc_fake"} <= set(adv[-1])
    assert adv[-1]["c_loss"] < adv[0]["c_loss"]


def test_the_run_folder_serves_the_latent_codes_as_a_2d_map_once(tmp_path):
    train = tiny_set()
    rd = RunDir(tmp_path)
    fit("bagan", train, seed=0).save(rd.checkpoint_dir("bagan", 0))
    fit("ida_gan", train, seed=1).save(rd.checkpoint_dir("ida_gan", 1))
    fit_dcgan("dcgan", train, steps=1).save(rd.checkpoint_dir("dcgan", 0))      # no codes: not listed
    assert RunDir(tmp_path).latent_methods() == [("bagan", 0), ("ida_gan", 1)]
    points = runs.latent_map(tmp_path, "bagan", 0)
    counts = {c: sum(p["class"] == c for p in points) for c in train.classes}
    assert counts == {c: 2 * n for c, n in train.counts().items()}             # every code, mirror copies too
    assert all(np.isfinite([p["x"], p["y"]]).all() for p in points)
    assert rd.latent_map_path("bagan", 0).exists()
    rd.write_latent_map("bagan", 0, points[:3])                                 # read back, not recomputed
    assert runs.latent_map(tmp_path, "bagan", 0) == points[:3]
