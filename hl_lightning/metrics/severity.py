"""The Metric class of mistake severity, and the states it shares with the all-in-one metric."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor
from torchmetrics import Metric

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.base import _HierarchicalMetric
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.severity import (
    _mistake_severity_compute,
    _mistake_severity_update,
)

__all__ = ["MistakeSeverity"]


def _add_mistake_states(metric: Metric, hierarchy: Hierarchy) -> None:
    """Give ``metric`` the buffer and state of :class:`MistakeSeverity`: ``leaf_distance``
    (K, K) and ``mistake_counts`` (3,), see :func:`_mistake_severity_update`."""
    metric.register_buffer("leaf_distance", hierarchy.leaf_distance(), persistent=False)
    counts = torch.zeros(3, dtype=torch.long)
    metric.add_state("mistake_counts", counts, dist_reduce_fx="sum")


class MistakeSeverity(_HierarchicalMetric):
    """How bad the leaf mistakes are: their mean tree distance and share of serious ones.

    Among pixels whose argmax leaf differs from the target (``ignore_index`` not counted),
    ``severity`` is the mean :meth:`Hierarchy.leaf_distance` between prediction and target
    (1 = a sibling at the finest level, D = a different level-0 group) and ``serious`` the
    share of mistakes across level-0 groups (distance D, the paper's serious mistakes).
    ``compute()`` returns ``{"severity": Tensor, "serious": Tensor}``, both 0 without
    mistakes. Functional form: :func:`~hl_lightning.metrics.mistake_severity`.

    Example:
        >>> import torch.nn.functional as F
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = 5.0 * F.one_hot(torch.tensor([[[2, 0, 2, 0]]]), 3).permute(0, 3, 1, 2).float()
        >>> target = torch.tensor([[[1, 1, 2, 255]]])  # car as truck, car as sky, right, ignored
        >>> MistakeSeverity(h)(logits, target)
        {'severity': tensor(1.5000), 'serious': tensor(0.5000)}
    """

    higher_is_better = False

    mistake_counts: Tensor
    leaf_distance: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index)
        super().__init__(hierarchy, ignore_index, validate_args, **kwargs)
        _add_mistake_states(self, hierarchy)

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        batch = self._batch(logits, target, leaf=True)
        if batch is not None:
            outputs, counted = batch
            self.mistake_counts += _mistake_severity_update(
                cast(Tensor, outputs.leaf), counted, self.leaf_distance, len(self.sizes)
            )

    def compute(self) -> dict[str, Tensor]:
        """Return {"severity": Tensor (), "serious": Tensor ()}."""
        return _mistake_severity_compute(self.mistake_counts)
