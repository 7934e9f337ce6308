"""Mistake severity: the mean tree distance of the leaf mistakes and the share of serious ones.

The functional core (``_mistake_severity_update`` counts one batch,
``_mistake_severity_compute`` turns counts into values, :func:`_mistake_table` holds the
distance of every (target, prediction) pair) and the functional form
:func:`mistake_severity`, which calls it on one batch.
"""

from __future__ import annotations

from functools import lru_cache
from typing import cast

import torch
from torch import Tensor

from hl_lightning.decode import DecodeMethod, LevelOutputs
from hl_lightning.decode._ops import _take
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.batch import _prepare_batch, _Target
from hl_lightning.tables import LevelTables

__all__ = ["mistake_severity"]


@lru_cache(maxsize=32)
def _mistake_table(hierarchy: Hierarchy) -> Tensor:
    """Return a LongTensor (N, K): ``2 * distance + serious`` of target node ``n`` and
    predicted leaf ``j`` (cached, shared: do not modify).

    ``distance``: the number of levels, among those where ``n`` is known (all for a leaf,
    down to its node for a coarse label), at which ``j``'s group differs from ``n``'s: for
    two leaves :meth:`Hierarchy.leaf_distance`, 0 exactly when ``j`` is ``n`` or lies under
    it. ``serious``: 1 when their level-0 groups differ.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> _mistake_table(h).tolist()  # rows sky, car, truck, vehicle; columns the leaves
        [[0, 5, 5], [5, 0, 2], [5, 2, 0], [3, 0, 0]]
    """
    nodes, leaves = hierarchy.node_level_matrix(), hierarchy.level_matrix()
    distance = torch.zeros(hierarchy.num_nodes, hierarchy.num_leaves, dtype=torch.long)
    for node_row, leaf_row in zip(nodes, leaves, strict=True):  # one (N, K) at a time
        distance += (node_row[:, None] != leaf_row[None, :]) & (node_row[:, None] >= 0)
    return 2 * distance + (nodes[0][:, None] != leaves[0][None, :])


def _predicted_leaf(outputs: LevelOutputs, tables: LevelTables, decode: DecodeMethod) -> Tensor:
    """Return the leaf (label id) that ``decode`` predicts per pixel, (B, *S).

    ``"marginal"`` and ``"leaf"`` predict the argmax leaf at the leaf level
    (``outputs.leaf``); the other methods the leaf of their finest decoded group.
    """
    if decode in ("leaf", "marginal"):
        return cast(Tensor, outputs.leaf)
    groups = tables.level_matrix[-1]  # leaf -> its group id at the leaf level
    leaf_of_group = torch.empty_like(groups)
    leaf_of_group[groups] = torch.arange(len(groups), device=groups.device)
    return _take(leaf_of_group, cast(Tensor, outputs.decoded)[-1])


def _severity_request(decode: DecodeMethod) -> tuple[DecodeMethod | None, bool]:
    """Return ``(method, leaf)`` to ask :func:`~hl_lightning.decode.level_outputs` for, so
    that :func:`_predicted_leaf` finds ``decode``'s leaf."""
    if decode in ("leaf", "marginal"):
        return None, True
    return decode, False


def _mistake_severity_update(leaf: Tensor, target: _Target, table: Tensor) -> Tensor:
    """Return one batch's counts (3,) long: mistakes, their summed distance, serious ones.

    A mistake is a counted pixel whose predicted ``leaf`` is not its target leaf, or for a
    coarse label lies outside the label's node; its distance and seriousness are read from
    ``table`` (N, K), see :func:`_mistake_table` (serious: another level-0 group).
    """
    code = _take(table.flatten(), target.node * table.shape[1] + leaf)  # 0 where right
    if target.ignored is not None:
        code.masked_fill_(target.ignored, 0)
    return torch.stack(
        [code.gt(0).sum(), code.bitwise_right_shift(1).sum(), code.bitwise_and(1).sum()]
    )


def _mistake_severity_compute(counts: Tensor) -> dict[str, Tensor]:
    """Return {"severity": mean distance of a mistake, "serious": share of serious ones} of
    counts (3,) (see :func:`_mistake_severity_update`); both are 0 without mistakes."""
    mistakes, distance, serious = counts
    denominator = mistakes.clamp(min=1).float()
    return {"severity": distance / denominator, "serious": serious / denominator}


def mistake_severity(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    decode: DecodeMethod = "marginal",
) -> dict[str, Tensor]:
    """Return one batch's ``{"severity", "serious"}``, as
    :class:`~hl_lightning.metrics.MistakeSeverity` computes them.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[[3.0, 0.0]], [[0.0, 3.0]], [[0.0, 0.0]]]])  # sky, car
        >>> mistake_severity(logits, torch.tensor([[[0, 2]]]), h)  # car for truck: distance 1
        {'severity': tensor(1.), 'serious': tensor(0.)}
        >>> mistake_severity(logits, torch.tensor([[[3, 3]]]), h)  # vehicle: sky is 1 level off
        {'severity': tensor(1.), 'serious': tensor(1.)}
    """
    _validate_args(hierarchy, ignore_index, decode=decode)
    tables = LevelTables.of(hierarchy, logits.device)
    method, leaf = _severity_request(decode)
    batch = _prepare_batch(
        logits,
        target,
        hierarchy,
        ignore_index,
        tables,
        "mistake_severity",
        method=method,
        leaf=leaf,
    )
    if batch is None:
        counts = torch.zeros(3, dtype=torch.long, device=logits.device)
    else:
        outputs, counted = batch
        table = _mistake_table(hierarchy).to(logits.device)
        counts = _mistake_severity_update(_predicted_leaf(outputs, tables, decode), counted, table)
    return _mistake_severity_compute(counts)
