"""The helpers every network's input and every checkpoint share (issue 35): uint8 images to [-1, 1] and back,
state dicts under a prefix, every source image once before any twice."""
from __future__ import annotations

import numpy as np
import torch

from core.classifier import to_tensor
from core.methods.base import each_once
from core.training import to_signed, to_uint8
from core.training.checkpoint import prefixed, sub


def test_to_signed_is_x_over_127_5_minus_1_and_to_uint8_undoes_it():
    images = np.random.default_rng(0).integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    before = images.copy()
    x = to_signed(images)
    assert x.dtype == torch.float32 and tuple(x.shape) == (5, 3, 6, 7)
    expected = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1     # the five old copies' formula
    assert torch.equal(x, expected)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(to_uint8(x), images)
    assert torch.equal(to_tensor(images, torch.device("cpu")), expected)            # the classifier's input too
    assert np.array_equal(images, before)                                             # the input is left as it was


def test_state_dicts_under_a_prefix_come_back_whole():
    a, b = torch.nn.Linear(3, 2), torch.nn.Conv2d(1, 2, 3)
    tensors = {**prefixed(a.state_dict(), "c0."), **prefixed(b.state_dict(), "c1.")}
    assert set(tensors) == {"c0.weight", "c0.bias", "c1.weight", "c1.bias"}
    a2, b2 = torch.nn.Linear(3, 2), torch.nn.Conv2d(1, 2, 3)
    a2.load_state_dict(sub(tensors, "c0."))
    b2.load_state_dict(sub(tensors, "c1."))
    assert torch.equal(a2.weight, a.weight) and torch.equal(b2.bias, b.bias)


def test_each_once_uses_every_source_before_any_twice():
    order = each_once(np.random.default_rng(1), 4, 10)
    assert len(order) == 10
    assert sorted(order[:4]) == [0, 1, 2, 3] and sorted(order[4:8]) == [0, 1, 2, 3] and set(order[8:]) <= {0, 1, 2, 3}
    rng = np.random.default_rng([7, 2])
    same = np.concatenate([rng.permutation(4) for _ in range(3)])[:10]      # the order the methods drew before
    assert np.array_equal(each_once(np.random.default_rng([7, 2]), 4, 10), same)
