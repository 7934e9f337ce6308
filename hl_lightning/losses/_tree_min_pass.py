"""The tree-min loss's passes over the node logits, block by block over the pixels.

A node's negative term needs ``m_v``, the largest logit of the node and its descendants
(a running max up the tree); the target's path needs the running min down its logits.
A block holds the node logits of some pixels in level order (each level a run of rows,
its nodes with children first: only they need a record of which logit gave their max),
then the D path terms' ``-min`` (one row per level), then a spare row. One focal-softplus
pass gives every term's value and slope;
the slopes go, top-down, to the logits that gave the maxima (a tied maximum shares its
gradient evenly, as autograd's ``amax`` does) and the path's to the logits that gave the
minima (a tie to the deeper node, as ``cummin``). On the CPU a block holds a few thousand
pixels, so that its arrays stay in the cache from step to step; elsewhere it is one sample.

:class:`TreeMinTotal` (the module's weighted total) routes the slopes in its forward pass,
while the block is in the cache, into the buffer that becomes the gradient: the logits are
read once. :class:`TreeMinLevels` (the level losses, for any use) keeps the slopes and
routes them in its backward pass, reading the logits again. Either keeps nothing the size
of the logits but that buffer. A pixel's weight may differ from level to level (``weight``
(D, B, S)): a pixel known only down to some level is weighted 0 below it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from hl_lightning.losses.tree_min import TreeNodes

# nodes x pixels of a block on the CPU, per thread (the threads share each step of a block):
# 1 MiB per fp32 array and thread; but rows of at least _MIN_BLOCK_WIDTH pixels, so that
# gathering a block's rows from the logits reads long runs
_BLOCK_ELEMENTS = 1 << 18
_MIN_BLOCK_WIDTH = 1024


def focal_softplus(m: Tensor, gamma: float, value: Tensor, slope: Tensor, scratch: Tensor) -> None:
    """Write ``f(m) = softplus(m) * sigmoid(m) ** gamma`` into ``value`` and ``f'(m)`` into
    ``slope``; ``scratch`` (and, with ``gamma``, ``m``) is overwritten. All shaped like ``m``.

    All from one sigmoid ``s``: ``softplus(m) = relu(m) - log1p(-min(s, 1 - s))`` (each of
    ``s`` and ``s - 1`` exact where it is the smaller in size) and ``f' = s ** (gamma + 1)
    + gamma * f * (1 - s)``; ``f(-inf) = f'(-inf) = 0``. For any finite ``m`` in fp32,
    ``softplus`` is within a relative ``2e-7`` of the exact value, ``f`` and ``f'`` within
    ``5e-6 * max(1, gamma)`` (``1 - s`` is rounded where ``s > 1/2``).

    Example:
        >>> m = torch.tensor([-30.0, 0.0, 2.0])
        >>> expected = torch.nn.functional.softplus(m) * torch.sigmoid(m) ** 2
        >>> value, slope, scratch = torch.empty(3), torch.empty(3), torch.empty(3)
        >>> focal_softplus(m, 2.0, value, slope, scratch)
        >>> torch.allclose(value, expected)
        True
    """
    s = torch.sigmoid(m, out=scratch if gamma else slope)  # gamma 0: f' = s
    below = torch.sub(s, 1.0, out=slope if gamma else scratch)  # s - 1
    torch.maximum(torch.neg(s, out=value), below, out=value).log1p_()  # log1p(-min(s, 1-s))
    relu = m.clamp_min_(0.0) if gamma else torch.clamp_min(m, 0.0, out=below)
    torch.sub(relu, value, out=value)  # softplus(m)
    if not gamma:
        return
    focal = _power(s, gamma, out=m)  # s ** gamma
    value.mul_(focal)
    # s ** (gamma + 1) - gamma * (s - 1) * f: (s - 1) * f is at most 0.4 in size, where
    # gamma * f may overflow
    torch.addcmul(focal.mul_(s), below, value, value=-gamma, out=slope)


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
        count = max(1, pixels // width)
    width = math.ceil(pixels / count)
    for b in range(batch):
        for start in range(0, pixels, width):
            yield b, slice(start, min(start + width, pixels))


class _Pass:
    """The tables of one pass over node logits (B, N, S) and the arrays its blocks reuse.

    Rows of a block: the N nodes in level order, then the D path terms, then a spare row
    (the target of fills that do not apply). ``row_levels`` (N + D,) is the level of every
    row but the spare; ``label_rows`` (2D or D, B, S) every pixel's rows that it sets to
    ``-inf`` (``f(-inf) = 0``), its path rows first: :attr:`TreeNodes.label_rows` of its
    label (only its path rows where no path term is set). A
    block addresses them by their places in its flattened rows (``row * width + column``),
    for 1-d gathers and scatters.
    """

    def __init__(self, x: Tensor, labels: Tensor, weight: Tensor, nodes: TreeNodes) -> None:
        self.x, self.weight, self.nodes = x, weight, nodes
        depth, n = nodes.num_levels, nodes.num_nodes
        self.depth, self.n = depth, n
        self.same_weights = weight.stride(0) == 0  # one weight a pixel, at every level
        self.levels = [slice(start, stop) for start, stop in pairwise(nodes.bounds)]
        self.sizes = x.new_tensor([stop - start for start, stop in pairwise(nodes.bounds)])
        self.row_levels = nodes.term_levels
        # Leaf labels only (one weight a pixel, at every level: no coarse label) of a tree
        # without shallow leaves: no path term is filled, the pixels' path rows are all.
        path_only = self.same_weights and nodes.leaves_at_every_level
        table = nodes.label_rows[:depth] if path_only else nodes.label_rows
        self.label_rows = _per_pixel(table, labels)  # (2D or D, B, S): all set to -inf
        # one weight for every pixel (no pixel ignored): it scales the rows instead (CPU only,
        # where telling costs no sync)
        self.uniform = (
            self.same_weights
            and x.device.type == "cpu"
            and bool(weight.numel())
            and bool((weight[0] == weight[0, 0, 0]).all())
        )
        self.grad = x.new_empty(0)  # the gradient buffer (B, N, S) that routing writes
        self.blocks: dict[int, _Block] = {}

    def block(self, cols: slice) -> _Block:
        """Return the arrays of a block of pixels ``cols`` (the same ones for every block
        of that width)."""
        width = len(range(*cols.indices(self.x.shape[2])))
        if width not in self.blocks:
            self.blocks[width] = _Block(self, width)
        return self.blocks[width]

    def load(self, b: int, cols: slice, block: _Block, with_path: bool) -> None:
        """Fill a block's rows with the subtree maxima (and, ``with_path``, the path terms'
        ``-min`` and the places of the minima), and its winners for the routing.

        ``block.places`` (2D or D, P): the places in the flattened block of each pixel's
        ``label_rows``, its path nodes first."""
        nodes, maxima = self.nodes, block.maxima
        torch.index_select(self.x[b, :, cols], 0, nodes.order, out=maxima)
        places = block.places
        torch.add(block.columns, self.label_rows[:, b, cols], alpha=block.width, out=places)
        if with_path:
            torch.index_select(block.flat, 0, block.path_places, out=block.path.view(-1))
            _path_minima(block)
            block.path.neg_()
        maxima_of, inner_of = block.maxima_of, block.inner_maxima_of
        for own, inner in zip(block.own_of, inner_of, strict=True):
            own.copy_(inner)
        for d in range(self.depth - 2, -1, -1):  # the subtree maxima, bottom-up
            maxima_of[d].scatter_reduce_(0, block.children[d], maxima_of[d + 1], "amax")
        for d in range(self.depth - 1):
            torch.eq(block.own_of[d], inner_of[d], out=block.wins_of[d])
        # each node's max against its parent's, all levels but the first at once
        below_top, spread = block.maxima[nodes.bounds[1] :], block.spread
        torch.index_select(block.maxima, 0, nodes.parent_rows, out=spread)
        torch.eq(below_top, spread, out=block.child_wins)
        # Every parent has one winner, its own logit or a child's maximum, unless there are
        # ties: then (and off the CPU, to spare a sync) count each parent's winners.
        block.ties = self.depth > 1 and (
            self.x.device.type != "cpu" or block.winners.sum().item() > block.wins.numel()
        )
        if block.ties:
            for d in range(self.depth - 1):
                block.count_of[d].copy_(block.wins_of[d])
                block.count_of[d].index_add_(0, nodes.parents[d], block.child_wins_of[d + 1])

    def terms(self, b: int, cols: slice, block: _Block, gamma: float) -> Tensor:
        """Return the values (N + D, P) of a loaded block's terms (0 for the path's nodes
        and the missing path terms), with their slopes in ``block.slope``."""
        block.rows.view(-1).scatter_(0, block.places.view(-1), block.minus_inf)
        focal_softplus(block.terms, gamma, block.value, block.slope, block.scratch)
        return block.value

    def route(self, b: int, cols: slice, block: _Block) -> None:
        """Route ``block.flow`` (N + D, P), the gradient reaching every term of a loaded
        block, to the logits, in channel order into the gradient buffer's block."""
        flow_of, inner_of = block.flow_of, block.inner_flow_of
        spread_of, parents = block.spread_of, self.nodes.parents
        for d in range(self.depth - 1):  # top-down: split each node's flow among its winners
            if block.ties:
                inner_of[d].div_(block.count_of[d])
            torch.index_select(inner_of[d], 0, parents[d], out=spread_of[d + 1])
            flow_of[d + 1].addcmul_(block.child_wins_of[d + 1], spread_of[d + 1])
            inner_of[d].mul_(block.wins_of[d])
        flow_path = block.flow_path.view(-1)  # the path terms, to the places of their minima
        block.flow_nodes.view(-1).scatter_add_(0, block.min_places.view(-1), flow_path)
        torch.index_select(block.flow_nodes, 0, self.nodes.channel_rows, out=self.grad[b, :, cols])

    def scale(self, b: int, cols: slice, block: _Block, row_scale: Tensor) -> None:
        """Turn the block's slopes (N + D, P) into ``block.flow``, in place: times each row's
        scale (N + D, 1) and each pixel's weight (in the rows' scale where it is uniform)."""
        block.flow.mul_(row_scale)
        if self.uniform:
            return
        if self.same_weights:
            block.flow.mul_(self.weight[0, b, cols])
        else:
            block.flow.mul_(self.weight[:, b, cols].index_select(0, self.row_levels))


