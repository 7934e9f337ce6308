"""Index tables of a hierarchy and the input checks shared by the loss, decoders and metrics."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.label_ids import label_extremes

__all__ = ["InputDTypeError", "LevelTables", "check_tensors", "validate_inputs"]


class InputDTypeError(TypeError, ValueError):
    """Logits or a target of the wrong dtype: a TypeError, and a ValueError like the other
    input checks of :func:`validate_inputs`, so that one ``except ValueError`` catches all."""


@dataclass(frozen=True)
class LevelTables:
    """The index tensors of a hierarchy on one device, as the loss, decoders and metrics use them.

    ``level_matrix`` (D, K): group id of every leaf at every level
    (:meth:`Hierarchy.level_matrix`).
    ``parents[d]`` (G_{d+1},): group id at level ``d`` of every group at level ``d + 1``.
    ``sizes[d]``: G_d, the number of groups at level ``d``.
    ``node_matrix`` (D, N): group id of every node (label id) at every level, -1 below an
    internal node's level (:meth:`Hierarchy.node_level_matrix`); its first K columns are
    ``level_matrix``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
        >>> tables = LevelTables.of(h, torch.device("cpu"))
        >>> tables.level_matrix.tolist(), [p.tolist() for p in tables.parents], tables.sizes
        ([[0, 1, 1], [0, 1, 2]], [[0, 1, 1]], (2, 3))
        >>> tables.node_matrix.tolist()
        [[0, 1, 1, 1], [0, 1, 2, -1]]
        >>> tables.node_members.int().tolist(), tables.node_leaves.tolist()
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]], [0, 1, 2, 1])
        >>> tables.node_levels.tolist()
        [1, 1, 1, 0]
    """

    level_matrix: Tensor
    parents: tuple[Tensor, ...]
    sizes: tuple[int, ...]
    node_matrix: Tensor

    @staticmethod
    @lru_cache(maxsize=32)
    def of(hierarchy: Hierarchy, device: torch.device) -> LevelTables:
        """Return the (cached, shared: do not modify) tables of ``hierarchy`` on ``device``."""
        matrix = hierarchy.level_matrix()
        sizes = tuple(hierarchy.num_groups(d) for d in range(hierarchy.num_levels))
        parents = tuple(
            torch.zeros(sizes[d + 1], dtype=torch.long).scatter_(0, matrix[d + 1], matrix[d])
            for d in range(hierarchy.num_levels - 1)
        )
        return LevelTables(
            matrix.to(device),
            tuple(p.to(device) for p in parents),
            sizes,
            hierarchy.node_level_matrix().to(device),
        )

    @property
    def num_levels(self) -> int:
        """D, the number of levels."""
        return len(self.sizes)

    @property
    def num_leaves(self) -> int:
        """K, the number of leaves."""
        return self.level_matrix.shape[1]

    @property
    def num_nodes(self) -> int:
        """N, the number of nodes (label ids): K leaves, then the internal nodes."""
        return self.node_matrix.shape[1]

    @cached_property
    def node_levels(self) -> Tensor:
        """(N,) long: every node's own level, the finest at which it is a group (a leaf's:
        D - 1)."""
        return (self.node_matrix >= 0).sum(0) - 1

    @cached_property
    def node_members(self) -> Tensor:
        """(N, K) bool: the leaves under every node (a leaf: itself), from its own level."""
        group = self.node_matrix.gather(0, self.node_levels.unsqueeze(0)).squeeze(0)  # (N,)
        return self.level_matrix[self.node_levels] == group.unsqueeze(1)

    @cached_property
    def node_leaves(self) -> Tensor:
        """(N,) long: a leaf under every node, its first in leaf order (a leaf: itself).

        It stands in for a coarse label where a leaf is needed: it shares the node's group
        at the node's level and every coarser one.
        """
        return self.node_members.to(torch.uint8).argmax(1)


def check_tensors(logits: object, target: object = None) -> None:
    """Raise an :class:`InputDTypeError` naming ``logits`` or ``target`` (None: not given) if it
    is not a tensor.

    Example:
        >>> check_tensors(torch.zeros(1, 2), [[0]])
        Traceback (most recent call last):
            ...
        hl_lightning.tables.InputDTypeError: target must be a tensor of label ids, got list
    """
    if not isinstance(logits, Tensor):
        raise InputDTypeError(f"logits must be a tensor, got {type(logits).__name__}")
    if target is not None and not isinstance(target, Tensor):
        raise InputDTypeError(f"target must be a tensor of label ids, got {type(target).__name__}")


def validate_inputs(
    logits: Tensor,
    target: Tensor | None,
    hierarchy: Hierarchy,
    ignore_index: int | None = None,
    values: bool = True,
) -> None:
    """Raise a ValueError naming the problem if logits/target do not fit the hierarchy.

    Checks: tensors; float logits (B, K, *S) with K the number of leaves; unless ``target`` is
    None, an integer target (B, *S) of any integer dtype and, with ``values``, label ids
    that are not ``ignore_index`` in [0, N) (node ids: the K leaves, then the internal
    nodes as coarse labels, :attr:`Hierarchy.node_names`).
    That is the only check that reads the target's values (one host read per target,
    :func:`~hl_lightning.label_ids.label_extremes`). A wrong dtype raises
    :class:`InputDTypeError`, a TypeError that is also a ValueError.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> validate_inputs(torch.zeros(1, 3, 2), torch.tensor([[0, 255]]), h, 255)
        >>> validate_inputs(torch.zeros(1, 3, 2), torch.tensor([[0, 3]]), h, 255)
        >>> try:
        ...     validate_inputs(torch.zeros(1, 3, 2), torch.tensor([[4, 7]]), h, 255)
        ... except ValueError as error:
        ...     print(str(error).replace(": ", ":\\n"))
        target has label ids [4, 7] outside [0, 4) that are not ignore_index=255:
        valid are leaf ids 0..2, coarse ids 3..3
    """
    check_tensors(logits, target)
    if not torch.is_floating_point(logits):
        raise InputDTypeError(f"logits must be a floating point tensor, got dtype {logits.dtype}")
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape (B, K, ...), got {tuple(logits.shape)}")
    k = hierarchy.num_leaves
    if logits.shape[1] != k:
        raise ValueError(
            f"logits have {logits.shape[1]} channels but the hierarchy has {k} leaves "
            f"({', '.join(hierarchy.leaves[:8])}{', ...' if k > 8 else ''})"
        )
    if target is None:
        return
    if torch.is_floating_point(target) or target.dtype == torch.bool or target.is_complex():
        raise InputDTypeError(
            f"target must be an integer tensor of label ids, got dtype {target.dtype}"
        )
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target has shape {tuple(target.shape)}, expected {expected} "
            f"for logits of shape {tuple(logits.shape)}"
        )
    if not values or target.numel() == 0:
        return
    end = hierarchy.num_nodes  # valid label ids: [0, N)
    low, high = label_extremes(target, ignore_index)  # one host read, shared per target
    if low >= 0 and high < end:
        return
    target = target.long()  # compared in int64: 255 or 300 would wrap in uint8 and int8
    outside = (target < 0) | (target >= end)
    if ignore_index is not None:
        outside &= target != ignore_index
    shown = torch.unique(target[outside])[:10].tolist()
    raise ValueError(_label_id_error(shown, hierarchy, ignore_index))


def _label_id_error(shown: list[int], hierarchy: Hierarchy, ignore_index: int | None) -> str:
    """Return the one message for label ids that are neither node ids nor ``ignore_index``."""
    k, n = hierarchy.num_leaves, hierarchy.num_nodes
    if ignore_index is None:
        ignored = "ignored (ignore_index is None)"
    else:
        ignored = f"ignore_index={ignore_index}"
    valid = f"valid are leaf ids 0..{k - 1}"
    if n == k:
        valid += " (the tree has no internal nodes)"
    else:
        valid += f", coarse ids {k}..{n - 1}"
    return f"target has label ids {shown} outside [0, {n}) that are not {ignored}: {valid}"
