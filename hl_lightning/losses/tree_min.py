"""The tree-min loss of HSSN: Li et al., "Deep Hierarchical Semantic Segmentation" (CVPR 2022).

For backbones with one output channel per **node** of the tree (leaves and internal
nodes), not per leaf. Node ``v`` gets a sigmoid score ``s_v = sigmoid(x_v)``; the tree-min
scores are

- ``p+_v = min`` of ``s`` over ``v`` and its ancestors (a node is at most as likely as its
  super-classes),
- ``p-_v = max`` of ``s`` over ``v`` and its descendants (a node is at least as likely as
  its sub-classes),

and level ``d``'s loss is a binary cross-entropy over the nodes at depth ``d``: the nodes
on the target's path get ``-log p+`` (``* (1 - p+)^gamma`` with the focal option), the
others ``-log(1 - p-)`` (``* (p-)^gamma``). Level loss: the mean over those nodes, then
over non-ignored pixels (as the authors' code normalises each level); the total is
``sum_d w_d * level_loss_d``. ``-log p+ = softplus(-min x)`` and ``-log(1 - p-) =
softplus(max x)``: exact and finite for any finite logits, in fp32 with autocast disabled.
A shallow leaf's path has no node below its depth: at those levels all nodes are negatives.

**Coarse labels**: a target may hold an internal node's id (:attr:`Hierarchy.node_names`).
Such a pixel counts at the levels down to its node's depth, with the node and its ancestors
as its path (the terms as for a leaf there), and at no level below: each level's mean is
over the pixels whose label is known at that level. Nothing is asserted below the node: its
descendants' logits get no gradient from the pixel. A batch of leaf labels only takes the
same computation as before coarse labels existed.

**Computation** (``_tree_min_pass``): custom autograd functions that go block by block over
the pixels, with the nodes in level order. :class:`TreeMinLoss` computes its weighted
total and the total's gradient in one pass over the logits (the slopes of the terms are
routed to the logits that gave the maxima and minima while each block is in the cache);
:func:`tree_min_level_losses` keeps the slopes and routes them in its backward pass. A
tied maximum shares its gradient evenly, a tied minimum on the path gives it to the
deeper node, as torch's ``amax`` and ``cummin`` do. Peak memory about cross-entropy's;
time in ``docs/performance.md``.

**Node order** (the backbone's channels), :class:`TreeNodes`: the tree's actual nodes,
each once, depth-first in tree order, i.e. the order of the lines of the hierarchy's
text file (``print(hierarchy)``). :attr:`TreeMinLoss.node_names` lists them.

**Decoding**: :meth:`TreeMinLoss.leaf_logits` scores each root-to-leaf path by the sum,
over the D levels, of ``log s`` of its node at that level (the log of the product of the
node probabilities; a shallow leaf's own score counts at each level below it, so that
every path has D terms and short paths are not favoured). These path scores serve as
leaf logits: the best path is their argmax (``decode="leaf"``), and the per-level maps,
metrics and the paper's level NLLs are computed from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.label_ids import has_coarse_labels
from hl_lightning.losses._common import flatten, valid_leaf
from hl_lightning.losses._options import validate_loss_args
from hl_lightning.losses._tree_min_pass import TreeMinLevels, TreeMinTotal
from hl_lightning.tables import LevelTables, check_tensors, validate_inputs

__all__ = ["TreeMinLoss", "TreeNodes", "tree_min_level_losses"]


@dataclass(frozen=True)
class TreeNodes:
    """The index tensors of a tree's nodes (the channels of a tree-min backbone) on one device.

    ``names`` (N,): node names in channel order, depth-first (the hierarchy file's lines).
    ``level_nodes[d]`` (n_d,): the channels of the nodes at depth ``d``: first the
    ``internal[d]`` nodes that have children, then the leaves, each in channel order.
    ``parents[d]`` (n_{d+1},): position in ``level_nodes[d]`` of each depth-``d + 1`` node's parent.
    ``leaf_path`` (D, K): position in ``level_nodes[d]`` of leaf ``k``'s ancestor at depth
    ``d`` (itself at its own depth), -1 below a shallow leaf.
    ``leaf_nodes`` (D, K): channel of leaf ``k``'s node at level ``d``, the leaf itself below
    its depth.

    The loss's passes take the nodes in level order (level 0's nodes, then level 1's, ...):
    ``order`` (N,): the channel of every row; ``channel_rows`` (N,): the row of every
    channel; ``row_levels`` (N,): the depth of every row;
    ``path_rows`` (D, L): for every label id (:attr:`Hierarchy.node_names`: the K leaves,
    then the internal nodes), the row of its node at depth ``d`` on its path from the root
    (for a leaf, the row of ``leaf_nodes``), the node itself below its depth; ``on_path``
    (D, L): 1.0 where the label's path has a node at depth ``d``, else 0.0; ``bounds``: the
    rows of depth ``d`` are ``bounds[d]:bounds[d + 1]``, of which the first ``internal[d]``
    (for ``d < D - 1``) are the nodes with children: the passes keep a node's winners (its
    own logit or a child's maximum) for those rows only.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> nodes = TreeNodes.of(h, torch.device("cpu"))
        >>> nodes.names, [n.tolist() for n in nodes.level_nodes], nodes.internal
        (('sky', 'vehicle', 'car', 'truck'), [[1, 0], [2, 3]], (1,))
        >>> nodes.leaf_path.tolist(), nodes.leaf_nodes.tolist()
        ([[1, 0, 0], [-1, 0, 1]], [[0, 1, 1], [0, 2, 3]])
        >>> h.node_names  # the label ids: the columns of path_rows and on_path
        ('sky', 'car', 'truck', 'vehicle')
        >>> nodes.order.tolist(), nodes.path_rows.tolist(), nodes.bounds
        ([1, 0, 2, 3], [[1, 0, 0, 0], [1, 2, 3, 0]], (0, 2, 4))
        >>> nodes.on_path.tolist()
        [[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]]
    """

    names: tuple[str, ...]
    level_nodes: tuple[Tensor, ...]
    parents: tuple[Tensor, ...]
    leaf_path: Tensor
    leaf_nodes: Tensor
    order: Tensor
    channel_rows: Tensor
    row_levels: Tensor
    path_rows: Tensor
    on_path: Tensor
    bounds: tuple[int, ...]
    internal: tuple[int, ...]

    @staticmethod
    @lru_cache(maxsize=32)
    def of(hierarchy: Hierarchy, device: torch.device) -> TreeNodes:
        """Return the (cached, shared: do not modify) node tables of ``hierarchy`` on ``device``."""
        names: list[str] = []
        depths: list[int] = []
        parent: list[int] = []
        paths: dict[str, list[int]] = {}
        path: list[int] = []  # channels of the current node's ancestors, then its own
        for channel, (node, depth) in enumerate(hierarchy.walk()):
            del path[depth:]
            names.append(node.name)
            depths.append(depth)
            parent.append(path[-1] if path else -1)
            path.append(channel)
            paths[node.name] = list(path)
        num_levels = hierarchy.num_levels
        has_children = set(parent)
        levels = [
            sorted(
                (c for c, d in enumerate(depths) if d == level), key=lambda c: c not in has_children
            )
            for level in range(num_levels)
        ]
        position = {c: i for level in levels for i, c in enumerate(level)}
        parents = [[position[parent[c]] for c in levels[d + 1]] for d in range(num_levels - 1)]
        leaf_paths = [paths[name] for name in hierarchy.leaves]
        leaf_path = [
            [position[p[d]] if d < len(p) else -1 for p in leaf_paths] for d in range(num_levels)
        ]
        leaf_nodes = [[p[min(d, len(p) - 1)] for p in leaf_paths] for d in range(num_levels)]

        order = [c for level in levels for c in level]
        offsets = [sum(map(len, levels[:d])) for d in range(num_levels)]
        row_of = {c: r for r, c in enumerate(order)}
        label_paths = [paths[name] for name in hierarchy.node_names]  # leaves, then the rest
        path_rows = [
            [row_of[p[min(d, len(p) - 1)]] for p in label_paths] for d in range(num_levels)
        ]
        on_path = [[float(d < len(p)) for p in label_paths] for d in range(num_levels)]

        def tensor(values: Sequence) -> Tensor:
            return torch.tensor(values, dtype=torch.long, device=device)

        return TreeNodes(
            tuple(names),
            tuple(tensor(level) for level in levels),
            tuple(tensor(p) for p in parents),
            tensor(leaf_path),
            tensor(leaf_nodes),
            tensor(order),
            tensor([row_of[c] for c in range(len(order))]),
            tensor([depths[c] for c in order]),
            tensor(path_rows),
            torch.tensor(on_path, device=device),
            (*offsets, len(order)),
            tuple(sum(c in has_children for c in level) for level in levels[:-1]),
        )

    @property
    def num_nodes(self) -> int:
        """N, the number of nodes (channels)."""
        return len(self.names)

    @property
    def num_levels(self) -> int:
        """D, the number of levels."""
        return len(self.level_nodes)

    @cached_property
    def term_levels(self) -> Tensor:
        """(N + D,): the level of every row of the loss's terms: the N nodes in level order,
        then the D path terms (one per level)."""
        levels = torch.arange(self.num_levels, device=self.row_levels.device)
        return torch.cat([self.row_levels, levels])

    @cached_property
    def parent_rows(self) -> Tensor:
        """(N - n_0,): the row of the parent of every row of levels 1..D-1, in level order."""
        rows = [start + parents for start, parents in zip(self.bounds, self.parents, strict=False)]
        return torch.cat([self.order[:0], *rows])

    @cached_property
    def leaves_at_every_level(self) -> bool:
        """Whether every leaf's path has a node at every level (no shallow leaf): then no
        leaf label sets a path term to ``-inf`` (the last D of :attr:`label_rows` are spare)."""
        return bool(self.on_path[:, : self.leaf_path.shape[1]].all())

    @cached_property
    def label_rows(self) -> Tensor:
        """(2D, L): for every label id, the term rows of its path (``path_rows``), then the
        path term of each level below its node, or else the spare row N + D that follows
        the terms. A pixel sets all these rows to ``-inf`` (a term of 0): its path's nodes
        are positives, not negatives (below its node, ``path_rows`` repeats the node), and
        below its node it has no positive."""
        n, depth = self.num_nodes, self.num_levels
        spare = torch.full_like(self.path_rows, n + depth)
        path_terms = torch.arange(n, n + depth, device=spare.device).view(-1, 1).expand_as(spare)
        return torch.cat([self.path_rows, torch.where(self.on_path.bool(), spare, path_terms)])


def _validate(
    logits: Tensor, target: Tensor | None, hierarchy: Hierarchy, ignore_index: int | None
) -> TreeNodes:
    """Return the node tables after checking node logits (B, N, *S) and target (B, *S)."""
    check_tensors(logits, target)
    nodes = TreeNodes.of(hierarchy, logits.device)
    if logits.dim() >= 2 and logits.shape[1] != nodes.num_nodes:
        shown = ", ".join(nodes.names[:8]) + (", ..." if nodes.num_nodes > 8 else "")
        raise ValueError(
            f"logits have {logits.shape[1]} channels but the tree-min loss needs one per node "
            f"of the tree: {nodes.num_nodes} nodes ({shown})"
        )
    # The leaf-logit checks (dtype, rank, target shape and values) on a view with K channels.
    if logits.dim() >= 2:
        logits = logits[:, :1].expand(-1, hierarchy.num_leaves, *logits.shape[2:])
    validate_inputs(logits, target, hierarchy, ignore_index)
    return nodes


def _inputs(
    logits: Tensor, target: Tensor, hierarchy: Hierarchy, ignore_index: int | None
) -> tuple[TreeNodes, Tensor, Tensor, Tensor]:
    """Return the node tables, fp32 logits (B, N, S), target label ids (B, S) (0 where
    ignored) and pixel weights (D, B, S) of checked inputs. Call with autocast disabled.

    A pixel's weight at level ``d`` is 1 / the count of pixels whose label is known at
    level ``d``, 0 where it is not (ignored, or a coarse label finer than its node). With
    leaf labels only, one row of weights (1 / the count of non-ignored pixels) serves
    every level (a stride-0 view: the passes then scale each block once).
    """
    nodes = _validate(logits, target, hierarchy, ignore_index)
    coarse = has_coarse_labels(target, hierarchy.num_leaves, ignore_index)
    x, target = flatten(logits, target)
    valid, labels = valid_leaf(target, ignore_index)
    if coarse:
        node_matrix = LevelTables.of(hierarchy, x.device).node_matrix  # (D, L), -1: unknown
        known = (node_matrix[:, labels] >= 0) & valid  # (D, B, S)
        return nodes, x, labels, known.float() / known.sum((1, 2), keepdim=True).clamp_min(1)
    weight = valid.float() / valid.sum().clamp_min(1)
    return nodes, x, labels, weight.expand(hierarchy.num_levels, *weight.shape)


def tree_min_level_losses(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = None,
    gamma: float = 0.0,
) -> Tensor:
    """Return the tree-min loss of every level (D,), coarse to fine.

    ``logits`` (B, N, *S): one logit per node, in :class:`TreeNodes` order; ``target``
    (B, *S) label ids: leaves, or internal nodes (coarse labels, counted at the levels
    down to their node's). A level with no pixel known there is 0.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[-2.0], [-1.0], [3.0], [-2.0]]])  # sky, vehicle, car, truck
        >>> levels = tree_min_level_losses(logits, torch.tensor([[1]]), h)  # target: car
        >>> levels.round(decimals=4)  # car's p+ is capped by vehicle's low score
        tensor([0.7201, 0.7201])
        >>> h.label_id("vehicle")  # a coarse label: known at level 0 only
        3
        >>> tree_min_level_losses(logits, torch.tensor([[3]]), h).round(decimals=4)
        tensor([0.7201, 0.0000])
    """
    gamma = validate_loss_args(hierarchy, ignore_index, gamma=gamma)["gamma"]
    check_tensors(logits, target)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        nodes, x, labels, weight = _inputs(logits, target, hierarchy, ignore_index)
        return TreeMinLevels.apply(x, labels, weight, nodes, gamma)


class TreeMinLoss(nn.Module):
    """HSSN's (focal) tree-min loss for backbones with one logit per tree node.

    Logits (B, N, *S) in :class:`TreeNodes` order (:attr:`node_names`), target (B, *S)
    label ids (leaves, or internal nodes as coarse labels). See the module docstring for
    the loss, coarse labels, the node order and decoding.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> loss = TreeMinLoss(h, gamma=2.0)
        >>> loss.node_names
        ('sky', 'vehicle', 'car', 'truck')
        >>> logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 3, (2, 8, 8))
        >>> loss(logits, target).shape, loss.leaf_logits(logits).shape
        (torch.Size([]), torch.Size([2, 3, 8, 8]))
    """

    level_weights: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        level_weights: Sequence[float] | None = None,
        gamma: float = 0.0,
    ) -> None:
        super().__init__()
        options = validate_loss_args(
            hierarchy, ignore_index, level_weights=level_weights, gamma=gamma
        )
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.gamma = options["gamma"]
        self.register_buffer("level_weights", options["level_weights"], persistent=False)

    @property
    def node_names(self) -> tuple[str, ...]:
        """The node of every channel the backbone must return, in channel order."""
        return TreeNodes.of(self.hierarchy, torch.device("cpu")).names

    @property
    def num_nodes(self) -> int:
        """N, the number of channels the backbone must return."""
        return len(self.node_names)

    def level_losses(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the per-level tree-min losses (D,), coarse to fine, without level weights."""
        return tree_min_level_losses(logits, target, self.hierarchy, self.ignore_index, self.gamma)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the weighted total, a scalar, of node logits (B, N, *S) and target (B, *S).

        One pass over the logits computes the total and its gradient.
        """
        check_tensors(logits, target)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            nodes, x, labels, weight = _inputs(logits, target, self.hierarchy, self.ignore_index)
            if not torch.is_grad_enabled():
                x = x.detach()  # no gradient wanted: none is computed
            weights = self.level_weights.float()
            total, _ = TreeMinTotal.apply(x, labels, weight, nodes, self.gamma, weights)
            return total

    def leaf_logits(self, logits: Tensor) -> Tensor:
        """Return path scores (B, K, *S) of node logits (B, N, *S), to use as leaf logits.

        Leaf ``k``'s score is ``sum_d log sigmoid(x)`` of its node at each level ``d``; the
        argmax leaf is the best root-to-leaf path. fp32, autocast disabled.
        """
        nodes = _validate(logits, None, self.hierarchy, self.ignore_index)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            log_scores = F.logsigmoid(logits.float())
            levels = nodes.leaf_nodes.unbind(0)  # D >= 1 rows of K channels
            scores = log_scores.index_select(1, levels[0])
            for channels in levels[1:]:
                scores = scores + log_scores.index_select(1, channels)
            return scores

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}, gamma={self.gamma}"
