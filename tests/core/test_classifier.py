import dataclasses
import numpy as np
import pytest
import torch

from core import classifier as clf
from core.errors import ParamError
from core.imageset import ImageSet


def separable(n=40, size=16, seed=0):
    """Dark images are class 0, bright ones class 1 (a CNN must get this right)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    imgs = np.stack([rng.normal(60 + 120 * l, 15, (size, size, 1)) for l in labels]).clip(0, 255).astype(np.uint8)
    return ImageSet(imgs, labels, ["dark", "bright"], [f"{l}/{i}.png" for i, l in enumerate(labels)])


P = clf.ClassifierParams(epochs=3, batch_size=8, width=4, label_smoothing=0.0)


def test_same_seed_same_initial_weights_different_seed_different():
    a = clf.make_model(P, 1, 2, seed=7).state_dict()
    b = clf.make_model(P, 1, 2, seed=7).state_dict()
    c = clf.make_model(P, 1, 2, seed=8).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_is_deterministic_on_cpu_and_learns():
    data = separable()
    r1 = clf.train(data, P, seed=0, device="cpu")
    r2 = clf.train(data, P, seed=0, device="cpu")
    p1, p2 = clf.predict(r1.model, data), clf.predict(r2.model, data)
    np.testing.assert_array_equal(p1, p2)
    assert (p1.argmax(1) == data.labels).mean() == 1.0
    np.testing.assert_allclose(p1.sum(1), 1.0, rtol=1e-5)


def test_steps_override_and_curve_points():
    data = separable()
    seen = []
    res = clf.train(data, P, seed=0, steps=25, device="cpu", eval_set=data, on_epoch=seen.append)
    assert res.steps == 25
    assert [p["epoch"] for p in res.curve] == [1, 2, 3]
    assert res.curve[-1]["step"] == 25 and seen == res.curve
    assert 0.0 <= res.curve[-1]["test_f1"] <= 1.0 and "test_f1_raw" in res.curve[-1]
    assert res.curve[-1]["lr"] == pytest.approx(0.0, abs=1e-9)     # cosine decays to zero
    assert clf.steps_for(40, P) == 3 * 5


def test_weight_average_differs_from_last_weights():
    data = separable()
    avg = clf.train(data, P, seed=0, device="cpu").model
    last = clf.train(data, clf.ClassifierParams(epochs=3, batch_size=8, width=4, ema_halflife=0.0), seed=0,
                     device="cpu").model
    differs = [not torch.equal(a, b) for a, b in zip(avg.parameters(), last.parameters())]
    assert any(differs)


def test_class_weights_are_inverse_frequency():
    w = clf.inverse_frequency_weights(np.array([0] * 8 + [1] * 2), 3)
    np.testing.assert_allclose(w, [10 / (3 * 8), 10 / (3 * 2), 0.0], rtol=1e-6)


def test_class_weighted_loss_changes_training():
    data = separable().subset(list(range(0, 40, 2)) + [1, 3])      # 20 dark, 2 bright
    plain = clf.train(data, P, seed=0, device="cpu")
    weighted = clf.train(data, P, seed=0, device="cpu",
                         class_weights=clf.inverse_frequency_weights(data.labels, 2))
    assert not np.allclose(clf.predict(plain.model, data), clf.predict(weighted.model, data))


def tiny(channels: int, n: int = 4, size: int = 32) -> ImageSet:
    rng = np.random.default_rng(channels)
    labels = np.arange(n) % 2
    return ImageSet(rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8), labels, ["a", "b"],
                    [f"{i}.png" for i in range(n)])


@pytest.mark.parametrize("channels", [1, 3], ids=["grey", "rgb"])
@pytest.mark.parametrize("arch", clf.ARCHS)
def test_every_arch_trains_two_steps_from_scratch(arch, channels):
    data = tiny(channels)
    p = clf.ClassifierParams(arch=arch, batch_size=2, ema_halflife=0.0)
    res = clf.train(data, p, seed=0, steps=2, device="cpu")
    assert res.steps == 2 and np.isfinite(res.curve[-1]["loss"])
    probs = clf.predict(res.model, data)
    assert probs.shape == (4, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    convs = [m for m in res.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == channels          # the first conv takes the images as they are


def imagenet_file(folder, arch: str, seed: int = 123, suffix: str = ".pth"):
    """A randomly initialised torchvision `arch` (1000 classes) saved under torchvision's file name."""
    import torchvision.models as tvm
    from core.backbones import expected_files
    torch.manual_seed(seed)
    donor = getattr(tvm, arch)(weights=None)
    folder.mkdir(parents=True, exist_ok=True)
    name = expected_files(arch)[0] if suffix == ".pth" else f"{arch}.safetensors"
    path = folder / name
    if suffix == ".pth":
        torch.save(donor.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    return path, donor.state_dict()


@pytest.mark.parametrize("arch,suffix", [("resnet18", ".pth"), ("efficientnet_b0", ".safetensors")])
def test_local_imagenet_weights_load_through_the_configured_folder(tmp_path, monkeypatch, arch, suffix):
    from core.experiment import ExperimentConfig
    from core.jobs import check_classifier
    from models.cnn import Pretrained, head_prefix
    path, state = imagenet_file(tmp_path / "weights", arch, suffix=suffix)
    monkeypatch.setenv("DEFECTAUG_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv(f"DEFECTAUG_WEIGHTS_{arch.upper()}", raising=False)
    assert clf.pretrained_reason(arch) == ""
    cfg = ExperimentConfig.from_dict({"data": str(tmp_path), "overrides": {"classifier": {
        "arch": arch, "pretrained": True, "batch_size": 2}}})
    check_classifier(cfg, from_app=True)                  # what the app and the CLI check before queueing
    model = clf.make_model(cfg.classifier_params(), channels=1, num_classes=2, seed=0)   # what train() builds
    assert isinstance(model, Pretrained)
    net = clf.network(model)
    mine = net.state_dict()
    head = head_prefix(net)
    backbone = [k for k in state if not k.startswith(head)]
    assert backbone and all(torch.equal(mine[k], state[k]) for k in backbone)
    assert mine[head + "weight"].shape[0] == 2            # a fresh head for this run's classes
    again = clf.make_model(cfg.classifier_params(), channels=1, num_classes=2, seed=0)
    assert torch.equal(clf.network(again).state_dict()[head + "weight"], mine[head + "weight"])   # shared init
    # grey images are repeated to RGB in front of the 3-channel ImageNet conv, and it trains
    res = clf.train(tiny(1), cfg.classifier_params(), seed=0, steps=2, device="cpu")
    assert clf.predict(res.model, tiny(1)).shape == (4, 2)


def test_pretrained_input_is_imagenet_normalised_and_backbone_learns_slower(tmp_path, monkeypatch):
    from models.cnn import IMAGENET_MEAN, IMAGENET_STD, ImageNetInput
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 3, 1)
    out = ImageNetInput()(x)
    assert out.shape == (1, 3, 3, 1)
    expect = (torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 3, 1) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(out, expect)
    path, _ = imagenet_file(tmp_path, "resnet18")
    monkeypatch.setenv("DEFECTAUG_WEIGHTS_RESNET18", str(path))      # a path per arch
    p = clf.ClassifierParams(arch="resnet18", pretrained=True, lr=1e-3, backbone_lr_scale=0.1)
    groups = clf.param_groups(clf.make_model(p, 3, 2, seed=0), p)
    assert [g["lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(1e-4)]
    assert sum(t.numel() for t in groups[0]["params"]) == 512 * 2 + 2          # fc only


def test_missing_or_wrong_weights_file_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.delenv("DEFECTAUG_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("DEFECTAUG_WEIGHTS_RESNET50", raising=False)
    why = clf.pretrained_reason("resnet50")
    assert "resnet50-11ad3fa6.pth" in why and "DEFECTAUG_WEIGHTS_DIR" in why and "DEFECTAUG_WEIGHTS_RESNET50" in why
    p = clf.ClassifierParams(arch="resnet50", pretrained=True)
    with pytest.raises(ParamError, match="resnet50-11ad3fa6.pth"):
        clf.make_model(p, 1, 2, seed=0)
    monkeypatch.setenv("DEFECTAUG_WEIGHTS_DIR", str(tmp_path))
    assert str(tmp_path) in clf.pretrained_reason("resnet50")
    assert "from scratch only" in clf.pretrained_reason("small_cnn")
    # a file of another arch under the expected name: refused, never loaded in part
    path, _ = imagenet_file(tmp_path / "other", "resnet18")
    wrong = tmp_path / "resnet50-11ad3fa6.pth"
    path.rename(wrong)
    assert clf.pretrained_reason("resnet50") == ""       # the file is there; its content is read when training
    with pytest.raises(ParamError, match="does not hold resnet50 weights"):
        clf.make_model(p, 1, 2, seed=0)
    wrong.write_bytes(b"not a checkpoint")
    with pytest.raises(ParamError, match="could not read the weights file"):
        clf.make_model(p, 1, 2, seed=0)
    with pytest.raises(ParamError, match="does not exist"):
        clf.make_model(clf.ClassifierParams(arch="resnet50", pretrained=True,
                                            weights_path=str(tmp_path / "nope.pth")), 1, 2, seed=0)
    with pytest.raises(ParamError, match="no ImageNet weights"):
        clf.ClassifierParams(arch="small_cnn", pretrained=True).validate()


def test_preflight_refuses_a_pretrained_run_without_weights(tmp_path, monkeypatch):
    from core.jobs import preflight
    monkeypatch.delenv("DEFECTAUG_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("DEFECTAUG_WEIGHTS_RESNET18", raising=False)
    config = {"data": str(tmp_path), "overrides": {"classifier": {"arch": "resnet18", "pretrained": True}}}
    with pytest.raises(ParamError, match="resnet18-f37072fd.pth.*from scratch"):
        preflight(config)
    with pytest.raises(ParamError, match="command-line setting"):
        preflight({"data": str(tmp_path), "overrides": {"classifier": {
            "arch": "resnet18", "pretrained": True, "weights_path": str(tmp_path / "w.pth")}}}, workspace=object())


def test_cyclegan_paper_recipe_and_explicit_values_over_it(tmp_path):
    from core.experiment import ExperimentConfig
    cp = ExperimentConfig.from_dict({"data": str(tmp_path), "overrides": {"classifier": {
        "arch": "resnet34", "recipe": "cyclegan_paper"}}}).classifier_params()
    assert (cp.pretrained, cp.lr, cp.batch_size) == (True, 1e-3, 4)
    cp = ExperimentConfig.from_dict({"data": str(tmp_path), "overrides": {"classifier": {
        "arch": "resnet34", "recipe": "cyclegan_paper", "batch_size": 8}}}).classifier_params()
    assert cp.batch_size == 8
    with pytest.raises(ParamError, match="unknown classifier recipe"):
        ExperimentConfig.from_dict({"data": str(tmp_path), "overrides": {"classifier": {"recipe": "x"}}})


def test_run_keys_of_earlier_runs_stay_valid(tmp_path):
    """The fields added for pretrained backbones are left out of the key while at their defaults."""
    import hashlib
    import json
    from core.experiment import ExperimentConfig
    cfg = ExperimentConfig.from_dict({"data": str(tmp_path)})
    d = cfg.data_key()
    d["classifier"] = {k: v for k, v in dataclasses.asdict(cfg.classifier_params()).items()
                       if k not in ("pretrained", "backbone_lr_scale")}
    d["threads"] = cfg.num_threads      # the fixed thread count is part of the key (issue 37: runs made before retrain)
    assert cfg.key() == hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


@pytest.mark.parametrize("arch,pretrained", [("small_cnn", False), ("resnet18", False), ("resnet18", True)])
def test_saved_classifier_rebuilds_and_loads_into_plain_torchvision(tmp_path, monkeypatch, arch, pretrained):
    if pretrained:
        path, _ = imagenet_file(tmp_path, "resnet18")
        monkeypatch.setenv("DEFECTAUG_WEIGHTS_RESNET18", str(path))
    data = tiny(1)
    p = clf.ClassifierParams(arch=arch, pretrained=pretrained, batch_size=2, width=4)
    res = clf.train(data, p, seed=3, steps=2, device="cpu")
    tensors, meta = clf.saved_form(res.model, p, data.classes, 1, 32, seed=3)
    assert meta["preprocessing"]["network_channels"] == (3 if pretrained else 1)
    monkeypatch.delenv("DEFECTAUG_WEIGHTS_RESNET18", raising=False)       # rebuilding reads no ImageNet file
    back = clf.rebuild(tensors, meta)
    np.testing.assert_allclose(clf.predict(back, data), clf.predict(res.model, data), atol=1e-6)
    if arch != "small_cnn":                  # the file is a torchvision state dict, as the export says
        import torchvision.models as tvm
        plain = tvm.resnet18(weights=None, num_classes=2)
        if not pretrained:
            plain.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        plain.load_state_dict(tensors)


def test_empty_training_set_is_refused():
    with pytest.raises(ParamError, match="empty"):
        clf.train(ImageSet.empty(["a", "b"], (8, 8, 1)), P, seed=0, device="cpu")


def test_default_device_is_picked_when_none_is_given():
    # train()'s default device=None must mean "auto" (CUDA when present), not a crash
    from core.methods.base import pick_device
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device(None).type == expected and pick_device("auto").type == expected
    res = clf.train(separable(n=8), P, seed=0, steps=2)
    assert next(res.model.parameters()).device.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ParamError, match="CUDA"):
            pick_device("cuda")


def test_label_smoothing_softens_the_predictions():
    data = separable()
    hard = clf.train(data, P, seed=0, device="cpu")
    soft = clf.train(data, clf.ClassifierParams(epochs=3, batch_size=8, width=4, label_smoothing=0.3), seed=0,
                     device="cpu")
    p_hard, p_soft = clf.predict(hard.model, data), clf.predict(soft.model, data)
    assert (p_soft.argmax(1) == data.labels).mean() == 1.0
    # a smoothed target caps how sure the model is taught to be
    assert p_soft.max(1).mean() < p_hard.max(1).mean()


def test_bf16_only_where_the_hardware_computes_it_and_never_when_off():
    off = clf.ClassifierParams(amp="off")
    assert not clf.use_bf16(off, torch.device("cpu"))
    native = bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    assert clf.use_bf16(clf.ClassifierParams(), torch.device("cpu")) == native
    data = separable()
    auto = clf.train(data, P, seed=0, device="cpu")
    fp32 = clf.train(data, dataclasses.replace(P, amp="off"), seed=0, device="cpu")   # only amp differs
    assert (clf.predict(fp32.model, data).argmax(1) == data.labels).mean() == 1.0
    same = all(torch.equal(a, b) for a, b in zip(auto.model.parameters(), fp32.model.parameters()))
    assert same == (not native)      # bf16 changes the arithmetic, float32 everywhere else is bit-identical


# --- soft targets (class shares, as cmo labels a defect box by its area) --------------------------------
def test_one_hot_shares_train_exactly_as_class_indexes():
    """The soft-target path is the hard one when every image is wholly its class (same loss, same weights)."""
    data = separable()
    hard = clf.train(data, P, seed=0, device="cpu").model
    as_shares = ImageSet(data.images, data.labels, data.classes, data.sources, np.eye(2)[data.labels])
    soft = clf.train(as_shares, P, seed=0, device="cpu").model
    np.testing.assert_allclose(clf.predict(hard, data), clf.predict(soft, data), atol=1e-5)


def test_class_shares_train_the_classifier_towards_them():
    """Bright images labelled 60% bright / 40% dark: the classifier learns that share, not certainty."""
    data = separable(n=64)
    p = dataclasses.replace(P, epochs=40)
    shares = np.where(data.labels[:, None] == 1, [0.4, 0.6], [1.0, 0.0]).astype(np.float32)
    mixed = ImageSet(data.images, data.labels, data.classes, data.sources, shares)
    soft = clf.predict(clf.train(mixed, p, seed=0, device="cpu").model, data)
    hard = clf.predict(clf.train(data, p, seed=0, device="cpu").model, data)
    bright = data.labels == 1
    assert hard[bright, 1].mean() > 0.9
    assert 0.45 < soft[bright, 1].mean() < 0.75, soft[bright, 1].mean()
    assert soft[~bright, 0].mean() > 0.9


def test_shares_follow_subsets_and_concatenation():
    data = separable(n=6)
    shares = np.tile([[0.25, 0.75]], (6, 1)).astype(np.float32)
    mixed = ImageSet(data.images, data.labels, data.classes, data.sources, shares)
    np.testing.assert_array_equal(mixed.subset([1, 2]).targets, shares[:2])
    both = ImageSet.concat([data, mixed])            # real images get one-hot rows
    np.testing.assert_array_equal(both.targets[:6], np.eye(2)[data.labels])
    np.testing.assert_array_equal(both.targets[6:], shares)
    assert ImageSet.concat([data, data]).targets is None
    with pytest.raises(ValueError, match="sum to 1"):
        ImageSet(data.images, data.labels, data.classes, data.sources, shares * 2)
    with pytest.raises(ValueError, match="targets must be"):
        ImageSet(data.images, data.labels, data.classes, data.sources, shares[:, :1])
