"""The all-in-one Metric class: every metric of a segmentation run from one pass per batch."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor

from hl_lightning.decode import DecodeMethod
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.confusion import _HierarchicalConfusionMatrix
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.calibration import _calibration_compute, _calibration_update
from hl_lightning.metrics.functional.confusion import (
    _hierarchical_confusion_matrix_update,
    _jaccard_index_compute,
    _pixel_accuracy_compute,
)
from hl_lightning.metrics.functional.consistency import _consistency_compute, _consistency_update
from hl_lightning.metrics.functional.nodes import _node_claims_update, _precision_recall
from hl_lightning.metrics.functional.severity import (
    _mistake_severity_compute,
    _mistake_severity_update,
    _predicted_leaf,
)
from hl_lightning.metrics.severity import _add_mistake_states

__all__ = ["HierarchicalSegmentationMetrics"]


class HierarchicalSegmentationMetrics(_HierarchicalConfusionMatrix):
    """Every metric of a segmentation run, from one check and one pass over each batch.

    ``compute()`` returns a dict: ``"miou"`` (D,) and ``"acc"`` (D,) as
    :class:`~hl_lightning.metrics.HierarchicalJaccardIndex` and
    :class:`~hl_lightning.metrics.HierarchicalPixelAccuracy` with the same ``decode``,
    ``"severity"`` and ``"serious"`` as :class:`~hl_lightning.metrics.MistakeSeverity`
    (same ``decode``: the mistakes of the leaf the decoding predicts),
    and with ``reliability`` ``"ece"`` (D,) as
    :class:`~hl_lightning.metrics.HierarchicalCalibrationError` (``n_bins``, norm l1) and
    ``"inconsistency"`` as :class:`~hl_lightning.metrics.HierarchicalConsistency`;
    with a ``threshold`` (in [0.5, 1), and ``reliability``) also ``"hp"``, ``"hr"`` and
    ``"hf"`` as :class:`~hl_lightning.metrics.HierarchicalPrecisionRecall` at it.
    The values equal those metrics' on the same batches, for a fraction of their summed
    cost: the inputs are checked once and the logits read once
    (:func:`~hl_lightning.decode.level_outputs`). Every state is a sum, so DDP sync is
    exact. :class:`~hl_lightning.lightning.HierarchicalSegmenter` logs one per stage.

    Example:
        >>> import torch.nn.functional as F
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = 5.0 * F.one_hot(torch.tensor([[[2, 0, 2, 0]]]), 3).permute(0, 3, 1, 2).float()
        >>> target = torch.tensor([[[1, 1, 2, 255]]])  # car as truck, car as sky, right, ignored
        >>> for name, value in HierarchicalSegmentationMetrics(h)(logits, target).items():
        ...     print(name, value)
        miou tensor([0.3333, 0.1667])
        acc tensor([0.6667, 0.3333])
        severity tensor(1.5000)
        serious tensor(0.5000)
        ece tensor([0.3245, 0.6534])
        inconsistency tensor(0.)
    """

    higher_is_better = None
    plot_lower_bound = None
    plot_upper_bound = None

    mistake_counts: Tensor
    calibration: Tensor
    consistency: Tensor
    mistake_table: Tensor
    node_counts: Tensor
    node_threshold: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        decode: DecodeMethod = "marginal",
        n_bins: int = 15,
        reliability: bool = True,
        threshold: float | None = None,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index, decode=decode, n_bins=n_bins, threshold=threshold)
        if threshold is not None and not reliability:
            raise ValueError("threshold needs reliability=True (the pass that reads probabilities)")
        super().__init__(hierarchy, ignore_index, decode, validate_args, **kwargs)
        self.n_bins = n_bins
        self.reliability = reliability
        self.threshold = threshold
        if threshold is not None:
            grid = torch.tensor([float(threshold)], dtype=torch.float64)
            self.register_buffer("node_threshold", grid, persistent=False)
            counts = torch.zeros(2, 2, dtype=torch.long)
            self.add_state("node_counts", counts, dist_reduce_fx="sum")
        _add_mistake_states(self, hierarchy)
        if reliability:
            size = (3, hierarchy.num_levels, n_bins)
            stats = torch.zeros(size, dtype=torch.float64)
            self.add_state("calibration", stats, dist_reduce_fx="sum")
            self.add_state("consistency", torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) label ids (leaves or
        coarse labels)."""
        method = None if self.decode == "leaf" and not self.reliability else self.decode
        batch = self._batch(logits, target, method, leaf=True, marginal=self.reliability)
        if batch is None:
            return
        outputs, counted = batch
        tables = self._tables()
        self._add_counts(
            _hierarchical_confusion_matrix_update(outputs, counted, tables, self.decode)
        )
        predicted = _predicted_leaf(outputs, tables, self.decode)
        self.mistake_counts += _mistake_severity_update(predicted, counted, self.mistake_table)
        if self.reliability:
            self.calibration += _calibration_update(outputs, counted, self.n_bins)
            decoded = cast(Tensor, outputs.decoded)
            self.consistency += _consistency_update(decoded, counted, tables.parents)
        if self.threshold is not None:
            self.node_counts += _node_claims_update(outputs, counted, self.node_threshold)

    def compute(self) -> dict[str, Tensor]:
        """Return {"miou": (D,), "acc": (D,), "severity": (), "serious": ()}, with
        ``reliability`` also {"ece": (D,), "inconsistency": ()}, with a ``threshold`` also
        {"hp": (), "hr": (), "hf": ()}."""
        confmats = self.confusion_matrices()
        values = {
            "miou": cast(Tensor, _jaccard_index_compute(confmats, "macro")),
            "acc": _pixel_accuracy_compute(confmats),
            **_mistake_severity_compute(self.mistake_counts),
        }
        if self.reliability:
            values["ece"] = _calibration_compute(self.calibration, "l1")
            values["inconsistency"] = _consistency_compute(self.consistency)
        if self.threshold is not None:
            nodes = _precision_recall(self.node_counts)
            values.update({name: value[0] for name, value in nodes.items()})
        return values
