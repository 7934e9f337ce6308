"""Tests for hl_lightning/losses/hxe.py: hierarchical cross-entropy against its definition."""

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
from hl_lightning.losses import HierarchicalLoss, HXELoss
from hl_lightning.losses.hxe import hxe_level_weights

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}


def leaf_depths(h: Hierarchy) -> torch.Tensor:
    """Return each leaf's level in the tree (0 for a child of the root), in label order."""
    depth: dict[str, int] = {}

    def visit(node, level: int) -> None:
        if node.is_leaf:
            depth[node.name] = level
        for child in node.children:
            visit(child, level + 1)

    for root in h.roots:
        visit(root, 0)
    return torch.tensor([depth[name] for name in h.leaves])


def reference_hxe(
    logits: torch.Tensor, target: torch.Tensor, h: Hierarchy, alpha: float, ignore_index=None
) -> torch.Tensor:
    """Bertinetto et al.'s definition in float64: per pixel, the weighted sum over the edges
    of the target's true path of -log(P(node) / P(parent)), weights exp(-alpha * depth(node))
    over exp(-alpha) (the root's children weigh 1); a per-level tensor (D,) of edge terms."""
    z = logits.double()
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    leaf = target.masked_fill(~valid, 0)
    depth = leaf_depths(h)[leaf]
    log_total = torch.logsumexp(z, dim=1)
    parent = log_total  # log P(root) + log_total
    edges = []
    for d in range(h.num_levels):
        index = h.level_index(d)
        member = index.view(1, -1, *[1] * (z.dim() - 2)) == index[leaf].unsqueeze(1)
        log_group = torch.logsumexp(z.masked_fill(~member, float("-inf")), dim=1)
        weight = math.exp(-alpha * (d + 1)) / math.exp(-alpha)
        on_path = valid & (d <= depth)  # a shallow leaf's path stops at its own depth
        term = torch.where(on_path, weight * (parent - log_group), 0.0)
        edges.append(term.sum() / valid.sum().clamp_min(1))
        parent = log_group
    return torch.stack(edges)


def assert_matches_reference(logits, target, h, alpha, ignore_index=None) -> None:
    x = logits.detach().float().requires_grad_()
    x64 = logits.detach().double().requires_grad_()
    loss = HXELoss(h, ignore_index, alpha=alpha)
    ours = loss(x, target)
    ref = reference_hxe(x64, target, h, alpha, ignore_index)
    ours.backward()
    ref.sum().backward()
    assert torch.isfinite(ours) and torch.isfinite(x.grad).all()
    torch.testing.assert_close(ours.double(), ref.sum().detach(), rtol=1e-5, atol=1e-6)
    # the per-level edge terms are differences of level NLLs: exact to their fp32 rounding
    nll_scale = max(1.0, ref.abs().sum().item())
    torch.testing.assert_close(
        loss.level_losses(x, target).double(), ref.detach(), rtol=1e-5, atol=1e-6 * nll_scale
    )
    assert_gradient_close(x.grad, x64.grad, target, ignore_index)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_matches_the_float64_definition_on_the_toy_tree(alpha, scale):
    h = Hierarchy.from_dict(TOY).reorder(["truck", "sky", "grass", "car", "tree"])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 5, 6, generator=gen) * scale
    target = torch.randint(0, 5, (2, 5, 6), generator=gen)
    target[0, 0] = 255
    assert_matches_reference(logits, target, h, alpha, ignore_index=255)


@pytest.mark.parametrize("tree", ["faces_tree.txt", "mapillary_tree.txt"])
def test_matches_the_float64_definition_on_seed_trees(paper_trees, tree):
    h = Hierarchy.from_file(paper_trees / tree)
    h = h.reorder(sorted(h.leaves))
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, h.num_leaves, 6, 5, generator=gen) * 10
    target = torch.randint(0, h.num_leaves, (2, 6, 5), generator=gen)
    assert_matches_reference(logits, target, h, alpha=0.4, ignore_index=None)


