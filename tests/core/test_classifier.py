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


def test_resnet18_runs_and_loads_local_weights_skipping_mismatched_layers(tmp_path):
    from models.cnn import resnet18
    torch.manual_seed(0)
    donor = resnet18(3, 10)
    path = tmp_path / "weights.pt"
    torch.save(donor.state_dict(), path)
    p = clf.ClassifierParams(arch="resnet18", epochs=1, batch_size=8, weights_path=str(path))
    net = clf.make_model(p, channels=1, num_classes=2, seed=1)
    assert torch.equal(net.layer1[0].conv1.weight, donor.layer1[0].conv1.weight)
    assert net.conv1.weight.shape[1] == 1 and net.fc.out_features == 2
    res = clf.train(separable(n=8, size=32), p, seed=0, device="cpu")
    assert clf.predict(res.model, separable(n=8, size=32)).shape == (8, 2)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(tmp_path / "w.safetensors"))
    clf.load_weights(resnet18(3, 10), str(tmp_path / "w.safetensors"))


def test_bad_weights_paths_give_clear_errors(tmp_path):
    with pytest.raises(ParamError, match="not found"):
        clf.load_weights(torch.nn.Linear(2, 2), str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ParamError, match="could not read"):
        clf.load_weights(torch.nn.Linear(2, 2), str(junk))


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
