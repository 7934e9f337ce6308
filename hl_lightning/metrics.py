"""Hierarchical torchmetrics: per-level IoU and pixel accuracy, and mistake severity.

Each also has a functional form for one batch (:func:`hierarchical_jaccard_index`, ...),
as torchmetrics' ``multiclass_jaccard_index``; calibration and consistency are in
:mod:`hl_lightning.reliability`.

Each metric comes in two layers, as in torchmetrics: pure functions on tensors
(``_..._update`` returns one batch's counts, ``_..._compute`` turns counts into values)
and a thin :class:`torchmetrics.Metric` that owns the summed states, so that DDP sync
is exact. :class:`HierarchicalJaccardIndex` and :class:`HierarchicalPixelAccuracy`
share their state (per-level confusion matrices), so a
``MetricCollection(..., compute_groups=True)`` updates it once for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torchmetrics import Metric

from hl_lightning.decode import Decode, check_method, decode_with_tables, leaf_argmax
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = [
    "HierarchicalJaccardIndex",
    "HierarchicalPixelAccuracy",
    "MistakeSeverity",
    "hierarchical_jaccard_index",
    "hierarchical_pixel_accuracy",
    "mistake_severity",
]

#: How HierarchicalJaccardIndex reduces a level's IoUs: their mean, or none (one per group).
Average = Literal["macro", "none"]
AVERAGES: tuple[Average, ...] = get_args(Average)


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


def _check_update(
    metric: _HierarchicalConfusionMatrix | MistakeSeverity, logits: Tensor, target: Tensor
) -> bool:
    """Return whether the batch has pixels to count, after checking it (see validate_inputs).

    Raises a ValueError naming the metric when logits are NaN or infinite: they would be
    scored as if they were predictions. An empty batch (B, H or W of 0) counts nothing.
    """
    validate_inputs(logits, target, metric.hierarchy, metric.ignore_index, metric.validate_args)
    finite = torch.isfinite(logits)
    if not finite.all():
        count = finite.numel() - int(finite.sum())
        raise ValueError(
            f"{type(metric).__name__}.update: the logits have {count} non-finite values "
            f"(NaN or inf) out of {finite.numel()}; they cannot be scored (a diverged model?)"
        )
    return target.numel() > 0


# ---------------------------------------------------------------------- functional core
def _hierarchical_confusion_matrix_update(
    logits: Tensor, target: Tensor, tables: LevelTables, decode: Decode, ignore_index: int | None
) -> Tensor:
    """Return one batch's confusion counts as a flat LongTensor.

    ``decode="leaf"``: the (K, K) leaf matrix ``[target, prediction]``, flattened; every
    level derives from it. Otherwise: level ``d``'s (G_d, G_d) matrix of the decoded
    predictions, flattened, at offset ``sum(G_e**2 for e < d)``. Pixels whose target is
    ``ignore_index`` are not counted.
    """
    target = target.long()
    keep = None if ignore_index is None else target != ignore_index
    safe = target if keep is None else target.masked_fill(~keep, 0)
    if decode == "leaf":
        num_leaves = tables.level_matrix.shape[1]
        sizes: Sequence[int] = (num_leaves,)
        pairs = [(safe, leaf_argmax(logits))]
    else:
        sizes = tables.sizes
        preds = decode_with_tables(logits, tables, decode)
        pairs = [(tables.level_matrix[d][safe], pred) for d, pred in enumerate(preds)]
    offset, index = 0, []
    for size, (truth, pred) in zip(sizes, pairs, strict=True):
        index.append(truth.mul(size).add_(pred).add_(offset))
        offset += size * size
    flat = torch.stack(index)
    if keep is not None:
        flat.masked_fill_(~keep, offset)  # the extra bin ``offset`` collects ignored pixels
    return torch.bincount(flat.flatten(), minlength=offset + 1)[:offset]


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
    logits: Tensor, target: Tensor, distance: Tensor, num_levels: int, ignore_index: int | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Return (mistakes, summed distance, serious mistakes) of one batch, LongTensor scalars.

    A mistake is a counted pixel whose argmax leaf differs from the target; its distance
    is ``distance[target, prediction]`` (K, K); it is serious when that distance is
    ``num_levels`` (a different level-0 group).
    """
    target = target.long()
    pred = leaf_argmax(logits)
    wrong = pred != target
    if ignore_index is not None:
        wrong &= target != ignore_index
        target = target.masked_fill(~wrong, 0)
    num_leaves = distance.shape[0]
    dist = distance.flatten()[target * num_leaves + pred] * wrong
    return wrong.sum(), dist.sum(), (dist == num_levels).sum()


