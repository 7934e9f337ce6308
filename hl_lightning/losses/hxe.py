"""Hierarchical cross-entropy (HXE) of Bertinetto et al., "Making Better Mistakes" (CVPR 2020).

For a target leaf ``C`` with root-to-leaf path ``v_0, ..., v_t = C`` (``v_d`` its ancestor
at level ``d``; ``v_{-1}`` the root, ``P(root) = 1``), HXE is the weighted sum over the
path's edges of the conditional negative log-likelihoods::

    HXE(z, C) = sum_{d=0..t} lambda_d * -log( P(v_d) / P(v_{d-1}) ),
    lambda_d  = exp(-alpha * d),

where ``P(v) = sum of the leaf softmax probabilities under v`` (log-domain,
``log P(v) = logsumexp(z[v]) - logsumexp(z)``). The weight of the edge into a node is
``exp(-alpha * depth(node))`` with the node's true depth in the tree (level-``d`` nodes
have depth ``d + 1``; the root depth 0), **normalised so that the edges out of the root
weigh 1**: ``lambda_d = exp(-alpha * (depth - 1))``. The authors' code divides the same
weights by their sum over all the nodes of the tree instead: a constant factor, so the
minimiser and the gradients' directions are unchanged, while here ``alpha = 0`` gives
exactly cross-entropy (the edge terms telescope to ``-log p_C``) and the scale stays
comparable to it. Larger ``alpha`` moves the weight to the coarse edges.

Unbalanced trees: a leaf at level ``t < D - 1`` stands for itself at the levels below
(the package's level structure), and those repeated "self" groups add edges
``log(P(C) / P(C)) = 0``: a shallow leaf's path is just shorter, its edges keep their
true depths, and no weight is renormalised over the path.

Because the repeated edges vanish and ``lambda`` depends on the level only, HXE is the
paper's hierarchical loss with level weights ``lambda_d - lambda_{d+1}`` (``lambda_D =
0``): ``sum_d lambda_d (nll_d - nll_{d-1}) = sum_d (lambda_d - lambda_{d+1}) nll_d`` with
``nll_d = -log P(v_d)``. It is computed like that, on the fast exact path of
:func:`~hl_lightning.losses.hierarchical.hierarchical_nll`: for ``alpha >= 0`` every
coefficient is non-negative, so the sum has no cancellation.

Coarse labels: a pixel labelled with an internal node ``v_l`` (at level ``l``) has the
chain from the root to the node, ``sum_{d=0..l} lambda_d * -log(P(v_d) / P(v_{d-1}))``,
and no term below. That is ``sum_{d<l} (lambda_d - lambda_{d+1}) nll_d + lambda_l nll_l``:
per pixel, a level weighting that depends on the label (:func:`hxe_label_weights`). The
loss stays the mean over non-ignored pixels of the per-pixel HXE, computed as the
weighted sum of :func:`~hl_lightning.losses.hierarchical.level_nlls`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.label_ids import has_coarse_labels
from hl_lightning.losses._common import flatten
from hl_lightning.losses._options import check_number, validate_loss_args
from hl_lightning.losses.hierarchical import level_nlls
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["HXELoss", "hxe_edge_weights", "hxe_label_weights", "hxe_level_weights"]


def hxe_edge_weights(num_levels: int, alpha: float) -> Tensor:
    """Return ``lambda_d = exp(-alpha * d)`` (D,): the weight of the edges into level ``d``.

    Example:
        >>> hxe_edge_weights(3, math.log(2)).tolist()
        [1.0, 0.5, 0.25]
    """
    alpha = check_number("alpha", alpha)
    return torch.tensor([math.exp(-alpha * d) for d in range(num_levels)])


def hxe_level_weights(num_levels: int, alpha: float) -> Tensor:
    """Return the level weights (D,) that make the hierarchical loss equal to HXE.

    ``lambda_d - lambda_{d+1}`` with ``lambda_D = 0``: non-negative, and ``(0, ..., 0, 1)``
    (cross-entropy) for ``alpha = 0``.

    Example:
        >>> hxe_level_weights(3, math.log(2)).tolist()
        [0.5, 0.25, 0.25]
    """
    edges = hxe_edge_weights(num_levels, alpha)
    return edges - torch.cat([edges[1:], edges.new_zeros(1)])


def hxe_label_weights(hierarchy: Hierarchy, alpha: float) -> Tensor:
    """Return the weight (D, N) of every label id's NLL at every level in its HXE.

    A leaf's column is :func:`hxe_level_weights`; an internal node's at level ``l``:
    ``lambda_d - lambda_{d+1}`` above ``l``, ``lambda_l`` at ``l`` and 0 below.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> hxe_label_weights(h, math.log(2)).tolist()  # sky, car, truck, vehicle
        [[0.5, 0.5, 0.5, 1.0], [0.5, 0.5, 0.5, 0.0]]
    """
    depth = hierarchy.num_levels
    edges, levels = hxe_edge_weights(depth, alpha), hxe_level_weights(depth, alpha)
    own_level = LevelTables.of(hierarchy, torch.device("cpu")).node_levels  # (N,)
    rows = torch.arange(depth).unsqueeze(1)  # (D, 1)
    weights = torch.where(rows < own_level, levels.unsqueeze(1), 0.0)
    return torch.where(rows == own_level, edges[own_level], weights)


class HXELoss(nn.Module):
    """Hierarchical cross-entropy: the ``alpha``-discounted sum of the path's conditional NLLs.

    Logits (B, K, *S) are leaf logits, as for cross-entropy; the mean over non-ignored
    pixels, computed in fp32 with autocast disabled, 0 when every pixel is ignored.
    See the module docstring for the weights, their normalisation and unbalanced trees.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> loss = HXELoss(h, alpha=0.5)
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> torch.allclose(loss(logits, target), loss.level_losses(logits, target).sum())
        True
        >>> flat_ce = torch.nn.functional.cross_entropy(logits, target)
        >>> torch.allclose(HXELoss(h, alpha=0.0)(logits, target), flat_ce)
        True
    """

    edge_weights: Tensor
    nll_weights: Tensor
    label_weights: Tensor
    known_levels: Tensor
    known_below: Tensor

    def __init__(
        self, hierarchy: Hierarchy, ignore_index: int | None = 255, alpha: float = 0.5
    ) -> None:
        super().__init__()
        alpha = validate_loss_args(hierarchy, ignore_index, alpha=alpha)["alpha"]
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.alpha = alpha
        depth = hierarchy.num_levels
        self.register_buffer("edge_weights", hxe_edge_weights(depth, alpha), persistent=False)
        self.register_buffer("nll_weights", hxe_level_weights(depth, alpha), persistent=False)
        # for coarse labels: the weights (D, N) of each label's level NLLs in its HXE, and
        # whether a label is known at level d (D, N) and at level d + 1 (D, N)
        known = (hierarchy.node_level_matrix() >= 0).float()
        below = torch.cat([known[1:], known.new_zeros(1, known.shape[1])])
        self.register_buffer("label_weights", hxe_label_weights(hierarchy, alpha), persistent=False)
        self.register_buffer("known_levels", known, persistent=False)
        self.register_buffer("known_below", below, persistent=False)

    def _level_nlls(self, logits: Tensor, target: Tensor, weights: Tensor) -> tuple[Tensor, bool]:
        """Return :func:`level_nlls` of a batch: the level means, or with coarse labels
        (then True) the level sums of ``weights[d, label] * nll`` over the pixel count."""
        validate_inputs(logits, target, self.hierarchy, self.ignore_index)
        coarse = has_coarse_labels(target, self.hierarchy.num_leaves, self.ignore_index)
        tables = LevelTables.of(self.hierarchy, logits.device)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            return level_nlls(
                *flatten(logits, target),
                tables,
                self.ignore_index,
                coarse_weights=weights.float(),
                coarse=coarse,
            )

    def level_losses(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the weighted edge terms (D,): ``lambda_d * mean -log P(v_d | v_{d-1})``.

        They sum to the loss. Each is a difference of level NLLs, exact to the fp32
        rounding of those NLLs (absolute), not relative to a small edge term.
        """
        nll, coarse = self._level_nlls(logits, target, self.known_levels)
        if coarse:  # level d: the mean over all pixels of nll_d - nll_{d-1} where d is known
            above = self._level_nlls(logits, target, self.known_below)[0]
            return self.edge_weights.float() * (nll - torch.cat([nll.new_zeros(1), above[:-1]]))
        return self.edge_weights.float() * torch.diff(nll, prepend=nll.new_zeros(1))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return HXE, a scalar, of leaf logits (B, K, *S) and target (B, *S)."""
        nll, coarse = self._level_nlls(logits, target, self.label_weights)
        if coarse:  # already weighted per pixel
            return nll.sum()
        return (nll * self.nll_weights.float()).sum()

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}, alpha={self.alpha}"
