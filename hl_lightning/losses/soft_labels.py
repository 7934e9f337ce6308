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

Coarse labels: a pixel labelled with an internal node ``n`` at level ``l`` says nothing
below ``l``, so its soft target lives on the groups of level ``l`` (the tree cut at the
node's level, where the node is one of the groups)::

    loss(z, n) = -sum_g y_l(g | n) log P(g),   y_l(g | n) ∝ exp(-beta * d_l(g, n) / d_max),

``P(g)`` the sum of the leaf probabilities under group ``g``, ``d_l(g, n)`` the number of
levels ``0..l`` at which ``g`` and ``n`` lie in different groups (the height of their lowest
common ancestor above level ``l``) and ``d_max`` the tree's, as for leaves. For a leaf
(``l = D - 1``) it is the leaf's soft-label loss; within a group nothing is asserted (the
gradient there follows the group's own probabilities). These pixels are averaged together
with the leaf pixels, computed with autograd on their rows (few, in a coarse batch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from hl_lightning.decode import level_log_probs
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.label_ids import has_coarse_labels
from hl_lightning.losses._common import flatten, valid_leaf
from hl_lightning.losses._options import check_number, validate_loss_args
from hl_lightning.losses._tree_sums import (
    add_at_target,
    fast_exp,
    leaf_factors,
    target_group_sums,
    target_groups,
)
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["SoftLabelsLoss", "group_soft_labels", "soft_label_matrix"]


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


def group_soft_labels(hierarchy: Hierarchy, beta: float, level: int) -> Tensor:
    """Return the soft targets (N, G) in float64 on the groups of ``level`` of every label id:
    ``y_l(g | n) ∝ exp(-beta * d_l(g, n) / d_max)``, ``d_l`` the number of levels ``0..level``
    at which ``g`` and ``n`` lie in different groups (a label's rows are meant for labels
    known at ``level``: there ``d_max`` is the tree's leaf distance maximum).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> import math
        >>> y = group_soft_labels(h, math.log(4) * 2, 0)  # groups sky, vehicle; d_max = 2
        >>> (y[3] * 5).tolist()  # vehicle: sky at distance 1, vehicle 0
        [1.0, 4.0]
        >>> torch.allclose(group_soft_labels(h, 3.0, 1)[:3], soft_label_matrix(h, 3.0))
        True
    """
    beta = check_number("beta", beta)
    d_max = hierarchy.leaf_distance().double().max()
    nodes = hierarchy.node_level_matrix()[: level + 1]  # (l+1, N)
    matrix = hierarchy.level_matrix()
    a_leaf = torch.zeros(hierarchy.num_groups(level), dtype=torch.long)
    a_leaf[matrix[level]] = torch.arange(hierarchy.num_leaves)  # a leaf of every group
    groups = matrix[: level + 1, a_leaf]  # (l+1, G): every group's ancestors
    distance = (nodes.unsqueeze(2) != groups.unsqueeze(1)).sum(0).double()  # (N, G)
    scores = torch.exp(-beta * distance / d_max)
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
        coarse = has_coarse_labels(target, self.hierarchy.num_leaves, self.ignore_index)
        tables = LevelTables.of(self.hierarchy, logits.device)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            z, target = flatten(logits, target)
            valid, leaf = valid_leaf(target, self.ignore_index)
            count = valid.sum().clamp_min(1)
            if coarse:
                return self._with_coarse_labels(z, valid, leaf, count, tables)
            return _SoftLabelsCE.apply(
                z,
                leaf,
                valid,
                count,
                tables,
                self.level_coefficients.float(),
                self.normalisers.float(),
            )

    def _with_coarse_labels(
        self, z: Tensor, valid: Tensor, label: Tensor, count: Tensor, tables: LevelTables
    ) -> Tensor:
        """Return the loss of fp32 logits (B, K, S) whose label ids (B, S; 0 where ignored)
        include internal nodes: the leaf pixels' mean plus the coarse pixels' losses on the
        groups of their node's level, over the same count of pixels."""
        coarse = label >= self.hierarchy.num_leaves
        loss = _SoftLabelsCE.apply(
            z,
            label.masked_fill(coarse, 0),
            valid & ~coarse,
            count,
            tables,
            self.level_coefficients.float(),
            self.normalisers.float(),
        )
        rows, nodes = z.movedim(1, -1)[coarse], label[coarse]  # (n, K), (n,)
        own_level = tables.node_levels[nodes]
        log_probs = level_log_probs(rows, self.hierarchy)  # per level (n, G_d): exact
        for level in own_level.unique().tolist():
            at = own_level == level
            soft = group_soft_labels(self.hierarchy, self.beta, level).to(z)[nodes[at]]
            loss = loss - ((soft * log_probs[level][at]).sum(1) / count).sum()
        return loss

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}, beta={self.beta}"


class _SoftLabelsCE(torch.autograd.Function):
    """Mean over valid pixels of ``-sum_A y(A|C) log softmax(z)_A``, fp32 logits (B, K, S).

    ``leaf`` (B, S) targets (0 where ignored), ``valid`` (B, S), ``count`` the number of
    pixels the mean is over (the valid ones, or more: coarse pixels); ``coefficients`` (D+1,)
    the level terms ``a_j`` and ``normalisers`` (K,) the sums ``N_C`` of SoftLabelsLoss:
    ``y(A|C) = (a_0 + sum_{d: A in S_d(C)} a_{d+1}) / N_C``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        logits: Tensor,
        leaf: Tensor,
        valid: Tensor,
        count: Tensor,
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
        exps = fast_exp(shifted, out=shifted)
        partition = exps.sum(dim=1)  # (B, S), in [1, K]: its log is the logsumexp
        normaliser = normalisers[leaf]
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
        return grad, None, None, None, None, None, None
