"""Tensor primitives of the decoders and metrics, fast on CPU: lookups, first-index argmax,
group sums.

Each equals an obvious torch expression (named in its docstring) and is written so that
the CPU runs it several times faster: reductions over small integers in place of
``argmax`` over a non-innermost dimension, ``index_select`` in place of advanced indexing,
one ``index_add_`` per sample along its first dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hl_lightning.tables import LevelTables


def _as_float(logits: Tensor) -> Tensor:
    """Return the logits in fp32 (fp64 stays fp64)."""
    return logits if logits.dtype == torch.float64 else logits.float()


def _channel_view(index: Tensor, ndim: int) -> Tensor:
    """Return a 1-D tensor (C,) viewed as (1, C, 1, ...) to broadcast against ``ndim`` dims."""
    return index.view(1, -1, *([1] * (ndim - 2)))


def _first_index(is_max: Tensor) -> Tensor:
    """Return a LongTensor (B, *S): the first channel where ``is_max`` (B, C, *S) is true.

    Uses vectorised reductions only (``amax`` over small integers); all false gives C - 1.
    """
    channels = is_max.shape[1]
    dtype = torch.uint8 if channels < 2**8 else torch.int16 if channels < 2**15 else torch.int32
    reverse = torch.arange(channels, 0, -1, dtype=dtype, device=is_max.device)
    first = is_max.mul(_channel_view(reverse, is_max.ndim)).amax(1)  # C - first index
    return first.long().neg_().add_(channels).clamp_(max=channels - 1)


def _argmax(x: Tensor, shifted: Tensor | None = None) -> Tensor:
    """Return a LongTensor (B, *S): the first index of the maximum along dim 1 of x (B, C, *S).

    Equals ``x.argmax(1)``. On CPU, where ``argmax`` over a non-innermost dimension is
    slow, it is found with :func:`_first_index`; ``shifted`` is ``x - x.amax(1)`` if
    already computed. NaN logits give an arbitrary valid index.
    """
    if x.device.type != "cpu" or x.ndim == 2:
        return x.argmax(1)
    return _first_index(shifted == 0 if shifted is not None else x == x.amax(1, keepdim=True))


def _max_argmax(x: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(x.amax(1, keepdim=True), x.argmax(1))`` of x (B, C, *S): the first index on ties.

    On CPU the index is found from the maximum with :func:`_first_index`.
    """
    top = x.amax(1, keepdim=True)
    if x.device.type != "cpu":
        return top, x.argmax(1)
    return top, _first_index(x == top)


def _take(table: Tensor, index: Tensor) -> Tensor:
    """Return ``table[..., index]``, shaped ``(*table.shape[:-1], *index.shape)``.

    Looks the flattened index up with ``index_select``: on CPU several times faster than
    advanced indexing.
    """
    return table.index_select(-1, index.reshape(-1)).view(*table.shape[:-1], *index.shape)


def _sum_groups(source: Tensor, index: Tensor, size: int) -> Tensor:
    """Return (B, size, *S): channel ``c`` of source (B, C, *S) summed into group ``index[c]``.

    One ``index_add_`` per sample along its first dimension: small serial row additions,
    much faster on CPU than ``index_add_`` along dim 1.
    """
    out = source.new_zeros((source.shape[0], size, *source.shape[2:]))
    for sample_out, sample in zip(out, source, strict=True):
        sample_out.index_add_(0, index, sample)
    return out


def _group_sums(p: Tensor, tables: LevelTables) -> list[Tensor]:
    """Return per level ``d < D - 1`` the sums (B, G_d, *S) of p (B, K, *S) over each group.

    Computed bottom-up: leaves into level D-2 groups, then children into parents.
    """
    num_levels = tables.num_levels
    if num_levels == 1:
        return []
    sums = [_sum_groups(p, tables.level_matrix[-2], tables.sizes[-2])]
    for d in range(num_levels - 3, -1, -1):
        sums.insert(0, _sum_groups(sums[0], tables.parents[d], tables.sizes[d]))
    return sums
