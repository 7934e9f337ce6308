"""Per-level confusion matrices, and the IoU and pixel accuracy computed from them.

The functional core (``_..._update`` counts one batch, ``_..._compute`` turns counts into
values) and the functional forms :func:`hierarchical_jaccard_index` and
:func:`hierarchical_pixel_accuracy`, which call it on one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from hl_lightning.decode import DecodeMethod, LevelOutputs
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.arguments import Average, _validate_args
from hl_lightning.metrics.functional.batch import _prepare_batch, _Target
from hl_lightning.tables import LevelTables

__all__ = ["hierarchical_jaccard_index", "hierarchical_pixel_accuracy"]


def _confusion_matrix_size(tables: LevelTables, decode: DecodeMethod) -> int:
    """Return the length of the flat confusion counts of ``decode``: N * K for ``"leaf"``
    (N nodes: the K leaves and the coarse labels), else the sum of G_d * G_d over the
    levels (see :func:`_hierarchical_confusion_matrix_update`)."""
    if decode == "leaf":
        return tables.num_nodes * tables.num_leaves
    return sum(g * g for g in tables.sizes)


def _hierarchical_confusion_matrix_update(
    outputs: LevelOutputs, target: _Target, tables: LevelTables, decode: DecodeMethod
) -> Tensor:
    """Return one batch's confusion counts as a flat LongTensor.

    ``decode="leaf"``: the (N, K) matrix ``[target node, predicted leaf]`` of
    ``outputs.leaf``, flattened: its first K rows are the leaf matrix, then one row per
    coarse label; every level derives from it. Otherwise: level ``d``'s (G_d, G_d) matrix
    of ``outputs.decoded``, flattened, at offset ``sum(G_e**2 for e < d)``. Ignored pixels
    are not counted, nor a coarse label at the levels below its node.
    """
    if decode == "leaf":
        sizes: Sequence[int] = (tables.num_leaves,)
        truth, pred = target.node.unsqueeze(0), cast(Tensor, outputs.leaf).unsqueeze(0)
        ignored = target.ignored
        total = tables.num_nodes * tables.num_leaves
    else:
        sizes, truth, pred = tables.sizes, target.levels, cast(Tensor, outputs.decoded)
        ignored = target.level_ignored
        total = sum(g * g for g in sizes)
    shape = (-1, *[1] * (truth.ndim - 1))
    size = torch.tensor(sizes, device=truth.device).view(shape)
    offset = size.square().cumsum(0) - size.square()
    index = truth.mul(size).add_(pred).add_(offset)  # (D, B, *S)
    if ignored is not None:
        index.masked_fill_(ignored, total)  # the extra bin ``total``: pixels not counted
    return torch.bincount(index.flatten(), minlength=total + 1)[:total]


def _level_confusion_matrices(
    confmat: Tensor, tables: LevelTables, decode: DecodeMethod
) -> list[Tensor]:
    """Return D LongTensors (G_d, G_d) ``[target, prediction]`` from the flat counts.

    For ``decode="leaf"`` the level matrices are block sums of the (N, K) matrix, a coarse
    label's row counted at its own and the coarser levels only.
    """
    matrix, sizes = tables.level_matrix, tables.sizes
    if decode != "leaf":
        blocks = confmat.split([g * g for g in sizes])
        return [block.view(g, g) for block, g in zip(blocks, sizes, strict=True)]
    nodes = confmat.view(tables.num_nodes, tables.num_leaves)
    levels = []
    for rows_index, columns_index, g in zip(tables.node_matrix, matrix, sizes, strict=True):
        known = rows_index >= 0  # a coarse label's row says nothing below its node
        rows = nodes.new_zeros(g, nodes.shape[1]).index_add_(0, rows_index[known], nodes[known])
        levels.append(rows.new_zeros(g, g).index_add_(1, columns_index, rows))
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


def _level_confusion_matrices_of(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None,
    decode: DecodeMethod,
    caller: str,
) -> list[Tensor]:
    """Return one batch's D confusion matrices (G_d, G_d): the functional forms' update."""
    tables = LevelTables.of(hierarchy, logits.device)
    leaf = decode == "leaf"
    method = None if leaf else decode
    batch = _prepare_batch(
        logits, target, hierarchy, ignore_index, tables, caller, method=method, leaf=leaf
    )
    if batch is None:
        size = _confusion_matrix_size(tables, decode)
        confmat = torch.zeros(size, dtype=torch.long, device=logits.device)
    else:
        confmat = _hierarchical_confusion_matrix_update(*batch, tables, decode)
    return _level_confusion_matrices(confmat, tables, decode)


def hierarchical_jaccard_index(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    decode: DecodeMethod = "marginal",
    average: Average = "macro",
) -> Tensor | list[Tensor]:
    """Return one batch's per-level mIoU (D,), as
    :class:`~hl_lightning.metrics.HierarchicalJaccardIndex` computes it.

    logits (B, K, *S) float, target (B, *S) label ids (leaves or coarse labels); with
    ``average="none"``, D tensors (G_d,) of per-group IoU.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 3.0]], [[0.0, 0.0]]]])  # sky, car
        >>> hierarchical_jaccard_index(logits, torch.tensor([[[0, 2]]]), h)
        tensor([1.0000, 0.3333])
    """
    _validate_args(hierarchy, ignore_index, decode=decode, average=average)
    confmats = _level_confusion_matrices_of(
        logits, target, hierarchy, ignore_index, decode, "hierarchical_jaccard_index"
    )
    return _jaccard_index_compute(confmats, average)


def hierarchical_pixel_accuracy(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    decode: DecodeMethod = "marginal",
) -> Tensor:
    """Return one batch's per-level pixel accuracy (D,), as
    :class:`~hl_lightning.metrics.HierarchicalPixelAccuracy` computes it.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 3.0]], [[0.0, 0.0]]]])  # sky, car
        >>> hierarchical_pixel_accuracy(logits, torch.tensor([[[0, 2]]]), h)
        tensor([1.0000, 0.5000])
    """
    _validate_args(hierarchy, ignore_index, decode=decode)
    confmats = _level_confusion_matrices_of(
        logits, target, hierarchy, ignore_index, decode, "hierarchical_pixel_accuracy"
    )
    return _pixel_accuracy_compute(confmats)