class _Block:
    """The arrays of a block of ``width`` pixels, reused from block to block, and their
    views by level (the flow is the slopes' array, scaled in place; the spread of the
    parents' maxima or flows to their children shares the values' array, free before the
    focal pass and after the sums: fewer arrays, more of them in the cache)."""

    def __init__(self, p: _Pass, width: int) -> None:
        n, depth, levels, internal = p.n, p.depth, p.levels, p.nodes.internal
        # the rows of the nodes with children, level by level (the first rows of each level)
        parents = sum(internal)
        inner = [
            slice(level.start, level.start + size)
            for level, size in zip(levels[:-1], internal, strict=True)
        ]
        starts = accumulate(internal, initial=0)
        at = [slice(start, start + size) for start, size in zip(starts, internal, strict=False)]
        new = p.x.new_empty
        self.width = width
        self.columns = torch.arange(width, device=p.x.device)
        self.rows = new(n + depth + 1, width)  # logits, then subtree maxima; -min; spare
        self.maxima, self.path, self.terms = self.rows[:n], self.rows[n:-1], self.rows[:-1]
        self.maxima_of = [self.maxima[level] for level in levels]
        self.inner_maxima_of = [self.maxima[rows] for rows in inner]
        self.value, self.slope = new(n + depth, width), new(n + depth, width)
        self.scratch = new(n + depth, width)
        own = self.scratch[:parents]  # the parents' own logits, used before the focal pass
        self.own_of = [own[rows] for rows in at]
        self.flow = self.slope  # the gradient reaching each term, once the slopes are scaled
        self.flow_nodes, self.flow_path = self.flow[:n], self.flow[n:]
        self.flow_of = [self.flow[level] for level in levels]
        self.inner_flow_of = [self.flow[rows] for rows in inner]
        self.spread_of = [self.value[level] for level in levels]
        self.spread = self.value[levels[0].stop : n]  # levels 1..D-1
        # 1 where a parent's own logit is its max (the parents' rows, level by level), then
        # 1 where a node's max is its parent's (the rows of levels 1..D-1, shifted to follow)
        first = levels[0].stop
        self.winners = new(parents + n - first, width)
        self.wins = self.winners[:parents]
        self.wins_of = [self.wins[rows] for rows in at]
        self.child_wins = self.winners[parents:]  # levels 1..D-1: row r - first, node r
        self.child_wins_of = [self.child_wins[:0]] + [
            self.child_wins[level.start - first : level.stop - first] for level in levels[1:]
        ]
        count = new(parents, width)  # each parent's winners, who share its gradient
        self.count_of = [count[rows] for rows in at]
        self.ties = False  # whether a parent of the block's pixels has several winners
        self.children = [p.nodes.parents[d].view(-1, 1).expand(-1, width) for d in range(depth - 1)]
        self.min_places = torch.empty(depth, width, dtype=torch.long, device=p.x.device)
        self.places = torch.empty(len(p.label_rows), width, dtype=torch.long, device=p.x.device)
        self.minus_inf = new(self.places.numel()).fill_(float("-inf"))  # what the fills write
        # views for the path's minima
        self.flat, self.path_places = self.maxima.view(-1), self.places[:depth].view(-1)
        self.path_of, self.places_of = self.path.unbind(0), self.places[:depth].unbind(0)
        self.min_of = self.min_places.unbind(0)
        self.deeper = torch.empty(width, dtype=torch.bool, device=p.x.device)


