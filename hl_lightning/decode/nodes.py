"""Node predictions at a confidence threshold: per pixel the deepest node whose probability
reaches it, as its label id.

A node's probability is the sum of its leaves' softmax probabilities (at every level
where it is a group). For a threshold ``τ`` in [0.5, 1) at most one group per level
reaches it and the confident groups form a path of the tree from level 0 down, so "the
deepest confident node" is well defined: :func:`predict_nodes` returns its label id
(:attr:`Hierarchy.node_names`, the ids of coarse labels), or ``-1`` where no level-0
group reaches ``τ``. The model says "vehicle" where it cannot tell car from truck.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from numbers import Real

import torch
from torch import Tensor

from hl_lightning.decode._ops import _take
from hl_lightning.decode.levels import level_outputs
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["NO_NODE", "THRESHOLD_RANGE", "check_threshold", "check_thresholds", "predict_nodes"]

#: The node id of a pixel where no level-0 group reaches the threshold.
NO_NODE = -1
#: Valid thresholds: ``low <= τ < high``; from 0.5 the confident groups form a path.
THRESHOLD_RANGE = (0.5, 1.0)


def check_threshold(threshold: float, name: str = "threshold") -> float:
    """Return ``threshold`` as a float if it lies in [0.5, 1); raise a ValueError naming it.

    Example:
        >>> check_threshold(0.8)
        0.8
        >>> check_threshold(0.3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: threshold=0.3 is outside [0.5, 1): a node is predicted where its ...
    """
    low, high = THRESHOLD_RANGE
    if isinstance(threshold, bool) or not isinstance(threshold, Real):
        raise ValueError(f"{name} must be a number in [{low}, {high:g}), got {threshold!r}")
    if not low <= float(threshold) < high:
        raise ValueError(
            f"{name}={threshold!r} is outside [{low}, {high:g}): a node is predicted where its "
            f"probability reaches the threshold, and from {low} the confident nodes form a path"
        )
    return float(threshold)


def check_thresholds(thresholds: int | Sequence[float]) -> tuple[float, ...]:
    """Return the grid of thresholds: ``n`` evenly spaced from 0.5 (``0.5 + i / (2 n)``,
    i < n) for an int, else the given values, each in [0.5, 1) and increasing.

    Example:
        >>> check_thresholds(5)
        (0.5, 0.6, 0.7, 0.8, 0.9)
        >>> check_thresholds([0.5, 0.9, 0.8])
        Traceback (most recent call last):
            ...
        ValueError: thresholds must increase, got [0.5, 0.9, 0.8]
    """
    if isinstance(thresholds, int) and not isinstance(thresholds, bool):
        if thresholds < 1:
            raise ValueError(f"thresholds must be a positive count or values, got {thresholds}")
        return tuple(round(0.5 + i / (2 * thresholds), 12) for i in range(thresholds))
    if isinstance(thresholds, str) or not isinstance(thresholds, Sequence) or not thresholds:
        raise ValueError(f"thresholds must be a positive count or values, got {thresholds!r}")
    values = tuple(check_threshold(t, "a threshold") for t in thresholds)
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"thresholds must increase, got {list(thresholds)}")
    return values


@lru_cache(maxsize=32)
def _group_nodes(hierarchy: Hierarchy) -> tuple[Tensor, Tensor]:
    """Return the node id of every group, level after level (sum of G_d,), and the offset of
    each level's first group in it (D,) (cached, shared: do not modify)."""
    ids = [
        hierarchy.label_id(name)
        for d in range(hierarchy.num_levels)
        for name in hierarchy.group_names(d)
    ]
    sizes = torch.tensor([hierarchy.num_groups(d) for d in range(hierarchy.num_levels)])
    return torch.tensor(ids, dtype=torch.long), sizes.cumsum(0) - sizes


def _confident_nodes(
    marginal: Tensor, confidence: Tensor, threshold: float, nodes: Tensor, offsets: Tensor
) -> Tensor:
    """Return (B, *S): the node id of the deepest level whose most probable group (marginal
    (D, B, *S)) has probability (confidence (D, B, *S)) >= ``threshold``, -1 if none.

    The largest group probability never grows from a level to the next (a group's sum is
    at least each child's, also in floating point), so the confident levels are the first
    ``count`` ones.
    """
    depth = confidence.ge(threshold).sum(0).sub_(1)  # -1: no confident level
    level = depth.clamp(min=0)
    group = marginal.gather(0, level.unsqueeze(0)).squeeze(0)
    node = _take(nodes, _take(offsets, level).add_(group))
    return node.masked_fill_(depth < 0, NO_NODE)


def predict_nodes(logits: Tensor, hierarchy: Hierarchy, threshold: float) -> Tensor:
    """Return a LongTensor (B, *S): per pixel the deepest node with probability >= ``threshold``.

    ``logits`` (B, K, *S) are leaf logits; ``threshold`` lies in [0.5, 1). The result
    holds node ids (:meth:`Hierarchy.label_id`: a leaf's id, or an internal node's id
    where the model is sure of the node but not of a leaf under it), ``-1`` where no
    level-0 group reaches the threshold. A leaf shallower than the deepest level is a
    node at its own depth (its probability is the same at the levels below). Computed in
    fp32 (fp64 stays fp64); an exact tie of two groups at 0.5 takes the first. Raises a
    ValueError for a threshold outside [0.5, 1) before reading the logits, and for NaN or
    infinite logits.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> h.node_names
        ('sky', 'car', 'truck', 'vehicle')
        >>> logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 2.0, 0.0]]])
        >>> logits.softmax(1)  # pixels: sky; vehicle, more likely a car; unsure
        tensor([[[0.9647, 0.0351, 0.3333],
                 [0.0177, 0.7054, 0.3333],
                 [0.0177, 0.2595, 0.3333]]])
        >>> predict_nodes(logits, h, 0.9)
        tensor([[ 0,  3, -1]])
        >>> predict_nodes(logits, h, 0.6)
        tensor([[0, 1, 3]])
    """
    threshold = check_threshold(threshold)
    validate_inputs(logits, None, hierarchy)
    tables = LevelTables.of(hierarchy, logits.device)
    outputs = level_outputs(logits, tables, marginal=True)
    if not outputs.finite:
        count = int((~torch.isfinite(logits)).sum())
        raise ValueError(
            f"predict_nodes: the logits have {count} non-finite values (NaN or inf) out of "
            f"{logits.numel()}; valid logits are finite numbers (a diverged model?)"
        )
    nodes, offsets = (t.to(logits.device) for t in _group_nodes(hierarchy))
    assert outputs.marginal is not None and outputs.confidence is not None
    return _confident_nodes(outputs.marginal, outputs.confidence, threshold, nodes, offsets)