@settings(max_examples=25, deadline=None)
@given(
    num_leaves=st.integers(2, 40),
    depth=st.integers(1, 5),
    seed=st.integers(0, 10**6),
    alpha=st.sampled_from([0.0, 0.1, 1.0, 5.0]),
    scale=st.sampled_from([0.1, 3.0, 300.0, 1e4]),
)
def test_matches_the_float64_definition_on_random_unbalanced_trees(
    num_leaves, depth, seed, alpha, scale
):
    depth = min(depth, num_leaves.bit_length())
    h = random_hierarchy(num_leaves, depth, seed=seed, shuffle_leaves=True)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_leaves, 3, 4, generator=gen) * scale
    target = torch.randint(0, num_leaves, (2, 3, 4), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.2] = 255
    assert_matches_reference(logits, target, h, alpha, ignore_index=255)


def test_alpha_zero_is_cross_entropy():
    h = Hierarchy.from_dict(TOY)
    logits = (torch.randn(2, 5, 6, 6) * 4).requires_grad_()
    target = torch.randint(0, 5, (2, 6, 6))
    ours = HXELoss(h, alpha=0.0)(logits, target)
    ce = F.cross_entropy(logits, target)
    torch.testing.assert_close(ours, ce)
    torch.testing.assert_close(*(torch.autograd.grad(v, logits)[0] for v in (ours, ce)))


def test_hxe_is_the_hierarchical_loss_with_telescoped_level_weights():
    h = random_hierarchy(30, 4, seed=2)
    logits, target = torch.randn(2, 30, 4, 4), torch.randint(0, 30, (2, 4, 4))
    weights = hxe_level_weights(h.num_levels, 0.7)
    lam = [math.exp(-0.7 * d) for d in range(4)] + [0.0]
    assert weights.tolist() == pytest.approx([lam[d] - lam[d + 1] for d in range(4)])
    torch.testing.assert_close(
        HXELoss(h, alpha=0.7)(logits, target),
        HierarchicalLoss(h, level_weights=weights.tolist())(logits, target),
    )


def test_a_shallow_leafs_repeated_levels_add_nothing():
    h = Hierarchy.from_dict(TOY)  # sky is a leaf at level 0
    logits = torch.randn(1, 5, 3, 3)
    target = torch.zeros(1, 3, 3, dtype=torch.long)  # all sky
    edges = HXELoss(h, alpha=0.5).level_losses(logits, target)
    assert edges[1].item() == 0.0
    expected = F.cross_entropy(logits, target)  # -log P(sky), a level-0 edge of weight 1
    torch.testing.assert_close(HXELoss(h, alpha=0.5)(logits, target), expected)


def test_larger_alpha_makes_a_coarse_mistake_relatively_dearer():
    h = Hierarchy.from_dict(TOY)
    target = torch.tensor([[[1]]])  # car
    inside = torch.tensor([0.0, 0.0, 4.0, 0.0, 0.0]).view(1, 5, 1, 1)  # says truck
    across = torch.tensor([4.0, 0.0, 0.0, 0.0, 0.0]).view(1, 5, 1, 1)  # says sky
    ratios = [
        (HXELoss(h, alpha=a)(across, target) / HXELoss(h, alpha=a)(inside, target)).item()
        for a in (0.0, 1.0, 3.0)
    ]
    assert ratios[0] < ratios[1] < ratios[2]


def test_all_ignored_gives_zero_and_zero_grad():
    logits = torch.randn(1, 5, 2, 2, requires_grad=True)
    loss = HXELoss(Hierarchy.from_dict(TOY))(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def test_under_autocast_loss_is_fp32_and_finite():
    conv = torch.nn.Conv2d(3, 5, 1)
    with torch.no_grad():
        conv.weight.mul_(1e3)
    image, target = torch.randn(2, 3, 4, 4), torch.randint(0, 5, (2, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = HXELoss(Hierarchy.from_dict(TOY), alpha=1.0)(conv(image), target)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf")])
def test_alpha_must_be_finite_and_non_negative(alpha):
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        HXELoss(Hierarchy.from_dict(TOY), alpha=alpha)
