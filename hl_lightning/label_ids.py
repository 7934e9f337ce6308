"""The range of a target's label ids, read once per target.

Reading a value of a GPU tensor on the host waits for the GPU to finish what was queued
before it (a host sync). A training step checks its target's label ids in the loss, in
the logged per-level losses and in the metrics, and each wants to know whether it holds
coarse labels: they share one read of the ids' extremes, kept for the last target read
while that tensor is alive and unchanged (the same tensor object, its version counter
unchanged: no in-place write since).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

__all__ = ["has_coarse_labels", "label_extremes"]

# the last target read: (a weak reference to it, its version, ignore_index), and its extremes
_last: tuple[weakref.ref[Tensor], int, int | None, tuple[int, int]] | None = None


def label_extremes(target: Tensor, ignore_index: int | None) -> tuple[int, int]:
    """Return the smallest and the largest label id of ``target``, its ``ignore_index``
    pixels read as 0 (leaf 0, a valid id: the answer tells whether every id is valid and
    whether one is coarse, as without them); ``(0, 0)`` for an empty target.

    One read on the host per target: asked again for the same tensor, unchanged since,
    the answer is the one read (inference-mode tensors, which keep no version counter,
    are read every time).

    Example:
        >>> label_extremes(torch.tensor([[3, 2, 1]]), 255)
        (1, 3)
        >>> label_extremes(torch.tensor([[3, 255]]), 255)  # the ignored pixel reads as 0
        (0, 3)
    """
    global _last
    version = None if target.is_inference() else target._version
    last = _last
    if (
        version is not None
        and last is not None
        and last[0]() is target
        and last[1:3] == (version, ignore_index)
    ):
        return last[3]
    ids = target.long()  # compared in int64: 255 or 300 would wrap in uint8 and int8
    if ignore_index is not None:
        ids = ids.masked_fill(ids == ignore_index, 0)
    extremes = (0, 0)
    if ids.numel():
        low, high = torch.stack(torch.aminmax(ids)).tolist()
        extremes = (low, high)
    if version is not None:
        _last = (weakref.ref(target), version, ignore_index, extremes)
    return extremes


def has_coarse_labels(target: Tensor, num_leaves: int, ignore_index: int | None) -> bool:
    """Whether a pixel of ``target`` that is not ``ignore_index`` holds a label id of
    ``num_leaves`` or more: an internal node's id, a coarse label (for label ids that
    :func:`~hl_lightning.tables.validate_inputs` accepted). See :func:`label_extremes`.

    Example:
        >>> target = torch.tensor([[2, 255]])  # a leaf of 3, an ignored pixel
        >>> has_coarse_labels(target, 3, 255), has_coarse_labels(target, 3, None)
        (False, True)
    """
    return label_extremes(target, ignore_index)[1] >= num_leaves
