"""Tests for coarse labels (internal node ids in the target) in the tree-min loss.

The float64 definition is ``reference_levels`` of test_loss_tree_min.py: a coarse pixel
counts at the levels down to its node, with the node and its ancestors as its path, and
each level's mean is over the pixels known at that level.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_loss_tree_min import (
    RANDOM_CASES,
    TOY,
    assert_matches_reference,
    assert_tied_logits_match_autograd,
    num_nodes,
    random_case_tree,
    tree_of,
)

import hl_lightning.losses._tree_min_pass
from hl_lightning import Hierarchy
from hl_lightning.hierarchies import builtin_hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.losses import TreeMinLoss, TreeNodes, tree_min_level_losses
from hl_lightning.losses._tree_min_pass import TreeMinLevels, TreeMinTotal


def mixed_target(
    h: Hierarchy, shape: tuple[int, ...], gen: torch.Generator, ignored: float = 0.15
) -> torch.Tensor:
    """Return label ids of ``shape``: about half leaves, half internal nodes, ``ignored``
    of them 255."""
    leaves = torch.randint(0, h.num_leaves, shape, generator=gen)
    coarse = torch.randint(h.num_leaves, max(h.num_nodes, h.num_leaves + 1), shape, generator=gen)
    is_coarse = (torch.rand(shape, generator=gen) < 0.5) & (h.num_nodes > h.num_leaves)
    target = torch.where(is_coarse, coarse, leaves)
    return target.masked_fill(torch.rand(shape, generator=gen) < ignored, 255)


def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the CPU blocks 4 pixels wide, so that a block mixes coarse and leaf labels."""
    monkeypatch.setattr(hl_lightning.losses._tree_min_pass, "_BLOCK_ELEMENTS", 1)
    monkeypatch.setattr(hl_lightning.losses._tree_min_pass, "_MIN_BLOCK_WIDTH", 4)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_coarse_labels_match_the_float64_definition_on_the_toy_tree(gamma, scale):
    h = Hierarchy.from_dict(TOY).reorder(["truck", "sky", "grass", "car", "tree"])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 4, 5, generator=gen) * scale
    target = mixed_target(h, (2, 4, 5), gen)
    assert (target >= h.num_leaves).any() and (target < h.num_leaves).any()
    assert_matches_reference(logits, target, h, gamma, ignore_index=255)


@pytest.mark.parametrize("name", ["cityscapes", "mapillary_paper"])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_coarse_labels_match_the_float64_definition_on_the_papers_trees(name, gamma, monkeypatch):
    h = builtin_hierarchy(name)
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, num_nodes(h), 3, 4, generator=gen) * 4
    target = mixed_target(h, (2, 3, 4), gen)
    target[..., 0], target[..., 1] = h.num_nodes - 1, 0  # every row: a coarse and a leaf id
    assert_matches_reference(logits, target, h, gamma, ignore_index=255)
    small_blocks(monkeypatch)  # blocks of 4 pixels (a row), each mixing coarse and leaf labels
    assert_matches_reference(logits, target, h, gamma, ignore_index=255)


@settings(max_examples=20, deadline=None)
@given(**RANDOM_CASES, blocks=st.booleans())
def test_coarse_labels_match_the_float64_definition_on_random_unbalanced_trees(
    num_leaves, depth, seed, gamma, scale, blocks
):
    h = random_case_tree(num_leaves, depth, seed)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_nodes(h), 2, 5, generator=gen) * scale
    target = mixed_target(h, (2, 2, 5), gen)
    with pytest.MonkeyPatch.context() as patch:
        if blocks:
            small_blocks(patch)
        assert_matches_reference(logits, target, h, gamma, ignore_index=255)


