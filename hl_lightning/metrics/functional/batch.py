"""One batch as the metrics count it: the input checks, the one pass over the logits, and
the target's label ids per level.

:func:`_prepare_batch` is the first step of every update, of a Metric class or of a
functional form: it checks the batch, reads the logits once
(:func:`~hl_lightning.decode.level_outputs`, only what the caller asks for) and wraps
the target as a :class:`_Target`.
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from hl_lightning.decode import DecodeMethod, LevelOutputs, level_outputs
from hl_lightning.decode._ops import _take
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.label_ids import has_coarse_labels
from hl_lightning.tables import LevelTables, validate_inputs


class _Target:
    """A target (B, *S) of label ids (node ids: leaves and coarse labels) as the metrics count it.

    ``node``: the label ids as a LongTensor, 0 where ignored. ``ignored``: the mask of the
    pixels not counted, or None when every pixel counts. ``coarse``: whether a counted
    pixel holds an internal node's id (a coarse label, known at the levels down to its
    node only). Computed once when first asked: ``levels`` (D, B, *S), the target group
    id at every level, 0 where ignored or unknown (one lookup in the node table);
    ``level_ignored``, the mask of the (level, pixel) pairs not counted, broadcastable to
    (D, B, *S): ``ignored`` itself when no pixel is coarse, else (D, B, *S) with the
    levels below each coarse label's node too; None when everything counts.
    """

    def __init__(self, target: Tensor, tables: LevelTables, ignore_index: int | None) -> None:
        # the label ids' extremes, read once per target (in a training step, by the loss)
        self.coarse = has_coarse_labels(target, tables.num_leaves, ignore_index)
        target = target.long()
        self.ignored = None if ignore_index is None else target == ignore_index
        self.node = target if self.ignored is None else target.masked_fill(self.ignored, 0)
        self._tables = tables

    @cached_property
    def _lookup(self) -> tuple[Tensor, Tensor | None]:
        """Return ``levels`` and ``level_ignored`` (see the class docstring)."""
        levels = _take(self._tables.node_matrix, self.node)
        if not self.coarse:
            return levels, self.ignored
        unknown = levels < 0  # below a coarse label's node: -1 in the node table
        levels.clamp_(min=0)
        return levels, unknown if self.ignored is None else unknown.logical_or_(self.ignored)

    @property
    def levels(self) -> Tensor:
        """(D, B, *S): the target group id at every level, coarse to fine (0 where not
        counted)."""
        return self._lookup[0]

    @property
    def level_ignored(self) -> Tensor | None:
        """The (level, pixel) pairs not counted, broadcastable to (D, B, *S), or None."""
        return self._lookup[1]


def _prepare_batch(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None,
    tables: LevelTables,
    caller: str,
    validate_args: bool = True,
    method: DecodeMethod | None = None,
    leaf: bool = False,
    marginal: bool = False,
) -> tuple[LevelOutputs, _Target] | None:
    """Return a batch's :func:`level_outputs` (as asked) and target, None if it is empty.

    Checks the batch (see :func:`validate_inputs`: label ids are node ids, leaves and
    coarse labels; ``validate_args=False`` skips only the label id check) and raises a
    ValueError naming ``caller`` when logits are NaN or infinite: they would be scored as
    if they were predictions. An empty batch (B, H or W of 0) counts nothing. ``tables``
    are the hierarchy's, on the logits' device.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> tables = LevelTables.of(h, torch.device("cpu"))
        >>> outputs, target = _prepare_batch(
        ...     torch.zeros(1, 3, 2), torch.tensor([[2, 255]]), h, 255, tables, "f", leaf=True
        ... )
        >>> outputs.leaf, target.node, target.ignored, target.levels.tolist()
        (tensor([[0, 0]]), tensor([[2, 0]]), tensor([[False,  True]]), [[[1, 0]], [[2, 0]]])
        >>> _, coarse = _prepare_batch(
        ...     torch.zeros(1, 3, 2), torch.tensor([[3, 1]]), h, 255, tables, "f", leaf=True
        ... )  # vehicle (a coarse label), car
        >>> coarse.coarse, coarse.levels.tolist(), coarse.level_ignored.tolist()
        (True, [[[1, 1]], [[0, 1]]], [[[False, False]], [[True, False]]])
        >>> nan = torch.full((1, 3, 2), torch.nan)
        >>> _prepare_batch(nan, torch.tensor([[2, 0]]), h, 255, tables, "f")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: f: the logits have 6 non-finite values (NaN or inf) out of 6; they cannot be ...
    """
    validate_inputs(logits, target, hierarchy, ignore_index, validate_args)
    if target.numel() == 0:
        return None
    outputs = level_outputs(logits, tables, method, leaf, marginal)
    if not outputs.finite:
        count = int((~torch.isfinite(logits)).sum())
        raise ValueError(
            f"{caller}: the logits have {count} non-finite values "
            f"(NaN or inf) out of {logits.numel()}; they cannot be scored (a diverged model?)"
        )
    return outputs, _Target(target, tables, ignore_index)
