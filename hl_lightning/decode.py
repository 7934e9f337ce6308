"""Level probabilities and decoders: per-level predictions from the K leaf logits.

A network predicts K leaf logits per pixel; the probability of a group at level ``d`` is
the sum of its leaves' softmax probabilities. :func:`level_log_probs` returns those
probabilities in the log domain (exact and finite for any finite logits) and
:func:`decode` turns the logits into one label map per level with one of
:data:`METHODS`:

- ``marginal``: argmax of the group probabilities at each level (matches the loss);
- ``leaf``: the argmax leaf, mapped up the tree;
- ``top_down``: greedy descent from the root, always a consistent path.

:func:`level_outputs` returns from one pass everything the metrics count: the decoded
maps, the argmax leaf, each level's most probable group and its probability, and whether
the logits are finite. Everything runs in fp32 (fp64 input stays fp64) with autocast disabled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast, get_args

import torch
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = [
    "METHODS",
    "Decode",
    "LevelOutputs",
    "check_method",
    "decode",
    "level_log_probs",
    "level_outputs",
    "level_parents",
]

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


def _block_size(logits: Tensor) -> tuple[int, int]:
    """Return (samples, pixels) per block of logits (B, K, *S): about ``_BLOCK`` logits on
    CPU, where the chain of elementwise passes then stays in cache; the whole batch on
    other devices or when it is smaller."""
    batch, channels, pixels = logits.shape[0], logits.shape[1], math.prod(logits.shape[2:])
    if logits.device.type != "cpu" or logits.numel() <= _BLOCK:
        return batch, pixels
    samples = max(1, _BLOCK // (channels * pixels))
    return min(samples, batch), min(max(1, _BLOCK // channels), pixels)


def _blockwise(fn: Callable[[Tensor], list[Tensor]], logits: Tensor) -> list[Tensor]:
    """Return the tensors of ``fn`` applied to logits (B, K, *S), each shaped (..., B, *S).

    ``fn`` maps logits (b, K, n) to tensors (..., b, n) of any dtype; it is applied to
    blocks of :func:`_block_size`, markedly faster on CPU than whole-batch passes.
    """
    batch, channels, *spatial = logits.shape
    flat = logits.reshape(batch, channels, -1)
    pixels = flat.shape[2]
    samples, step = _block_size(logits)
    if samples == batch and step == pixels:
        return [out.reshape(*out.shape[:-2], batch, *spatial) for out in fn(flat)]
    outs: list[Tensor] = []
    for b in range(0, batch, samples):
        for i in range(0, pixels, step):
            pieces = fn(flat[b : b + samples, :, i : i + step])
            if not outs:
                outs = [piece.new_empty((*piece.shape[:-2], batch, pixels)) for piece in pieces]
            for out, piece in zip(outs, pieces, strict=True):
                out[..., b : b + samples, i : i + step] = piece
    return [out.view(*out.shape[:-2], batch, *spatial) for out in outs]


def _max_argmax(x: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(x.amax(1, keepdim=True), x.argmax(1))`` of x (B, C, *S): the first index on ties.

    On CPU the index is found from the maximum with :func:`_first_index`.
    """
    top = x.amax(1, keepdim=True)
    if x.device.type != "cpu":
        return top, x.argmax(1)
    return top, _first_index(x == top)


def _top_down(x: Tensor, sums: list[Tensor], tables: LevelTables) -> Tensor:
    """Return (D, B, *S): the greedy descent of logits x (B, K, *S) through their group sums."""
    matrix = tables.level_matrix
    chosen = [_argmax(sums[0])]
    for d in range(1, tables.num_levels - 1):  # probabilities >= 0: -1 rules a group out
        allowed = _channel_view(tables.parents[d - 1], x.ndim) == chosen[-1].unsqueeze(1)
        chosen.append(_argmax(torch.where(allowed, sums[d], -1.0)))
    allowed = _channel_view(matrix[-2], x.ndim) == chosen[-1].unsqueeze(1)
    leaf = _argmax(torch.where(allowed, x, -torch.inf))
    return torch.stack([*chosen, _take(matrix[-1], leaf)])


