"""Tests for hl_lightning/losses/__init__.py: the registry, and the contract of the family.

Every loss is called as ``loss(logits, target)``, handles ``ignore_index`` the same way,
computes in fp32 under autocast and accepts any spatial rank.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import hl_lightning.losses
import hl_lightning.losses._tree_min_pass
import hl_lightning.losses._tree_sums
from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.losses import LOSSES, LossName, TreeMinLoss, build_loss, loss_options
from hl_lightning.losses._tree_sums import Block

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}
OPTIONS = {
    "hierarchical": {"level_weights": [1.0, 0.5], "class_weights": [None, {"car": 2.0}]},
    "flat": {"class_weights": [None, {"truck": 0.5}]},
    "hxe": {"alpha": 0.3},
    "soft_labels": {"beta": 4.0},
    "tree_min": {"level_weights": [0.5, 1.0], "gamma": 2.0},
}


def channels(loss: nn.Module, h: Hierarchy) -> int:
    return loss.num_nodes if isinstance(loss, TreeMinLoss) else h.num_leaves


def test_the_registry_names_every_loss_and_its_options():
    assert tuple(LOSSES) == ("hierarchical", "flat", "hxe", "soft_labels", "tree_min")
    assert {name: loss_options(name) for name in LOSSES} == {
        "hierarchical": ("level_weights", "class_weights"),
        "flat": ("class_weights",),
        "hxe": ("alpha",),
        "soft_labels": ("beta",),
        "tree_min": ("level_weights", "gamma"),
    }
    assert OPTIONS.keys() == LOSSES.keys()


def test_unknown_names_and_options_are_refused_with_the_valid_ones():
    h = Hierarchy.from_dict(TOY)
    with pytest.raises(ValueError, match="unknown loss 'focal'; choose one of hierarchical, flat"):
        build_loss("focal", h)
    with pytest.raises(ValueError, match="'soft_labels' takes no options alpha, gamma; its op"):
        build_loss("soft_labels", h, alpha=1.0, gamma=2.0)
    with pytest.raises(ValueError, match="'flat' takes no option level_weights"):
        build_loss("flat", h, level_weights=[1.0, 1.0])


@pytest.mark.parametrize("name", list(LOSSES))
def test_ignored_pixels_change_nothing_and_get_no_gradient(name):
    h = Hierarchy.from_dict(TOY)
    loss = build_loss(name, h, 255, **OPTIONS[name])
    logits = torch.randn(2, channels(loss, h), 3, 4, requires_grad=True)
    target = torch.randint(0, 5, (2, 3, 4))
    target[:, 2] = 255
    value = loss(logits, target)
    value.backward()
    assert not logits.grad[:, :, 2].any()
    kept = loss(logits[:, :, :2].detach(), target[:, :2])  # only the non-ignored rows
    torch.testing.assert_close(value.detach(), kept)


@pytest.mark.parametrize("name", list(LOSSES))
def test_all_ignored_gives_zero_and_zero_grad(name):
    h = Hierarchy.from_dict(TOY)
    loss = build_loss(name, h, 255, **OPTIONS[name])
    logits = torch.randn(2, channels(loss, h), 3, 3, requires_grad=True)
    value = loss(logits, torch.full((2, 3, 3), 255))
    value.backward()
    assert value.item() == 0.0 and not logits.grad.any()


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_whole_batch_passes_equal_the_per_sample_passes(monkeypatch, name, depth):
    # On the CPU the tree sums go one sample at a time and tree-min by runs of a sample's
    # pixels; other devices take the whole batch (tree sums) or one sample (tree-min).
    h = random_hierarchy(40, depth, seed=depth)
    tree_specific = ("level_weights", "class_weights")  # sized for the TOY tree
    options = {key: value for key, value in OPTIONS[name].items() if key not in tree_specific}
    loss = build_loss(name, h, 255, **options)
    gen = torch.Generator().manual_seed(depth)
    logits = torch.randn(3, channels(loss, h), 5, 6, generator=gen) * 4
    target = torch.randint(0, h.num_leaves, (3, 5, 6), generator=gen)
    target[1, 0] = 255

    def loss_and_grad() -> tuple[torch.Tensor, torch.Tensor]:
        x = logits.clone().requires_grad_()
        value = loss(x, target)
        value.backward()
        return value, x.grad

    def whole_batch(values: torch.Tensor) -> list[Block]:
        return [Block(slice(None))]

    def whole_samples(x: torch.Tensor) -> Iterator[tuple[int, slice]]:
        return ((b, slice(None)) for b in range(x.shape[0]))

    def one_then_two_samples(values: torch.Tensor) -> list[Block]:
        return [Block(0), Block(slice(1, 3))]

    per_sample = loss_and_grad()
    monkeypatch.setattr(hl_lightning.losses._tree_sums, "blocks", one_then_two_samples)
    monkeypatch.setattr(hl_lightning.losses._tree_min_pass, "_BLOCK_ELEMENTS", 1)
    monkeypatch.setattr(hl_lightning.losses._tree_min_pass, "_MIN_BLOCK_WIDTH", 4)  # 8 a sample
    for got, want in zip(loss_and_grad(), per_sample, strict=True):
        torch.testing.assert_close(got, want)
    monkeypatch.setattr(hl_lightning.losses._tree_sums, "blocks", whole_batch)
    monkeypatch.setattr(hl_lightning.losses._tree_min_pass, "_blocks", whole_samples)
    for got, want in zip(loss_and_grad(), per_sample, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("shape", [(0, 3, 3), (2, 0, 3)])
def test_empty_batches_give_zero_and_an_empty_grad(name, shape):
    h = Hierarchy.from_dict(TOY)
    loss = build_loss(name, h, 255, **OPTIONS[name])
    logits = torch.randn(shape[0], channels(loss, h), *shape[1:], requires_grad=True)
    value = loss(logits, torch.zeros(shape, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0 and logits.grad.shape == logits.shape


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_under_autocast_is_computed_in_fp32(name, dtype):
    h = Hierarchy.from_dict(TOY)
    loss = build_loss(name, h, 255, **OPTIONS[name])
    logits = (torch.randn(2, channels(loss, h), 4, 4) * 300).to(dtype).requires_grad_()
    target = torch.randint(0, 5, (2, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits, target)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad.float()).all()
    torch.testing.assert_close(value, loss(logits.detach().float(), target))


@pytest.mark.parametrize("name", list(LOSSES))
def test_any_spatial_rank_gives_the_same_loss(name):
    h = Hierarchy.from_dict(TOY)
    loss = build_loss(name, h, 255, **OPTIONS[name])
    logits, target = torch.randn(2, channels(loss, h), 3, 4), torch.randint(0, 5, (2, 3, 4))
    image = loss(logits, target)
    flat = loss(logits.flatten(2), target.flatten(1))
    volume = loss(logits.unsqueeze(-1), target.unsqueeze(-1))
    torch.testing.assert_close(image, flat)
    torch.testing.assert_close(image, volume)


@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_targets_get_the_same_message(name):
    h = Hierarchy.from_dict(TOY)
    loss = build_loss(name, h, 255, **OPTIONS[name])
    logits = torch.randn(1, channels(loss, h), 2, 2)
    end = h.num_nodes if name == "tree_min" else h.num_leaves  # tree_min takes coarse ids
    with pytest.raises(ValueError, match=rf"label ids \[-1, 7\] outside \[0, {end}\)"):
        loss(logits, torch.tensor([[[0, 7], [-1, 255]]]))
    with pytest.raises(ValueError, match=r"expected \(1, 2, 2\)"):
        loss(logits, torch.zeros(1, 2, 3, dtype=torch.long))


def test_the_loss_name_type_lists_every_registered_loss() -> None:
    assert set(typing.get_args(LossName)) == set(LOSSES)