def _path_minima(block: _Block) -> None:
    """Turn a block's path logits ``block.path`` (D, P) into their running minima, coarse
    to fine, in place, and write into ``block.min_places`` (D, P) the place (of the path's
    places, the first D rows of ``block.places``) of the logit that gave each: on a tie
    the deeper one, as ``torch.cummin``."""
    path, places, min_places, deeper = block.path_of, block.places_of, block.min_of, block.deeper
    min_places[0].copy_(places[0])
    for d in range(1, len(path)):
        torch.le(path[d], path[d - 1], out=deeper)
        torch.minimum(path[d], path[d - 1], out=path[d])
        torch.where(deeper, places[d], min_places[d - 1], out=min_places[d])


def _per_pixel(table: Tensor, labels: Tensor) -> Tensor:
    """Return ``table[:, labels]`` (R, *labels.shape) of a table (R, L), one row at a time
    (a 1-d gather each, into one array: several times faster on the CPU than indexing the
    table along its second dimension)."""
    out = table.new_empty(len(table), labels.numel())
    for row, pixels in zip(table, out, strict=True):
        torch.index_select(row, 0, labels.reshape(-1), out=pixels)
    return out.view(len(table), *labels.shape)


def _level_sums(sums: Tensor, p: _Pass) -> Tensor:
    """Return the level losses (D,) of the weighted row sums (N + D,): each row divided by
    its level's node count before the sum (no fp32 overflow on the way)."""
    per_row = sums / p.sizes[p.row_levels]
    return per_row.new_zeros(p.depth).index_add_(0, p.row_levels, per_row)


