"""The Metric class of mistake severity, and the states it shares with the all-in-one metric."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from hl_lightning.decode import DecodeMethod
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.base import _HierarchicalMetric
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.severity import (
    _mistake_severity_compute,
    _mistake_severity_update,
    _mistake_table,
    _predicted_leaf,
    _severity_request,
)

__all__ = ["MistakeSeverity"]


def _add_mistake_states(metric: Metric, hierarchy: Hierarchy) -> None:
    """Give ``metric`` the buffer and state of :class:`MistakeSeverity`: ``mistake_table``
    (N, K) (:func:`_mistake_table`) and ``mistake_counts`` (3,), see
    :func:`_mistake_severity_update`."""
    table = _mistake_table(hierarchy).clone()
    metric.register_buffer("mistake_table", table, persistent=False)
    counts = torch.zeros(3, dtype=torch.long)
    metric.add_state("mistake_counts", counts, dist_reduce_fx="sum")


class MistakeSeverity(_HierarchicalMetric):
    """How bad the leaf mistakes are: their mean tree distance and share of serious ones.

    The predicted leaf is the one ``decode`` predicts at the finest level: the argmax leaf
    for ``"marginal"`` (the default) and ``"leaf"``, the end of the path for
    ``"top_down"``, the least expected distance for ``"crm"``. Among pixels whose
    predicted leaf differs from the target (``ignore_index`` not counted), ``severity`` is
    the mean :meth:`Hierarchy.leaf_distance` between prediction and target (1 = a sibling
    at the finest level, D = a different level-0 group) and ``serious`` the share of
    mistakes across level-0 groups (the paper's serious mistakes). A coarse label (an
    internal node's id) is a mistake when the predicted leaf lies outside its node, at the
    distance counted over the levels where the label is known (its node's level and the
    coarser ones). ``compute()`` returns ``{"severity": Tensor, "serious": Tensor}``, both
    0 without mistakes. Functional form: :func:`~hl_lightning.metrics.mistake_severity`.

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
    mistake_table: Tensor

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
        _add_mistake_states(self, hierarchy)

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) label ids (leaves or
        coarse labels)."""
        method, leaf = _severity_request(self.decode)
        batch = self._batch(logits, target, method, leaf=leaf)
        if batch is not None:
            outputs, counted = batch
            predicted = _predicted_leaf(outputs, self._tables(), self.decode)
            self.mistake_counts += _mistake_severity_update(predicted, counted, self.mistake_table)

    def compute(self) -> dict[str, Tensor]:
        """Return {"severity": Tensor (), "serious": Tensor ()}."""
        return _mistake_severity_compute(self.mistake_counts)
