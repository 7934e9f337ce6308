"""Hierarchical torchmetrics: per-level IoU and pixel accuracy, mistake severity, and all at once.

Each also has a functional form for one batch (:func:`hierarchical_jaccard_index`, ...),
as torchmetrics' ``multiclass_jaccard_index``; calibration and consistency are in
:mod:`hl_lightning.reliability` (their functional core is here).

Each metric comes in two layers, as in torchmetrics: pure functions on tensors
(``_..._update`` returns one batch's counts from the per-pixel predictions of
:func:`~hl_lightning.decode.level_outputs`, ``_..._compute`` turns counts into values)
and a thin :class:`torchmetrics.Metric` that owns the summed states, so that DDP sync
is exact. :class:`HierarchicalJaccardIndex` and :class:`HierarchicalPixelAccuracy`
share their state (per-level confusion matrices), so a
``MetricCollection(..., compute_groups=True)`` updates it once for both.
:class:`HierarchicalSegmentationMetrics` holds the states of all of them, calibration
and consistency included, and fills them from one check and one pass per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal, cast, get_args

import torch
from torch import Tensor
from torchmetrics import Metric

from hl_lightning.decode import Decode, LevelOutputs, _take, check_method, level_outputs
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = [
    "HierarchicalJaccardIndex",
    "HierarchicalPixelAccuracy",
    "HierarchicalSegmentationMetrics",
    "MistakeSeverity",
    "hierarchical_jaccard_index",
    "hierarchical_pixel_accuracy",
    "mistake_severity",
]

#: How HierarchicalJaccardIndex reduces a level's IoUs: their mean, or none (one per group).
Average = Literal["macro", "none"]
AVERAGES: tuple[Average, ...] = get_args(Average)
#: How a level's bins combine into one calibration error, as torchmetrics' ``norm``.
Norm = Literal["l1", "l2", "max"]


# ---------------------------------------------------------------------- validation
def _validate_args(
    hierarchy: Hierarchy,
    ignore_index: int | None,
    decode: str | None = None,
    average: str | None = None,
) -> None:
    """Raise a ValueError naming the first constructor argument that cannot be used."""
    if not isinstance(hierarchy, Hierarchy):
        raise ValueError(f"hierarchy must be a Hierarchy, got {type(hierarchy).__name__}")
    if ignore_index is not None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an int or None, got {ignore_index!r}")
        if 0 <= ignore_index < hierarchy.num_leaves:
            raise ValueError(
                f"ignore_index={ignore_index} is the label id of leaf "
                f"{hierarchy.leaves[ignore_index]!r}; use a value outside "
                f"0..{hierarchy.num_leaves - 1} (e.g. 255), or None"
            )
    if decode is not None:
        check_method(decode)
    if average is not None and average not in AVERAGES:
        valid = ", ".join(repr(a) for a in AVERAGES)
        raise ValueError(f"unknown average {average!r}; valid values are {valid}")


def _validate_bins(n_bins: int) -> None:
    """Raise a ValueError unless ``n_bins`` (calibration bins) is a positive int."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")


class _Target:
    """A target (B, *S) of leaf label ids as the metrics count it.

    ``leaf``: the label ids as a LongTensor, 0 where ignored. ``ignored``: the mask of the
    pixels not counted, or None when every pixel counts. ``levels`` (D, B, *S): the target
    group id at every level (0's groups where ignored), computed once when first asked.
    """

    def __init__(self, target: Tensor, tables: LevelTables, ignore_index: int | None) -> None:
        target = target.long()
        self.ignored = None if ignore_index is None else target == ignore_index
        self.leaf = target if self.ignored is None else target.masked_fill(self.ignored, 0)
        self._matrix = tables.level_matrix

    @cached_property
    def levels(self) -> Tensor:
        """(D, B, *S): the target group id at every level, coarse to fine."""
        return _take(self._matrix, self.leaf)


