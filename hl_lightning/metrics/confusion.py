"""The Metric classes of per-level confusion matrices: mIoU and pixel accuracy, one state."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hl_lightning.decode import DecodeMethod
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.base import _HierarchicalMetric
from hl_lightning.metrics.functional.arguments import Average, _validate_args
from hl_lightning.metrics.functional.confusion import (
    _confusion_matrix_size,
    _hierarchical_confusion_matrix_update,
    _jaccard_index_compute,
    _level_confusion_matrices,
    _pixel_accuracy_compute,
)

__all__ = ["HierarchicalJaccardIndex", "HierarchicalPixelAccuracy"]


class _HierarchicalConfusionMatrix(_HierarchicalMetric):
    """Per-level confusion matrices of decoded predictions: the state the IoU and accuracy share.

    State ``confmat``: a flat LongTensor, see :func:`_hierarchical_confusion_matrix_update`;
    for ``decode="leaf"`` the (K, K) leaf matrix, and ``coarse_confmat`` the rows of the
    coarse labels ((N - K) * K, empty state absent for a tree without internal nodes).
    """

    higher_is_better: bool | None = True
    plot_lower_bound: float | None = 0.0
    plot_upper_bound: float | None = 1.0

    confmat: Tensor
    coarse_confmat: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None,
        decode: DecodeMethod,
        validate_args: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(hierarchy, ignore_index, validate_args, **kwargs)
        self.decode = decode
        size = _confusion_matrix_size(self._tables(), decode)
        self._leaf_size = hierarchy.num_leaves**2 if decode == "leaf" else size
        self.add_state("confmat", torch.zeros(self._leaf_size, dtype=torch.long), "sum")
        if size > self._leaf_size:
            coarse = torch.zeros(size - self._leaf_size, dtype=torch.long)
            self.add_state("coarse_confmat", coarse, dist_reduce_fx="sum")

    def _add_counts(self, counts: Tensor) -> None:
        """Add the flat counts of :func:`_hierarchical_confusion_matrix_update` to the states."""
        self.confmat += counts[: self._leaf_size]
        if counts.numel() > self._leaf_size:
            self.coarse_confmat += counts[self._leaf_size :]

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) label ids (leaves or
        coarse labels)."""
        leaf = self.decode == "leaf"
        batch = self._batch(logits, target, None if leaf else self.decode, leaf=leaf)
        if batch is not None:
            self._add_counts(
                _hierarchical_confusion_matrix_update(*batch, self._tables(), self.decode)
            )

    def confusion_matrices(self) -> list[Tensor]:
        """Return D LongTensors (G_d, G_d), rows target, columns prediction, coarse to fine."""
        counts = self.confmat
        if counts.numel() < _confusion_matrix_size(self._tables(), self.decode):
            counts = torch.cat([counts, self.coarse_confmat])
        return _level_confusion_matrices(counts, self._tables(), self.decode)


class HierarchicalJaccardIndex(_HierarchicalConfusionMatrix):
    """Per-level mean intersection over union, coarse to fine.

    Predictions at each level come from ``decode`` (``"marginal"``, ``"leaf"`` or
    ``"top_down"``, see :mod:`hl_lightning.decode`). Per group IoU = TP / (TP + FP + FN)
    over pixels whose target is not ``ignore_index`` (a coarse label, an internal node's
    id, counts at its node's level and the coarser ones, and is skipped below); the mean
    skips groups absent from both target and prediction, as
    :class:`~torchmetrics.classification.MulticlassJaccardIndex`.
    ``compute()`` returns a Tensor (D,), or with ``average="none"`` a list of D tensors
    (G_d,) of per-group IoU (0 for absent groups). Functional form:
    :func:`~hl_lightning.metrics.hierarchical_jaccard_index`.

    Example:
        >>> import torch.nn.functional as F
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = 5.0 * F.one_hot(torch.tensor([[[0, 2, 2, 0]]]), 3).permute(0, 3, 1, 2).float()
        >>> target = torch.tensor([[[0, 1, 2, 255]]])  # sky, car, truck, ignored
        >>> metric = HierarchicalJaccardIndex(h)
        >>> metric.update(logits, target)
        >>> metric.compute()
        tensor([1.0000, 0.5000])
        >>> HierarchicalJaccardIndex(h, average="none")(logits, target)
        [tensor([1., 1.]), tensor([1.0000, 0.0000, 0.5000])]
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        decode: DecodeMethod = "marginal",
        average: Average = "macro",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index, decode=decode, average=average)
        super().__init__(hierarchy, ignore_index, decode, validate_args, **kwargs)
        self.average = average

    def compute(self) -> Tensor | list[Tensor]:
        """Return the per-level mIoU (D,), or D per-group IoU tensors for ``average="none"``."""
        return _jaccard_index_compute(self.confusion_matrices(), self.average)


class HierarchicalPixelAccuracy(_HierarchicalConfusionMatrix):
    """Per-level pixel accuracy (D,), coarse to fine, over pixels not ``ignore_index``.

    A coarse label (an internal node's id) counts at its node's level and the coarser
    ones, and is skipped below.

    Same state and update as :class:`HierarchicalJaccardIndex` (same ``decode``), so a
    ``MetricCollection(..., compute_groups=True)`` counts each batch once for both.
    Functional form: :func:`~hl_lightning.metrics.hierarchical_pixel_accuracy`.

    Example:
        >>> import torch.nn.functional as F
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = 5.0 * F.one_hot(torch.tensor([[[0, 2, 2, 0]]]), 3).permute(0, 3, 1, 2).float()
        >>> target = torch.tensor([[[0, 1, 2, 255]]])  # sky, car, truck, ignored
        >>> HierarchicalPixelAccuracy(h)(logits, target)
        tensor([1.0000, 0.6667])
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        decode: DecodeMethod = "marginal",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index, decode=decode)
        super().__init__(hierarchy, ignore_index, decode, validate_args, **kwargs)

    def compute(self) -> Tensor:
        """Return the per-level pixel accuracy (D,)."""
        return _pixel_accuracy_compute(self.confusion_matrices())
