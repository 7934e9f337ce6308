"""Input handling shared by the losses: flattening and ignored pixels."""

from __future__ import annotations

import math

import torch
from torch import Tensor


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
