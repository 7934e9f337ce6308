"""Tests for hl_lightning/decode/nodes.py: node predictions at a threshold."""

from __future__ import annotations

import pytest
import torch
from _metric_batches import node_paths
from _trees import TREE_CASES, UNBALANCED, tree_case, tree_case_id

from hl_lightning import Hierarchy
from hl_lightning.decode import NO_NODE, check_thresholds, predict_nodes
from hl_lightning.hierarchies.random import random_hierarchy

THRESHOLDS = [0.5, 0.6, 0.75, 0.9, 0.99]


@pytest.fixture(params=TREE_CASES, ids=tree_case_id)
def tree(request: pytest.FixtureRequest) -> Hierarchy:
    """Random unbalanced trees with shuffled leaves, and a small tree with leaves at 3 depths."""
    return tree_case(request.param, seed_offset=2)


def node_probabilities(logits: torch.Tensor, hierarchy: Hierarchy) -> torch.Tensor:
    """Return (P, N) float64: every node's probability (its leaves' summed softmax) per pixel."""
    p = torch.softmax(logits.double(), 1).movedim(1, -1).reshape(-1, hierarchy.num_leaves)
    paths = node_paths(hierarchy)
    under = torch.tensor(
        [
            [name in paths[leaf] for leaf in range(hierarchy.num_leaves)]
            for name in hierarchy.node_names
        ]
    )
    return p @ under.double().T


def node_depths(hierarchy: Hierarchy) -> list[int]:
    """Return each node's depth in the tree (a shallow leaf: its own depth), by label id."""
    depth = {node.name: d for node, d in hierarchy.walk()}
    return [depth[name] for name in hierarchy.node_names]


def reference_nodes(
    logits: torch.Tensor, hierarchy: Hierarchy, threshold: float
) -> tuple[list[int], list[bool]]:
    """Return per pixel the deepest node of probability >= threshold (-1 if none) and
    whether the pixel is clear of the threshold (no node within 1e-5 of it)."""
    probs = node_probabilities(logits, hierarchy)
    depths = node_depths(hierarchy)
    nodes, clear = [], []
    for row in probs.tolist():
        confident = [n for n, p in enumerate(row) if p >= threshold]
        nodes.append(max(confident, key=lambda n: depths[n]) if confident else NO_NODE)
        clear.append(all(abs(p - threshold) > 1e-5 for p in row))
    return nodes, clear


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_the_deepest_confident_node_of_a_float64_reference(
    tree: Hierarchy, threshold: float
) -> None:
    logits = 3 * torch.randn(2, tree.num_leaves, 6, 5, generator=torch.Generator().manual_seed(3))
    got = predict_nodes(logits, tree, threshold)
    assert got.shape == (2, 6, 5) and got.dtype == torch.long
    want, clear = reference_nodes(logits, tree, threshold)
    kept = [g for g, c in zip(got.flatten().tolist(), clear, strict=True) if c]
    assert kept == [w for w, c in zip(want, clear, strict=True) if c]
    assert len(kept) > 0.9 * len(want)


def test_confident_nodes_move_up_the_tree_as_the_threshold_rises(tree: Hierarchy) -> None:
    logits = 3 * torch.randn(1, tree.num_leaves, 20, 20)
    paths = node_paths(tree)
    previous = None
    for threshold in THRESHOLDS:
        nodes = predict_nodes(logits, tree, threshold).flatten().tolist()
        if previous is not None:  # each node is the previous one or an ancestor of it
            for now, before in zip(nodes, previous, strict=True):
                if now != NO_NODE:  # no node before means none now either
                    assert before != NO_NODE and tree.node_names[now] in paths[before]
        previous = nodes


def test_a_shallow_leaf_is_a_node_at_its_own_depth() -> None:
    h = Hierarchy.from_dict(UNBALANCED)  # a at depth 0, c at depth 1, e and f at depth 2
    logits = torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 5.0, 0.0, 0.0], [0.0, 0.0, 4.0, 4.0]]).T
    nodes = predict_nodes(logits.unsqueeze(0), h, 0.9)[0].tolist()
    assert [h.node_names[n] for n in nodes] == ["a", "c", "d"]


def test_bad_thresholds_and_logits_are_named_before_any_work() -> None:
    h = random_hierarchy(11, 3, shuffle_leaves=True)
    logits = torch.randn(1, 11, 4, 4)
    for bad in (0.3, 1.0, 1.5, float("nan"), -0.5):
        with pytest.raises(ValueError, match=rf"threshold={bad!r} is outside \[0\.5, 1\)"):
            predict_nodes(logits, h, bad)
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0\.5, 1\), got '0\.7'"):
        predict_nodes(logits, h, "0.7")  # type: ignore[arg-type]
    logits[0, 3, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"predict_nodes: the logits have 1 non-finite values"):
        predict_nodes(logits, h, 0.7)
    with pytest.raises(ValueError, match="logits have 5 channels but the hierarchy has 11 leaves"):
        predict_nodes(logits[:, :5], h, 0.7)
    with pytest.raises(ValueError, match=r"thresholds must increase, got \[0\.6, 0\.6\]"):
        check_thresholds([0.6, 0.6])
    with pytest.raises(ValueError, match=r"a threshold=0\.2 is outside"):
        check_thresholds([0.2, 0.6])
    assert check_thresholds(50)[:3] == (0.5, 0.51, 0.52) and check_thresholds(50)[-1] == 0.99
