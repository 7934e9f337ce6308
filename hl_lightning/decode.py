"""Level probabilities and decoders: per-level predictions from the K leaf logits.

A network predicts K leaf logits per pixel; the probability of a group at level ``d`` is
the sum of its leaves' softmax probabilities. :func:`level_log_probs` returns those
probabilities in the log domain (exact and finite for any finite logits) and
:func:`decode` turns the logits into one label map per level with one of
:data:`METHODS`:

- ``marginal``: argmax of the group probabilities at each level (matches the loss);
- ``leaf``: the argmax leaf, mapped up the tree;
- ``top_down``: greedy descent from the root, always a consistent path.

Everything runs in fp32 (fp64 input stays fp64) with autocast disabled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast, get_args

import torch
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["METHODS", "Decode", "check_method", "decode", "level_log_probs", "level_parents"]

#: A decoding method (see the module documentation).
Decode = Literal["marginal", "leaf", "top_down"]
METHODS: tuple[Decode, ...] = get_args(Decode)
_BLOCK = 2**20  # logits per block when decoding on CPU (4 MB in fp32): stays in cache


def check_method(method: str) -> Decode:
    """Return ``method`` if it is one of :data:`METHODS`; raise a ValueError otherwise."""
    if method not in METHODS:
        valid = ", ".join(repr(m) for m in METHODS)
        raise ValueError(f"unknown decoding method {method!r}; valid methods are {valid}")
    return cast(Decode, method)


def level_parents(hierarchy: Hierarchy) -> list[Tensor]:
    """Return D - 1 LongTensors (G_{d+1},): the level-``d`` group of every level-``d + 1`` group.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
        >>> [p.tolist() for p in level_parents(h)]
        [[0, 1, 1]]
    """
    return [p.clone() for p in LevelTables.of(hierarchy, torch.device("cpu")).parents]


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


def _blockwise(fn: Callable[[Tensor], list[Tensor]], logits: Tensor, count: int) -> list[Tensor]:
    """Return ``count`` LongTensors (B, *S): ``fn`` applied to logits (B, K, *S).

    ``fn`` maps logits (b, K, n) to ``count`` LongTensors (b, n). On CPU the batch and the
    flattened pixels are cut into blocks of about ``_BLOCK`` logits: the chain of
    elementwise passes then stays in cache, markedly faster than whole-batch passes.
    """
    batch, channels, *spatial = logits.shape
    flat = logits.reshape(batch, channels, -1)
    pixels = flat.shape[2]
    if logits.device.type != "cpu" or flat.numel() <= _BLOCK:
        return [out.view(batch, *spatial) for out in fn(flat)]
    samples = max(1, _BLOCK // (channels * pixels))
    step = max(1, _BLOCK // channels)
    out = torch.empty((count, batch, pixels), dtype=torch.long, device=logits.device)
    for b in range(0, batch, samples):
        for i in range(0, pixels, step):
            for level, pred in zip(out, fn(flat[b : b + samples, :, i : i + step]), strict=True):
                level[b : b + samples, i : i + step] = pred
    return [level.view(batch, *spatial) for level in out]


def _decode_block(logits: Tensor, tables: LevelTables, method: Decode) -> list[Tensor]:
    """Return D LongTensors (B, *S): the decoded group ids of logits (B, K, *S)."""
    matrix, num_levels = tables.level_matrix, tables.num_levels
    if method == "leaf" or num_levels == 1:
        leaf = _argmax(logits)
        return [matrix[d][leaf] for d in range(num_levels)]
    x = _as_float(logits)
    shifted = x - x.amax(1, keepdim=True)
    if method == "marginal":
        leaf = _argmax(x, shifted)
        sums = _group_sums(shifted.exp_(), tables)  # argmax ignores the normaliser
        return [*(_argmax(s) for s in sums), matrix[-1][leaf]]
    sums = _group_sums(shifted.exp_(), tables)
    chosen = [_argmax(sums[0])]
    for d in range(1, num_levels - 1):  # probabilities >= 0: -1 rules a group out
        allowed = _channel_view(tables.parents[d - 1], x.ndim) == chosen[-1].unsqueeze(1)
        chosen.append(_argmax(torch.where(allowed, sums[d], -1.0)))
    allowed = _channel_view(matrix[-2], x.ndim) == chosen[-1].unsqueeze(1)
    leaf = _argmax(torch.where(allowed, x, -torch.inf))
    return [*chosen, matrix[-1][leaf]]


@torch.no_grad()
def leaf_argmax(logits: Tensor) -> Tensor:
    """Return a LongTensor (B, *S): the leaf with the largest logit, as ``logits.argmax(1)``."""
    return _blockwise(lambda block: [_argmax(block)], logits, 1)[0]


@torch.no_grad()
def decode_with_tables(logits: Tensor, tables: LevelTables, method: Decode) -> list[Tensor]:
    """Return D LongTensors (B, *S), the group id per level (coarse to fine) of logits (B, K, *S).

    The work of :func:`decode`, with the index tensors already on the logits' device.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return _blockwise(
            lambda block: _decode_block(block, tables, method), logits, tables.num_levels
        )


def decode(logits: Tensor, hierarchy: Hierarchy, method: Decode = "marginal") -> list[Tensor]:
    """Return D LongTensors (B, *S): the predicted group id at every level, coarse to fine.

    ``logits`` (B, K, *S) are leaf logits; ``method`` is one of :data:`METHODS`.
    Group ids are those of :meth:`Hierarchy.level_index`.

    Example:
        >>> h = Hierarchy.from_dict({"a": ["a1", "a2", "a3"], "b": None})
        >>> logits = torch.tensor([[1.0, 1.0, 1.0, 1.5]])  # a1, a2, a3, b: P(a) > P(b)
        >>> [t.tolist() for t in decode(logits, h, "marginal")]
        [[0], [3]]
        >>> [t.tolist() for t in decode(logits, h, "leaf")]
        [[1], [3]]
        >>> [t.tolist() for t in decode(logits, h, "top_down")]
        [[0], [0]]
    """
    check_method(method)
    validate_inputs(logits, None, hierarchy)
    return decode_with_tables(logits, LevelTables.of(hierarchy, logits.device), method)


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
