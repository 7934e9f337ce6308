"""Input handling shared by the losses: ignored pixels, flattening, masked means, level weights."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy


def flatten(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Return contiguous fp32 logits (B, C, S) and int64 targets (B, S) of logits (B, C, *S)
    and integer targets (B, *S) of any memory layout (channels_last included).

    Call it with autocast disabled: the losses compute in fp32 whatever the network's dtype.
    """
    batch, channels, pixels = logits.shape[0], logits.shape[1], math.prod(logits.shape[2:])
    flat_logits = logits.float().reshape(batch, channels, pixels).contiguous()
    return flat_logits, target.reshape(batch, pixels).long().contiguous()


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

    The leading dimensions are kept; 0 (with zero gradient) where no pixel is valid. Each
    value is divided by the count before the sum, so that a mean of values up to the fp32
    maximum does not overflow on the way.

    Example:
        >>> masked_mean(torch.tensor([[1.0, 5.0]]), torch.tensor([[True, False]]))
        tensor(1.)
    """
    return (torch.where(valid, values, 0.0) / valid.sum().clamp_min(1)).sum(dim=(-2, -1))


def check_weights(weights: Sequence[float], what: str) -> list[float]:
    """Return the weights as floats; a ValueError naming ``what`` unless all are finite and >= 0.

    Example:
        >>> check_weights([1, 0.5], "level_weights")
        [1.0, 0.5]
        >>> check_weights([1.0, float("nan")], "level_weights")
        Traceback (most recent call last):
            ...
        ValueError: level_weights must be finite and >= 0, got [1.0, nan]
    """
    values = [float(w) for w in weights]
    if not all(math.isfinite(w) and w >= 0 for w in values):
        raise ValueError(f"{what} must be finite and >= 0, got {values}")
    return values


def level_weight_tensor(hierarchy: Hierarchy, level_weights: Sequence[float] | None) -> Tensor:
    """Return one weight per level (D,), all 1 when ``level_weights`` is None.

    Raises a ValueError naming the levels when the count does not match, and naming the
    weights unless they are finite, >= 0 and not all 0 (which would train nothing).
    """
    weights = [1.0] * hierarchy.num_levels if level_weights is None else list(level_weights)
    if len(weights) != hierarchy.num_levels:
        raise ValueError(
            f"{len(weights)} level weights given for a hierarchy with "
            f"{hierarchy.num_levels} levels ({', '.join(hierarchy.level_names)})"
        )
    values = check_weights(weights, "level_weights")
    if not any(values):
        raise ValueError(
            f"level_weights are all 0, got {values}: no level would be trained; "
            "give at least one level a positive weight"
        )
    return torch.tensor(values)
