"""Tests for hl_lightning/losses/tree_min.py: HSSN's tree-min loss, node order and decoding."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from _reference import assert_gradient_close
from hypothesis import given, settings
from hypothesis import strategies as st

from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.losses import TreeMinLoss, TreeNodes, tree_min_level_losses
from hl_lightning.losses._tree_min_pass import TreeMinLevels, TreeMinTotal, _Pass

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}


def tree_of(h: Hierarchy) -> tuple[list[str], list[int], list[set[int]], list[set[int]]]:
    """Return node names, depths, ancestor sets and descendant sets (each incl. the node),
    walking the tree independently of the implementation's tables."""
    names: list[str] = []
    depths: list[int] = []
    ancestors: list[set[int]] = []

    def visit(node, depth: int, above: set[int]) -> None:
        i = len(names)
        names.append(node.name)
        depths.append(depth)
        ancestors.append(above | {i})
        for child in node.children:
            visit(child, depth + 1, above | {i})

    for root in h.roots:
        visit(root, 0, set())
    descendants = [{j for j in range(len(names)) if i in ancestors[j]} for i in range(len(names))]
    return names, depths, ancestors, descendants


def reference_levels(
    logits: torch.Tensor, target: torch.Tensor, h: Hierarchy, gamma: float, ignore_index=None
) -> torch.Tensor:
    """HSSN's definition in float64, node by node: p+ = min sigmoid over ancestors, p- = max
    over descendants, (focal) BCE averaged over each level's nodes, then over valid pixels.

    A target may hold any node id (``h.node_names``): an internal node's pixel (a coarse
    label) counts at the levels down to the node's depth, with the node's ancestors as its
    path, and at none below; each level's mean is over the pixels known at that level."""
    names, depths, ancestors, descendants = tree_of(h)
    s = logits.double()
    log_s = F.logsigmoid(s)  # log sigmoid(x)
    log_not_s = F.logsigmoid(-s)  # log(1 - sigmoid(x))
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    label = target.masked_fill(~valid, 0)
    label_node = torch.tensor([names.index(name) for name in h.node_names])[label]
    finest = [depths[n] if len(descendants[n]) > 1 else h.num_levels - 1 for n in range(len(names))]
    known_to = torch.tensor(finest)[label_node]  # the finest level a pixel's label is known at
    levels = []
    for d in range(h.num_levels):
        known = valid & (d <= known_to)
        terms = []
        for v in (i for i in range(len(names)) if depths[i] == d):
            above, below = sorted(ancestors[v]), sorted(descendants[v])
            log_p_plus = log_s[:, above].amin(1)  # log min sigmoid
            log_not_p_plus = log_not_s[:, above].amax(1)  # log(1 - min sigmoid)
            log_p_minus = log_s[:, below].amax(1)  # log max sigmoid
            log_not_p_minus = log_not_s[:, below].amin(1)  # log(1 - max sigmoid)
            pos = -log_p_plus * torch.exp(gamma * log_not_p_plus)  # (1 - p+)^gamma
            neg = -log_not_p_minus * torch.exp(gamma * log_p_minus)  # (p-)^gamma
            on_path = torch.tensor([v in ancestors[n] for n in label_node.flatten().tolist()])
            terms.append(torch.where(on_path.view_as(label), pos, neg))
        per_pixel = torch.stack(terms).mean(0)
        levels.append(torch.where(known, per_pixel, 0.0).sum() / known.sum().clamp_min(1))
    return torch.stack(levels)


