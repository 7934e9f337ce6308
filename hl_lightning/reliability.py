"""How far per-level predictions can be trusted: calibration error and tree consistency.

Two torchmetrics, each with its functional form, as :mod:`hl_lightning.metrics`:
:class:`HierarchicalCalibrationError` (per level, the expected calibration error of the
level's marginal probabilities) and :class:`HierarchicalConsistency` (the share of pixels
whose per-level predictions do not form a path of the tree). Their states are sums, so
DDP sync is exact. Their functional core is in :mod:`hl_lightning.metrics`, whose
:class:`~hl_lightning.metrics.HierarchicalSegmentationMetrics` computes them together
with the IoU, accuracy and severity from one pass over the logits.
"""

from __future__ import annotations

from typing import Any, cast, get_args

import torch
from torch import Tensor

from hl_lightning.decode import Decode
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics import (
    Norm,
    _calibration_compute,
    _calibration_update,
    _consistency_compute,
    _consistency_update,
    _HierarchicalMetric,
    _validate_bins,
)

__all__ = [
    "HierarchicalCalibrationError",
    "HierarchicalConsistency",
    "hierarchical_calibration_error",
    "hierarchical_consistency",
]


class HierarchicalCalibrationError(_HierarchicalMetric):
    """Per level, the expected calibration error of the level's marginal probabilities (D,).

    At level ``d`` a pixel's confidence is its largest group probability (the sum of the
    group's leaves' softmax probabilities) and it is correct when that group holds the
    target; pixels are binned by confidence into ``n_bins`` equal-width bins, and ``norm``
    combines ``|accuracy - confidence|`` over the bins as torchmetrics'
    :class:`~torchmetrics.classification.MulticlassCalibrationError` does (at the leaf
    level the two are equal; at level ``d`` it is that metric on the summed probabilities).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[4.0]], [[0.0]], [[0.0]]]])  # sky, sure
        >>> HierarchicalCalibrationError(h)(logits, torch.tensor([[[0]]]))
        tensor([0.0353, 0.0353])
    """

    higher_is_better = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    stats: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        n_bins: int = 15,
        norm: Norm = "l1",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(hierarchy, ignore_index, validate_args, **kwargs)
        _validate_bins(n_bins)
        if norm not in get_args(Norm):
            raise ValueError(f"norm must be one of {', '.join(get_args(Norm))}, got {norm!r}")
        self.n_bins, self.norm = n_bins, norm
        size = (3, hierarchy.num_levels, n_bins)
        self.add_state("stats", torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        batch = self._batch(logits, target, marginal=True)
        if batch is not None:
            self.stats += _calibration_update(*batch, self.n_bins)

    def compute(self) -> Tensor:
        """Return the per-level calibration error (D,), coarse to fine."""
        return _calibration_compute(self.stats, self.norm)


class HierarchicalConsistency(_HierarchicalMetric):
    """The share of counted pixels whose per-level predictions are not a path of the tree.

    A pixel is inconsistent when, at some level, its predicted group is not inside its
    predicted group one level up. It is 0 by construction for ``decode="leaf"`` and
    ``"top_down"``; for ``"marginal"`` (each level's own argmax) it says how often the
    levels disagree. ``compute()`` returns a scalar in [0, 1].

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[0.9]], [[0.6]], [[0.6]]]])  # sky alone, vehicle summed
        >>> HierarchicalConsistency(h)(logits, torch.tensor([[[0]]]))  # vehicle, then sky
        tensor(1.)
        >>> HierarchicalConsistency(h, decode="top_down")(logits, torch.tensor([[[0]]]))
        tensor(0.)
    """

    higher_is_better = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    counts: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        decode: Decode = "marginal",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(hierarchy, ignore_index, validate_args, decode, **kwargs)
        self.decode = decode
        self.add_state("counts", torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        batch = self._batch(logits, target, self.decode)
        if batch is not None:
            outputs, counted = batch
            decoded = cast(Tensor, outputs.decoded)
            self.counts += _consistency_update(decoded, counted, self._tables().parents)

    def compute(self) -> Tensor:
        """Return the share of inconsistent pixels (0 when nothing was counted)."""
        return _consistency_compute(self.counts)


def hierarchical_calibration_error(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    n_bins: int = 15,
    norm: Norm = "l1",
) -> Tensor:
    """Return the per-level calibration error (D,) of one batch (see the metric class).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> hierarchical_calibration_error(torch.zeros(1, 3, 1, 1), torch.tensor([[[1]]]), h)
        tensor([0.3333, 0.3333])
    """
    metric = HierarchicalCalibrationError(hierarchy, ignore_index, n_bins, norm)
    metric.update(logits, target)
    return _calibration_compute(metric.stats, norm)


def hierarchical_consistency(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    decode: Decode = "marginal",
) -> Tensor:
    """Return the share of one batch's pixels whose predictions are off a tree path.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.zeros(1, 3, 1, 1)  # uniform: vehicle at level 0, the first leaf (sky)
        >>> hierarchical_consistency(logits, torch.tensor([[[0]]]), h)
        tensor(1.)
    """
    metric = HierarchicalConsistency(hierarchy, ignore_index, decode)
    metric.update(logits, target)
    return _consistency_compute(metric.counts)