def _level_block(
    logits: Tensor,
    tables: LevelTables,
    method: Decode | None,
    leaf: bool,
    marginal: bool,
    scratch: Tensor | None,
) -> list[Tensor]:
    """Return the tensors of :func:`level_outputs` of logits (b, K, n), in its field order.

    ``finite`` (b, n), then ``leaf`` (b, n) if asked, ``decoded`` (D, b, n) if ``method``,
    and if ``marginal`` the argmax groups (D, b, n) unless ``method`` is ``"marginal"``
    (they are ``decoded`` then) and their probabilities (D, b, n). ``scratch``, if given,
    is a flat buffer of the float logits' dtype with room for the block.
    """
    matrix, num_levels = tables.level_matrix, tables.num_levels
    if not marginal and (method in (None, "leaf") or num_levels == 1):
        top, best = _max_argmax(logits)  # no group sums: the argmax leaf gives every level
        finite = torch.isfinite(top.squeeze(1)) & torch.isfinite(logits.amin(1))
        return [finite, *([best] if leaf else []), *([_take(matrix, best)] if method else [])]
    x = _as_float(logits)
    top = x.amax(1, keepdim=True)
    finite = torch.isfinite(top.squeeze(1)) & torch.isfinite(x.amin(1))  # no NaN nor +-inf
    buffer = None if scratch is None else scratch[: x.numel()].view(x.shape)
    shifted = torch.sub(x, top, out=buffer)  # <= 0, the maximum exactly 0: exp(0) = 1
    if method == "top_down" and not (leaf or marginal):
        return [finite, _top_down(x, _group_sums(shifted.exp_(), tables), tables)]
    best = _argmax(x, shifted)
    exp = shifted.exp_()
    sums = _group_sums(exp, tables)  # argmax ignores the normaliser
    out = [finite, best] if leaf else [finite]
    if method == "top_down" and num_levels > 1:
        out.append(_top_down(x, sums, tables))
    elif method in ("leaf", "top_down"):
        out.append(_take(matrix, best))
    if marginal or method == "marginal":
        tops = [_max_argmax(s) for s in sums]
        argmaxes = torch.stack([*(i for _, i in tops), _take(matrix[-1], best)])
        out.append(argmaxes)  # decoded, or the marginal predictions
        if marginal:
            total = (sums[0] if sums else exp).sum(1)
            values = torch.stack([*(v.squeeze(1) for v, _ in tops), torch.ones_like(total)])
            out.append(values.div_(total))
    return out


@dataclass(frozen=True)
class LevelOutputs:
    """What the metrics need of logits (B, K, *S), per pixel, from one pass: see
    :func:`level_outputs`. A field not asked for is None.

    ``finite`` () bool: whether every logit is finite (no NaN, no +-inf).
    ``leaf`` (B, *S) long: the leaf (label id) with the largest logit, the first on ties.
    ``decoded`` (D, B, *S) long: the group ids of the decoding method, coarse to fine, as
    :func:`decode_with_tables` returns them.
    ``marginal`` (D, B, *S) long: per level the group of largest probability (the
    ``"marginal"`` decoding: the same tensor as ``decoded`` for that method).
    ``confidence`` (D, B, *S) float: that group's probability.
    """

    finite: Tensor
    leaf: Tensor | None = None
    decoded: Tensor | None = None
    marginal: Tensor | None = None
    confidence: Tensor | None = None


@torch.no_grad()
def level_outputs(
    logits: Tensor,
    tables: LevelTables,
    method: Decode | None = None,
    leaf: bool = False,
    marginal: bool = False,
) -> LevelOutputs:
    """Return the per-pixel predictions of logits (B, K, *S) that the metrics count.

    One blockwise pass (fp32, autocast disabled) finds whether the logits are finite and,
    as asked, the argmax ``leaf``, the predictions ``decoded`` by ``method``, and with
    ``marginal`` each level's most probable group and its probability (the largest group
    sum of ``exp(z - max z)`` over their total; ``1 / total`` at the leaf level).
    ``tables`` are on the logits' device.

    Example:
        >>> h = Hierarchy.from_dict({"a": ["a1", "a2", "a3"], "b": None})
        >>> tables = LevelTables.of(h, torch.device("cpu"))
        >>> logits = torch.tensor([[0.0, 0.0, 0.0, 0.5]])  # a1, a2, a3, b
        >>> out = level_outputs(logits, tables, "top_down", leaf=True, marginal=True)
        >>> out.finite, out.leaf, out.decoded.tolist(), out.marginal.tolist()
        (tensor(True), tensor([3]), [[0], [0]], [[0], [3]])
        >>> out.confidence  # P(a) = 3 / (3 + e^0.5), then P(b)
        tensor([[0.6453],
                [0.3547]])
    """
    samples, pixels = _block_size(logits)
    scratch = None  # on CPU one buffer for every block: new ones cost as much as filling them
    if logits.device.type == "cpu":
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        scratch = torch.empty(samples * logits.shape[1] * pixels, dtype=dtype)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        finite, *rest = _blockwise(
            lambda block: _level_block(block, tables, method, leaf, marginal, scratch),
            logits.detach(),
        )
    fields: dict[str, Tensor] = {}
    if leaf:
        fields["leaf"] = rest.pop(0)
    if method is not None:
        fields["decoded"] = rest.pop(0)
    if marginal:
        fields["marginal"] = fields["decoded"] if method == "marginal" else rest.pop(0)
        fields["confidence"] = rest.pop(0)
    return LevelOutputs(finite.all(), **fields)


@torch.no_grad()
def leaf_argmax(logits: Tensor) -> Tensor:
    """Return a LongTensor (B, *S): the leaf with the largest logit, as ``logits.argmax(1)``."""
    return _blockwise(lambda block: [_max_argmax(block)[1]], logits)[0]


def decode_with_tables(logits: Tensor, tables: LevelTables, method: Decode) -> list[Tensor]:
    """Return D LongTensors (B, *S), the group id per level (coarse to fine) of logits (B, K, *S).

    The work of :func:`decode`, with the index tensors already on the logits' device.
    """
    return list(cast(Tensor, level_outputs(logits, tables, method).decoded).unbind(0))


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
