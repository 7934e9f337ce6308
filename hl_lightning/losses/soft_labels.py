"""Soft hierarchical labels of Bertinetto et al., "Making Better Mistakes" (CVPR 2020).

The one-hot target of leaf ``C`` is replaced by the soft target::

    y(A | C) = exp(-beta * d(A, C) / d_max) / sum_B exp(-beta * d(B, C) / d_max),

``d`` the height of the lowest common ancestor (:meth:`Hierarchy.leaf_distance`: the
number of levels at which the two leaves' groups differ, in the tree padded so that every
leaf sits at the deepest level), ``d_max`` its largest value. The loss is the
cross-entropy against the soft target, ``-sum_A y(A|C) log p(A)`` (the KL divergence
``KL(y || p)`` plus the target's entropy, a constant: the same gradients). ``beta = 0``
gives uniform targets; large ``beta`` tends to the one-hot cross-entropy.

Computed without a (B, K, S) target: since ``d(A, C) = D - m(A, C)``, ``m`` the number of
levels at which A and C share their group, ``exp(-beta d / d_max)`` is a sum of level
terms, and ``sum_A y(A|C) z_A`` needs only the sums of the logits over the target's
group at each level (aggregated bottom-up like the hierarchical loss). Logits are shifted
by their maximum first, so every term of the loss is non-negative: no cancellation. The
gradient, ``softmax(z) - y(. | C)``, is computed in closed form in place of the
exponentials, its soft target built top-down from the same level terms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.losses._common import flatten, valid_leaf
from hl_lightning.losses._options import check_number, validate_loss_args
from hl_lightning.losses._tree_sums import (
    add_at_target,
    exp_of_shifted_,
    leaf_factors,
    target_group_sums,
    target_groups,
)
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["SoftLabelsLoss", "soft_label_matrix"]


def soft_label_matrix(hierarchy: Hierarchy, beta: float) -> Tensor:
    """Return the soft targets (K, K) in float64: row ``C`` is ``y(. | C)``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> import math
        >>> y = soft_label_matrix(h, beta=math.log(4) * 2)  # d_max = 2: y(A|C) ~ 4 ** -d(A, C)
        >>> (y[1] * 21).tolist()  # car: sky at distance 2, car 0, truck 1
        [1.0, 16.0, 4.0]
    """
    beta = check_number("beta", beta)
    distance = hierarchy.leaf_distance().double()
    scores = torch.exp(-beta * distance / distance.max())
    return scores / scores.sum(dim=1, keepdim=True)


class SoftLabelsLoss(nn.Module):
    """Cross-entropy of leaf logits against the hierarchy's soft targets ``y(. | target)``.

    Logits (B, K, *S), target (B, *S); the mean over non-ignored pixels, computed in fp32
    with autocast disabled, 0 with zero gradient when every pixel is ignored.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> loss = SoftLabelsLoss(h, beta=10.0)
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> soft = soft_label_matrix(h, 10.0).float()[target].movedim(-1, 1)  # (B, K, H, W)
        >>> expected = torch.nn.functional.cross_entropy(logits, soft)
        >>> torch.allclose(loss(logits, target), expected)
        True
    """

    level_coefficients: Tensor
    normalisers: Tensor

    def __init__(
        self, hierarchy: Hierarchy, ignore_index: int | None = 255, beta: float = 10.0
    ) -> None:
        super().__init__()
        beta = validate_loss_args(hierarchy, ignore_index, beta=beta)["beta"]
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.beta = beta
        distance = hierarchy.leaf_distance().double()
        depth, d_max = hierarchy.num_levels, distance.max()
        # exp(-beta (D - m) / d_max) = sum_{j=0..m} a_j: a_0 for every leaf, a_{d+1} for the
        # leaves in the target's group at level d.
        weights = torch.exp(-beta * (depth - torch.arange(depth + 1.0)) / d_max)
        coefficients = torch.cat([weights[:1], weights[1:] - weights[:-1]])
        normalisers = torch.exp(-beta * distance / d_max).sum(dim=1)  # (K,)
        self.register_buffer("level_coefficients", coefficients.float(), persistent=False)
        self.register_buffer("normalisers", normalisers.float(), persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the mean soft-target cross-entropy, a scalar."""
        validate_inputs(logits, target, self.hierarchy, self.ignore_index)
        tables = LevelTables.of(self.hierarchy, logits.device)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            z, target = flatten(logits, target)
            valid, leaf = valid_leaf(target, self.ignore_index)
            return _SoftLabelsCE.apply(
                z, leaf, valid, tables, self.level_coefficients.float(), self.normalisers.float()
            )

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}, beta={self.beta}"


class _SoftLabelsCE(torch.autograd.Function):
    """Mean over valid pixels of ``-sum_A y(A|C) log softmax(z)_A``, fp32 logits (B, K, S).

    ``leaf`` (B, S) targets (0 where ignored), ``valid`` (B, S); ``coefficients`` (D+1,)
    the level terms ``a_j`` and ``normalisers`` (K,) the sums ``N_C`` of SoftLabelsLoss:
    ``y(A|C) = (a_0 + sum_{d: A in S_d(C)} a_{d+1}) / N_C``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        logits: Tensor,
        leaf: Tensor,
        valid: Tensor,
        tables: LevelTables,
        coefficients: Tensor,
        normalisers: Tensor,
    ) -> Tensor:
        groups = target_groups(tables.level_matrix, leaf)
        shifted = logits - logits.amax(dim=1, keepdim=True)  # <= 0, the maximum exactly 0
        sums, total = target_group_sums(shifted, leaf, groups, tables)
        if not torch.isfinite(total).all():  # a pixel's logits span too much for fp32 sums
            wide = logits.double()
            sums, total = target_group_sums(
                wide - wide.amax(dim=1, keepdim=True), leaf, groups, tables
            )
        dot = coefficients[0] * total + (coefficients[1:].view(-1, 1, 1) * sums).sum(dim=0)
        exps = exp_of_shifted_(shifted)
        partition = exps.sum(dim=1)  # (B, S), in [1, K]: its log is the logsumexp
        normaliser = normalisers[leaf]
        count = valid.sum().clamp_min(1)
        # each pixel's share of the mean before the sum: no overflow on the way
        pixel_loss = torch.where(valid, partition.log() - dot / normaliser, 0.0)
        loss = (pixel_loss / count).sum().float()
        ctx.tables = tables
        ctx.save_for_backward(exps, leaf, groups, valid, partition, normaliser, count, coefficients)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_loss: Tensor):
        exps, leaf, groups, valid, partition, normaliser, count, a = ctx.saved_tensors
        tables: LevelTables = ctx.tables
        depth = tables.num_levels
        pixel_grad = torch.where(valid, grad_loss.float() / count, 0.0)  # (B, S)
        # dL/dz_k = g * e_k / partition - g * y(k|C), with g * y(k|C) = g / N_C times a_0
        # (every leaf) plus a_{d+1} for each level d whose target group holds k: built
        # top-down, the leaf level's term (a_D, at the target alone) added last.
        grad = exps.mul_((pixel_grad / partition).unsqueeze(1))
        soft = pixel_grad / normaliser  # (B, S)
        top, coeffs = -a[0] * soft, -a[1:depth].view(-1, 1, 1) * soft
        leaf_term = -a[depth] * soft
        for block, factors in leaf_factors(grad, top, coeffs, groups, tables):
            block.values(grad).add_(factors)
            add_at_target(grad, block, leaf, leaf_term)
        return grad, None, None, None, None, None