def _row_scale(p: _Pass, level_scale: Tensor) -> Tensor:
    """Return each row's scale (N + D, 1): ``level_scale`` (D,) over the level's node count,
    negative on the path rows (their terms are functions of ``-min``)."""
    scale = (level_scale / p.sizes)[p.row_levels]
    scale[p.n :].neg_()
    if p.uniform:  # and the pixels' common weight
        scale *= p.weight[0, 0, 0]
    return scale.unsqueeze(1)


class TreeMinLevels(torch.autograd.Function):
    """Tree-min level losses (D,) of fp32 node logits (B, N, S), target ``labels`` (B, S)
    (the columns of the node tables) and pixel weights (D, B, S): level ``d`` is
    ``sum_pixels weight[d] * sum_{v at depth d} term_v / n_d``."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, labels: Tensor, weight: Tensor, nodes: TreeNodes, gamma: float
    ) -> Tensor:
        p = _Pass(x, labels, weight, nodes)
        sums = x.new_zeros(p.n + p.depth)
        slopes = torch.empty_like(x)  # each block's rows in level order; becomes the gradient
        path_slopes = x.new_empty(p.depth, *labels.shape)
        min_rows = labels.new_empty(p.depth, *labels.shape, dtype=torch.long)
        for b, cols in _blocks(x):
            block = p.block(cols)
            p.load(b, cols, block, with_path=True)
            _add_sums(sums, p.terms(b, cols, block, gamma), p, b, cols)
            slopes[b, :, cols] = block.slope[: p.n]
            path_slopes[:, b, cols] = block.slope[p.n :]
            torch.sub(block.min_places, block.columns, out=block.places[: p.depth])
            torch.floor_divide(block.places[: p.depth], block.width, out=min_rows[:, b, cols])
        ctx.nodes = nodes
        ctx.save_for_backward(x, labels, weight, slopes, path_slopes, min_rows)
        return _level_sums(sums, p)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_levels: Tensor) -> tuple[Tensor | None, ...]:
        x, labels, weight, slopes, path_slopes, min_rows = ctx.saved_tensors
        p = _Pass(x, labels, weight, ctx.nodes)
        p.grad = slopes
        row_scale = _row_scale(p, grad_levels.to(x.dtype))
        for b, cols in _blocks(x):
            block = p.block(cols)
            p.load(b, cols, block, with_path=False)
            torch.add(block.columns, min_rows[:, b, cols], alpha=block.width, out=block.min_places)
            block.slope[: p.n] = slopes[b, :, cols]
            block.slope[p.n :] = path_slopes[:, b, cols]
            p.scale(b, cols, block, row_scale)
            p.route(b, cols, block)
        return slopes, None, None, None, None


class TreeMinTotal(torch.autograd.Function):
    """The weighted total ``sum_d level_weights[d] * level_d`` (a scalar) of
    :class:`TreeMinLevels`' level losses, and its gradient computed in the forward pass,
    while each block is in the cache (also the level losses, for logging, not
    differentiable)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        labels: Tensor,
        weight: Tensor,
        nodes: TreeNodes,
        gamma: float,
        level_weights: Tensor,
    ) -> tuple[Tensor, Tensor]:
        p = _Pass(x, labels, weight, nodes)
        sums = x.new_zeros(p.n + p.depth)
        needs_grad = ctx.needs_input_grad[0]
        p.grad = torch.empty_like(x) if needs_grad else x.new_empty(0)
        row_scale = _row_scale(p, level_weights.to(x.dtype))
        for b, cols in _blocks(x):
            block = p.block(cols)
            p.load(b, cols, block, with_path=True)
            _add_sums(sums, p.terms(b, cols, block, gamma), p, b, cols)
            if needs_grad:
                p.scale(b, cols, block, row_scale)
                p.route(b, cols, block)
        levels = _level_sums(sums, p)
        ctx.mark_non_differentiable(levels)
        ctx.save_for_backward(p.grad)
        return (levels * level_weights.to(levels.dtype)).sum(), levels

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_total: Tensor, _: Tensor) -> tuple[Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        if grad_total.device.type != "cpu" or grad_total.item() != 1.0:
            grad.mul_(grad_total.to(grad.dtype))
        return grad, None, None, None, None, None


def _add_sums(sums: Tensor, value: Tensor, p: _Pass, b: int, cols: slice) -> None:
    """Add the pixel-weighted sums of a block's term values (N + D, P) to ``sums``."""
    if p.same_weights:
        sums.addmv_(value, p.weight[0, b, cols])
        return
    for d, level in enumerate(p.levels):
        weight = p.weight[d, b, cols]
        sums[level].addmv_(value[level], weight)
        sums[p.n + d] += value[p.n + d] @ weight
