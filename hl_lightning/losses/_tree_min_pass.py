"""The forward and backward passes of the tree-min loss, block by block over the pixels.

A node's negative term needs ``m_v``, the largest logit of the node and its descendants
(a running max up the tree); the target's path needs the running min down its logits.
Both passes take the node logits of a block of pixels in level order (each level a run
of rows, the children of one parent next to each other). The forward pass sums each
level's terms and writes each node's slope ``f'(m_v)`` into the buffer that becomes the
gradient; the backward pass recomputes the running max (no transcendental function),
routes every slope, top-down, to the logit that gave the maximum (ties share it evenly,
as autograd's ``amax`` does), and adds the path terms' slopes at the logits that gave
the minima. Nothing the size of the logits is kept but that buffer. On the CPU a block
holds a few thousand pixels, so that its arrays stay in the cache from step to step;
elsewhere a block is one sample.

A pixel's weight may differ from level to level (``weight`` (D, B, S)): a pixel known
only down to some level is weighted 0 below it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from hl_lightning.losses.tree_min import TreeNodes

# nodes x pixels of a block on the CPU, per thread (the threads share each step of a block):
# 1 MiB per fp32 array and thread; but rows of at least _MIN_BLOCK_WIDTH pixels, so that
# gathering a block's rows from the logits reads long runs
_BLOCK_ELEMENTS = 1 << 18
_MIN_BLOCK_WIDTH = 1024


def focal_softplus(m: Tensor, gamma: float, slope: Tensor, scratch: Tensor) -> Tensor:
    """Return ``f(m) = softplus(m) * sigmoid(m) ** gamma`` and write ``f'(m)`` into ``slope``
    (shaped like ``m``); ``scratch`` (like ``m``) is overwritten.

    ``f' = s ** (gamma + 1) + gamma * f * (1 - s)`` with ``s = sigmoid(m)``, and
    ``f(-inf) = f'(-inf) = 0``. Exact for any finite ``m`` in fp32 but for ``1 - s``, which
    loses precision where ``s > 1/2``: there ``f'`` stays within a relative ``2e-6 * gamma``.

    Example:
        >>> m = torch.tensor([-30.0, 0.0, 2.0])
        >>> slope, scratch = torch.empty(3), torch.empty(3)
        >>> value = focal_softplus(m, 2.0, slope, scratch)
        >>> torch.allclose(value, F.softplus(m) * torch.sigmoid(m) ** 2)
        True
    """
    value = F.softplus(m)
    if not gamma:
        torch.sigmoid(m, out=slope)
        return value
    s = torch.sigmoid(m, out=scratch)
    focal = _power(s, gamma, out=slope)  # s ** gamma
    value.mul_(focal)
    focal.mul_(s)  # s ** (gamma + 1)
    # + gamma * f * (1 - s), as (-gamma * (s - 1)) * f: gamma * f alone may overflow
    slope.addcmul_(s.sub_(1.0), value, value=-gamma)
    return value


def _power(s: Tensor, gamma: float, out: Tensor) -> Tensor:
    """Return ``s ** gamma`` in ``out``: pow for the exponents it computes fast, else exp-log."""
    if gamma in (0.5, 2.0, 3.0):
        return torch.pow(s, gamma, out=out)
    if gamma == 1.0:
        return out.copy_(s)
    return torch.log(s, out=out).mul_(gamma).exp_()


def _blocks(x: Tensor) -> Iterator[tuple[int, slice]]:
    """Yield (sample, pixel range) of the blocks of logits (B, N, S), of near-equal widths."""
    batch, nodes, pixels = x.shape
    if not pixels:
        return
    count = 1
    if x.device.type == "cpu":
        elements = _BLOCK_ELEMENTS * torch.get_num_threads()
        width = max(elements // max(nodes, 1), _MIN_BLOCK_WIDTH)
        count = max(1, round(pixels / width))
    width = math.ceil(pixels / count)
    for b in range(batch):
        for start in range(0, pixels, width):
            yield b, slice(start, min(start + width, pixels))


class _Workspace:
    """Arrays (rows, P) that the blocks of one pass reuse, one set per block width P, and
    their views per level."""

    def __init__(self, like: Tensor, nodes: TreeNodes, rows: tuple[int, ...]) -> None:
        self.like, self.nodes, self.rows = like, nodes, rows
        self.sets: dict[int, tuple[tuple[Tensor, list[Tensor]], ...]] = {}

    def get(self, width: int) -> tuple[tuple[Tensor, list[Tensor]], ...]:
        """Return ``(array, its views per level)`` for each array, at block width ``width``."""
        if width not in self.sets:
            bounds = self.nodes.bounds
            arrays = (self.like.new_empty(n, width) for n in self.rows)
            self.sets[width] = tuple(
                (a, [a[start:stop] for start, stop in pairwise(bounds)]) for a in arrays
            )
        return self.sets[width]


def _subtree_max(maxima: list[Tensor], nodes: TreeNodes) -> None:
    """Turn the level-order logits of a block, per level ``maxima[d]`` (n_d, P), into the
    maxima over each node and its descendants, in place."""
    for d in range(len(maxima) - 2, -1, -1):
        children = nodes.parents[d].view(-1, 1).expand_as(maxima[d + 1])
        maxima[d].scatter_reduce_(0, children, maxima[d + 1], "amax")


def _path_minima(path: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """Return the running minima (D, B, S) of the path's logits ``path`` (D, B, S), coarse to
    fine, and the row (of ``rows`` (D, B, S)) of the logit that gave each: on a tie the
    deeper one, as ``torch.cummin``."""
    minima, min_rows = path.clone(), rows.clone()
    for d in range(1, len(path)):
        deeper = path[d] <= minima[d - 1]
        torch.minimum(path[d], minima[d - 1], out=minima[d])
        torch.where(deeper, rows[d], min_rows[d - 1], out=min_rows[d])
    return minima, min_rows


def _level_sizes(nodes: TreeNodes, like: Tensor) -> Tensor:
    """Return n_d, the node count of every level (D,), as ``like``'s dtype and device."""
    return like.new_tensor([stop - start for start, stop in pairwise(nodes.bounds)])


