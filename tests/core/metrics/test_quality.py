"""The quality of synthetic images as a run measures it: constructed cases with known answers, the gate, the
Inception path from a local weights file (SHA-256 checked), and no network access while any of it runs."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from core import classifier as clf
from core.errors import ParamError
from core.imageset import ImageSet
from core.metrics.generative import assess, collapse_note
from core.metrics.generative.features import INCEPTION_SHA_ENV, InceptionFeatures, file_sha256
from core.params import build_params


def _set(counts: dict[str, int], seed: int = 0, size: int = 16) -> ImageSet:
    """Classes told apart by brightness and a stripe, with noise: a small CNN learns them in a few epochs."""
    rng = np.random.default_rng(seed)
    imgs, labels, sources = [], [], []
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            x = rng.normal(60 + 70 * c, 12, (size, size, 1))
            x[:, (4 * c) % size] += 60
            imgs.append(np.clip(x, 0, 255).astype(np.uint8))
            labels.append(c)
            sources.append(f"{name}/{i}.png")
    return ImageSet(np.stack(imgs), np.array(labels), list(counts), sources)


@pytest.fixture(scope="module")
def real_and_model():
    train = _set({"normal": 40, "crack": 20, "dent": 20})
    p = build_params(clf.ClassifierParams, {"epochs": 15, "width": 8, "batch_size": 16}, "classifier")
    model = clf.train(train, p, seed=0).model
    return train, model


def test_copies_are_memorised_and_dropped_by_the_gate(real_and_model):
    train, model = real_and_model
    copies = train.subset(np.r_[40:45, 60:65])                              # real defect images, as they are
    report, rows = assess(train, copies, model)
    for c in ("crack", "dent"):
        assert report["per_class"][c]["near_copies"] == 1.0
        assert report["per_class"][c]["precision"] == 1.0 and report["per_class"][c]["gate_dropped"] == 5
    assert report["overall"]["gate_kept"] == 0 and all(r["copy"] and not r["kept"] for r in rows)
    assert rows[0]["nearest"] == copies.sources[0] and rows[0]["distance"] == 0.0
    assert report["features"].startswith("cls: the penultimate layer")


def test_new_images_of_the_right_class_pass_and_images_of_another_class_are_wrong(real_and_model):
    train, model = real_and_model
    fresh = _set({"normal": 0, "crack": 12, "dent": 12}, seed=5)            # new draws of the same classes
    report, rows = assess(train, fresh, model)
    assert report["per_class"]["crack"]["near_copies"] == 0.0 and report["per_class"]["crack"]["wrong_class"] == 0.0
    assert report["overall"]["gate_kept"] == 24
    swapped = ImageSet(fresh.images, np.where(fresh.labels == 1, 2, 1), fresh.classes, fresh.sources)  # mislabelled
    bad, rows = assess(train, swapped, model)
    assert bad["per_class"]["crack"]["wrong_class"] > 0.8 and bad["overall"]["gate_dropped"] > 20
    assert bad["per_class"]["crack"]["fd_cls"] > report["per_class"]["crack"]["fd_cls"]
    assert bad["per_class"]["crack"]["precision"] < report["per_class"]["crack"]["precision"]


def test_one_image_repeated_is_mode_collapse_in_words(real_and_model):
    train, model = real_and_model
    one = train.subset([45] * 10)                                            # a crack image, ten times
    report, _ = assess(train, ImageSet(one.images, one.labels, one.classes, [f"x{i}" for i in range(10)]), model)
    assert report["per_class"]["crack"]["ssim_synthetic"] == pytest.approx(1.0)
    note = collapse_note(report)
    assert note.startswith("Its synthetic images of crack (SSIM 1.00 vs") and "mode collapse" in note
    assert collapse_note({"per_class": {"crack": {"ssim_synthetic": 0.3, "ssim_real": 0.25}}}) == ""


def test_train_on_synthetic_accuracy_trains_on_synthetic_defects_and_real_normal_images(real_and_model):
    train, model = real_and_model
    seen = []

    def cas(data):
        seen.append(data.counts())
        return {"f1_macro": 0.5, "accuracy": 0.5}
    fresh = _set({"normal": 0, "crack": 6, "dent": 7}, seed=6)
    report, _ = assess(train, fresh, model, normal_class="normal", cas=cas, embed=True)
    assert seen == [{"normal": 40, "crack": 6, "dent": 7}] and report["cas"]["f1_macro"] == 0.5
    assert {(p["class"], p["origin"]) for p in report["embedding"]} == {   # the normal class too (issue 36)
        ("crack", "real"), ("crack", "synthetic"), ("dent", "real"), ("dent", "synthetic"), ("normal", "real")}


def test_a_run_measures_quality_without_touching_the_network(tmp_path, make_dataset, monkeypatch):
    from core.experiment import run

    def refuse(*args, **kwargs):
        raise AssertionError("the quality measures tried to reach the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    data = make_dataset(tmp_path, {"normal": 30, "crack": 12}, size=16)
    m = run(dict(data=str(data), methods=["smote"], seeds=[0], ratio=0.2, image_size=16, test_per_class=4,
                 quality_gate=True, overrides={"classifier": {"epochs": 1, "width": 4}}, device="cpu"), tmp_path / "r")
    q = m["methods"]["smote"]["quality"]
    assert set(q["per_class"]) == {"crack"} and "fd_cls" in q["overall"] and "cas" in q
    assert m["methods"]["smote+gate"]["gated_from"] == "smote"
    kept = q["overall"]["gate_kept"]
    assert m["methods"]["smote+gate"]["seeds"]["0"]["train_size"] == 26 + 5 + kept


def _inception_file(tmp_path):
    from torchvision.models import inception_v3
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, path)
    return path


def test_inception_loads_only_a_vouched_file_and_gives_fid(tmp_path, monkeypatch, real_and_model):
    path = _inception_file(tmp_path)
    monkeypatch.delenv(INCEPTION_SHA_ENV, raising=False)
    with pytest.raises(ParamError, match="is not the known Inception-v3 weights file.*It was not loaded"):
        InceptionFeatures(path)                                        # not torchvision's published file
    monkeypatch.setenv(INCEPTION_SHA_ENV, file_sha256(path))           # the administrator vouches for this one
    net = InceptionFeatures(path)
    train, model = real_and_model
    fresh = _set({"normal": 0, "crack": 4, "dent": 4}, seed=7)
    report, _ = assess(train.subset(np.arange(0, 80, 4)), fresh, model, inception=net)
    assert np.isfinite(report["per_class"]["crack"]["fid"]) and "Inception-v3" in report["inception"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF                                       # one byte changed
    path.write_bytes(bytes(data))
    with pytest.raises(ParamError, match="SHA-256 set in DEFECTAUG_INCEPTION_SHA256"):
        InceptionFeatures(path)
    with pytest.raises(ParamError, match="not found"):
        InceptionFeatures(tmp_path / "missing.pth")
