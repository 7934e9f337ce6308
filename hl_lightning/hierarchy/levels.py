"""The level tables of a tree: the groups of every level, and every node's group at every level.

**Node ids** (the label ids a mask may hold): the K leaves first, in leaf order, so leaf
``i`` is label id ``i``; then the internal nodes, coarse to fine: by depth, in tree order
within a depth. A leaf is a group at every level (a shallow one stands for itself below
its depth); an internal node at depth ``l`` is a group at levels ``0..l`` and says
nothing below: there its entry in :func:`node_level_matrix` is :data:`UNKNOWN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from hl_lightning.hierarchy.node import Node, preorder

__all__ = ["UNKNOWN", "InternalNode", "internal_nodes", "level_groups", "node_level_matrix"]

#: The entry of :func:`node_level_matrix` below an internal node's level (its group there
#: is unknown). Negative, so it is never a group id.
UNKNOWN = -1


class InternalNode(NamedTuple):
    """A node with children: its name, its depth (its finest level) and its first leaf."""

    name: str
    depth: int
    first_leaf: str


def level_groups(roots: Sequence[Node], depth: int) -> list[tuple[tuple[str, ...], dict[str, int]]]:
    """Return, per level, the group names in tree order and every leaf's group id there.

    Example:
        >>> tree = [Node("sky"), Node("vehicle", (Node("car"), Node("bus")))]
        >>> [groups for groups, _ in level_groups(tree, 2)]
        [('sky', 'vehicle'), ('sky', 'car', 'bus')]
    """
    groups: list[list[str]] = [[] for _ in range(depth)]
    leaf_group: list[dict[str, int]] = [{} for _ in range(depth)]
    path: list[int] = []  # group ids of the current node and its ancestors
    for node, level in preorder(roots):
        del path[level:]
        path.append(len(groups[level]))
        groups[level].append(node.name)
        if node.children:
            continue
        for d in range(level + 1, depth):  # a shallow leaf stands for itself below
            path.append(len(groups[d]))
            groups[d].append(node.name)
        for d in range(depth):
            leaf_group[d][node.name] = path[d]
    return [(tuple(g), m) for g, m in zip(groups, leaf_group, strict=True)]


def internal_nodes(roots: Sequence[Node]) -> list[InternalNode]:
    """Return the internal nodes in node-id order: by depth, in tree order within a depth.

    Example:
        >>> tree = [Node("a"), Node("b", (Node("c"), Node("d", (Node("e"), Node("f")))))]
        >>> [(node.name, node.depth, node.first_leaf) for node in internal_nodes(tree)]
        [('b', 0, 'c'), ('d', 1, 'e')]
    """
    found: list[tuple[int, int, str]] = []  # (depth, position in tree order, name)
    first_leaf: list[str] = []
    waiting = 0  # the last nodes found, still without a leaf: the next leaf is their first
    for position, (node, depth) in enumerate(preorder(roots)):
        if node.children:
            found.append((depth, position, node.name))
            waiting += 1
        else:
            first_leaf.extend([node.name] * waiting)
            waiting = 0
    order = sorted(range(len(found)), key=lambda i: found[i][:2])
    return [InternalNode(found[i][2], found[i][0], first_leaf[i]) for i in order]


def node_level_matrix(
    level_matrix: torch.Tensor, leaves: Sequence[str], internal: Sequence[InternalNode]
) -> torch.Tensor:
    """Return a LongTensor (D, N): the group id at level ``d`` of every node, by node id.

    The first K columns are ``level_matrix`` (D, K); an internal node's column is its
    first leaf's down to the node's depth, :data:`UNKNOWN` below.

    Example:
        >>> matrix = torch.tensor([[0, 1, 1], [0, 1, 2]])
        >>> node_level_matrix(matrix, ["a", "c", "d"], [InternalNode("b", 0, "c")]).tolist()
        [[0, 1, 1, 1], [0, 1, 2, -1]]
    """
    leaf_id = {name: i for i, name in enumerate(leaves)}
    first = torch.tensor([leaf_id[node.first_leaf] for node in internal], dtype=torch.long)
    depth = torch.tensor([node.depth for node in internal], dtype=torch.long)
    below = torch.arange(level_matrix.shape[0])[:, None] > depth[None, :]
    return torch.cat([level_matrix, level_matrix[:, first].masked_fill(below, UNKNOWN)], dim=1)