def autograd_levels(
    logits: torch.Tensor, target: torch.Tensor, h: Hierarchy, gamma: float
) -> torch.Tensor:
    """The same definition through torch's own max and min in float64, level by level: the
    max up the tree by ``scatter_reduce("amax")`` (its gradient shares a tied maximum
    evenly), the min down the path by ``cummin`` (a tied minimum goes to the deeper node).
    Targets of any node ids, no ignored pixel; a coarse label counts down to its node."""
    names, depths, ancestors, descendants = tree_of(h)
    levels = [[i for i in range(len(names)) if depths[i] == d] for d in range(h.num_levels)]
    x = logits.double().flatten(2)
    down = [x[:, levels[-1]]]  # max over each node and its descendants, coarse to fine
    for d in range(h.num_levels - 2, -1, -1):
        parent = [
            levels[d].index(max(ancestors[c] - {c}, key=depths.__getitem__)) for c in levels[d + 1]
        ]
        index = torch.tensor(parent).view(1, -1, 1).expand_as(down[0])
        down.insert(0, x[:, levels[d]].scatter_reduce(1, index, down[0], "amax", include_self=True))
    label_node = [names.index(name) for name in h.node_names]
    path = [sorted(ancestors[n], key=depths.__getitem__) for n in label_node]
    last = [h.num_levels - 1 if len(descendants[n]) == 1 else depths[n] for n in label_node]
    known_to = torch.tensor(last)[target.flatten(1)]  # (B, S): the finest level known
    channels = torch.tensor([[p[min(d, len(p) - 1)] for p in path] for d in range(h.num_levels)])
    up = torch.cummin(x.gather(1, channels[:, target.flatten(1)].transpose(0, 1)), dim=1).values
    totals = []
    for d, level in enumerate(levels):
        neg = F.softplus(down[d]) * torch.exp(gamma * F.logsigmoid(down[d]))
        pos = F.softplus(-up[:, d]) * torch.exp(gamma * F.logsigmoid(-up[:, d]))
        on = torch.tensor([[level.index(p[d]) if d < len(p) else -1 for p in path]])[
            :, target.flatten(1)
        ].squeeze(0)  # (B, S): the path's node at depth d, -1 below a shallow leaf
        mask = torch.arange(len(level)).view(1, -1, 1) == on.unsqueeze(1)
        pixel = torch.where(mask, 0.0, neg).sum(1) + torch.where(on >= 0, pos, 0.0)
        known = d <= known_to
        totals.append(torch.where(known, pixel / len(level), 0.0).sum() / known.sum().clamp_min(1))
    return torch.stack(totals)


def assert_matches_reference(logits, target, h, gamma, ignore_index=None) -> None:
    """The level losses, the module's total (whose forward pass also computes its gradient)
    and both gradients agree with the float64 definition, for random level weights."""
    x = logits.detach().float().requires_grad_()
    x64 = logits.detach().double().requires_grad_()
    weights = torch.rand(h.num_levels, generator=torch.Generator().manual_seed(1)) + 0.1
    weights /= weights.sum()  # the total is a mean of the levels: finite in fp32 too
    ours = tree_min_level_losses(x, target, h, ignore_index, gamma)
    ref = reference_levels(x64, target, h, gamma, ignore_index)
    (ours * weights).sum().backward()
    (ref * weights.double()).sum().backward()
    assert torch.isfinite(ours).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    assert_gradient_close(x.grad, x64.grad, target, ignore_index)
    loss = TreeMinLoss(h, ignore_index, level_weights=weights.tolist(), gamma=gamma)
    xt = logits.detach().float().requires_grad_()
    total = loss(xt, target)
    (total * 0.5).backward()  # an upstream gradient other than 1
    expected = (ref.detach() * weights.double()).sum()
    torch.testing.assert_close(total.double(), expected, rtol=1e-5, atol=1e-6)
    assert_gradient_close(xt.grad, 0.5 * x64.grad, target, ignore_index, weight=0.5)


def num_nodes(h: Hierarchy) -> int:
    return len(tree_of(h)[0])


@pytest.mark.parametrize("gamma", [0.0, 2.0])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_matches_the_float64_definition_on_the_toy_tree(gamma, scale):
    h = Hierarchy.from_dict(TOY).reorder(["truck", "sky", "grass", "car", "tree"])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 7, 4, 5, generator=gen) * scale
    target = torch.randint(0, 5, (2, 4, 5), generator=gen)
    target[0, 1] = 255
    assert_matches_reference(logits, target, h, gamma, ignore_index=255)


@pytest.mark.parametrize("coarse", [False, True])
def test_matches_the_float64_definition_on_a_tree_without_shallow_leaves(coarse):
    """Every leaf at the last level: a batch of leaf labels fills its pixels' path rows only
    (no path term is ever missing); one with a coarse label fills missing path terms too."""
    h = Hierarchy.from_dict({"vehicle": ["car", "truck", "bus"], "nature": ["tree", "grass"]})
    assert TreeNodes.of(h, torch.device("cpu")).leaves_at_every_level
    assert not TreeNodes.of(Hierarchy.from_dict(TOY), torch.device("cpu")).leaves_at_every_level
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 7, 3, 4, generator=gen) * 4
    target = torch.randint(0, 5, (2, 3, 4), generator=gen)
    target[1, 0] = 255
    if coarse:
        target[0, 0] = h.label_id("nature")
    assert_matches_reference(logits, target, h, gamma=2.0, ignore_index=255)


