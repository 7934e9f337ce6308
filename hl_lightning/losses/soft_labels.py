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
by their maximum first, so every term of the loss is non-negative: no cancellation.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.losses._common import flatten, masked_mean, valid_leaf
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["SoftLabelsLoss", "soft_label_matrix"]


def soft_label_matrix(hierarchy: Hierarchy, beta: float) -> Tensor:
    """Return the soft targets (K, K) in float64: row ``C`` is ``y(. | C)``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> y = soft_label_matrix(h, beta=math.log(4) * 2)  # d_max = 2: y(A|C) ~ 4 ** -d(A, C)
        >>> (y[1] * 21).tolist()  # car: sky at distance 2, car 0, truck 1
        [1.0, 16.0, 4.0]
    """
    _check_beta(beta)
    distance = hierarchy.leaf_distance().double()
    scores = torch.exp(-beta * distance / distance.max())
    return scores / scores.sum(dim=1, keepdim=True)


def _check_beta(beta: float) -> None:
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")


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
        _check_beta(beta)
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.beta = float(beta)
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
            shifted = z - z.detach().amax(dim=1, keepdim=True)  # <= 0; same loss and gradient
            a = self.level_coefficients.float()
            depth = tables.num_levels
            # sum_A y(A|t) z_A, times the normaliser: every leaf (a_0), then the target's
            # group at each level (a_{d+1}); at the leaf level that group is the target.
            dot = a[0] * shifted.sum(dim=1) + a[depth] * shifted.gather(1, leaf.unsqueeze(1))[:, 0]
            sums = shifted
            for d in range(depth - 2, -1, -1):  # bottom-up: leaves into groups, groups into parents
                index = tables.level_matrix[d] if d == depth - 2 else tables.parents[d]
                sums = sums.new_zeros(z.shape[0], tables.sizes[d], z.shape[2]).index_add(
                    1, index, sums
                )
                group = tables.level_matrix[d][leaf].unsqueeze(1)  # (B, 1, S)
                dot = dot + a[d + 1] * sums.gather(1, group)[:, 0]
            log_norm = shifted.exp().sum(dim=1).log()  # logsumexp: the maximum is exactly 0
            loss = log_norm - dot / self.normalisers.float()[leaf]
            return masked_mean(loss, valid)

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}, beta={self.beta}"
