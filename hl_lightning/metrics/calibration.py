"""The Metric class of per-level calibration error."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.base import _HierarchicalMetric
from hl_lightning.metrics.functional.arguments import Norm, _validate_args
from hl_lightning.metrics.functional.calibration import _calibration_compute, _calibration_update

__all__ = ["HierarchicalCalibrationError"]


class HierarchicalCalibrationError(_HierarchicalMetric):
    """Per level, the expected calibration error of the level's marginal probabilities (D,).

    At level ``d`` a pixel's confidence is its largest group probability (the sum of the
    group's leaves' softmax probabilities) and it is correct when that group holds the
    target (a coarse label counts at its node's level and the coarser ones only); pixels
    are binned by confidence into ``n_bins`` equal-width bins, and ``norm``
    combines ``|accuracy - confidence|`` over the bins as torchmetrics'
    :class:`~torchmetrics.classification.MulticlassCalibrationError` does (at the leaf
    level the two are equal; at level ``d`` it is that metric on the summed probabilities).
    State ``stats`` (3, D, n_bins): float64 sums, so DDP sync is exact. Functional form:
    :func:`~hl_lightning.metrics.hierarchical_calibration_error`.

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
        _validate_args(hierarchy, ignore_index, n_bins=n_bins, norm=norm)
        super().__init__(hierarchy, ignore_index, validate_args, **kwargs)
        self.n_bins, self.norm = n_bins, norm
        size = (3, hierarchy.num_levels, n_bins)
        self.add_state("stats", torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) label ids (leaves or
        coarse labels)."""
        batch = self._batch(logits, target, marginal=True)
        if batch is not None:
            self.stats += _calibration_update(*batch, self.n_bins)

    def compute(self) -> Tensor:
        """Return the per-level calibration error (D,), coarse to fine."""
        return _calibration_compute(self.stats, self.norm)