def _mistake_severity_compute(
    mistakes: Tensor, distance: Tensor, serious: Tensor
) -> dict[str, Tensor]:
    """Return {"severity": mean distance of a mistake, "serious": share of serious ones}.

    Both are 0 when there was no mistake.
    """
    denominator = mistakes.clamp(min=1).float()
    return {"severity": distance / denominator, "serious": serious / denominator}


# ---------------------------------------------------------------------- Metric classes
class _HierarchicalConfusionMatrix(Metric):
    """Per-level confusion matrices of decoded predictions: the state the IoU and accuracy share.

    State ``confmat``: a flat LongTensor, see :func:`_hierarchical_confusion_matrix_update`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    confmat: Tensor
    level_matrix: Tensor
    parents: Tensor

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
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.decode = decode
        self.validate_args = validate_args
        # The tables as buffers follow the metric's device; parents concatenated in one.
        tables = LevelTables.of(hierarchy, torch.device("cpu"))
        self.sizes = tables.sizes
        self.register_buffer("level_matrix", tables.level_matrix.clone(), persistent=False)
        self.register_buffer(
            "parents",
            torch.cat([tables.level_matrix.new_empty(0), *tables.parents]),
            persistent=False,
        )
        k = hierarchy.num_leaves
        size = k * k if decode == "leaf" else sum(g * g for g in self.sizes)
        self.add_state("confmat", torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")

    def _tables(self) -> LevelTables:
        """Return the index tables on the metric's device, as views of the buffers."""
        parents = tuple(self.parents.split(self.sizes[1:]))
        return LevelTables(self.level_matrix, parents, self.sizes)

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        if not _check_update(self, logits, target):
            return
        self.confmat += _hierarchical_confusion_matrix_update(
            logits, target, self._tables(), self.decode, self.ignore_index
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


class MistakeSeverity(Metric):
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

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    mistakes: Tensor
    distance: Tensor
    serious: Tensor
    leaf_distance: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _validate_args(hierarchy, ignore_index)
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        self.register_buffer("leaf_distance", hierarchy.leaf_distance(), persistent=False)
        for name in ("mistakes", "distance", "serious"):
            self.add_state(name, torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) leaf label ids."""
        if not _check_update(self, logits, target):
            return
        mistakes, distance, serious = _mistake_severity_update(
            logits, target, self.leaf_distance, self.hierarchy.num_levels, self.ignore_index
        )
        self.mistakes += mistakes
        self.distance += distance
        self.serious += serious

    def compute(self) -> dict[str, Tensor]:
        """Return {"severity": Tensor (), "serious": Tensor ()}."""
        return _mistake_severity_compute(self.mistakes, self.distance, self.serious)


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
    if not _check_update(metric, logits, target):
        return _jaccard_index_compute(metric.confusion_matrices(), average)
    tables = LevelTables.of(hierarchy, logits.device)
    counts = _hierarchical_confusion_matrix_update(logits, target, tables, decode, ignore_index)
    return _jaccard_index_compute(_level_confusion_matrices(counts, tables, decode), average)


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
    if not _check_update(metric, logits, target):
        return _pixel_accuracy_compute(metric.confusion_matrices())
    tables = LevelTables.of(hierarchy, logits.device)
    counts = _hierarchical_confusion_matrix_update(logits, target, tables, decode, ignore_index)
    return _pixel_accuracy_compute(_level_confusion_matrices(counts, tables, decode))


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
