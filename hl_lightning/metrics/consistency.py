"""The Metric class of tree consistency: the share of pixels off a tree path."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from hl_lightning.decode import DecodeMethod
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.base import _HierarchicalMetric
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.consistency import _consistency_compute, _consistency_update

__all__ = ["HierarchicalConsistency"]


class HierarchicalConsistency(_HierarchicalMetric):
    """The share of counted pixels whose per-level predictions are not a path of the tree.

    A pixel is inconsistent when, at some level, its predicted group is not inside its
    predicted group one level up. It is 0 by construction for ``decode="leaf"`` and
    ``"top_down"``; for ``"marginal"`` (each level's own argmax) it says how often the
    levels disagree. Consistency is a property of the prediction alone, so every pixel
    not ``ignore_index`` counts with its whole path, a coarse label's pixel included.
    ``compute()`` returns a scalar in [0, 1]. Functional form:
    :func:`~hl_lightning.metrics.hierarchical_consistency`.

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
        decode: DecodeMethod = "marginal",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index, decode=decode)
        super().__init__(hierarchy, ignore_index, validate_args, **kwargs)
        self.decode = decode
        self.add_state("counts", torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) label ids (leaves or
        coarse labels)."""
        batch = self._batch(logits, target, self.decode)
        if batch is not None:
            outputs, counted = batch
            decoded = cast(Tensor, outputs.decoded)
            self.counts += _consistency_update(decoded, counted, self._tables().parents)

    def compute(self) -> Tensor:
        """Return the share of inconsistent pixels (0 when nothing was counted)."""
        return _consistency_compute(self.counts)
