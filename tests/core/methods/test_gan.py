"""The GAN family (core/methods/gan/, trained by core.training.Trainer), on tiny real images and real torch.

What the common checks do not cover: monitors and sample grids in the run directory, finite losses,
resume after a cancel continues the same run (bit-identical weights on CPU), longer runs continue from a
kept training state, saved generators sample without retraining, unsupported sizes, the losses and
DiffAugment.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import core.training.parallel as parallel
from core.errors import Cancelled, ParamError
from core.events import CANCEL_FILE, Reporter
from core.imageset import ImageSet
from core.methods import Context, get_method
from core.methods.gan.common import DIFFAUGMENT_CHOICES, d_loss_fn, diff_augment, g_loss_fn, parse_policy
from core.methods.gan.gan import AdversarialStep
from core.rundir import RunDir
from core.runtime import Placement
from core.training import LoopSettings, Trainer, Who, side_by_side

GANS = ["gan", "dcgan", "cgan", "wgan_gp", "acgan"]
TINY = {"steps": 3, "batch_size": 4, "monitor_every": 1, "sample_every": 2, "g_width": 4, "d_width": 4,
        "latent_dim": 8}
MONITOR_KEYS = {"d_loss", "g_loss", "g_grad_norm", "d_real", "d_fake", "diversity", "diversity_real"}


def tiny_set(size: int = 16, channels: int = 1, counts=(10, 6, 4)) -> ImageSet:
    rng = np.random.default_rng(0)
    imgs, labels = [], []
    for c, n in enumerate(counts):
        for i in range(n):
            img = rng.normal(100 + 50 * c, 20, (size, size, channels))
            img[:, (3 * i) % size] = 255 * (c % 2)
            imgs.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(c)
    return ImageSet(np.stack(imgs), np.array(labels), ["normal", "crack", "spot"])


def fit(name: str, train: ImageSet, reporter: Reporter | None = None, work_dir=None, seed: int = 0, **over):
    spec = get_method(name)
    params = spec.make_params("quick", {**TINY, **over})
    ctx = Context(reporter=reporter or Reporter(), device=torch.device("cpu"), seed=seed, method=name,
                  work_dir=work_dir)
    return spec.sampler_cls(params, ctx).fit(train, {"normal": 0, "crack": 4, "spot": 6})


@pytest.mark.parametrize("name", GANS)
def test_trains_with_monitors_grids_and_finite_losses(name, tmp_path):
    rep = Reporter(run_dir=tmp_path)
    sampler = fit(name, tiny_set(channels=3), rep)
    batch = sampler.sample("spot", 6, seed=0)
    assert batch.images.shape == (6, 16, 16, 3) and batch.images.dtype == np.uint8
    assert batch.parents == [[]] * 6
    events = RunDir(tmp_path).events()
    monitors = [e for e in events if e["kind"] == "monitor"]
    trained = [None] if get_method(name).conditional else ["crack", "spot"]   # normal needed nothing
    assert sorted({m["class"] for m in monitors}, key=str) == sorted(trained, key=str)
    assert len(monitors) == 3 * len(trained)
    for m in monitors:
        assert MONITOR_KEYS <= set(m) and m["method"] == name and m["total"] == 3
        assert all(isinstance(m[k], float) and math.isfinite(m[k]) for k in MONITOR_KEYS)
    if name == "acgan":
        assert all("aux_acc" in m for m in monitors)
    images = [e for e in events if e["kind"] == "image"]
    assert len(images) == 2 * len(trained)                    # step 2 and the end
    for e in images:
        assert (tmp_path / e["path"]).is_file() and e["path"].startswith(f"samples/{name}/")
    assert any(e["kind"] == "progress" and e["step"] == 3 for e in events)


@pytest.mark.parametrize("name", GANS)
def test_resume_after_cancel_continues_the_same_run(name, tmp_path):
    train = tiny_set()
    straight = fit(name, train, seed=1, steps=4)

    run = tmp_path / "run"

    def cancel_at_step_2(event):
        if event["kind"] == "progress" and event["step"] == 2:
            (run / CANCEL_FILE).write_text("")

    with pytest.raises(Cancelled):
        fit(name, train, Reporter(run, callback=cancel_at_step_2), work_dir=tmp_path / "work", seed=1, steps=4)
    (run / CANCEL_FILE).unlink()
    ckpts = list((tmp_path / "work").glob("*.safetensors"))
    assert ckpts, "a cancelled run leaves a checkpoint"
    resumed = fit(name, train, Reporter(run), work_dir=tmp_path / "work", seed=1, steps=4)
    monitors = [e for e in RunDir(run).events() if e["kind"] == "monitor"]
    for cls in {m["class"] for m in monitors}:                # per-class models may train side by side
        assert [m["step"] for m in monitors if m["class"] == cls][-2:] == [3, 4]   # 3 and 4 ran after the resume
    want, got = straight.get_state()[0], resumed.get_state()[0]
    assert list(want) == list(got)                            # zip below would hide a missing key
    for key in want:
        torch.testing.assert_close(want[key], got[key], rtol=0, atol=0, msg=key)
    np.testing.assert_array_equal(straight.sample("crack", 5, 3).images, resumed.sample("crack", 5, 3).images)


def test_more_steps_continue_a_kept_training_state(tmp_path):
    train = tiny_set()
    straight = fit("dcgan", train, steps=4)
    fit("dcgan", train, work_dir=tmp_path, steps=2, keep_train_state=True)
    rep = Reporter(tmp_path / "run")
    longer = fit("dcgan", train, rep, work_dir=tmp_path, steps=4, keep_train_state=True)
    monitors = [e for e in rep.events if e["kind"] == "monitor"]
    assert sorted(m["class"] for m in monitors) == ["crack", "crack", "spot", "spot"]   # two classes
    for cls in ("crack", "spot"):
        assert [m["step"] for m in monitors if m["class"] == cls] == [3, 4]
    want, got = straight.get_state()[0], longer.get_state()[0]
    assert list(want) == list(got)                            # a missing key would not show in a zip
    for key in want:
        torch.testing.assert_close(want[key], got[key], rtol=0, atol=0, msg=key)


def _trainer(params, images, rep=None, checkpoint=None, init=0):
    """A dcgan training process on `images` (networks initialised from `init`) and the loop that runs it."""
    from models.dcgan import build_dcgan
    who = Who("dcgan", "crack", 0)
    process = AdversarialStep(*build_dcgan(8, 1, 16, 4, 4, generator=torch.Generator().manual_seed(init)),
                              params, images, placement=Placement.for_device("cpu"), seed=0, who=who)
    return process, Trainer(process, LoopSettings.from_params(params, process.total), who=who,
                            reporter=rep or Reporter(), checkpoint=checkpoint)


def test_finished_checkpoint_keeps_only_the_generator_and_is_reused(tmp_path):
    p = get_method("dcgan").make_params("quick", {**TINY, "steps": 2})
    images = tiny_set().images[:6]
    first, loop = _trainer(p, images, checkpoint=tmp_path / "c.safetensors")
    loop.run()
    assert all(k.startswith("G.") for k in load_file(str(tmp_path / "c.safetensors")))   # G only at the end
    rep = Reporter()
    again, loop = _trainer(p, images, rep, checkpoint=tmp_path / "c.safetensors", init=5)
    assert loop.run()["resumed_from"] == 2                           # same settings: nothing to train
    assert not [e for e in rep.events if e["kind"] == "monitor"]
    want, got = first.G.state_dict(), again.G.state_dict()
    assert list(want) == list(got)
    for key in want:                                                 # G came from the checkpoint
        torch.testing.assert_close(want[key], got[key], rtol=0, atol=0, msg=key)
    rep = Reporter()
    _trainer(dataclasses.replace(p, lr_g=1e-3), images, rep, checkpoint=tmp_path / "c.safetensors")[1].run()
    assert [e["step"] for e in rep.events if e["kind"] == "monitor"] == [1, 2]   # other settings: anew


def test_a_finished_fit_removes_its_training_checkpoints_unless_kept(tmp_path):
    fit("dcgan", tiny_set(), work_dir=tmp_path / "a", steps=2)
    assert not list((tmp_path / "a").glob("*.safetensors"))
    fit("dcgan", tiny_set(), work_dir=tmp_path / "b", steps=2, keep_train_state=True)
    assert len(list((tmp_path / "b").glob("*.safetensors"))) == 2


def test_side_by_side_uses_every_core_at_the_runs_fixed_thread_count():
    cpu = torch.device("cpu")
    assert side_by_side(5, cpu, threads=1, cores=2) == [(5, 2, 1)]      # never a model on both cores
    assert side_by_side(1, cpu, threads=1, cores=2) == [(1, 1, 1)]
    assert side_by_side(0, cpu, threads=1, cores=2) == []
    assert side_by_side(5, torch.device("cuda"), threads=2, cores=2) == [(5, 1, 2)]
    assert side_by_side(6, cpu, threads=1, cores=4) == [(6, 4, 1)]
    assert side_by_side(5, cpu, threads=2, cores=16) == [(5, 5, 2)]
    assert side_by_side(5, cpu, threads=2, cores=1) == [(5, 1, 2)]


def test_models_side_by_side_equal_the_models_one_after_another(monkeypatch):
    """Two per-class models trained at once (two threads, one torch thread each) are bit for bit the
    models trained one after the other on one thread: they share nothing but the reporter."""
    train, before = tiny_set(), torch.get_num_threads()
    monkeypatch.setattr(parallel, "side_by_side", lambda n, device: [(n, 2, 1)])
    together = fit("dcgan", train, seed=3, steps=6)
    assert torch.get_num_threads() == before                  # the thread count is given back
    monkeypatch.setattr(parallel, "side_by_side", lambda n, device: [(n, 1, 1)])
    torch.set_num_threads(1)
    try:
        apart = fit("dcgan", train, seed=3, steps=6)
    finally:
        torch.set_num_threads(before)
    want, got = apart.get_state(), together.get_state()
    assert list(want[0]) == list(got[0]) and want[1]["trained"] == got[1]["trained"] == ["crack", "spot"]
    for key in want[0]:
        torch.testing.assert_close(want[0][key], got[0][key], rtol=0, atol=0, msg=key)


def test_a_failing_model_stops_the_one_beside_it_and_its_own_error_is_raised(monkeypatch, tmp_path):
    monkeypatch.setattr(parallel, "side_by_side", lambda n, device: [(n, 2, 1)])
    real_step, steps = AdversarialStep.step, {}

    def failing_step(self, monitor=False):
        steps[self.who.cls] = steps.get(self.who.cls, 0) + 1
        if self.who.cls == "spot" and steps["spot"] > 1:
            raise RuntimeError("spot's model broke")
        return real_step(self, monitor)

    monkeypatch.setattr(AdversarialStep, "step", failing_step)
    rep = Reporter(tmp_path / "run")
    with pytest.raises(RuntimeError, match="spot's model broke"):       # not the other's "stopped"
        fit("dcgan", tiny_set(), rep, work_dir=tmp_path / "work", steps=5000)
    crack = [e["step"] for e in rep.events if e["kind"] == "monitor" and e["class"] == "crack"]
    assert crack and max(crack) < 5000                        # crack stopped early instead of finishing
    assert (tmp_path / "work" / "dcgan_seed0_class1.safetensors").is_file()   # and kept its checkpoint


@pytest.mark.parametrize("name", ["dcgan", "acgan"])
def test_saved_generator_samples_without_retraining(name, tmp_path):
    sampler = fit(name, tiny_set(size=32))
    folder = sampler.save(tmp_path / "checkpoints" / name / "seed0")
    loaded = get_method(name).load_sampler(folder, Context(device=torch.device("cpu")))
    a = sampler.sample("crack", 300, seed=4).images                  # more than one generation chunk
    np.testing.assert_array_equal(a, loaded.sample("crack", 300, seed=4).images)
    assert a.shape == (300, 32, 32, 1)
    assert not np.array_equal(a, loaded.sample("crack", 300, seed=5).images)


def test_untrained_class_and_unknown_class_are_clear_errors():
    sampler = fit("dcgan", tiny_set())
    with pytest.raises(ParamError, match="no generator for class 'normal'"):
        sampler.sample("normal", 3, seed=0)
    with pytest.raises(ParamError, match="unknown class"):
        sampler.sample("dent", 3, seed=0)
    assert sampler.sample("normal", 0, seed=0).images.shape == (0, 16, 16, 1)


@pytest.mark.parametrize("name,size", [("dcgan", 24), ("cgan", 12), ("wgan_gp", 48)])
def test_unsupported_size_is_a_param_error(name, size):
    with pytest.raises(ParamError, match="power of two"):
        fit(name, tiny_set(size=size))


def test_non_square_images_are_a_param_error():
    ds = tiny_set()
    ds = ImageSet(ds.images[:, :, :8], ds.labels, ds.classes)
    with pytest.raises(ParamError, match="square"):
        fit("gan", ds)


def test_mlp_gan_takes_any_square_size():
    assert fit("gan", tiny_set(size=20)).sample("crack", 2, 0).images.shape == (2, 20, 20, 1)


def test_epochs_set_the_number_of_steps():
    rep = Reporter()
    fit("dcgan", tiny_set(), rep, epochs=2, hflip=True)   # crack: 6 images x 2 mirrors / batch 4 = 3 per epoch
    totals = {e["class"]: e["total"] for e in rep.events if e["kind"] == "monitor"}
    assert totals == {"crack": 6, "spot": 4}


def test_few_images_warn_as_the_paper_found():
    rep = Reporter()
    fit("dcgan", tiny_set(counts=(10, 6, 4)), rep)
    assert any("fewer than" in w and "oversampling" in w for w in rep.warnings)


def test_params_share_names_and_presets_follow_the_papers():
    fields = {n: {f.name for f in dataclasses.fields(get_method(n).params_cls)} for n in GANS}
    common = {"latent_dim", "steps", "epochs", "batch_size", "d_steps", "loss", "lr_g", "lr_d", "b1", "b2",
              "g_width", "d_width", "hflip", "diffaugment", "sample_every"}
    assert all(common <= f for f in fields.values())
    dc = get_method("dcgan").make_params("paper")
    assert dc.epochs == 500 and dc.diffaugment == "none" and dc.lr_g == 2e-4 and dc.b1 == 0.5
    wg = get_method("wgan_gp").make_params("paper")
    assert (wg.d_steps, wg.lr_d, wg.b1, wg.b2, wg.gp_weight) == (5, 1e-4, 0.0, 0.9, 10.0)
    with pytest.raises(ParamError):
        get_method("dcgan").make_params("quick", {"loss": "wasserstein_gp"})   # BatchNorm D: no penalty
    with pytest.raises(ParamError):
        get_method("dcgan").make_params("quick", {"diffaugment": "rotate"})


def test_losses_match_their_definitions():
    real, fake = torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.5])
    sig = torch.sigmoid
    bce_d = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    torch.testing.assert_close(d_loss_fn("non_saturating", real, fake), bce_d)
    torch.testing.assert_close(g_loss_fn("saturating", fake), torch.log(1 - sig(fake)).mean())
    torch.testing.assert_close(g_loss_fn("non_saturating", fake), -torch.log(sig(fake)).mean())
    torch.testing.assert_close(d_loss_fn("hinge", real, fake), torch.tensor((0 + 0) / 2 + (0 + 1.5) / 2))
    torch.testing.assert_close(d_loss_fn("wasserstein_gp", real, fake), fake.mean() - real.mean())
    # paper 000: when D rejects fakes confidently, the saturating loss gives G almost no gradient
    confident = torch.tensor([-8.0], requires_grad=True)
    (gs,) = torch.autograd.grad(g_loss_fn("saturating", confident), confident)
    (gn,) = torch.autograd.grad(g_loss_fn("non_saturating", confident), confident)
    assert abs(float(gs)) < 1e-3 < abs(float(gn))


@pytest.mark.parametrize("policy", DIFFAUGMENT_CHOICES)
def test_diffaugment_is_seeded_differentiable_and_keeps_shape(policy):
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    a = diff_augment(x, parse_policy(policy), torch.Generator().manual_seed(0))
    b = diff_augment(x, parse_policy(policy), torch.Generator().manual_seed(0))
    assert a.shape == x.shape
    torch.testing.assert_close(a, b)
    a.sum().backward()
    assert x.grad is not None
    if policy == "none":
        assert a is x


def test_cutout_and_translation_move_pixels():
    x = torch.ones(8, 1, 16, 16)
    cut = diff_augment(x, ("cutout",), torch.Generator().manual_seed(0))
    assert 0 < float((cut == 0).float().mean()) <= 0.25 + 1e-6     # at most a half-side square
    moved = diff_augment(torch.arange(256.0).view(1, 1, 16, 16).repeat(8, 1, 1, 1), ("translation",),
                         torch.Generator().manual_seed(1))
    assert not torch.equal(moved[0], moved[1]) or not torch.equal(moved[0], moved[2])


def test_trainer_runs_alone_and_rejects_bad_settings():
    p = get_method("dcgan").make_params("quick", TINY)
    _, loop = _trainer(p, tiny_set().images[:5])
    out = loop.run()
    assert out["steps"] == 3 and out["images"] == 10 and math.isfinite(out["d_loss"])
    with pytest.raises(ParamError):
        _trainer(p, tiny_set().images[:0])


def test_collapse_and_vanishing_gradient_flags_need_a_late_persistent_signal():
    p = get_method("dcgan").make_params("quick", {**TINY, "steps": 20, "loss": "saturating"})
    rep = Reporter()
    _, tr = _trainer(p, tiny_set().images[:5], rep)
    bad = {"d_loss": 0.01, "g_loss": -0.001, "g_grad_norm": 1e-4, "d_real": 0.999, "d_fake": 0.001,
           "diversity": 0.01, "diversity_real": 0.4}
    for step in (2, 3, 4, 5):            # early: a transient that often recovers, no flag
        tr.step = step
        tr._report(bad)
    assert not rep.warnings
    for step in (12, 13, 14, 15, 16):
        tr.step = step
        tr._report(bad)
    assert len(rep.warnings) == 2        # each flag once
    assert "mode collapse" in rep.warnings[0] and "vanishing gradients" in rep.warnings[1]
    assert rep.warnings[0].startswith("dcgan [crack]: ")
    tr.step = 17
    with pytest.raises(ParamError, match=r"dcgan \[crack\] diverged at step 17 \(d_loss is not finite\)"):
        tr._report({**bad, "d_loss": float("nan")})
