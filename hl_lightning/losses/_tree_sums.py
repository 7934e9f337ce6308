"""Per-pixel sums over the target's groups (bottom-up) and per-leaf factors (top-down).

The losses that follow the tree (hierarchical, soft labels) need, for values (B, K, S)
and each pixel's target leaf, the sum of the values over the target's group at every
level, and in their backward a factor for every leaf built from per-level terms of the
groups that contain the target. Both passes run on the group arrays (G_d, S) of a block
and touch the K channels once. On the CPU a block is one sample: its values, read or
written just before (the forward pass may compute them, as exponentials of the logits),
are still in the cache for the group sums and for the reads and writes at each pixel's
target, and its group arrays are buffers reused from sample to sample; elsewhere a block
is the whole batch, to launch few kernels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from hl_lightning.tables import LevelTables

_LOG2_E = 1.0 / math.log(2.0)


@dataclass(frozen=True)
class Block:
    """A block of pixels: one sample (an int), or samples (a slice: the whole batch).

    ``values(t)`` is the block of a tensor (B, C, S): (C, S) or (b, C, S), and
    ``pixels(t)`` the block of a tensor (B, S), shaped to broadcast against it; ``dim`` is
    the dimension of C in ``values(t)``.
    """

    samples: int | slice

    @property
    def dim(self) -> int:
        """The dimension of the channels in :meth:`values`: 0 for one sample, else 1."""
        return 0 if isinstance(self.samples, int) else 1

    def values(self, tensor: Tensor) -> Tensor:
        """Return the block of ``tensor`` (B, C, S)."""
        return tensor[self.samples]

    def pixels(self, tensor: Tensor) -> Tensor:
        """Return the block of ``tensor`` (B, S), shaped to broadcast against :meth:`values`."""
        return tensor[self.samples].unsqueeze(self.dim)

    def take(self, values: Tensor, index: Tensor, out: Tensor) -> None:
        """Write into the block of ``out`` (B, S) each pixel's value of ``values`` (the
        block's (C, S) or (b, C, S), contiguous) at its channel in ``index`` (B, S).

        Example:
            >>> out = torch.zeros(1, 2)
            >>> Block(0).take(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1, 0]]), out)
            >>> out.tolist()
            [[3.0, 2.0]]
        """
        if isinstance(self.samples, int):  # one sample: a 1-d gather, faster on the CPU
            places = _places(index[self.samples], values.shape[-1])
            torch.index_select(values.view(-1), 0, places, out=out[self.samples])
        else:
            torch.gather(values, self.dim, self.pixels(index), out=self.pixels(out))

    def add_at(self, values: Tensor, index: Tensor, amounts: Tensor) -> None:
        """Add ``amounts`` (B, S) in the block to ``values`` (the block's (C, S) or (b, C, S),
        contiguous) at each pixel's channel in ``index`` (B, S)."""
        if isinstance(self.samples, int):  # one sample: a 1-d scatter, faster on the CPU
            places = _places(index[self.samples], values.shape[-1])
            values.view(-1).index_add_(0, places, amounts[self.samples])
        else:
            values.scatter_add_(self.dim, self.pixels(index), self.pixels(amounts))


def _places(channels: Tensor, pixels: int) -> Tensor:
    """Return the places ``channel * pixels + pixel`` in a flattened (C, S) array of one
    channel per pixel, ``channels`` (S,)."""
    return torch.add(torch.arange(pixels, device=channels.device), channels, alpha=pixels)


def blocks(values: Tensor) -> list[Block]:
    """Return the blocks of values (B, K, S) in turn: one sample at a time on the CPU, the
    whole batch elsewhere."""
    if values.device.type != "cpu":
        return [Block(slice(None))]
    return [Block(b) for b in range(values.shape[0])]


def target_groups(level_matrix: Tensor, leaf: Tensor) -> Tensor:
    """Return the group of each pixel's target leaf at every level (D, B, S).

    One 1-d index_select per level: several times faster on the CPU than indexing the
    (D, K) table along its second dimension.

    Example:
        >>> target_groups(torch.tensor([[0, 1, 1], [0, 1, 2]]), torch.tensor([[2, 0]])).tolist()
        [[[1, 0]], [[2, 0]]]
    """
    out = leaf.new_empty(level_matrix.shape[0], leaf.numel())
    for groups, row in zip(out, level_matrix, strict=True):
        torch.index_select(row, 0, leaf.view(-1), out=groups)
    return out.view(level_matrix.shape[0], *leaf.shape)


def fast_exp(values: Tensor, out: Tensor) -> Tensor:
    """Write ``exp(values)`` into ``out`` (which may be ``values``) and return it.

    On the CPU computed as ``exp2(values * log2(e))``: two to three times faster than
    ``torch.exp`` there, within a relative ``(1 + |x|) * 1.2e-7`` of ``exp(x)`` (``torch.exp``:
    ``6e-8``; the rounding of the product adds up to ``|x| * 6e-8``, an error of the kind
    that rounding ``z - max(z)`` gives cross-entropy's exponentials). Elsewhere
    ``torch.exp``, one kernel.

    Example:
        >>> x = torch.tensor([0.0, -1.0, -100.0, 60.0])
        >>> fast_exp(x, torch.empty(4))
        tensor([1.0000e+00, 3.6788e-01, 3.7835e-44, 1.1420e+26])
    """
    if values.device.type != "cpu":
        return torch.exp(values, out=out)
    return torch.mul(values, _LOG2_E, out=out).exp2_()