def test_a_coarse_pixel_counts_down_to_its_node_and_asserts_nothing_below():
    h = random_hierarchy(14, 4, seed=8, shuffle_leaves=True)
    names, depths, ancestors, descendants = tree_of(h)
    gen = torch.Generator().manual_seed(8)
    logits = torch.randn(1, len(names), 1, 1, generator=gen) * 3
    for label in range(h.num_leaves, h.num_nodes):
        node = names.index(h.node_names[label])
        below = sorted(descendants[node] - {node})
        x = logits.clone().requires_grad_()
        levels = tree_min_level_losses(x, torch.tensor([[[label]]]), h, gamma=2.0)
        levels.sum().backward()
        assert (levels[: depths[node] + 1] > 0).all()
        assert (levels[depths[node] + 1 :] == 0).all()  # the only pixel is unknown there
        assert x.grad is not None and not x.grad[0, below].any()
        # at its known levels, the same terms as any leaf under it
        leaf = next(k for k, name in enumerate(h.leaves) if node in ancestors[names.index(name)])
        as_leaf = tree_min_level_losses(logits, torch.tensor([[[leaf]]]), h, gamma=2.0)
        torch.testing.assert_close(levels[: depths[node] + 1], as_leaf[: depths[node] + 1])


def test_a_coarse_pixel_leaves_the_finer_levels_means_to_the_pixels_known_there():
    # Level d's mean is over the pixels known at level d: adding a coarse pixel changes
    # the levels down to its node only.
    h = builtin_hierarchy("mapillary_paper")
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(1, num_nodes(h), 1, 6, generator=gen) * 2
    leaves = torch.randint(0, h.num_leaves, (1, 1, 5), generator=gen)
    coarse = h.num_leaves  # the first internal node: a level-0 category
    target = torch.cat([leaves, torch.tensor([[[coarse]]])], dim=2)
    loss = TreeMinLoss(h, ignore_index=255, gamma=1.0)
    with_coarse = loss.level_losses(logits, target)
    without = loss.level_losses(logits, target.clone().index_fill_(2, torch.tensor([5]), 255))
    assert with_coarse[0] != without[0]
    torch.testing.assert_close(with_coarse[1:], without[1:], rtol=0, atol=0)


def test_the_total_is_the_weighted_sum_of_the_coarse_level_losses():
    h = builtin_hierarchy("cityscapes")
    gen = torch.Generator().manual_seed(5)
    logits, target = torch.randn(2, num_nodes(h), 4, 4, generator=gen), None
    target = mixed_target(h, (2, 4, 4), gen)
    loss = TreeMinLoss(h, level_weights=[3.0, 0.5], gamma=2.0)
    expected = (loss.level_losses(logits, target) * torch.tensor([3.0, 0.5])).sum()
    torch.testing.assert_close(loss(logits, target), expected)


def test_a_batch_of_coarse_labels_at_the_top_level_gives_finer_levels_zero():
    h = random_hierarchy(10, 3, seed=1)
    top = [i for i in range(h.num_leaves, h.num_nodes) if h.node_level(i) == 0]
    logits = torch.randn(2, num_nodes(h), 3, 3, requires_grad=True)
    target = torch.tensor(top)[torch.randint(0, len(top), (2, 3, 3))]
    loss = TreeMinLoss(h, gamma=2.0)(logits, target)
    levels = TreeMinLoss(h, gamma=2.0).level_losses(logits, target)
    assert levels[0] > 0 and (levels[1:] == 0).all()
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_node_tables_give_every_label_its_path():
    h = random_hierarchy(30, 4, seed=5, shuffle_leaves=True)
    nodes = TreeNodes.of(h, torch.device("cpu"))
    names, depths, ancestors, _ = tree_of(h)
    order = nodes.order.tolist()
    assert nodes.path_rows.shape == nodes.on_path.shape == (h.num_levels, h.num_nodes)
    for label, name in enumerate(h.node_names):
        path = sorted(ancestors[names.index(name)], key=depths.__getitem__)
        for d in range(h.num_levels):
            assert order[nodes.path_rows[d, label]] == path[min(d, len(path) - 1)]
            assert nodes.on_path[d, label] == float(d < len(path))


