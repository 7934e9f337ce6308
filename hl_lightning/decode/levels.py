"""Per-level predictions from one blockwise pass over the logits: what the metrics count,
and the decoded label maps.

:func:`level_outputs` returns, from one pass, the decoded maps of a method, the argmax
leaf, each level's most probable group and its probability, and whether the logits are
finite, as a :class:`LevelOutputs`; :func:`decode_levels` returns the decoded maps alone.
Everything runs in fp32 (fp64 input stays fp64) with autocast disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor

from hl_lightning.decode._ops import (
    _argmax,
    _as_float,
    _group_sums,
    _max_argmax,
    _take,
)
from hl_lightning.decode.blocks import _block_size, _blockwise
from hl_lightning.decode.methods import DecodeMethod, _crm, _top_down, check_method
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["LevelOutputs", "decode_levels", "leaf_argmax", "level_outputs"]


@dataclass(frozen=True)
class LevelOutputs:
    """What the metrics need of logits (B, K, *S), per pixel, from one pass: see
    :func:`level_outputs`. A field not asked for is None.

    ``finite`` () bool: whether every logit is finite (no NaN, no +-inf).
    ``leaf`` (B, *S) long: the leaf (label id) with the largest logit, the first on ties.
    ``decoded`` (D, B, *S) long: the group ids of the decoding method, coarse to fine, as
    :func:`decode_levels` returns them.
    ``marginal`` (D, B, *S) long: per level the group of largest probability (the
    ``"marginal"`` decoding: the same tensor as ``decoded`` for that method).
    ``confidence`` (D, B, *S) float: that group's probability.
    """

    finite: Tensor
    leaf: Tensor | None = None
    decoded: Tensor | None = None
    marginal: Tensor | None = None
    confidence: Tensor | None = None


def _level_block(
    logits: Tensor,
    tables: LevelTables,
    method: DecodeMethod | None,
    leaf: bool,
    marginal: bool,
    scratch: Tensor | None,
) -> dict[str, Tensor]:
    """Return the fields of :class:`LevelOutputs` of logits (b, K, n), by name, per pixel.

    ``finite`` (b, n) always; ``leaf`` (b, n) if ``leaf``; ``decoded`` (D, b, n) if
    ``method``; with ``marginal``, ``confidence`` (D, b, n) and ``marginal`` (D, b, n),
    the latter left out for ``method="marginal"`` (it is ``decoded`` then). ``scratch``,
    if given, is a flat buffer of the float logits' dtype with room for the block.
    """
    matrix, num_levels = tables.level_matrix, tables.num_levels
    out: dict[str, Tensor] = {}
    if not marginal and (method in (None, "leaf") or num_levels == 1):
        top, best = _max_argmax(logits)  # no group sums: the argmax leaf gives every level
        out["finite"] = torch.isfinite(top.squeeze(1)) & torch.isfinite(logits.amin(1))
        if leaf:
            out["leaf"] = best
        if method is not None:
            out["decoded"] = _take(matrix, best)
        return out
    x = _as_float(logits)
    top = x.amax(1, keepdim=True)
    out["finite"] = torch.isfinite(top.squeeze(1)) & torch.isfinite(x.amin(1))  # no NaN nor inf
    buffer = None if scratch is None else scratch[: x.numel()].view(x.shape)
    shifted = torch.sub(x, top, out=buffer)  # <= 0, the maximum exactly 0: exp(0) = 1
    if method in ("top_down", "crm") and not (leaf or marginal):  # no argmax leaf needed
        exp = shifted.exp_()
        out["decoded"] = _path_rule(x, exp, _group_sums(exp, tables), tables, method)
        return out
    best = _argmax(x, shifted)
    exp = shifted.exp_()
    sums = _group_sums(exp, tables)  # argmax ignores the normaliser
    if leaf:
        out["leaf"] = best
    if method in ("top_down", "crm") and num_levels > 1:
        out["decoded"] = _path_rule(x, exp, sums, tables, method)
    elif method in ("leaf", "top_down", "crm"):
        out["decoded"] = _take(matrix, best)
    if marginal or method == "marginal":
        tops = [_max_argmax(s) for s in sums]
        argmaxes = torch.stack([*(i for _, i in tops), _take(matrix[-1], best)])
        out["decoded" if method == "marginal" else "marginal"] = argmaxes
        if marginal:
            total = (sums[0] if sums else exp).sum(1)
            values = torch.stack([*(v.squeeze(1) for v, _ in tops), torch.ones_like(total)])
            out["confidence"] = values.div_(total)
    return out


def _path_rule(
    x: Tensor, exp: Tensor, sums: list[Tensor], tables: LevelTables, method: DecodeMethod
) -> Tensor:
    """Return (D, b, n): the groups of ``top_down`` or ``crm`` (a path of the tree) from
    the logits x, their ``exp(z - max z)`` and its group sums."""
    if method == "top_down":
        return _top_down(x, sums, tables)
    return _take(tables.level_matrix, _crm(exp, sums, tables))


@torch.no_grad()
def level_outputs(
    logits: Tensor,
    tables: LevelTables,
    method: DecodeMethod | None = None,
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
        fields = _blockwise(
            lambda block: _level_block(block, tables, method, leaf, marginal, scratch),
            logits.detach(),
        )
    decoded = fields.get("decoded")
    return LevelOutputs(
        finite=fields["finite"].all(),
        leaf=fields.get("leaf"),
        decoded=decoded,
        marginal=decoded if marginal and method == "marginal" else fields.get("marginal"),
        confidence=fields.get("confidence"),
    )


@torch.no_grad()
def leaf_argmax(logits: Tensor) -> Tensor:
    """Return a LongTensor (B, *S): the leaf with the largest logit, as ``logits.argmax(1)``.

    Example:
        >>> leaf_argmax(torch.tensor([[[0.0, 2.0], [1.0, 2.0]]]))  # K = 2 leaves, 2 pixels; a tie
        tensor([[1, 0]])
    """
    return _blockwise(lambda block: {"leaf": _max_argmax(block)[1]}, logits)["leaf"]


def decode_levels(
    logits: Tensor, hierarchy: Hierarchy, method: DecodeMethod = "marginal"
) -> list[Tensor]:
    """Return D LongTensors (B, *S): the predicted group id at every level, coarse to fine.

    ``logits`` (B, K, *S) are leaf logits; ``method`` is one of
    :data:`~hl_lightning.decode.METHODS`. Group ids are those of :meth:`Hierarchy.level_index`.
    An unknown method is a ValueError before any work; NaN or infinite logits are one too.

    Example:
        >>> h = Hierarchy.from_dict({"a": ["a1", "a2", "a3"], "b": None})
        >>> logits = torch.tensor([[1.0, 1.0, 1.0, 1.5]])  # a1, a2, a3, b: P(a) > P(b)
        >>> [t.tolist() for t in decode_levels(logits, h, "marginal")]
        [[0], [3]]
        >>> [t.tolist() for t in decode_levels(logits, h, "leaf")]
        [[1], [3]]
        >>> [t.tolist() for t in decode_levels(logits, h, "top_down")]
        [[0], [0]]
        >>> [t.tolist() for t in decode_levels(logits, h, "crm")]  # risk: a1 1.14, b 1.29
        [[0], [0]]
    """
    check_method(method)
    validate_inputs(logits, None, hierarchy)
    outputs = level_outputs(logits, LevelTables.of(hierarchy, logits.device), method)
    if not outputs.finite:
        count = int((~torch.isfinite(logits)).sum())
        raise ValueError(
            f"decode_levels: the logits have {count} non-finite values (NaN or inf) out of "
            f"{logits.numel()}; valid logits are finite numbers (a diverged model?)"
        )
    return list(cast(Tensor, outputs.decoded).unbind(0))
