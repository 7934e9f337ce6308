"""Batches shared by the metric tests: logits tied to a target, and noisy logits."""

from __future__ import annotations

import torch

from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy

IGNORE = 255
#: The tree of :func:`noisy_batch`: 12 leaves, 3 levels, shuffled leaves.
NOISY_TREE = random_hierarchy(12, 3, seed=1, shuffle_leaves=True)


def make_batch(
    hierarchy: Hierarchy, batch: int = 2, size: int = 12, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return logits (B, K, size, size) loosely tied to a target (B, size, size), 10% ignored."""
    gen = torch.Generator().manual_seed(seed)
    k = hierarchy.num_leaves
    target = torch.randint(0, k, (batch, size, size), generator=gen)
    hint = torch.where(torch.rand(target.shape, generator=gen) < 0.6, target, 0)
    logits = torch.randn(batch, k, size, size, generator=gen)
    logits += 2.5 * torch.nn.functional.one_hot(hint, k).permute(0, 3, 1, 2)
    target[torch.rand(target.shape, generator=gen) < 0.1] = IGNORE
    return logits, target


def noisy_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return logits (3, 12, 9, 7) of scale 2 unrelated to a target (3, 9, 7) of
    :data:`NOISY_TREE`, whose first row is ignored."""
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(3, NOISY_TREE.num_leaves, 9, 7, generator=gen)
    target = torch.randint(0, NOISY_TREE.num_leaves, (3, 9, 7), generator=gen)
    target[:, 0] = IGNORE
    return logits, target


def node_paths(hierarchy: Hierarchy) -> list[list[str]]:
    """Return per label id the names of the node's ancestors and itself, from level 0 down,
    read from the tree itself: an internal node's path ends at its depth, a leaf's is
    padded with its own name to D levels (a shallow leaf stands for itself below)."""
    paths: dict[str, list[str]] = {}
    stack: list[str] = []
    for node, depth in hierarchy.walk():
        del stack[depth:]
        stack.append(node.name)
        path = list(stack)
        if not node.children:
            path += [node.name] * (hierarchy.num_levels - len(path))
        paths[node.name] = path
    return [paths[name] for name in hierarchy.node_names]


def coarse_batch(
    hierarchy: Hierarchy, batch: int = 2, size: int = 12, seed: int = 0, share: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return :func:`make_batch` with about ``share`` of the labelled pixels relabelled by
    an internal node: an ancestor of their leaf (a coarse label of the truth) or, one time
    in four, any internal node."""
    logits, target = make_batch(hierarchy, batch, size, seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    k, n = hierarchy.num_leaves, hierarchy.num_nodes
    if n == k:
        return logits, target
    paths = node_paths(hierarchy)
    ancestors = [[hierarchy.label_id(a) for a in paths[leaf][:-1]] for leaf in range(k)]
    flat = target.view(-1)
    for i in range(flat.numel()):
        leaf = int(flat[i])
        if leaf == IGNORE or torch.rand((), generator=gen) >= share:
            continue
        inner = [a for a in ancestors[leaf] if a >= k]  # internal ancestors (not the padding)
        if inner and torch.rand((), generator=gen) < 0.75:
            flat[i] = inner[int(torch.randint(len(inner), (), generator=gen))]
        else:
            flat[i] = int(torch.randint(k, n, (), generator=gen))
    return logits, target