# ---------------------------------------------------------------------- functional core
def _hierarchical_confusion_matrix_update(
    outputs: LevelOutputs, target: _Target, tables: LevelTables, decode: Decode
) -> Tensor:
    """Return one batch's confusion counts as a flat LongTensor.

    ``decode="leaf"``: the (K, K) leaf matrix ``[target, prediction]`` of ``outputs.leaf``,
    flattened; every level derives from it. Otherwise: level ``d``'s (G_d, G_d) matrix of
    ``outputs.decoded``, flattened, at offset ``sum(G_e**2 for e < d)``. Ignored pixels
    are not counted.
    """
    if decode == "leaf":
        sizes: Sequence[int] = (tables.level_matrix.shape[1],)
        truth, pred = target.leaf.unsqueeze(0), cast(Tensor, outputs.leaf).unsqueeze(0)
    else:
        sizes, truth, pred = tables.sizes, target.levels, cast(Tensor, outputs.decoded)
    shape = (-1, *[1] * (truth.ndim - 1))
    size = torch.tensor(sizes, device=truth.device).view(shape)
    offset = size.square().cumsum(0) - size.square()
    index = truth.mul(size).add_(pred).add_(offset)  # (D, B, *S)
    total = sum(g * g for g in sizes)
    if target.ignored is not None:
        index.masked_fill_(target.ignored, total)  # the extra bin ``total``: ignored pixels
    return torch.bincount(index.flatten(), minlength=total + 1)[:total]


def _level_confusion_matrices(confmat: Tensor, tables: LevelTables, decode: Decode) -> list[Tensor]:
    """Return D LongTensors (G_d, G_d) ``[target, prediction]`` from the flat counts.

    For ``decode="leaf"`` the coarser matrices are block sums of the (K, K) leaf matrix.
    """
    matrix, sizes = tables.level_matrix, tables.sizes
    if decode != "leaf":
        blocks = confmat.split([g * g for g in sizes])
        return [block.view(g, g) for block, g in zip(blocks, sizes, strict=True)]
    num_leaves = matrix.shape[1]
    leaf = confmat.view(num_leaves, num_leaves)
    levels = []
    for index, g in zip(matrix, sizes, strict=True):
        rows = leaf.new_zeros(g, num_leaves).index_add_(0, index, leaf)
        levels.append(rows.new_zeros(g, g).index_add_(1, index, rows))
    return levels


def _jaccard_index_compute(confmats: Sequence[Tensor], average: Average) -> Tensor | list[Tensor]:
    """Return the per-level mIoU (D,), or for ``average="none"`` D tensors (G_d,) of IoU.

    Per group IoU = TP / (TP + FP + FN), 0 for a group absent from target and prediction;
    the mean skips such groups (NaN at a level where no pixel was counted).
    """
    ious, means = [], []
    for confmat in confmats:
        tp = confmat.diagonal()
        union = confmat.sum(0) + confmat.sum(1) - tp
        present = union > 0
        iou = torch.where(present, tp / union.clamp(min=1), 0.0).float()
        ious.append(iou)
        means.append(iou[present].mean())
    return ious if average == "none" else torch.stack(means)


def _pixel_accuracy_compute(confmats: Sequence[Tensor]) -> Tensor:
    """Return the per-level pixel accuracy (D,): correct / counted pixels (NaN if none)."""
    return torch.stack([(c.diagonal().sum() / c.sum()).float() for c in confmats])


def _mistake_severity_update(
    leaf: Tensor, target: _Target, distance: Tensor, num_levels: int
) -> Tensor:
    """Return one batch's counts (3,) long: mistakes, their summed distance, serious ones.

    A mistake is a counted pixel whose argmax ``leaf`` differs from the target; its
    distance is ``distance[target, prediction]`` (K, K); it is serious when that distance
    is ``num_levels`` (a different level-0 group).
    """
    wrong = leaf != target.leaf
    dist = _take(distance.flatten(), target.leaf * distance.shape[0] + leaf)  # 0 where right
    if target.ignored is not None:
        wrong.masked_fill_(target.ignored, False)
        dist.masked_fill_(target.ignored, 0)
    return torch.stack([wrong.sum(), dist.sum(), (dist == num_levels).sum()])


