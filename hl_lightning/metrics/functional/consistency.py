"""Tree consistency: the share of pixels whose per-level predictions are not a path of the tree.

The functional core (``_consistency_update`` counts one batch, ``_consistency_compute``
turns counts into the share) and the functional form :func:`hierarchical_consistency`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from hl_lightning.decode import DecodeMethod
from hl_lightning.decode._ops import _take
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.batch import _prepare_batch, _Target
from hl_lightning.tables import LevelTables

__all__ = ["hierarchical_consistency"]


def _consistency_update(decoded: Tensor, target: _Target, parents: Sequence[Tensor]) -> Tensor:
    """Return one batch's counts (2,) long: counted pixels whose ``decoded`` group ids
    (D, B, *S) are off a tree path (``parents`` of :class:`LevelTables`), pixels counted.

    Consistency is a property of the prediction alone: every pixel that is not ignored
    counts with its whole predicted path, a coarse label's pixel included (the label
    does not change whether the prediction is a path).
    """
    off_path = torch.zeros_like(target.node, dtype=torch.bool)
    for d, parent in enumerate(parents):
        off_path |= _take(parent, decoded[d + 1]) != decoded[d]
    counted = torch.tensor(off_path.numel(), device=off_path.device)
    if target.ignored is not None:
        off_path.masked_fill_(target.ignored, False)
        counted -= target.ignored.sum()
    return torch.stack([off_path.sum(), counted])


def _consistency_compute(counts: Tensor) -> Tensor:
    """Return the share of inconsistent pixels of counts (2,) (0 when nothing was counted)."""
    return counts[0] / counts[1].clamp(min=1)


def hierarchical_consistency(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    decode: DecodeMethod = "marginal",
) -> Tensor:
    """Return the share of one batch's pixels whose predictions are off a tree path, as
    :class:`~hl_lightning.metrics.HierarchicalConsistency` computes it.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.zeros(1, 3, 1, 1)  # uniform: vehicle at level 0, the first leaf (sky)
        >>> hierarchical_consistency(logits, torch.tensor([[[0]]]), h)
        tensor(1.)
    """
    _validate_args(hierarchy, ignore_index, decode=decode)
    tables = LevelTables.of(hierarchy, logits.device)
    batch = _prepare_batch(
        logits, target, hierarchy, ignore_index, tables, "hierarchical_consistency", method=decode
    )
    if batch is None:
        counts = torch.zeros(2, dtype=torch.long, device=logits.device)
    else:
        outputs, counted = batch
        counts = _consistency_update(cast(Tensor, outputs.decoded), counted, tables.parents)
    return _consistency_compute(counts)
