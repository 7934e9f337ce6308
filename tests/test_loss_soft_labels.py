"""Tests for hl_lightning/losses/soft_labels.py: soft hierarchical targets against float64."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _reference import assert_gradient_close
from hypothesis import given, settings
from hypothesis import strategies as st

from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.losses import SoftLabelsLoss, soft_label_matrix

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}


def reference_soft_ce(
    logits: torch.Tensor, target: torch.Tensor, h: Hierarchy, beta: float, ignore_index=None
) -> torch.Tensor:
    """The definition in float64: -sum_A y(A|t) log softmax(z)_A, y from explicit LCA heights."""
    leaves = h.level_matrix()  # (D, K)
    lca_height = torch.tensor(
        [
            [int((leaves[:, a] != leaves[:, c]).sum()) for a in range(h.num_leaves)]
            for c in range(h.num_leaves)
        ],
        dtype=torch.float64,
    )
    y = torch.exp(-beta * lca_height / lca_height.max())
    y = y / y.sum(dim=1, keepdim=True)
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    leaf = target.masked_fill(~valid, 0)
    soft = y[leaf].movedim(-1, 1)  # (B, K, *S)
    per_pixel = -(soft * torch.log_softmax(logits.double(), dim=1)).sum(dim=1)
    return torch.where(valid, per_pixel, 0.0).sum() / valid.sum().clamp_min(1)


def assert_matches_reference(logits, target, h, beta, ignore_index=None) -> None:
    x = logits.detach().float().requires_grad_()
    x64 = logits.detach().double().requires_grad_()
    ours = SoftLabelsLoss(h, ignore_index, beta=beta)(x, target)
    ref = reference_soft_ce(x64, target, h, beta, ignore_index)
    ours.backward()
    ref.backward()
    assert torch.isfinite(ours) and torch.isfinite(x.grad).all()
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    assert_gradient_close(x.grad, x64.grad, target, ignore_index)


@pytest.mark.parametrize("beta", [0.0, 1.0, 10.0, 30.0])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_matches_the_float64_definition_on_the_toy_tree(beta, scale):
    h = Hierarchy.from_dict(TOY).reorder(["truck", "sky", "grass", "car", "tree"])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 5, 6, generator=gen) * scale
    target = torch.randint(0, 5, (2, 5, 6), generator=gen)
    target[1, 2] = 255
    assert_matches_reference(logits, target, h, beta, ignore_index=255)


@pytest.mark.parametrize("tree", ["faces_tree.txt", "mapillary_tree.txt"])
def test_matches_the_float64_definition_on_seed_trees(paper_trees, tree):
    h = Hierarchy.from_file(paper_trees / tree)
    h = h.reorder(sorted(h.leaves))
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, h.num_leaves, 6, 5, generator=gen) * 10
    target = torch.randint(0, h.num_leaves, (2, 6, 5), generator=gen)
    assert_matches_reference(logits, target, h, beta=5.0)


@settings(max_examples=25, deadline=None)
@given(
    num_leaves=st.integers(2, 40),
    depth=st.integers(1, 5),
    seed=st.integers(0, 10**6),
    beta=st.sampled_from([0.0, 2.0, 15.0]),
    scale=st.sampled_from([0.1, 3.0, 300.0, 1e4]),
)
def test_matches_the_float64_definition_on_random_unbalanced_trees(
    num_leaves, depth, seed, beta, scale
):
    depth = min(depth, num_leaves.bit_length())
    h = random_hierarchy(num_leaves, depth, seed=seed, shuffle_leaves=True)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_leaves, 3, 4, generator=gen) * scale
    target = torch.randint(0, num_leaves, (2, 3, 4), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.2] = 255
    assert_matches_reference(logits, target, h, beta, ignore_index=255)


def test_equals_cross_entropy_with_probability_targets():
    h = random_hierarchy(20, 3, seed=4, shuffle_leaves=True)
    logits, target = torch.randn(2, 20, 6, 6), torch.randint(0, 20, (2, 6, 6))
    soft = soft_label_matrix(h, 7.0).float()[target].movedim(-1, 1)
    torch.testing.assert_close(
        SoftLabelsLoss(h, beta=7.0)(logits, target), F.cross_entropy(logits, soft)
    )


def test_on_the_flat_hierarchy_soft_labels_are_label_smoothing():
    k, beta = 6, 2.0
    h = Hierarchy.flat([f"c{i}" for i in range(k)])
    logits, target = torch.randn(3, k, 5, 5), torch.randint(0, k, (3, 5, 5))
    smoothing = k * math.exp(-beta) / (1 + (k - 1) * math.exp(-beta))
    expected = F.cross_entropy(logits, target, label_smoothing=smoothing)
    torch.testing.assert_close(SoftLabelsLoss(h, beta=beta)(logits, target), expected)


def test_a_large_beta_gives_cross_entropy():
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    expected = F.cross_entropy(logits, target)
    torch.testing.assert_close(SoftLabelsLoss(h, beta=1e3)(logits, target), expected)


def test_soft_targets_are_distributions_decreasing_with_tree_distance():
    h = random_hierarchy(25, 4, seed=5, shuffle_leaves=True)
    y = soft_label_matrix(h, 6.0)
    distance = h.leaf_distance()
    torch.testing.assert_close(y.sum(dim=1), torch.ones(25, dtype=torch.float64))
    for c in range(25):
        for a in range(25):  # nearer leaves get more mass
            closer = distance[c] < distance[c, a]
            assert (y[c][closer] > y[c, a]).all()
    assert torch.equal(soft_label_matrix(h, 0.0), torch.full((25, 25), 1 / 25, dtype=torch.float64))


def test_all_ignored_gives_zero_and_zero_grad():
    logits = torch.randn(1, 5, 2, 2, requires_grad=True)
    loss = SoftLabelsLoss(Hierarchy.from_dict(TOY))(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def test_under_autocast_loss_is_fp32_and_finite():
    conv = torch.nn.Conv2d(3, 5, 1)
    with torch.no_grad():
        conv.weight.mul_(1e3)
    image, target = torch.randn(2, 3, 4, 4), torch.randint(0, 5, (2, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = SoftLabelsLoss(Hierarchy.from_dict(TOY), beta=4.0)(conv(image), target)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize("beta", [-1.0, float("nan")])
def test_beta_must_be_finite_and_non_negative(beta):
    with pytest.raises(ValueError, match="beta must be finite and >= 0"):
        SoftLabelsLoss(Hierarchy.from_dict(TOY), beta=beta)
