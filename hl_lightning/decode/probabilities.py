"""Level probabilities: log P(group) of every level from the K leaf logits, and the tree's
parent tables.

The probability of a group at level ``d`` is the sum of its leaves' softmax
probabilities; :func:`level_log_probs` returns it in the log domain, exact and finite for
any finite logits, and differentiable (the form the losses and calibration need);
:func:`node_log_probs` that of one node per row of logits (a coarse label's).
"""

from __future__ import annotations

import torch
from torch import Tensor

from hl_lightning.decode._ops import _as_float, _channel_view
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["level_log_probs", "level_parents", "node_log_probs"]


def level_parents(hierarchy: Hierarchy) -> list[Tensor]:
    """Return D - 1 LongTensors (G_{d+1},): the level-``d`` group of every level-``d + 1`` group.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
        >>> [p.tolist() for p in level_parents(h)]
        [[0, 1, 1]]
    """
    return [p.clone() for p in LevelTables.of(hierarchy, torch.device("cpu")).parents]


def level_log_probs(logits: Tensor, hierarchy: Hierarchy) -> list[Tensor]:
    """Return D tensors (B, G_d, *S): log P(group) per level, coarse to fine.

    ``log P(S) = logsumexp(z[S]) - logsumexp(z)`` for leaf logits z of (B, K, *S),
    computed bottom-up in the log domain in fp32 (fp64 input stays fp64) with autocast
    disabled: exact and finite for any finite logits, and differentiable. Channel ``g``
    of level ``d`` is group ``g`` of :meth:`Hierarchy.group_names`; at the leaf level that is
    leaf ``k`` with ``level_index(D - 1)[k] == g``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> coarse, fine = level_log_probs(torch.zeros(1, 3), h)
        >>> coarse.exp().tolist(), fine.exp().tolist()  # doctest: +ELLIPSIS
        ([[0.333..., 0.666...]], [[0.333..., 0.333..., 0.333...]])
    """
    validate_inputs(logits, None, hierarchy)
    tables = LevelTables.of(hierarchy, logits.device)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = _as_float(logits)
        shifted = x - x.detach().amax(1, keepdim=True)  # <= 0, the maximum is exactly 0
        order = torch.empty_like(tables.level_matrix[-1])
        order[tables.level_matrix[-1]] = torch.arange(len(order), device=order.device)
        level = shifted.index_select(1, order)  # leaves in level D-1 group order
        levels = [level]
        for d in range(tables.num_levels - 2, -1, -1):
            parent = tables.parents[d]
            shape = (x.shape[0], tables.sizes[d], *x.shape[2:])
            with torch.no_grad():  # the shift does not change the value nor the gradient
                index = _channel_view(parent, x.ndim).expand_as(level)
                top = level.new_full(shape, -torch.inf).scatter_reduce_(1, index, level, "amax")
            summed = level.new_zeros(shape).index_add(
                1, parent, (level - top.index_select(1, parent)).exp()
            )
            level = top + summed.log()  # the largest child contributes exp(0) = 1
            levels.insert(0, level)
        total = torch.logsumexp(levels[0], dim=1, keepdim=True)
        return [lv - total for lv in levels]


def node_log_probs(logits: Tensor, members: Tensor) -> Tensor:
    """Return log P(node) (n,) of logit rows (n, K): the log of the softmax probabilities
    summed over each row's node's leaves, ``members`` (n, K) bool (a leaf's row: itself).

    Example:
        >>> members = torch.tensor([[True, False, False], [False, True, True]])
        >>> node_log_probs(torch.zeros(2, 3), members).exp()
        tensor([0.3333, 0.6667])
    """
    under = logits.masked_fill(~members, -torch.inf)
    return torch.logsumexp(under, 1) - torch.logsumexp(logits, 1)
