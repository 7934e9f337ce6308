"""Hierarchical precision and recall of node predictions, at one threshold or along a grid.

A node prediction (:func:`~hl_lightning.decode.predict_nodes`) at node ``n`` claims its
group at every level down to ``n`` (a leaf claims every level, a shallow leaf padded);
a claim is correct when the target's group at that level is the same. Claims are counted
at the levels where the target is known only (all of them for a leaf, down to its node
for a coarse label); ignored pixels count nothing. Summed over pixels::

    hP = correct claims / claims,   hR = correct claims / the target's known levels,
    hF = 2 hP hR / (hP + hR)        (each 0 where its denominator is 0)

For every threshold ``τ`` of a grid they come from one pass: at level ``d`` a pixel
claims its most probable group when that group's probability reaches ``τ`` (from 0.5 the
confident groups are the path of the predicted node), so one histogram of the
(level, pixel) confidences over the grid, and one of the correct ones, give every
threshold's sums (:func:`_node_claims_update`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, cast

import torch
from torch import Tensor

from hl_lightning.decode import LevelOutputs, check_thresholds
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.batch import _prepare_batch, _Target
from hl_lightning.tables import LevelTables

__all__ = ["OperatingCurve", "hierarchical_operating_curve", "hierarchical_precision_recall"]

#: The threshold of :class:`~hl_lightning.metrics.HierarchicalPrecisionRecall` and of
#: the hF the module logs: the most specific predictions the rule makes.
DEFAULT_THRESHOLD = 0.5
#: The default grid of the operating curve: 50 thresholds, 0.50, 0.51, ..., 0.99.
DEFAULT_THRESHOLDS = 50


class OperatingCurve(NamedTuple):
    """The hierarchical precision-recall operating curve: per threshold (T,) ``hp``, ``hr``
    and ``hf`` (float), and ``auc`` (), the area under hP against hR (see
    :func:`_operating_curve_auc`)."""

    thresholds: Tensor
    hp: Tensor
    hr: Tensor
    hf: Tensor
    auc: Tensor


def _node_claims_update(outputs: LevelOutputs, target: _Target, thresholds: Tensor) -> Tensor:
    """Return one batch's sums (T + 1, 2) long: per threshold ``i`` (T,) the claims and the
    correct claims, then in the last row the target's known levels (twice).

    ``outputs`` holds each level's most probable group and its probability
    (``marginal``, ``confidence``); ``thresholds`` (T,) increase.
    """
    confidence, pred = cast(Tensor, outputs.confidence), cast(Tensor, outputs.marginal)
    size = len(thresholds)
    # how many thresholds each (level, pixel) reaches: it claims for thresholds 0..reach-1
    reach = torch.searchsorted(thresholds.to(confidence.dtype), confidence, right=True)
    index = reach.mul_(2).add_(pred == target.levels)
    if target.level_ignored is not None:  # ignored, or a coarse label below its node
        index.masked_fill_(target.level_ignored, 2 * (size + 1))
    counts = torch.bincount(index.flatten(), minlength=2 * (size + 1) + 1)
    counts = counts[: 2 * (size + 1)].view(size + 1, 2)  # [reach, correct]
    known = counts.sum()
    reached = counts.flip(0).cumsum(0).flip(0)[1:]  # row i: the entries reaching i + 1 or more
    claims = torch.stack([reached.sum(1), reached[:, 1]], 1)
    return torch.cat([claims, known.view(1, 1).expand(1, 2)])


def _precision_recall(counts: Tensor) -> dict[str, Tensor]:
    """Return {"hp", "hr", "hf"} (T,) of the sums (T + 1, 2) of :func:`_node_claims_update`."""
    claims, correct, known = counts[:-1, 0], counts[:-1, 1], counts[-1, 0]
    hp = (correct / claims.clamp(min=1)).float()
    hr = (correct / known.clamp(min=1)).float()
    hf = torch.where(hp + hr > 0, 2 * hp * hr / (hp + hr).clamp(min=1e-12), 0.0)
    return {"hp": hp, "hr": hr, "hf": hf}


def _operating_curve_auc(hp: Tensor, hr: Tensor, claims: Tensor) -> Tensor:
    """Return the area under hP as a function of hR, by the trapezoidal rule.

    The points with claims, in order of recall (it falls as the threshold rises), the
    curve extended to recall 0 at the precision of its lowest-recall point; 0 without
    claims. The area is over the recall the grid reaches: a model whose confident
    predictions reach further scores more.
    """
    keep = claims > 0
    if not keep.any():
        return hp.new_zeros(())
    precision, recall = hp[keep].double().flip(0), hr[keep].double().flip(0)
    precision = torch.cat([precision[:1], precision])
    recall = torch.cat([recall.new_zeros(1), recall])
    return torch.trapezoid(precision, recall).float()


def _operating_curve_compute(counts: Tensor, thresholds: Tensor) -> OperatingCurve:
    """Return the :class:`OperatingCurve` of the sums (T + 1, 2) over the grid ``thresholds``."""
    values = _precision_recall(counts)
    auc = _operating_curve_auc(values["hp"], values["hr"], counts[:-1, 0])
    return OperatingCurve(thresholds, values["hp"], values["hr"], values["hf"], auc)


def _node_claims_of(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None,
    thresholds: Sequence[float],
    caller: str,
) -> tuple[Tensor, Tensor]:
    """Return one batch's sums (T + 1, 2) and the grid (T,): the functional forms' update."""
    tables = LevelTables.of(hierarchy, logits.device)
    grid = torch.tensor(thresholds, dtype=torch.float64, device=logits.device)
    batch = _prepare_batch(logits, target, hierarchy, ignore_index, tables, caller, marginal=True)
    if batch is None:
        return torch.zeros(len(thresholds) + 1, 2, dtype=torch.long, device=logits.device), grid
    return _node_claims_update(*batch, grid), grid


def hierarchical_precision_recall(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    threshold: float = DEFAULT_THRESHOLD,
    ignore_index: int | None = 255,
) -> dict[str, Tensor]:
    """Return one batch's ``{"hp", "hr", "hf"}`` of the node predictions at ``threshold``, as
    :class:`~hl_lightning.metrics.HierarchicalPrecisionRecall` computes them.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 2.0, 0.0]]])
        >>> target = torch.tensor([[0, 2, 1]])  # sky, truck, car
        >>> hierarchical_precision_recall(logits, target, h, 0.9)  # sky; vehicle; nothing
        {'hp': tensor(1.), 'hr': tensor(0.5000), 'hf': tensor(0.6667)}
    """
    _validate_args(hierarchy, ignore_index, threshold=threshold)
    counts, _ = _node_claims_of(
        logits, target, hierarchy, ignore_index, (threshold,), "hierarchical_precision_recall"
    )
    return {name: value[0] for name, value in _precision_recall(counts).items()}


def hierarchical_operating_curve(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    thresholds: int | Sequence[float] = DEFAULT_THRESHOLDS,
    ignore_index: int | None = 255,
) -> OperatingCurve:
    """Return one batch's :class:`OperatingCurve` over ``thresholds`` (a count of evenly
    spaced ones from 0.5, or increasing values in [0.5, 1)), as
    :class:`~hl_lightning.metrics.HierarchicalOperatingCurve` computes it.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 2.0, 0.0]]])
        >>> curve = hierarchical_operating_curve(logits, torch.tensor([[0, 2, 1]]), h, [0.6, 0.9])
        >>> curve.hp, curve.hr, curve.auc  # at 0.6 the second pixel claims car: wrong
        (tensor([0.8000, 1.0000]), tensor([0.6667, 0.5000]), tensor(0.6500))
    """
    _validate_args(hierarchy, ignore_index, thresholds=thresholds)
    grid = check_thresholds(thresholds)
    counts, values = _node_claims_of(
        logits, target, hierarchy, ignore_index, grid, "hierarchical_operating_curve"
    )
    return _operating_curve_compute(counts, values.float())