def target_group_sums(
    values: Tensor,
    leaf: Tensor,
    groups: Tensor,
    tables: LevelTables,
    exp_of: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Return the sums of ``values`` (B, K, S) over the target's group at every level
    (D, B, S), coarse to fine, and over all leaves (B, S).

    ``leaf`` (B, S) are the target leaves, ``groups`` (D, B, S) their groups
    (:func:`target_groups`). Aggregated bottom-up: leaves into level D-2, then each level
    into its parent; the total is the sum of level 0's groups. With ``exp_of`` (B, K, S),
    ``values`` is first overwritten with ``exp(exp_of)``, block by block. Not differentiable.

    Example:
        >>> from hl_lightning import Hierarchy
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> tables, leaf = LevelTables.of(h, torch.device("cpu")), torch.tensor([[2]])  # truck
        >>> groups = target_groups(tables.level_matrix, leaf)
        >>> values = torch.tensor([[[1.0], [2.0], [4.0]]])  # (B=1, K=3, S=1)
        >>> sums, total = target_group_sums(values, leaf, groups, tables)
        >>> sums.view(-1).tolist(), total.view(-1).tolist()  # vehicle, truck; all leaves
        ([6.0, 4.0], [7.0])
    """
    depth = tables.num_levels
    out = values.new_empty(depth, *leaf.shape)
    total = values.new_empty(leaf.shape)
    buffers = _Buffers(values, tables.sizes[:-1])
    for block in blocks(values):
        level_sums, dim = block.values(values), block.dim
        if exp_of is not None:
            fast_exp(block.values(exp_of), out=level_sums)
        group_sums = buffers.of(level_sums)
        block.take(level_sums, leaf, out[-1])
        for d in range(depth - 2, -1, -1):
            index = tables.level_matrix[d] if d == depth - 2 else tables.parents[d]
            level_sums = group_sums[d].zero_().index_add_(dim, index, level_sums)
            block.take(level_sums, groups[d], out[d])
        torch.sum(level_sums, dim=dim, keepdim=True, out=block.pixels(total))
    return out, total


def leaf_factors(
    values: Tensor, top: Tensor, coeffs: Tensor, groups: Tensor, tables: LevelTables
) -> Iterator[tuple[Block, Tensor]]:
    """Yield ``(block, factors)``: the factor of every leaf for ``block.values(values)``.

    A leaf's factor is ``top`` (B, S) plus ``coeffs[d]`` (D-1, B, S) for every level
    ``d < D-1`` whose target group ``groups[d]`` contains the leaf (the leaf level's own
    term, at the target alone, is the caller's). Built top-down on the group arrays, then
    spread to the leaves; ``factors`` broadcasts against the block and is a buffer reused
    by the next block: use it before asking for the next.
    """
    if tables.num_levels == 1:
        for block in blocks(values):
            yield block, block.pixels(top)
        return
    buffers = _Buffers(values, tables.sizes)
    for block in blocks(values):
        dim, arrays = block.dim, buffers.of(block.values(values))
        factor = arrays[0].copy_(block.pixels(top).expand_as(arrays[0]))  # level 0
        for d in range(tables.num_levels - 1):
            if d:
                factor = torch.index_select(factor, dim, tables.parents[d - 1], out=arrays[d])
            block.add_at(factor, groups[d], coeffs[d])
        yield block, torch.index_select(factor, dim, tables.level_matrix[-2], out=arrays[-1])


def add_at_target(values: Tensor, block: Block, leaf: Tensor, amounts: Tensor) -> None:
    """Add ``amounts`` (B, S) to ``values`` (B, K, S) at each pixel's target ``leaf`` (B, S),
    in ``block`` (within the block: its values are in the cache)."""
    block.add_at(block.values(values), leaf, amounts)


class _Buffers:
    """Uninitialised group arrays, one per size G, shaped like a block (C, S) or (b, C, S)
    with G in place of C; one set per block shape, reused from block to block."""

    def __init__(self, values: Tensor, sizes: Sequence[int]) -> None:
        self.like, self.sizes = values, sizes
        self.sets: dict[tuple[int, ...], list[Tensor]] = {}

    def of(self, block: Tensor) -> list[Tensor]:
        """Return the arrays for a block of values shaped like ``block``."""
        shape = tuple(block.shape)
        if shape not in self.sets:
            dim = block.dim() - 2
            self.sets[shape] = [
                self.like.new_empty(*shape[:dim], size, shape[-1]) for size in self.sizes
            ]
        return self.sets[shape]
