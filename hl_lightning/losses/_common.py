"""Input handling shared by the losses: ignored pixels, flattening, masked means, level weights."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy


def flatten(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Return fp32 logits (B, C, S) and targets (B, S) of logits (B, C, *S), target (B, *S).

    Call it with autocast disabled: the losses compute in fp32 whatever the network's dtype.
    """
    batch, channels, pixels = logits.shape[0], logits.shape[1], math.prod(logits.shape[2:])
    return logits.float().reshape(batch, channels, pixels), target.reshape(batch, pixels)


def valid_leaf(target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """Return the mask of non-ignored pixels and the targets with ignored pixels set to leaf 0.

    Every loss handles ``ignore_index`` like this: ignored pixels get a valid stand-in label
    (so that indexing works) and are masked out of the sum and of the count.

    Example:
        >>> valid_leaf(torch.tensor([[2, 255]]), 255)
        (tensor([[ True, False]]), tensor([[2, 0]]))
    """
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool), target
    valid = target != ignore_index
    return valid, target.masked_fill(~valid, 0)


def masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Return the mean of ``values`` (..., B, S) over the pixels where ``valid`` (B, S) is true.

    The leading dimensions are kept; 0 (with zero gradient) where no pixel is valid.

    Example:
        >>> masked_mean(torch.tensor([[1.0, 5.0]]), torch.tensor([[True, False]]))
        tensor(1.)
    """
    total = torch.where(valid, values, 0.0).sum(dim=(-2, -1))
    return total / valid.sum().clamp_min(1)


def level_weight_tensor(hierarchy: Hierarchy, level_weights: Sequence[float] | None) -> Tensor:
    """Return one weight per level (D,), all 1 when ``level_weights`` is None.

    Raises a ValueError naming the levels when the count does not match.
    """
    weights = [1.0] * hierarchy.num_levels if level_weights is None else list(level_weights)
    if len(weights) != hierarchy.num_levels:
        raise ValueError(
            f"{len(weights)} level weights given for a hierarchy with "
            f"{hierarchy.num_levels} levels ({', '.join(hierarchy.level_names)})"
        )
    return torch.tensor(weights)
