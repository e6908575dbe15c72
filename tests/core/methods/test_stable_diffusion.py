"""`stable_diffusion` with a tiny randomly initialised Stable Diffusion pipeline built here (a UNet2DConditionModel,
an AutoencoderKL and a CLIP text encoder of a few channels, a CLIP tokenizer whose vocabulary this file writes,
a DDIM scheduler), saved with save_pretrained to a temporary folder and loaded through the path users take:
DEFECTAUG_SD_MODEL -> the registry's spec -> sampler.fit / sample. Real torch and diffusers, no network (every
socket connection fails in these tests), 16 px images and two denoising steps."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ParamError
from core.events import Reporter
from core.methods import Context, get_method

from tests.core.methods import test_common_checks as common

pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[3]
ENV = "DEFECTAUG_SD_MODEL"


def write_tiny_pipeline(folder: Path) -> Path:
    """A Stable Diffusion 1.x-shaped pipeline of a few channels: 8x8 latents, 16 px images."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    words = folder / "words"
    words.mkdir(parents=True)
    (words / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (words / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, norm_num_groups=4, sample_size=16)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                        num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=64,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    tokenizer = CLIPTokenizer(str(words / "vocab.json"), str(words / "merges.txt"), model_max_length=64)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "model")
    return folder / "model"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return write_tiny_pipeline(tmp_path_factory.mktemp("sd"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*_a, **_k):
        raise OSError("a stable_diffusion test tried to reach the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def model(tiny_model, monkeypatch) -> Path:
    monkeypatch.setenv(ENV, str(tiny_model))
    return tiny_model


def sampler(preset: str = "tiny", reporter: Reporter | None = None, **overrides):
    spec = get_method("stable_diffusion")
    return spec.sampler_cls(spec.make_params(preset, overrides), Context(
        reporter=reporter or Reporter(), device=torch.device("cpu"), seed=0, method="stable_diffusion",
        normal_class="normal"))


NEEDED = {"normal": 0, "crack": 7, "spot": 9}


# -- configuration ------------------------------------------------------------------------------------------
def test_without_a_model_the_method_is_listed_unavailable_with_how_to_configure_it(monkeypatch, capsys, tmp_path):
    from core.cli import cmd_methods
    from core.experiment import ExperimentConfig
    monkeypatch.delenv(ENV, raising=False)
    spec = get_method("stable_diffusion")
    why = spec.unavailable_reason()
    assert not spec.available and why.startswith("needs a local Stable Diffusion model: set DEFECTAUG_SD_MODEL")
    assert "model_index.json" in why and "restart" in why
    cmd_methods(None)
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("stable_diffusion "))
    assert "diffusion" in row and "UNAVAILABLE: needs a local Stable Diffusion model" in row
    with pytest.raises(ParamError, match="stable_diffusion cannot run on this server: needs a local Stable"):
        ExperimentConfig.from_dict({"data": str(tmp_path), "methods": ["stable_diffusion"]})
    with pytest.raises(ParamError, match="set DEFECTAUG_SD_MODEL"):      # a job started anyway stops at once
        sampler().fit(common.tiny_set(), NEEDED)


def _folder(tmp_path: Path, tiny_model: Path, case: str) -> Path:
    import shutil
    if case == "missing":
        return tmp_path / "nowhere"
    if case == "a file":
        (tmp_path / "model.ckpt").write_bytes(b"x")
        return tmp_path / "model.ckpt"
    if case == "no model_index.json":
        return tmp_path
    dst = Path(shutil.copytree(tiny_model, tmp_path / "copy"))
    if case == "another pipeline":
        (dst / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    elif case == "no unet":
        shutil.rmtree(dst / "unet")
    elif case == "pickled weights":
        (dst / "unet" / "diffusion_pytorch_model.safetensors").rename(dst / "unet" / "diffusion_pytorch_model.bin")
    elif case == "corrupt weights":
        (dst / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    return dst


@pytest.mark.parametrize("case, message", [
    ("missing", "which is not a folder; set DEFECTAUG_SD_MODEL to a local Stable Diffusion"),
    ("a file", "which is not a folder"),
    ("no model_index.json", "which holds no model_index.json (not a diffusers pipeline folder)"),
    ("another pipeline", "which holds a StableDiffusionXLPipeline, not a Stable Diffusion 1.x/2.x pipeline"),
    ("no unet", "which lacks the folder unet"),
    ("pickled weights", "unet has no .safetensors weights; only safetensors are loaded"),
])
def test_a_wrong_path_says_what_is_wrong_in_the_listing_and_in_a_job(case, message, tiny_model, tmp_path, monkeypatch):
    where = _folder(tmp_path, tiny_model, case)
    monkeypatch.setenv(ENV, str(where))
    why = get_method("stable_diffusion").unavailable_reason()
    assert why.startswith(f"DEFECTAUG_SD_MODEL points to {where}") and message in why, why
    with pytest.raises(ParamError, match="stable_diffusion DEFECTAUG_SD_MODEL points to") as err:
        sampler().fit(common.tiny_set(), NEEDED)
    assert message in str(err.value)


def test_weights_that_cannot_be_read_fail_the_fit_with_the_folder_named(tiny_model, tmp_path, monkeypatch):
    where = _folder(tmp_path, tiny_model, "corrupt weights")
    monkeypatch.setenv(ENV, str(where))
    assert get_method("stable_diffusion").available        # it looks right from the outside
    with pytest.raises(ParamError, match=f"the model in {where} \\(DEFECTAUG_SD_MODEL\\) could not be loaded"):
        sampler().fit(common.tiny_set(), NEEDED)


def test_prompts_per_class_and_their_checks():
    spec = get_method("stable_diffusion")
    p = spec.make_params("quick", {"domain": "magnetic tile", "class_words": "MT_Crack=crack, MT_Blowhole=blow hole"})
    assert p.prompt_for("MT_Crack") == "a photo of crack defect on magnetic tile surface"
    assert p.prompt_for("MT_Blowhole") == "a photo of blow hole defect on magnetic tile surface"
    assert p.prompt_for("MT_Un-even") == "a photo of MT Un even defect on magnetic tile surface"
    with pytest.raises(ParamError, match=r"may name \{class\} and \{domain\} only, not \{kind\}"):
        spec.make_params("quick", {"prompt": "a {kind} of {class}"})
    with pytest.raises(ParamError, match="is not a template"):
        spec.make_params("quick", {"prompt": "a photo of {class"})
    with pytest.raises(ParamError, match="'MT_Crack' is not class=words"):
        spec.make_params("quick", {"class_words": "MT_Crack"})
    with pytest.raises(ParamError, match="strength x steps = 0.1 x 5 denoising steps, fewer than one"):
        spec.make_params("quick", {"strength": 0.1, "steps": 5})
    assert spec.make_params("quick", {"strength": 0.1, "steps": 5, "mode": "text"}).mode == "text"
    with pytest.raises(ParamError, match="multiple of 8"):
        spec.make_params("quick", {"resolution": 100})
    assert spec.make_params("paper").steps == 50 and spec.make_params("paper").lora_steps > 0


def test_importing_the_method_loads_neither_transformers_nor_the_pipelines():
    code = ("import sys; from core.methods import get_method; s = get_method('stable_diffusion'); "
            "s.unavailable_reason(); s.make_params('quick'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('transformers', 'diffusers')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# -- generation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels, size", [(1, 16), (3, 24)])
def test_text_mode_generates_the_run_size_and_channels_without_parents(model, channels, size):
    train = common.tiny_set(channels, size=size)
    s = sampler(mode="text").fit(train, NEEDED)
    batch = s.sample("crack", 5, seed=1)
    assert batch.images.shape == (5, size, size, channels) and batch.images.dtype == np.uint8
    assert batch.parents == [[]] * 5
    assert len({im.tobytes() for im in batch.images}) == 5
    np.testing.assert_array_equal(batch.images[:3], s.sample("crack", 3, seed=1).images)   # any batch, same image
    assert s.fit_info_["resolution"] == 16 and s.fit_info_["model"] == str(model)
    assert s.get_state()[0]["c1.images"].shape[0] == 0         # the text mode keeps no training image


@pytest.mark.parametrize("channels", [1, 3])
def test_img2img_starts_from_real_training_images_of_the_class_and_names_them(model, channels):
    train = common.tiny_set(channels)
    rep = Reporter()
    s = sampler(reporter=rep).fit(train, NEEDED)
    batch = s.sample("spot", 7, seed=0)
    assert batch.images.shape == (7, 16, 16, channels) and batch.images.dtype == np.uint8
    spots = [src for src, lab in zip(train.sources, train.labels) if train.classes[lab] == "spot"]
    assert all(len(p) == 1 and p[0] in spots for p in batch.parents)
    named = [p[0] for p in batch.parents]
    assert sorted(named[:3]) == sorted(spots) and set(named[3:6]) == set(spots)    # each once before any twice
    assert any("'spot' has only 3 training images" in w for w in rep.warnings), rep.warnings
    if channels == 1:       # grey runs get grey images (the model's RGB through BT.601 luma)
        assert batch.images.shape[-1] == 1


def test_img2img_strength_sets_how_much_of_the_source_is_kept(model):
    """Same sources, same noise: a lower strength lands nearer the (autoencoded) source than a higher one."""
    train = common.tiny_set(3)
    near = sampler(strength=0.25, steps=4).fit(train, NEEDED).sample("crack", 5, seed=0)
    far = sampler(strength=1.0, steps=4).fit(train, NEEDED).sample("crack", 5, seed=0)
    assert near.parents == far.parents
    src = {s: im for s, im in zip(train.sources, train.images)}
    x = np.stack([src[p[0]] for p in near.parents]).astype(float)
    d_near, d_far = (np.abs(b.images.astype(float) - x).mean() for b in (near, far))
    assert d_near < d_far, (d_near, d_far)


def test_the_checkpoint_names_its_model_and_refuses_another(model, tmp_path, monkeypatch):
    train = common.tiny_set()
    s = sampler().fit(train, NEEDED)
    folder = s.save(tmp_path / "ck")
    spec = get_method("stable_diffusion")
    again = spec.load_sampler(folder, Context(device=torch.device("cpu")))
    np.testing.assert_array_equal(s.sample("crack", 4, seed=3).images, again.sample("crack", 4, seed=3).images)
    assert again.sample("crack", 4, seed=3).parents == s.sample("crack", 4, seed=3).parents
    other = write_tiny_pipeline(tmp_path / "other")
    (other / "unet" / "config.json").write_text(
        (other / "unet" / "config.json").read_text().replace('"layers_per_block": 1', '"layers_per_block": 1 '))
    monkeypatch.setenv(ENV, str(other))
    with pytest.raises(ParamError, match="made with another model"):
        spec.load_sampler(folder, Context(device=torch.device("cpu")))


# -- LoRA ---------------------------------------------------------------------------------------------------
def test_lora_on_a_cpu_is_skipped_with_a_warning(model):
    rep = Reporter()
    s = sampler(reporter=rep, lora_steps=3).fit(common.tiny_set(), NEEDED)
    assert s.fit_info_["lora"] == "skipped: no CUDA GPU" and s.lora_ is None
    assert any("LoRA fine-tuning (lora_steps=3) needs a CUDA GPU" in w for w in rep.warnings)


def test_lora_fine_tuning_trains_the_adapters_only_and_round_trips(model, tmp_path):
    """The GPU-only step, run here on the CPU by calling it directly: the pretrained weights stay as they were,
    the adapters move, the images change, and a checkpoint brings the adapters back."""
    train = common.tiny_set(3)
    s = sampler(lora_steps=6, lora_lr=1e-2, lora_batch_size=4, monitor_every=1).fit(train, NEEDED)
    before = s.sample("crack", 3, seed=0).images
    frozen = {k: v.clone() for k, v in s.pipe_.unet.state_dict().items()}
    info = s._fit_lora(torch.device("cpu"))
    assert info["steps"] == 6 and info["images"] == 5 + 3      # the minority classes' images, not the normal ones
    after_state = s.pipe_.unet.state_dict()
    assert all(torch.equal(after_state[k.replace(".to_q.", ".to_q.base.").replace(".to_k.", ".to_k.base.")
                                       .replace(".to_v.", ".to_v.base.").replace(".to_out.0.", ".to_out.0.base.")], v)
               for k, v in frozen.items())
    ups = [m.up.weight for m in s.lora_.values()]
    assert ups and any(float(u.detach().abs().max()) > 0 for u in ups)   # zero at the start: the adapters learnt
    assert all(not p.requires_grad for n, p in s.pipe_.unet.named_parameters() if ".lora." not in n)
    after = s.sample("crack", 3, seed=0).images
    assert not np.array_equal(before, after)
    s.fit_info_["lora"] = info
    loaded = get_method("stable_diffusion").load_sampler(s.save(tmp_path / "ck"), Context(device=torch.device("cpu")))
    np.testing.assert_array_equal(after, loaded.sample("crack", 3, seed=0).images)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision, dtype", [("auto", torch.float16), ("bf16", torch.bfloat16)])
def test_on_cuda_half_precision_attention_slicing_and_lora(model, precision, dtype):
    spec = get_method("stable_diffusion")
    rep = Reporter()
    s = spec.sampler_cls(spec.make_params("tiny", {"precision": precision, "lora_steps": 4, "monitor_every": 1}),
                         Context(reporter=rep, device=torch.device("cuda"), seed=0, method="stable_diffusion"))
    s.fit(common.tiny_set(3), NEEDED)
    assert s.pipe_.unet.dtype == dtype and s.pipe_.unet.device.type == "cuda"
    assert s.pipe_.unet.attn_processors and all(
        type(p).__name__.startswith("Sliced") for p in s.pipe_.unet.attn_processors.values())
    assert s.fit_info_["lora"]["steps"] == 4
    losses = [e["loss"] for e in rep.events if e["kind"] == "monitor"]
    assert losses and all(np.isfinite(losses))
    batch = s.sample("crack", 5, seed=0)
    assert batch.images.shape == (5, 16, 16, 3) and batch.images.dtype == np.uint8


# -- the common checks, run with the tiny model (they skip the method when no model is configured) -----------
def test_the_common_checks_pass_with_the_tiny_model(model, tmp_path):
    name = "stable_diffusion"
    for channels in (1, 3):
        common.test_count_shape_dtype_and_ratio(name, channels)
    common.test_same_seed_same_images(name)
    common.test_images_are_not_all_copies_of_one(name)
    common.test_checkpoint_round_trip(name, tmp_path)
    common.test_class_of_one_image_never_crashes_and_says_what_it_did(name)
    common.test_provenance_is_what_the_spec_declares(name)
    common.test_presets_build_and_every_param_is_documented(get_method(name))


# -- configurations that cannot build or would not fit (issue 37, item 11) --------------------------------------
def _with_config(tmp_path: Path, tiny_model: Path, comp: str, change) -> Path:
    import shutil
    dst = Path(shutil.copytree(tiny_model, tmp_path / "copy"))
    name = "scheduler_config.json" if comp == "scheduler" else "config.json"
    cfg = json.loads((dst / comp / name).read_text())
    (dst / comp / name).write_text(json.dumps(change(cfg)))
    return dst


@pytest.mark.parametrize("comp", ["unet", "vae", "text_encoder", "scheduler"])
def test_an_empty_config_makes_the_method_unavailable_with_why(comp, tiny_model, tmp_path, monkeypatch):
    """An empty config crashed the run with a TypeError: now the listing says which file, and a job started
    anyway stops at once with the same words."""
    where = _with_config(tmp_path, tiny_model, comp, lambda cfg: {})
    monkeypatch.setenv(ENV, str(where))
    spec = get_method("stable_diffusion")
    why = spec.unavailable_reason()
    assert not spec.available and f"{comp}/" in why and "holds no settings" in why, why
    with pytest.raises(ParamError, match="holds no settings"):
        sampler().fit(common.tiny_set(), NEEDED)


def test_absurd_sizes_are_refused_before_anything_is_allocated(tiny_model, tmp_path, monkeypatch):
    """A unet config of 2 x 40,960 channels (567 billion parameters): counted on the meta device, refused by the
    preflight of a job and by the fit itself, before from_pretrained allocates a byte."""
    from core.jobs.preflight import check_model_memory
    from core.experiment import ExperimentConfig
    from core.methods.diffusion.sd_model import pipeline_parameters
    where = _with_config(tmp_path, tiny_model, "unet",
                         lambda cfg: dict(cfg, block_out_channels=[40960, 40960], norm_num_groups=4))
    monkeypatch.setenv(ENV, str(where))
    assert get_method("stable_diffusion").available          # the files look right
    n = pipeline_parameters(where)
    assert n > 5e9
    monkeypatch.setenv("DEFECTAUG_MAX_JOB_MEMORY", "8e9")
    cfg = ExperimentConfig.from_dict({"data": str(tmp_path), "methods": ["stable_diffusion"], "device": "cpu"})
    with pytest.raises(ParamError, match=r"stable_diffusion would need about \d+\.\d GB of memory to load the "
                                         r"Stable Diffusion model in copy \([\d,]+ million parameters in float32\)"):
        check_model_memory(cfg, 3)
    import diffusers
    loads = []
    monkeypatch.setattr(diffusers.StableDiffusionPipeline, "from_pretrained",
                        classmethod(lambda *a, **k: loads.append(1)))
    with pytest.raises(ParamError, match="more than the .* GB available now"):
        sampler().fit(common.tiny_set(), NEEDED)
    assert loads == []


def test_a_config_that_does_not_build_is_named(tiny_model, tmp_path, monkeypatch):
    from core.methods.diffusion.sd_model import pipeline_parameters
    where = _with_config(tmp_path, tiny_model, "vae", lambda cfg: dict(cfg, block_out_channels="wide"))
    with pytest.raises(ParamError, match=r"its vae/config.json does not describe a usable AutoencoderKL"):
        pipeline_parameters(where)


def test_the_tiny_model_passes_the_memory_checks(model):
    from core.experiment import ExperimentConfig
    from core.jobs.preflight import check_model_memory
    from core.methods.diffusion.sd_model import pipeline_parameters
    spec = get_method("stable_diffusion")
    n = pipeline_parameters(model)
    assert 0 < n < 1e6
    bytes_, what = spec.sampler_cls.model_memory(spec.make_params("tiny", {}), "cpu")
    assert bytes_ == 4 * n and "float32" in what
    check_model_memory(ExperimentConfig.from_dict({"data": str(model), "methods": ["stable_diffusion"],
                                                   "device": "cpu"}), 3)
