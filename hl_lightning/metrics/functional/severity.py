"""Mistake severity: the mean tree distance of the leaf mistakes and the share of serious ones.

The functional core (``_mistake_severity_update`` counts one batch,
``_mistake_severity_compute`` turns counts into values) and the functional form
:func:`mistake_severity`, which calls it on one batch.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from hl_lightning.decode._ops import _take
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.batch import _prepare_batch, _Target
from hl_lightning.tables import LevelTables

__all__ = ["mistake_severity"]


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


def mistake_severity(
    logits: Tensor, target: Tensor, hierarchy: Hierarchy, ignore_index: int | None = 255
) -> dict[str, Tensor]:
    """Return one batch's ``{"severity", "serious"}``, as
    :class:`~hl_lightning.metrics.MistakeSeverity` computes them.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 3.0]], [[0.0, 0.0]]]])  # sky, car
        >>> mistake_severity(logits, torch.tensor([[[0, 2]]]), h)  # car for truck: distance 1
        {'severity': tensor(1.), 'serious': tensor(0.)}
    """
    _validate_args(hierarchy, ignore_index)
    tables = LevelTables.of(hierarchy, logits.device)
    batch = _prepare_batch(
        logits, target, hierarchy, ignore_index, tables, "mistake_severity", leaf=True
    )
    if batch is None:
        counts = torch.zeros(3, dtype=torch.long, device=logits.device)
    else:
        outputs, counted = batch
        distance = hierarchy.leaf_distance().to(logits.device)
        counts = _mistake_severity_update(
            cast(Tensor, outputs.leaf), counted, distance, tables.num_levels
        )
    return _mistake_severity_compute(counts)
