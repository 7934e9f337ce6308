"""Hierarchical losses, one file per loss, and the registry that builds them by name.

Every loss is an ``nn.Module`` called as ``loss(logits, target) -> scalar`` with
``logits`` (B, C, *S) float of any dtype (computed in fp32 with autocast disabled) and
``target`` (B, *S) label ids: leaf ids, or internal-node ids for pixels labelled only
down to that node (coarse labels, :attr:`Hierarchy.node_names`; each loss counts them at
the levels where they are known, docs/losses.md); pixels equal to ``ignore_index`` are left
out of the sum and of the count, and an all-ignored batch gives 0 with zero gradient. Those
with a per-level meaning also have ``level_losses(logits, target) -> (D,)``, coarse to fine.

Registered names (:data:`LOSSES`), the channels C they expect, and their options:

- ``hierarchical``: the paper's sum of level NLLs (:class:`HierarchicalLoss`); K leaf
  logits; ``level_weights``, ``class_weights``.
- ``flat``: cross-entropy on the leaves (:class:`FlatLoss`); K; ``class_weights``.
- ``hxe``: hierarchical cross-entropy (:class:`HXELoss`); K; ``alpha``.
- ``soft_labels``: soft hierarchical targets (:class:`SoftLabelsLoss`); K; ``beta``.
- ``tree_min``: HSSN's tree-min loss (:class:`TreeMinLoss`); N node logits (the tree's
  nodes, :class:`TreeNodes` order); ``level_weights``, ``gamma``.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from torch import nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.losses.flat import FlatLoss
from hl_lightning.losses.hierarchical import (
    ClassWeights,
    HierarchicalLoss,
    class_weight_table,
    hierarchical_nll,
)
from hl_lightning.losses.hxe import HXELoss
from hl_lightning.losses.soft_labels import SoftLabelsLoss, soft_label_matrix
from hl_lightning.losses.tree_min import TreeMinLoss, TreeNodes, tree_min_level_losses

__all__ = [
    "LOSSES",
    "ClassWeights",
    "FlatLoss",
    "HXELoss",
    "HierarchicalLoss",
    "LossName",
    "SoftLabelsLoss",
    "TreeMinLoss",
    "TreeNodes",
    "build_loss",
    "class_weight_table",
    "hierarchical_nll",
    "loss_options",
    "soft_label_matrix",
    "tree_min_level_losses",
]

#: A registered loss name: a key of :data:`LOSSES`.
LossName = Literal["hierarchical", "flat", "hxe", "soft_labels", "tree_min"]
LOSSES: dict[str, type[nn.Module]] = {
    "hierarchical": HierarchicalLoss,
    "flat": FlatLoss,
    "hxe": HXELoss,
    "soft_labels": SoftLabelsLoss,
    "tree_min": TreeMinLoss,
}


def loss_options(name: str) -> tuple[str, ...]:
    """Return the options (keyword arguments besides hierarchy and ignore_index) of a loss.

    Example:
        >>> loss_options("hierarchical"), loss_options("hxe")
        (('level_weights', 'class_weights'), ('alpha',))
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    parameters = inspect.signature(LOSSES[name]).parameters
    return tuple(p for p in parameters if p not in ("hierarchy", "ignore_index"))


def build_loss(
    name: LossName, hierarchy: Hierarchy, ignore_index: int | None = 255, **options: Any
) -> nn.Module:
    """Return the loss called ``name`` (one of :data:`LOSSES`) for ``hierarchy``.

    ``options`` are the loss's own keyword arguments (:func:`loss_options`); an option the
    loss does not take raises a ValueError naming the ones it does.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> build_loss("hxe", h, alpha=0.1)
        HXELoss(Hierarchy(leaves=3, levels=2, groups=[2, 3]), ignore_index=255, alpha=0.1)
        >>> build_loss("hxe", h, beta=3.0)
        Traceback (most recent call last):
            ...
        ValueError: loss 'hxe' takes no option beta; its options: alpha
    """
    allowed = loss_options(name)
    unknown = [key for key in options if key not in allowed]
    if unknown:
        s = "s" if len(unknown) > 1 else ""
        raise ValueError(
            f"loss {name!r} takes no option{s} {', '.join(unknown)}; "
            f"its options: {', '.join(allowed) or 'none'}"
        )
    return LOSSES[name](hierarchy, ignore_index, **options)