def _mistake_severity_compute(counts: Tensor) -> dict[str, Tensor]:
    """Return {"severity": mean distance of a mistake, "serious": share of serious ones} of
    counts (3,) (see :func:`_mistake_severity_update`); both are 0 without mistakes."""
    mistakes, distance, serious = counts
    denominator = mistakes.clamp(min=1).float()
    return {"severity": distance / denominator, "serious": serious / denominator}


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
    pixels go to an extra bin.
    """
    confidence, pred = cast(Tensor, outputs.confidence), cast(Tensor, outputs.marginal)
    num_levels = confidence.shape[0]
    bins = _confidence_bins(confidence, n_bins)
    slots = num_levels * n_bins
    first = torch.arange(0, slots, n_bins, device=bins.device)
    bins += first.view(-1, *[1] * (bins.ndim - 1))  # (level, bin) -> level * n_bins + bin
    if target.ignored is not None:
        bins.masked_fill_(target.ignored, slots)
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


def _consistency_update(decoded: Tensor, target: _Target, parents: Sequence[Tensor]) -> Tensor:
    """Return one batch's counts (2,) long: counted pixels whose ``decoded`` group ids
    (D, B, *S) are off a tree path (``parents`` of :class:`LevelTables`), pixels counted."""
    off_path = torch.zeros_like(target.leaf, dtype=torch.bool)
    for d, parent in enumerate(parents):
        off_path |= _take(parent, decoded[d + 1]) != decoded[d]
    counted = torch.tensor(off_path.numel(), device=off_path.device)
    if target.ignored is not None:
        off_path.masked_fill_(target.ignored, False)
        counted -= target.ignored.sum()
    return torch.stack([off_path.sum(), counted])


def _consistency_compute(counts: Tensor) -> Tensor:
    """Return the share of inconsistent pixels of counts (2,) (0 when nothing was counted)."""
    return counts[0] / counts[1].clamp(min=1)


# ---------------------------------------------------------------------- Metric classes
class _HierarchicalMetric(Metric):
    """What every metric here shares: its arguments, the hierarchy's index tables as
    buffers (they follow the metric's device) and the checks and pass of each update."""

    is_differentiable = False
    full_state_update = False

    level_matrix: Tensor
    parents: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None,
        validate_args: bool,
        decode: Decode | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _validate_args(hierarchy, ignore_index, decode)
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        tables = LevelTables.of(hierarchy, torch.device("cpu"))
        self.sizes = tables.sizes
        self.register_buffer("level_matrix", tables.level_matrix.clone(), persistent=False)
        self.register_buffer(
            "parents",
            torch.cat([tables.level_matrix.new_empty(0), *tables.parents]),
            persistent=False,
        )

    def _tables(self) -> LevelTables:
        """Return the index tables on the metric's device, as views of the buffers."""
        parents = tuple(self.parents.split(self.sizes[1:]))
        return LevelTables(self.level_matrix, parents, self.sizes)

    def _batch(
        self,
        logits: Tensor,
        target: Tensor,
        method: Decode | None = None,
        leaf: bool = False,
        marginal: bool = False,
    ) -> tuple[LevelOutputs, _Target] | None:
        """Return a batch's :func:`level_outputs` (as asked) and target, None if it is empty.

        Checks the batch (see :func:`validate_inputs`) and raises a ValueError naming the
        metric when logits are NaN or infinite: they would be scored as if they were
        predictions. An empty batch (B, H or W of 0) counts nothing.
        """
        validate_inputs(logits, target, self.hierarchy, self.ignore_index, self.validate_args)
        if target.numel() == 0:
            return None
        tables = self._tables()
        outputs = level_outputs(logits, tables, method, leaf, marginal)
        if not outputs.finite:
            count = int((~torch.isfinite(logits)).sum())
            raise ValueError(
                f"{type(self).__name__}.update: the logits have {count} non-finite values "
                f"(NaN or inf) out of {logits.numel()}; they cannot be scored (a diverged model?)"
            )
        return outputs, _Target(target, tables, self.ignore_index)


class _HierarchicalConfusionMatrix(_HierarchicalMetric):
    """Per-level confusion matrices of decoded predictions: the state the IoU and accuracy share.

    State ``confmat``: a flat LongTensor, see :func:`_hierarchical_confusion_matrix_update`.
    """

    higher_is_better: bool | None = True
    plot_lower_bound: float | None = 0.0
    plot_upper_bound: float | None = 1.0

    confmat: Tensor

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
        k = hierarchy.num_leaves
        size = k * k if decode == "leaf" else sum(g * g for g in self.sizes)
        self.add_state("confmat", torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        leaf = self.decode == "leaf"
        batch = self._batch(logits, target, None if leaf else self.decode, leaf=leaf)
        if batch is not None:
            self.confmat += _hierarchical_confusion_matrix_update(
                *batch, self._tables(), self.decode
            )

    def confusion_matrices(self) -> list[Tensor]:
        """Return D LongTensors (G_d, G_d), rows target, columns prediction, coarse to fine."""
        return _level_confusion_matrices(self.confmat, self._tables(), self.decode)


class HierarchicalJaccardIndex(_HierarchicalConfusionMatrix):
    """Per-level mean intersection over union, coarse to fine.

    Predictions at each level come from ``decode`` (``"marginal"``, ``"leaf"`` or
    ``"top_down"``, see :mod:`hl_lightning.decode`). Per group IoU = TP / (TP + FP + FN)
    over pixels whose target is not ``ignore_index``; the mean skips groups absent from
    both target and prediction, as :class:`~torchmetrics.classification.MulticlassJaccardIndex`.
    ``compute()`` returns a Tensor (D,), or with ``average="none"`` a list of D tensors
    (G_d,) of per-group IoU (0 for absent groups).

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
        decode: Decode = "marginal",
        average: Average = "macro",
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index, decode, average)
        super().__init__(hierarchy, ignore_index, decode, validate_args, **kwargs)
        self.average = average

    def compute(self) -> Tensor | list[Tensor]:
        """Return the per-level mIoU (D,), or D per-group IoU tensors for ``average="none"``."""
        return _jaccard_index_compute(self.confusion_matrices(), self.average)


class HierarchicalPixelAccuracy(_HierarchicalConfusionMatrix):
    """Per-level pixel accuracy (D,), coarse to fine, over pixels not ``ignore_index``.

    Same state and update as :class:`HierarchicalJaccardIndex` (same ``decode``), so a
    ``MetricCollection(..., compute_groups=True)`` counts each batch once for both.

    Example:
        >>> import torch.nn.functional as F
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = 5.0 * F.one_hot(torch.tensor([[[0, 2, 2, 0]]]), 3).permute(0, 3, 1, 2).float()
        >>> target = torch.tensor([[[0, 1, 2, 255]]])  # sky, car, truck, ignored
        >>> HierarchicalPixelAccuracy(h)(logits, target)
        tensor([1.0000, 0.6667])
    """

    def compute(self) -> Tensor:
        """Return the per-level pixel accuracy (D,)."""
        return _pixel_accuracy_compute(self.confusion_matrices())


class MistakeSeverity(_HierarchicalMetric):
    """How bad the leaf mistakes are: their mean tree distance and share of serious ones.

    Among pixels whose argmax leaf differs from the target (``ignore_index`` not counted),
    ``severity`` is the mean :meth:`Hierarchy.leaf_distance` between prediction and target
    (1 = a sibling at the finest level, D = a different level-0 group) and ``serious`` the
    share of mistakes across level-0 groups (distance D, the paper's serious mistakes).
    ``compute()`` returns ``{"severity": Tensor, "serious": Tensor}``, both 0 without mistakes.

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


def _add_mistake_states(metric: Metric, hierarchy: Hierarchy) -> None:
    """Give ``metric`` the buffer and state of :class:`MistakeSeverity`: ``leaf_distance``
    (K, K) and ``mistake_counts`` (3,), see :func:`_mistake_severity_update`."""
    metric.register_buffer("leaf_distance", hierarchy.leaf_distance(), persistent=False)
    counts = torch.zeros(3, dtype=torch.long)
    metric.add_state("mistake_counts", counts, dist_reduce_fx="sum")


class HierarchicalSegmentationMetrics(_HierarchicalConfusionMatrix):
    """Every metric of a segmentation run, from one check and one pass over each batch.

    ``compute()`` returns a dict: ``"miou"`` (D,) and ``"acc"`` (D,) as
    :class:`HierarchicalJaccardIndex` and :class:`HierarchicalPixelAccuracy` with the same
    ``decode``, ``"severity"`` and ``"serious"`` as :class:`MistakeSeverity`, and with
    ``reliability`` ``"ece"`` (D,) as
    :class:`~hl_lightning.reliability.HierarchicalCalibrationError` (``n_bins``, norm l1)
    and ``"inconsistency"`` as :class:`~hl_lightning.reliability.HierarchicalConsistency`.
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
    leaf_distance: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        decode: Decode = "marginal",
        n_bins: int = 15,
        reliability: bool = True,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(hierarchy, ignore_index, decode, validate_args, **kwargs)
        _validate_bins(n_bins)
        self.n_bins = n_bins
        self.reliability = reliability
        _add_mistake_states(self, hierarchy)
        if reliability:
            size = (3, hierarchy.num_levels, n_bins)
            stats = torch.zeros(size, dtype=torch.float64)
            self.add_state("calibration", stats, dist_reduce_fx="sum")
            self.add_state("consistency", torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        method = None if self.decode == "leaf" and not self.reliability else self.decode
        batch = self._batch(logits, target, method, leaf=True, marginal=self.reliability)
        if batch is None:
            return
        outputs, counted = batch
        tables = self._tables()
        self.confmat += _hierarchical_confusion_matrix_update(outputs, counted, tables, self.decode)
        self.mistake_counts += _mistake_severity_update(
            cast(Tensor, outputs.leaf), counted, self.leaf_distance, tables.num_levels
        )
        if self.reliability:
            self.calibration += _calibration_update(outputs, counted, self.n_bins)
            decoded = cast(Tensor, outputs.decoded)
            self.consistency += _consistency_update(decoded, counted, tables.parents)

    def compute(self) -> dict[str, Tensor]:
        """Return {"miou": (D,), "acc": (D,), "severity": (), "serious": ()}, with
        ``reliability`` also {"ece": (D,), "inconsistency": ()}."""
        confmats = self.confusion_matrices()
        values = {
            "miou": cast(Tensor, _jaccard_index_compute(confmats, "macro")),
            "acc": _pixel_accuracy_compute(confmats),
            **_mistake_severity_compute(self.mistake_counts),
        }
        if self.reliability:
            values["ece"] = _calibration_compute(self.calibration, "l1")
            values["inconsistency"] = _consistency_compute(self.consistency)
        return values


# ---------------------------------------------------------------------- functional forms
def hierarchical_jaccard_index(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    decode: Decode = "marginal",
    average: Average = "macro",
) -> Tensor | list[Tensor]:
    """Return one batch's per-level mIoU (D,), as :class:`HierarchicalJaccardIndex` computes.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 3.0]], [[0.0, 0.0]]]])  # sky, car
        >>> hierarchical_jaccard_index(logits, torch.tensor([[[0, 2]]]), h)
        tensor([1.0000, 0.3333])
    """
    metric = HierarchicalJaccardIndex(hierarchy, ignore_index, decode, average)
    metric.update(logits, target)
    return _jaccard_index_compute(metric.confusion_matrices(), average)


def hierarchical_pixel_accuracy(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    decode: Decode = "marginal",
) -> Tensor:
    """Return one batch's per-level pixel accuracy (D,), as :class:`HierarchicalPixelAccuracy`.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 3.0]], [[0.0, 0.0]]]])  # sky, car
        >>> hierarchical_pixel_accuracy(logits, torch.tensor([[[0, 2]]]), h)
        tensor([1.0000, 0.5000])
    """
    metric = HierarchicalPixelAccuracy(hierarchy, ignore_index, decode)
    metric.update(logits, target)
    return _pixel_accuracy_compute(metric.confusion_matrices())


def mistake_severity(
    logits: Tensor, target: Tensor, hierarchy: Hierarchy, ignore_index: int | None = 255
) -> dict[str, Tensor]:
    """Return one batch's ``{"severity", "serious"}``, as :class:`MistakeSeverity` computes.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 3.0]], [[0.0, 0.0]]]])  # sky, car
        >>> mistake_severity(logits, torch.tensor([[[0, 2]]]), h)  # car for truck: distance 1
        {'severity': tensor(1.), 'serious': tensor(0.)}
    """
    metric = MistakeSeverity(hierarchy, ignore_index)
    metric.update(logits, target)
    return metric.compute()