def _per_level(table: Tensor, labels: Tensor) -> Tensor:
    """Return ``table[:, labels]`` (D, *labels.shape) of a table (D, K), one row at a time."""
    flat = labels.reshape(-1)
    return torch.stack([row.index_select(0, flat) for row in table]).view(len(table), *labels.shape)


class TreeMinFunction(torch.autograd.Function):
    """Tree-min level sums (D,) of fp32 node logits (B, N, S) and pixel weights (D, B, S).

    ``labels`` (B, S) index the node tables' columns (the target leaf); level ``d``'s
    value is ``sum_pixels weight[d] * sum_{v at depth d} term_v / n_d``.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, labels: Tensor, weight: Tensor, nodes: TreeNodes, gamma: float
    ) -> Tensor:
        n, same_weights = nodes.num_nodes, weight.stride(0) == 0  # the same at every level
        path_rows = _per_level(nodes.path_rows, labels)  # (D, B, S)
        excluded = _per_level(nodes.positive_rows, labels)  # the path's nodes, N off the path
        path = x.new_empty(path_rows.shape)  # the path's logits
        node_sums = x.new_zeros(n)
        slopes = torch.empty_like(x)  # each block's rows in level order; becomes the gradient
        workspace = _Workspace(x, nodes, (n + 1, n, n))
        for b, cols in _blocks(x):
            x_block = x[b, :, cols]
            (maxima, maxima_of), (slope, _), (scratch, _) = workspace.get(x_block.shape[1])
            torch.index_select(x_block, 0, nodes.order, out=maxima[:n])
            torch.gather(maxima, 0, path_rows[:, b, cols], out=path[:, b, cols])
            _subtree_max(maxima_of, nodes)
            # f(-inf) = 0: the path's nodes are positives, not negatives (row N: off the path)
            fill = excluded[:, b, cols] * maxima.shape[1]
            fill += torch.arange(maxima.shape[1], device=x.device)
            maxima.view(-1).index_fill_(0, fill.view(-1), float("-inf"))
            value = focal_softplus(maxima[:n], gamma, slope, scratch)
            slopes[b, :, cols] = slope
            if same_weights:
                node_sums.addmv_(value, weight[0, b, cols])
            else:
                for d, (start, stop) in enumerate(pairwise(nodes.bounds)):
                    node_sums[start:stop].addmv_(value[start:stop], weight[d, b, cols])
        # the path: -log p+ with p+ the running min of its logits, coarse to fine
        minima, path_min_rows = _path_minima(path, path_rows)
        path_weight = weight * _per_level(nodes.on_path, labels)
        path_grad = torch.empty_like(minima)
        value = focal_softplus(minima.neg_(), gamma, path_grad, torch.empty_like(minima))
        level_sums = (value * path_weight).sum(dim=(1, 2))
        path_grad.mul_(path_weight).neg_()  # d / d min
        # each term divided by its level's node count before the sum: no fp32 overflow
        sizes = _level_sizes(nodes, x)
        level_sums /= sizes
        level_sums.index_add_(0, nodes.row_levels, node_sums / sizes[nodes.row_levels])
        ctx.nodes = nodes
        ctx.save_for_backward(x, weight, slopes, path_grad, path_min_rows)
        return level_sums

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_levels: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, slopes, path_grad, path_min_rows = ctx.saved_tensors
        nodes: TreeNodes = ctx.nodes
        depth, n = nodes.num_levels, nodes.num_nodes
        level_scale = grad_levels.to(x.dtype) / _level_sizes(nodes, x)  # (D,)
        path_grad *= level_scale.view(-1, 1, 1)
        same_weights = weight.stride(0) == 0  # the same at every level: one scale per row
        if same_weights:
            row_scale = level_scale[nodes.row_levels].unsqueeze(1)  # (N, 1)
        else:
            weight = weight * level_scale.view(-1, 1, 1)
        parent_rows = nodes.bounds[depth - 1]  # the rows of levels 0..D-2
        workspace = _Workspace(x, nodes, (n, n, n, n, parent_rows, parent_rows))
        for b, cols in _blocks(x):
            x_block = x[b, :, cols]
            arrays = workspace.get(x_block.shape[1])
            (rows, rows_of), (maxima, maxima_of), (flow, flow_of), (_, spread_of) = arrays[:4]
            (wins, wins_of), (_, count_of) = arrays[4:]
            grad = slopes[b, :, cols]
            torch.index_select(x_block, 0, nodes.order, out=maxima)
            rows[:parent_rows].copy_(maxima[:parent_rows])
            _subtree_max(maxima_of, nodes)
            if same_weights:  # the gradient reaching each m_v
                torch.mul(grad, row_scale, out=flow).mul_(weight[0, b, cols])
            else:
                for d, (start, stop) in enumerate(pairwise(nodes.bounds)):
                    torch.mul(grad[start:stop], weight[d, b, cols], out=flow_of[d])
            torch.eq(rows[:parent_rows], maxima[:parent_rows], out=wins)  # own logit is max
            for d in range(depth - 1):  # top-down: split each node's flow among its winners
                parents, spread = nodes.parents[d], spread_of[d + 1]
                torch.index_select(maxima_of[d], 0, parents, out=spread)
                child_wins = torch.eq(maxima_of[d + 1], spread, out=rows_of[d + 1])
                count_of[d].copy_(wins_of[d]).index_add_(0, parents, child_wins)
                flow_of[d].div_(count_of[d])
                torch.index_select(flow_of[d], 0, parents, out=spread)
                flow_of[d + 1].addcmul_(child_wins, spread)
                flow_of[d].mul_(wins_of[d])
            flow.scatter_add_(0, path_min_rows[:, b, cols], path_grad[:, b, cols])
            torch.index_select(flow, 0, nodes.channel_rows, out=grad)  # to channel order
        return slopes, None, None, None, None
