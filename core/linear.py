"""The `linear` baseline: class-balanced logistic regression on the run's preprocessed, standardised pixels.

A seconds-cheap model a user could have had without synthetic images or a network: scikit-learn's
`LogisticRegression(class_weight="balanced")` (lbfgs, multinomial) on the images exactly as the CNN reads them
(`classifier.to_tensor`: [-1, 1], NCHW, flattened), each pixel standardised on the training images
(`StandardScaler`). Deterministic: it has no seed of its own, so every seed of a fold gets the same model (the
experiment fits it once per fold and reuses it). The fitted model becomes `models.linear.PixelLogistic`, so
`classifier.predict`, `core predict` and the Export page treat it as any other classifier, and it is stored as
they are: its tensors (mean, scale, weight, bias) in .safetensors and its classes and preprocessing in JSON;
nothing is unpickled to use it.

    res = train(train_set)                     # classifier.TrainResult (steps: lbfgs iterations)
    tensors, meta = saved_form(res.model, classes, channels, image_size)
    model = classifier.rebuild(tensors, meta)
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from . import classifier as clf
from .errors import ParamError
from .imageset import ImageSet

ARCH = "linear"
C = 1.0            # sklearn's default strength: macro F1 0.862 on magnetic_tile at 32 px (0.847 at C=0.1)
MAX_ITER = 1000    # lbfgs converged in about 500 iterations there (32 and 64 px)
SETTINGS = {"model": "sklearn.linear_model.LogisticRegression", "C": C, "class_weight": "balanced",
            "solver": "lbfgs", "max_iter": MAX_ITER, "standardise": "sklearn.preprocessing.StandardScaler"}


def features(images: ImageSet | np.ndarray) -> np.ndarray:
    """[N, C*H*W] float32: the images as the classifiers read them, flattened in NCHW order."""
    arr = images.images if isinstance(images, ImageSet) else images
    return clf.to_tensor(arr, torch.device("cpu")).reshape(len(arr), -1).numpy()


def train(train_set: ImageSet) -> clf.TrainResult:
    """Fit the class-balanced logistic regression; the model as a `PixelLogistic` in eval mode."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from models.linear import PixelLogistic
    k = len(train_set.classes)
    present = np.unique(train_set.labels)
    if len(present) < 2:
        raise ParamError("the linear baseline needs training images of at least two classes")
    t0 = time.time()
    x = features(train_set)
    scaler = StandardScaler().fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # the iterations are reported as its steps
        lr = LogisticRegression(C=C, class_weight="balanced", solver="lbfgs", max_iter=MAX_ITER)
        lr.fit(scaler.transform(x), train_set.labels)
    coef, bias = lr.coef_.astype(np.float32), lr.intercept_.astype(np.float32)
    if len(lr.classes_) == 2:      # sklearn keeps one row for two classes: softmax([-z/2, z/2]) = sigmoid(z)
        coef, bias = np.concatenate([-coef / 2, coef / 2]), np.concatenate([-bias / 2, bias / 2])
    weight = np.zeros((k, x.shape[1]), np.float32)
    full_bias = np.full(k, -30.0, np.float32)  # a class with no training image: never predicted
    weight[lr.classes_], full_bias[lr.classes_] = coef, bias
    model = PixelLogistic(x.shape[1], k)
    model.load_state_dict({"mean": torch.from_numpy(scaler.mean_.astype(np.float32)),
                           "scale": torch.from_numpy(scaler.scale_.astype(np.float32)),
                           "linear.weight": torch.from_numpy(weight), "linear.bias": torch.from_numpy(full_bias)})
    return clf.TrainResult(model.eval(), int(np.max(lr.n_iter_)), time.time() - t0, [])


def saved_form(model: torch.nn.Module, classes: list[str], channels: int,
               image_size: int) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) as `classifier.saved_form` gives them, for `classifier.rebuild`."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    steps = clf.preprocessing(clf.ClassifierParams(), channels, image_size)
    steps.update(flatten="C x H x W, NCHW order", standardise="(x - mean) / scale per pixel (tensors mean, "
                 "scale)", logits="x @ linear.weight.T + linear.bias; softmax for probabilities")
    return tensors, {"format": "defectaug-classifier/1", "arch": ARCH, "pretrained": False, "params": dict(SETTINGS),
                     "classes": list(classes), "channels": int(channels), "image_size": int(image_size),
                     "seed": 0, "preprocessing": steps}


__all__ = ["ARCH", "SETTINGS", "features", "saved_form", "train"]
