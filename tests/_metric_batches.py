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
