"""Tests for hl_lightning/losses/flat.py: the cross-entropy baseline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hl_lightning import Hierarchy
from hl_lightning.losses import FlatLoss

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}


def test_equals_cross_entropy_with_ignored_pixels():
    h = Hierarchy.from_dict(TOY)
    logits = (torch.randn(2, 5, 6, 6) * 5).requires_grad_()
    target = torch.randint(0, 5, (2, 6, 6))
    target[:, 0] = 255
    ours, ce = FlatLoss(h)(logits, target), F.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(ours, ce)
    torch.testing.assert_close(*(torch.autograd.grad(v, logits)[0] for v in (ours, ce)))


def test_class_weights_use_the_finest_level_in_label_order():
    h = Hierarchy.from_dict(TOY).reorder(["grass", "car", "sky", "tree", "truck"])
    logits, target = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    target[0, 0] = 255
    loss = FlatLoss(h, class_weights=[{"vehicle": 9.0}, {"car": 3.0, "tree": 0.5}])
    weight = torch.tensor([1.0, 3.0, 1.0, 0.5, 1.0])  # grass, car, sky, tree, truck
    expected = F.cross_entropy(logits, target, weight=weight, ignore_index=255)
    torch.testing.assert_close(loss(logits, target), expected)


def test_all_ignored_gives_zero_where_cross_entropy_gives_nan():
    logits = torch.randn(1, 5, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    assert F.cross_entropy(logits, target, ignore_index=255).isnan()
    loss = FlatLoss(Hierarchy.from_dict(TOY), class_weights=[None, [1.0] * 5])(logits, target)
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def test_without_ignore_index_every_label_must_be_a_node_id():
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(1, 5, 2, 2), torch.randint(0, 5, (1, 2, 2))
    torch.testing.assert_close(FlatLoss(h, None)(logits, target), F.cross_entropy(logits, target))
    with pytest.raises(ValueError, match=r"\[255\] outside \[0, 7\)"):
        FlatLoss(h, None)(logits, target.fill_(255))
