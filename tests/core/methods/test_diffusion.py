"""ddpm_cfg and ddpm_translate (core/methods/diffusion/ddpm.py) on tiny images with tiny real diffusers UNets:
the guidance formula, the denoising loop that applies it, SDEdit's strength and provenance, one trained model
shared by both methods in a run, checkpoints and resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import ParamError
from core.events import Reporter
from core.methods import Context, get_method
from core.methods.diffusion.base import denoise, guided_eps, sampling_scheduler
from core.rundir import RunDir
from models.diffusion import build_unet
from tests.core.methods.test_common_checks import tiny_set

ARCH = {"channels": 1, "size": 16, "n_classes": 3, "width": 8, "levels": 2, "layers_per_block": 1,
        "attention": True, "schedule": "squaredcos_cap_v2", "train_timesteps": 100, "run_size": 16}


def tiny_unet(seed: int = 0):
    return build_unet(1, 16, 3, width=8, levels=2, generator=torch.Generator().manual_seed(seed)).eval()


def fitted(name: str, tmp_path, seed: int = 0, reporter: Reporter | None = None, **overrides):
    spec = get_method(name)
    params = spec.make_params("tiny", {"steps": 3, **overrides})
    ctx = Context(reporter=reporter or Reporter(), device=torch.device("cpu"), seed=seed, method=name,
                  work_dir=tmp_path / name / "training", shared_dir=tmp_path / "_shared", normal_class="normal")
    train = tiny_set()
    return spec.sampler_cls(params, ctx).fit(train, {"normal": 0, "crack": 7, "spot": 9}), train


def test_w_zero_is_the_conditional_prediction_and_w_mixes_as_the_paper_says():
    unet = tiny_unet()
    x = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(50)
    c = torch.tensor([0, 1, 2, 1])
    null = torch.full_like(c, 3)
    with torch.no_grad():
        e_c = unet(x, t, class_labels=c).sample
        e_u = unet(x, t, class_labels=null).sample
        assert not torch.allclose(e_c, e_u)                      # the class embedding changes the prediction
        torch.testing.assert_close(guided_eps(unet, x, t, c, 3, 0.0), e_c)
        for w in (0.1, 7.5):
            torch.testing.assert_close(guided_eps(unet, x, t, c, 3, w), (1 + w) * e_c - w * e_u,
                                       rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["dpm", "ddim"])
def test_the_denoising_loop_steps_the_scheduler_with_the_guided_noise(kind):
    unet, w = tiny_unet(), 2.0
    labels = torch.tensor([1, 2])
    got = denoise(unet, ARCH, labels, w=w, steps=4, kind=kind, generator=torch.Generator().manual_seed(3))
    # the same loop written out: diffusers' scheduler, two separate UNet passes, the formula
    sched = sampling_scheduler(ARCH, kind)
    sched.set_timesteps(4)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * sched.init_noise_sigma
    with torch.no_grad():
        for t in sched.timesteps:
            e_c = unet(x, t, class_labels=labels).sample
            e_u = unet(x, t, class_labels=torch.full_like(labels, 3)).sample
            x = sched.step((1 + w) * e_c - w * e_u, t, x).prev_sample
    torch.testing.assert_close(got, x.clamp(-1, 1), rtol=1e-4, atol=1e-4)
    other = denoise(unet, ARCH, labels, w=0.0, steps=4, kind=kind, generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(got, other)                        # guidance changes what comes out


def test_ddpm_cfg_trains_logs_its_loss_and_samples_the_requested_classes(tmp_path):
    rep = Reporter()
    monitors = []
    rep.emit = lambda kind, **kw: monitors.append(kw) if kind == "monitor" else None   # keep what the loop reports
    sampler, _ = fitted("ddpm_cfg", tmp_path, reporter=rep, monitor_every=1)
    assert [m["step"] for m in monitors] == [1, 2, 3] and all(np.isfinite(m["loss"]) for m in monitors)
    assert {m["method"] for m in monitors} == {"ddpm_cfg"}
    for cls, n in (("crack", 7), ("spot", 2)):
        batch = sampler.sample(cls, n, seed=1)
        assert batch.images.shape == (n, 16, 16, 1) and batch.images.dtype == np.uint8
        assert batch.parents == [[]] * n
    a, b = sampler.sample("crack", 3, seed=1).images, sampler.sample("spot", 3, seed=1).images
    assert not np.array_equal(a, b)                              # the class label reaches the samples
    with pytest.raises(ParamError, match="knows no class"):
        sampler.sample("scratch", 1, seed=0)


def test_a_lower_resolution_model_is_upsampled_to_the_run_size(tmp_path):
    sampler, _ = fitted("ddpm_cfg", tmp_path, resolution=8)
    assert sampler.arch_["size"] == 8
    assert sampler.sample("crack", 2, seed=0).images.shape == (2, 16, 16, 1)


def test_translate_with_strength_zero_returns_its_normal_training_source(tmp_path):
    sampler, train = fitted("ddpm_translate", tmp_path, strength=0.0)
    batch = sampler.sample("crack", 14, seed=2)                  # more than the 12 normal images: repeats
    normal = train.of_class("normal")
    by_source = dict(zip(normal.sources, normal.images))
    assert all(len(p) == 1 and p[0] in by_source for p in batch.parents)
    assert len({p[0] for p in batch.parents}) == 12              # every normal image once before any twice
    for img, (src,) in zip(batch.images, batch.parents):
        np.testing.assert_array_equal(img, by_source[src])


def test_translate_changes_its_source_more_as_strength_grows(tmp_path):
    def change(strength: float) -> float:
        sampler, train = fitted("ddpm_translate", tmp_path / str(strength), strength=strength, resolution=8,
                                 sample_steps=10)
        batch = sampler.sample("spot", 6, seed=2)
        normal = dict(zip(train.of_class("normal").sources, train.of_class("normal").images))
        src = np.stack([normal[p[0]] for p in batch.parents]).astype(float)
        return float(np.abs(batch.images.astype(float) - src).mean())
    weak, strong = change(0.2), change(1.0)
    assert 0 < weak < strong


def test_both_methods_of_a_run_share_one_trained_model(tmp_path):
    rep = Reporter()
    logs = []
    rep.log = logs.append
    cfg, _ = fitted("ddpm_cfg", tmp_path, reporter=rep)
    tr, _ = fitted("ddpm_translate", tmp_path, reporter=rep)
    assert cfg.fit_info_["resumed_from"] == 0 and tr.fit_info_["resumed_from"] == 3
    assert any("already trained in this run" in line for line in logs)
    for (k, a), (_, b) in zip(cfg.unet_.state_dict().items(), tr.unet_.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    other, _ = fitted("ddpm_translate", tmp_path, seed=1)        # another seed trains its own
    assert other.fit_info_["resumed_from"] == 0
    strong, _ = fitted("ddpm_cfg_w75", tmp_path)                 # the paper's w = 7.5: same model, other samples
    assert strong.fit_info_["resumed_from"] == 3 and strong.params.guidance == 7.5 == 75 * cfg.params.guidance
    assert not np.array_equal(strong.sample("crack", 2, seed=5).images, cfg.sample("crack", 2, seed=5).images)


def test_a_saved_sampler_samples_the_same_images_later(tmp_path):
    sampler, _ = fitted("ddpm_translate", tmp_path)
    sampler.save(tmp_path / "ckpt")
    again = get_method("ddpm_translate").load_sampler(tmp_path / "ckpt", Context(device=torch.device("cpu")))
    a, b = sampler.sample("crack", 3, seed=4), again.sample("crack", 3, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.parents == b.parents


def test_translate_without_a_normal_class_is_refused_before_the_run():
    spec = get_method("ddpm_translate")
    why = spec.sampler_cls.check_data(spec.make_params("quick"), {"crack": 20, "spot": 20}, None)
    assert "normal class" in why
    why = spec.sampler_cls.check_data(spec.make_params("quick"), {"normal": 90, "crack": 3}, "normal")
    assert "at least 5" in why and "crack (3)" in why
    assert get_method("ddpm_cfg").sampler_cls.check_data(spec.make_params("quick"), {"crack": 3}, None) is None


def test_the_shared_model_lives_outside_every_method_folder(tmp_path):
    rd = RunDir(tmp_path / "run")
    shared = rd.shared_training_dir(0)
    assert shared.parent.parent == rd.root / "checkpoints"
    assert not any(shared.is_relative_to(rd.checkpoint_dir(m, 0)) for m in ("ddpm_cfg", "ddpm_translate"))
    assert rd.latent_methods() == []


def test_the_sampler_clips_its_x0_prediction_to_the_image_range():
    """DPM-Solver++ on the cosine schedule without thresholding saturated a trained model's samples to
    black-and-white noise; the sampler must clip (DDIM through clip_sample, DPM through thresholding)."""
    assert sampling_scheduler(ARCH, "dpm").config.thresholding
    assert sampling_scheduler(ARCH, "dpm").config.sample_max_value == 1.0
    assert sampling_scheduler(ARCH, "ddim").config.clip_sample