def test_ids_beyond_the_nodes_are_refused_with_the_coarse_range():
    h = Hierarchy.from_dict(TOY)  # 5 leaves, 2 internal nodes: ids 0..6
    logits = torch.randn(1, 7, 1, 3)
    with pytest.raises(ValueError, match=r"label ids \[7, 9\] .* coarse ids 5\.\.6"):
        TreeMinLoss(h)(logits, torch.tensor([[[5, 7, 9]]]))


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("blocks", [False, True])
def test_leaf_labels_only_take_the_leaf_computation_bit_for_bit(gamma, blocks, monkeypatch):
    # Without a coarse pixel, values and gradients are bit-identical to the passes run on
    # the inputs they had before coarse labels: the tables' leaf columns and one row of
    # pixel weights for every level (1 / the non-ignored count, a stride-0 view).
    if blocks:
        small_blocks(monkeypatch)
    h = builtin_hierarchy("mapillary_paper")
    nodes = TreeNodes.of(h, torch.device("cpu"))
    leaf_tables = dataclasses.replace(
        nodes,
        path_rows=nodes.path_rows[:, : h.num_leaves].contiguous(),
        on_path=nodes.on_path[:, : h.num_leaves].contiguous(),
    )
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(2, nodes.num_nodes, 5, 7, generator=gen) * 3
    target = torch.randint(0, h.num_leaves, (2, 5, 7), generator=gen)
    target[0, 0] = 255
    valid = (target != 255).flatten(1)
    weight = valid.float() / valid.sum().clamp_min(1)
    weight = weight.expand(h.num_levels, *weight.shape)
    labels = target.flatten(1).masked_fill(~valid, 0)
    level_weights = [0.2, 0.3, 0.5]

    def run(function, loss_of) -> tuple[torch.Tensor, torch.Tensor]:
        x = logits.clone().requires_grad_()
        value = loss_of(x)
        value.sum().backward() if function == "levels" else value.backward()
        assert x.grad is not None
        return value.detach(), x.grad

    for function, public, direct in [
        (
            "levels",
            lambda x: tree_min_level_losses(x, target, h, 255, gamma),
            lambda x: TreeMinLevels.apply(x.flatten(2), labels, weight, leaf_tables, gamma),
        ),
        (
            "total",
            lambda x: TreeMinLoss(h, 255, level_weights, gamma)(x, target),
            lambda x: TreeMinTotal.apply(
                x.flatten(2), labels, weight, leaf_tables, gamma, torch.tensor(level_weights)
            )[0],
        ),
    ]:
        ours, expected = run(function, public), run(function, direct)
        assert torch.equal(ours[0], expected[0]) and torch.equal(ours[1], expected[1])


@pytest.mark.parametrize("coarse", [False, True])
def test_only_a_batch_with_coarse_labels_takes_per_level_weights(coarse, monkeypatch):
    # The leaf-only batch keeps one row of pixel weights for every level (a stride-0
    # view: the passes scale each block once); a coarse pixel needs a row per level.
    h = Hierarchy.from_dict(TOY)
    seen: list[torch.Tensor] = []
    apply = TreeMinTotal.apply

    def spy(x, labels, weight, *rest):
        seen.append(weight)
        return apply(x, labels, weight, *rest)

    monkeypatch.setattr(TreeMinTotal, "apply", spy)
    target = torch.tensor([[[0, 4, 255, 6 if coarse else 1]]])
    TreeMinLoss(h)(torch.randn(1, 7, 1, 4), target)
    (weight,) = seen
    assert (weight.stride(0) == 0) != coarse
    expected = [[1 / 3, 1 / 3, 0, 1 / 3], [1 / 3, 1 / 3, 0, 1 / 3]]
    if coarse:  # the last pixel is "nature" (id 6): known at level 0 only
        expected[1] = [1 / 2, 1 / 2, 0, 0]
    torch.testing.assert_close(weight[:, 0], torch.tensor(expected))


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_tied_logits_route_a_coarse_pixels_gradient_as_torchs_max_and_min_do(gamma: float):
    # bfloat16 logits tie often, along the path (the min's gradient goes to the deeper
    # node) and between a node and its descendants (the max's is shared evenly): a coarse
    # pixel's terms route their slopes as a leaf's, against autograd's max and min.
    assert_tied_logits_match_autograd(
        gamma, lambda h, shape, gen: mixed_target(h, shape, gen, ignored=0.0)
    )


def test_coarse_labels_in_uint8_masks_without_ignore_index():
    h = builtin_hierarchy("cityscapes")  # 19 leaves, 7 categories: ids 0..25
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, num_nodes(h), 3, 3, generator=gen) * 3
    target = mixed_target(h, (2, 3, 3), gen, ignored=0.0)
    assert_matches_reference(logits, target, h, 0.5, ignore_index=None)
    loss = TreeMinLoss(h, ignore_index=None, gamma=0.5)
    assert torch.equal(loss(logits, target.to(torch.uint8)), loss(logits, target))