def test_matches_the_float64_definition_on_the_faces_tree(paper_trees):
    h = Hierarchy.from_file(paper_trees / "faces_tree.txt")
    h = h.reorder(sorted(h.leaves))
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, num_nodes(h), 3, 4, generator=gen) * 5
    target = torch.randint(0, h.num_leaves, (2, 3, 4), generator=gen)
    assert_matches_reference(logits, target, h, gamma=1.0)


# the random cases of the float64 comparisons, here and in the coarse-label tests
RANDOM_CASES = {
    "num_leaves": st.integers(2, 20),
    "depth": st.integers(1, 4),
    "seed": st.integers(0, 10**6),
    "gamma": st.sampled_from([0.0, 0.5, 2.0]),
    "scale": st.sampled_from([0.1, 3.0, 300.0, 1e4]),
}


def random_case_tree(num_leaves: int, depth: int, seed: int) -> Hierarchy:
    """Return the random unbalanced tree of a case: shuffled leaves, the depth capped at
    what ``num_leaves`` allows."""
    depth = min(depth, num_leaves.bit_length())
    return random_hierarchy(num_leaves, depth, seed=seed, shuffle_leaves=True)


@settings(max_examples=20, deadline=None)
@given(**RANDOM_CASES)
def test_matches_the_float64_definition_on_random_unbalanced_trees(
    num_leaves, depth, seed, gamma, scale
):
    h = random_case_tree(num_leaves, depth, seed)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_nodes(h), 2, 3, generator=gen) * scale
    target = torch.randint(0, num_leaves, (2, 2, 3), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.2] = 255
    assert_matches_reference(logits, target, h, gamma, ignore_index=255)


def test_node_order_is_the_hierarchy_files_line_order():
    h = random_hierarchy(30, 4, seed=3, shuffle_leaves=True)
    lines = [line.strip().split("  [")[0] for line in str(h).splitlines()]
    nodes = TreeNodes.of(h, torch.device("cpu"))
    assert nodes.names == tuple(lines) == TreeMinLoss(h).node_names
    assert TreeMinLoss(h).num_nodes == len(lines)


def test_node_tables_link_levels_parents_and_leaf_paths():
    h = Hierarchy.from_dict(TOY).reorder(["truck", "sky", "grass", "car", "tree"])
    nodes = TreeNodes.of(h, torch.device("cpu"))
    # sky, vehicle, car, truck, nature, tree, grass; in a level, the nodes with children first
    assert [n.tolist() for n in nodes.level_nodes] == [[1, 4, 0], [2, 3, 5, 6]]
    assert nodes.internal == (2,)
    assert [p.tolist() for p in nodes.parents] == [[0, 0, 1, 1]]
    assert nodes.leaf_path.tolist() == [[0, 2, 1, 0, 1], [1, -1, 3, 0, 2]]
    assert nodes.leaf_nodes.tolist() == [[1, 0, 4, 1, 4], [3, 0, 6, 2, 5]]


def test_a_confident_correct_path_costs_little_and_a_shallow_leafs_deeper_levels_are_negatives():
    h = Hierarchy.from_dict(TOY)  # sky, vehicle, car, truck, nature, tree, grass
    logits = torch.full((1, 7, 1, 1), -12.0)
    logits[0, 0] = 12.0  # sky
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    levels = tree_min_level_losses(logits, target, h)
    assert (levels < 1e-5).all()  # level 1 holds only negatives for sky
    logits[0, 2] = 12.0  # car, without its parent vehicle: p- of vehicle rises
    assert tree_min_level_losses(logits, target, h)[0] > 1.0


def test_leaf_logits_pick_the_best_path_by_brute_force():
    h = random_hierarchy(15, 3, seed=6, shuffle_leaves=True)
    nodes = TreeNodes.of(h, torch.device("cpu"))
    logits = torch.randn(2, nodes.num_nodes, 3, 3) * 3
    scores = TreeMinLoss(h).leaf_logits(logits)
    assert scores.shape == (2, h.num_leaves, 3, 3) and scores.dtype == torch.float32
    names, _, ancestors, _ = tree_of(h)
    log_s = F.logsigmoid(logits.double())
    for k, name in enumerate(h.leaves):
        path = sorted(ancestors[names.index(name)])  # depth-first: ancestors come first
        padded = path + [path[-1]] * (h.num_levels - len(path))  # a shallow leaf repeats
        expected = sum(log_s[:, c] for c in padded)
        torch.testing.assert_close(scores[:, k].double(), expected, rtol=1e-6, atol=1e-6)


