"""Per-level calibration error of the marginal probabilities, in equal-width confidence bins.

The functional core (``_calibration_update`` sums one batch's bins,
``_calibration_compute`` turns the sums into errors, :func:`_confidence_bins` bins as
torchmetrics does) and the functional form :func:`hierarchical_calibration_error`.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from hl_lightning.decode import LevelOutputs
from hl_lightning.decode._ops import _take
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.arguments import Norm, _validate_args
from hl_lightning.metrics.functional.batch import _prepare_batch, _Target
from hl_lightning.tables import LevelTables

__all__ = ["hierarchical_calibration_error"]


def _confidence_bins(confidence: Tensor, n_bins: int) -> Tensor:
    """Return the bin (long, same shape) of each confidence in [0, 1], exactly torchmetrics'
    ``bucketize(confidence, linspace(0, 1, n_bins + 1), right=True) - 1``, clamped to
    ``[0, n_bins)``: ``floor(confidence * n_bins)`` moved by one where it is off the bin
    whose boundaries hold it (an ulp's rounding), several times faster than the search."""
    boundaries = torch.linspace(0, 1, n_bins + 1, dtype=confidence.dtype, device=confidence.device)
    bins = confidence.mul(n_bins).long().clamp_(0, n_bins - 1)
    bins.sub_((confidence < _take(boundaries, bins)).long())
    bins.add_((confidence >= _take(boundaries, bins + 1)).long())
    return bins.clamp_(0, n_bins - 1)


def _calibration_update(outputs: LevelOutputs, target: _Target, n_bins: int) -> Tensor:
    """Return one batch's bin sums (3, D, n_bins) float64: pixel counts, summed confidences
    and summed correct predictions, per level, in equal-width confidence bins.

    The confidence of ``outputs.marginal`` is ``outputs.confidence``, binned as
    torchmetrics does (:func:`_confidence_bins`). One ``bincount`` over
    ``(level, bin, correct)`` counts the pixels and the correct ones exactly; ignored
    pixels, and a coarse label's pixel at the levels below its node, go to an extra bin.
    """
    confidence, pred = cast(Tensor, outputs.confidence), cast(Tensor, outputs.marginal)
    num_levels = confidence.shape[0]
    bins = _confidence_bins(confidence, n_bins)
    slots = num_levels * n_bins
    first = torch.arange(0, slots, n_bins, device=bins.device)
    bins += first.view(-1, *[1] * (bins.ndim - 1))  # (level, bin) -> level * n_bins + bin
    if target.level_ignored is not None:  # ignored, or a coarse label below its node
        bins.masked_fill_(target.level_ignored, slots)
    correct = pred == target.levels
    counts = torch.bincount(bins.mul(2).add_(correct).flatten(), minlength=2 * slots + 2)
    counts = counts[: 2 * slots].view(num_levels, n_bins, 2)
    weights = confidence.flatten().double()
    summed = torch.bincount(bins.flatten(), weights, minlength=slots + 1)[:slots]
    correct_counts = counts[..., 1].double()
    return torch.stack([counts.sum(-1).double(), summed.view(num_levels, n_bins), correct_counts])


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


def hierarchical_calibration_error(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    n_bins: int = 15,
    norm: Norm = "l1",
) -> Tensor:
    """Return one batch's per-level calibration error (D,), as
    :class:`~hl_lightning.metrics.HierarchicalCalibrationError` computes it.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> hierarchical_calibration_error(torch.zeros(1, 3, 1, 1), torch.tensor([[[1]]]), h)
        tensor([0.3333, 0.3333])
    """
    _validate_args(hierarchy, ignore_index, n_bins=n_bins, norm=norm)
    tables = LevelTables.of(hierarchy, logits.device)
    batch = _prepare_batch(
        logits,
        target,
        hierarchy,
        ignore_index,
        tables,
        "hierarchical_calibration_error",
        marginal=True,
    )
    if batch is None:
        size = (3, tables.num_levels, n_bins)
        stats = torch.zeros(size, dtype=torch.float64, device=logits.device)
    else:
        stats = _calibration_update(*batch, n_bins)
    return _calibration_compute(stats, norm)
