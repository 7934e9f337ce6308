"""The decoding methods: their names, the check of a name, and the rules that are not an argmax.

A decoding turns a pixel's K leaf logits into one group per level (see
:mod:`hl_lightning.decode`): ``marginal`` and ``leaf`` are argmaxes, found in the pass
of :func:`~hl_lightning.decode.levels.level_outputs`; ``top_down`` is the greedy descent
of :func:`_top_down`; ``crm`` the leaf of least expected distance, :func:`_crm`.
"""

from __future__ import annotations

from typing import Literal, cast, get_args

import torch
from torch import Tensor

from hl_lightning.decode._ops import _argmax, _channel_view, _take
from hl_lightning.tables import LevelTables

__all__ = ["METHODS", "DecodeMethod", "check_method"]

#: A decoding method: the value of the ``decode=`` keyword (see :mod:`hl_lightning.decode`).
DecodeMethod = Literal["marginal", "leaf", "top_down", "crm"]
METHODS: tuple[DecodeMethod, ...] = get_args(DecodeMethod)


def check_method(method: str) -> DecodeMethod:
    """Return ``method`` if it is one of :data:`METHODS`; raise a ValueError otherwise.

    Example:
        >>> check_method("top_down")
        'top_down'
        >>> check_method("argmax")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: unknown decoding method 'argmax'; valid methods are 'marginal', 'leaf', ...
    """
    if not isinstance(method, str) or method not in METHODS:
        valid = ", ".join(repr(m) for m in METHODS)
        raise ValueError(f"unknown decoding method {method!r}; valid methods are {valid}")
    return cast(DecodeMethod, method)


def _top_down(x: Tensor, sums: list[Tensor], tables: LevelTables) -> Tensor:
    """Return (D, B, *S): the greedy descent of logits x (B, K, *S) through their group sums
    ``sums`` (per level ``d < D - 1``, (B, G_d, *S), see :func:`_group_sums`)."""
    matrix = tables.level_matrix
    chosen = [_argmax(sums[0])]
    for d in range(1, tables.num_levels - 1):  # probabilities >= 0: -1 rules a group out
        allowed = _channel_view(tables.parents[d - 1], x.ndim) == chosen[-1].unsqueeze(1)
        chosen.append(_argmax(torch.where(allowed, sums[d], -1.0)))
    allowed = _channel_view(matrix[-2], x.ndim) == chosen[-1].unsqueeze(1)
    leaf = _argmax(torch.where(allowed, x, -torch.inf))
    return torch.stack([*chosen, _take(matrix[-1], leaf)])


def _crm(exp: Tensor, sums: list[Tensor], tables: LevelTables) -> Tensor:
    """Return (B, *S): the leaf of least expected tree distance (conditional risk
    minimisation), the first on ties.

    ``exp`` (B, K, *S) holds ``exp(z - max z)`` of the logits, ``sums`` its group sums
    (per level ``d < D - 1``, (B, G_d, *S), see :func:`_group_sums`). The expected
    :meth:`Hierarchy.leaf_distance` of leaf ``j`` under the softmax is
    ``D - sum_d P_d(group_d(j))``, so the leaf is the argmax over ``j`` of
    ``sum_d S_d(group_d(j))`` (the unnormalised sums: the total divides every score
    alike), accumulated top-down in one pass over the levels.
    """
    if not sums:
        return _argmax(exp)
    score = sums[0]
    for d in range(1, len(sums)):  # each group's score: its own sum plus its parent's score
        score = score.index_select(1, tables.parents[d - 1]).add_(sums[d])
    return _argmax(score.index_select(1, tables.level_matrix[-2]).add_(exp))