def test_wrong_channel_count_names_the_node_count():
    h = Hierarchy.from_dict(TOY)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"logits have 5 channels .* one per node .*: 7 nodes"):
        TreeMinLoss(h)(torch.randn(1, 5, 2, 2), target)
    with pytest.raises(ValueError, match=r"label ids \[9\]"):
        TreeMinLoss(h)(torch.randn(1, 7, 2, 2), target + 9)


def test_all_ignored_gives_zero_and_zero_grad():
    logits = torch.randn(1, 7, 2, 2, requires_grad=True)
    loss = TreeMinLoss(Hierarchy.from_dict(TOY), gamma=2.0)(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def test_under_autocast_loss_is_fp32_and_finite():
    conv = torch.nn.Conv2d(3, 7, 1)
    with torch.no_grad():
        conv.weight.mul_(1e3)
    image, target = torch.randn(2, 3, 4, 4), torch.randint(0, 5, (2, 4, 4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = TreeMinLoss(Hierarchy.from_dict(TOY), gamma=2.0)(conv(image), target)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(conv.weight.grad).all()


def test_level_weights_scale_the_total():
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(2, 7, 3, 3), torch.randint(0, 5, (2, 3, 3))
    loss = TreeMinLoss(h, level_weights=[2.0, 0.5])
    torch.testing.assert_close(
        loss(logits, target), (loss.level_losses(logits, target) * torch.tensor([2.0, 0.5])).sum()
    )
    with pytest.raises(ValueError, match="3 level weights given for a hierarchy with 2 levels"):
        TreeMinLoss(h, level_weights=[1, 1, 1])
    with pytest.raises(ValueError, match="gamma must be finite and >= 0"):
        TreeMinLoss(h, gamma=-1.0)


@pytest.mark.parametrize("scale", ["1e37", "3e38"])
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_extreme_logits_match_the_float64_definition(scale: str, gamma: float):
    h = Hierarchy.from_dict(TOY)
    gen = torch.Generator().manual_seed(7)
    if scale == "1e37":
        logits = torch.randn(3, 7, 4, 4, generator=gen) * 1e37
    else:  # uniform in [-3e38, 3e38]: every sum of two of them overflows fp32
        logits = (torch.rand(3, 7, 4, 4, generator=gen) * 2 - 1) * 3e38
    target = torch.randint(0, 5, (3, 4, 4), generator=gen)
    assert_matches_reference(logits, target, h, gamma)


@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_tied_logits_share_the_gradient_as_torchs_max_and_min_do(gamma: float):
    # bfloat16 logits (as under autocast) tie often: between a node and its descendants
    # (the max's gradient is shared evenly) and along the path (the min's goes to the
    # deeper node), on a three-level tree where ties span levels.
    assert_tied_logits_match_autograd(
        gamma, lambda h, shape, gen: torch.randint(0, h.num_leaves, shape, generator=gen)
    )


def assert_tied_logits_match_autograd(
    gamma: float,
    make_target: Callable[[Hierarchy, tuple[int, ...], torch.Generator], torch.Tensor],
) -> None:
    """Level losses and gradients (of the levels and of the module's total) at bfloat16
    logits, every node tied in a row of pixels, against autograd through max and min."""
    h = random_hierarchy(12, 3, seed=2, shuffle_leaves=True)
    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(2, num_nodes(h), 5, 6, generator=gen) * 2).to(torch.bfloat16).float()
    logits[:, :, 0, :] = 1.0  # every node tied in a row of pixels
    target = make_target(h, (2, 5, 6), gen)
    x, xt = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    x64 = logits.double().requires_grad_()
    weights = torch.tensor([0.5, 1.0, 2.0])
    ours = tree_min_level_losses(x, target, h, gamma=gamma)
    expected = autograd_levels(x64, target, h, gamma)
    (ours * weights).sum().backward()
    (expected * weights.double()).sum().backward()
    torch.testing.assert_close(ours.double(), expected.detach(), rtol=1e-5, atol=1e-6)
    assert x.grad is not None and x64.grad is not None
    assert_gradient_close(x.grad, x64.grad, target, None, weights.sum().item())
    TreeMinLoss(h, None, level_weights=weights.tolist(), gamma=gamma)(xt, target).backward()
    assert_gradient_close(xt.grad, x64.grad, target, None, weights.sum().item())


def test_the_level_order_tables_list_each_node_once():
    h = random_hierarchy(30, 4, seed=5, shuffle_leaves=True)
    nodes = TreeNodes.of(h, torch.device("cpu"))
    names, depths, ancestors, _ = tree_of(h)
    order = nodes.order.tolist()
    assert sorted(order) == list(range(len(names)))
    assert [depths[c] for c in order] == sorted(depths) == nodes.row_levels.tolist()
    assert nodes.channel_rows[nodes.order].tolist() == list(range(len(names)))
    assert nodes.bounds == tuple(sum(d < level for d in depths) for level in range(5))
    parents = {ancestor for c in range(len(names)) for ancestor in ancestors[c] if ancestor != c}
    for d, internal in enumerate(nodes.internal):  # the nodes with children come first
        rows = order[nodes.bounds[d] : nodes.bounds[d + 1]]
        assert [c in parents for c in rows] == [True] * internal + [False] * (len(rows) - internal)
    for k, leaf in enumerate(h.leaves):
        path = sorted(ancestors[names.index(leaf)], key=depths.__getitem__)
        for d in range(h.num_levels):
            node = path[min(d, len(path) - 1)]
            assert order[nodes.path_rows[d, k]] == node
            assert nodes.on_path[d, k] == float(d < len(path))
    first = nodes.bounds[1]  # every row below the first level, and its parent's row
    for row, parent_row in enumerate(nodes.parent_rows.tolist(), start=first):
        channel = order[row]
        parent = max(ancestors[channel] - {channel}, key=depths.__getitem__)
        assert order[parent_row] == parent
    assert len(nodes.parent_rows) == len(order) - first


def test_per_level_pixel_weights_weight_each_level_on_its_own():
    # The pass takes a weight per level and pixel (a pixel known only down to some level
    # counts above it): level d with its own weights equals the loss ignoring the pixels
    # weighted 0 at that level.
    h = random_hierarchy(12, 3, seed=4, shuffle_leaves=True)
    nodes = TreeNodes.of(h, torch.device("cpu"))
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, nodes.num_nodes, 6, generator=gen) * 3
    target = torch.randint(0, h.num_leaves, (2, 6), generator=gen)
    known = torch.rand(h.num_levels, 2, 6, generator=gen) < 0.7
    weight = known.float() / known.sum(dim=(1, 2), keepdim=True)
    x, xt = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    levels = TreeMinLevels.apply(x, target, weight, nodes, 2.0)
    levels.sum().backward()
    total, same = TreeMinTotal.apply(xt, target, weight, nodes, 2.0, torch.ones(3))
    total.backward()
    torch.testing.assert_close(same, levels.detach())
    torch.testing.assert_close(total, levels.sum())
    torch.testing.assert_close(xt.grad, x.grad)
    for d in range(h.num_levels):
        alone = logits.clone().requires_grad_()
        masked = target.masked_fill(~known[d], 255)
        expected = tree_min_level_losses(alone, masked, h, ignore_index=255, gamma=2.0)[d]
        expected.backward()
        torch.testing.assert_close(levels[d], expected)
        assert alone.grad is not None
        x.grad -= alone.grad
    torch.testing.assert_close(x.grad, torch.zeros_like(x.grad), rtol=0, atol=1e-7)


def test_a_second_backward_pass_is_right_or_refused():
    # The passes hand a buffer over as the gradient. The total's, unscaled, is left as it
    # is: a second pass (retain_graph) adds it again. The levels' is rewritten in place:
    # autograd's check of saved tensors refuses a second pass.
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(1, 7, 2, 2), torch.zeros(1, 2, 2).long()
    x = logits.clone().requires_grad_()
    total = TreeMinLoss(h)(x, target)
    total.backward(retain_graph=True)
    once = x.grad.clone()
    total.backward()
    torch.testing.assert_close(x.grad, 2 * once)
    levels = tree_min_level_losses(logits.clone().requires_grad_(), target, h).sum()
    levels.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        levels.backward()


def test_without_a_gradient_the_total_computes_none(monkeypatch):
    h = Hierarchy.from_dict(TOY)
    logits = torch.randn(2, 7, 3, 3, requires_grad=True)
    target = torch.randint(0, 5, (2, 3, 3))
    loss = TreeMinLoss(h, gamma=2.0)
    expected = loss.level_losses(logits, target).sum()
    monkeypatch.setattr(_Pass, "route", None)  # the routing would fail if it ran
    with torch.no_grad():
        value = loss(logits, target)
    torch.testing.assert_close(value, expected.detach())
    assert not value.requires_grad
