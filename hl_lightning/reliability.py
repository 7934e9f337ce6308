"""How far per-level predictions can be trusted: calibration error and tree consistency.

Two torchmetrics, each with its functional form, as :mod:`hl_lightning.metrics`:
:class:`HierarchicalCalibrationError` (per level, the expected calibration error of the
level's marginal probabilities) and :class:`HierarchicalConsistency` (the share of pixels
whose per-level predictions do not form a path of the tree). Their states are sums, so
DDP sync is exact.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torchmetrics import Metric

from hl_lightning.decode import Decode, _group_sums, decode_with_tables
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics import _check_update, _validate_args
from hl_lightning.tables import LevelTables

__all__ = [
    "HierarchicalCalibrationError",
    "HierarchicalConsistency",
    "hierarchical_calibration_error",
    "hierarchical_consistency",
]

#: How a level's bins combine into one calibration error, as torchmetrics' ``norm``.
Norm = Literal["l1", "l2", "max"]


def _valid(target: Tensor, ignore_index: int | None) -> Tensor:
    """Return the mask (B, *S) of pixels that count."""
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def _calibration_update(
    logits: Tensor, target: Tensor, hierarchy: Hierarchy, n_bins: int, ignore_index: int | None
) -> Tensor:
    """Return one batch's bin sums (3, D, n_bins) float64: pixel counts, summed confidences
    and summed correct predictions, per level, in equal-width confidence bins."""
    valid = _valid(target, ignore_index)
    leaf = target.long().clamp(0, hierarchy.num_leaves - 1)[valid]
    tables = LevelTables.of(hierarchy, logits.device)
    boundaries = torch.linspace(0, 1, n_bins + 1, device=logits.device)
    stats = torch.zeros(3, hierarchy.num_levels, n_bins, dtype=torch.float64, device=logits.device)
    with torch.no_grad():
        p = logits.detach().float().softmax(1)
        for d, probs in enumerate([*_group_sums(p, tables), p]):  # the leaves in label order
            best, pred = probs.max(1)
            confidence = best[valid]
            groups = leaf if d == tables.num_levels - 1 else tables.level_matrix[d][leaf]
            correct = (pred[valid] == groups).double()
            bins = (torch.bucketize(confidence, boundaries, right=True) - 1).clamp(0, n_bins - 1)
            stats[0, d].index_add_(0, bins, torch.ones_like(correct))
            stats[1, d].index_add_(0, bins, confidence.double())
            stats[2, d].index_add_(0, bins, correct)
    return stats


def _calibration_compute(stats: Tensor, norm: Norm) -> Tensor:
    """Return the per-level calibration error (D,) of bin sums (3, D, n_bins)."""
    counts, confidence, correct = stats
    total = counts.sum(-1, keepdim=True).clamp(min=1)
    share = counts / total
    gap = (correct - confidence).abs() / counts.clamp(min=1)  # |accuracy - confidence| per bin
    if norm == "l1":
        value = (gap * share).sum(-1)
    elif norm == "l2":
        value = (gap.square() * share).sum(-1).sqrt()
    else:
        value = gap.amax(-1)
    return value.float()


def _consistency_update(
    logits: Tensor, target: Tensor, hierarchy: Hierarchy, decode: Decode, ignore_index: int | None
) -> Tensor:
    """Return one batch's counts (2,) long: pixels off a tree path, and pixels counted."""
    valid = _valid(target, ignore_index)
    tables = LevelTables.of(hierarchy, logits.device)
    with torch.no_grad():
        maps = decode_with_tables(logits.detach(), tables, decode)
        off_path = torch.zeros_like(valid)
        for d, parent in enumerate(tables.parents):
            off_path |= parent[maps[d + 1]] != maps[d]
    return torch.stack([(off_path & valid).sum(), valid.sum()])


class HierarchicalCalibrationError(Metric):
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

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
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
        super().__init__(**kwargs)
        _validate_args(hierarchy, ignore_index)
        if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
        if norm not in get_args(Norm):
            raise ValueError(f"norm must be one of {', '.join(get_args(Norm))}, got {norm!r}")
        self.hierarchy, self.ignore_index, self.n_bins, self.norm = (
            hierarchy,
            ignore_index,
            n_bins,
            norm,
        )
        self.validate_args = validate_args
        size = (3, hierarchy.num_levels, n_bins)
        self.add_state("stats", torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        if _check_update(self, logits, target):  # type: ignore[arg-type]
            self.stats += _calibration_update(
                logits, target, self.hierarchy, self.n_bins, self.ignore_index
            )

    def compute(self) -> Tensor:
        """Return the per-level calibration error (D,), coarse to fine."""
        return _calibration_compute(self.stats, self.norm)


class HierarchicalConsistency(Metric):
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

    is_differentiable = False
    higher_is_better = False
    full_state_update = False
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
        super().__init__(**kwargs)
        _validate_args(hierarchy, ignore_index, decode)
        self.hierarchy, self.ignore_index, self.decode = hierarchy, ignore_index, decode
        self.validate_args = validate_args
        self.add_state("counts", torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        if _check_update(self, logits, target):  # type: ignore[arg-type]
            self.counts += _consistency_update(
                logits, target, self.hierarchy, self.decode, self.ignore_index
            )

    def compute(self) -> Tensor:
        """Return the share of inconsistent pixels (0 when nothing was counted)."""
        return self.counts[0] / self.counts[1].clamp(min=1)


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
    if not _check_update(metric, logits, target):  # type: ignore[arg-type]
        return torch.zeros(hierarchy.num_levels)
    return _calibration_compute(
        _calibration_update(logits, target, hierarchy, n_bins, ignore_index), norm
    )


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
    if not _check_update(metric, logits, target):  # type: ignore[arg-type]
        return torch.tensor(0.0)
    counts = _consistency_update(logits, target, hierarchy, decode, ignore_index)
    return counts[0] / counts[1].clamp(min=1)
