"""The flat baseline: cross-entropy on the leaves, optionally class-weighted."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hl_lightning.decode import node_log_probs
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.label_ids import has_coarse_labels
from hl_lightning.losses._common import flatten, valid_leaf
from hl_lightning.losses._options import ClassWeights, validate_loss_args
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["FlatLoss"]


class FlatLoss(nn.Module):
    """Cross-entropy on the K leaves, the vanilla baseline; the hierarchy only names the classes.

    The mean over non-ignored pixels, computed in fp32 with autocast disabled; 0 with zero
    gradient when every pixel is ignored (where ``F.cross_entropy`` gives NaN). With
    ``class_weights`` (the per-level format of
    :func:`~hl_lightning.losses.hierarchical.class_weight_table`; the finest level's weights
    are used) it is ``F.cross_entropy``'s weighted mean ``sum w_t nll / sum w_t``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
        >>> torch.allclose(FlatLoss(h)(logits, target), F.cross_entropy(logits, target))
        True
        >>> vehicle = torch.tensor([[3]])  # coarse: car or truck
        >>> z = torch.tensor([[[0.0], [1.0], [1.0]]])
        >>> FlatLoss(h)(z, vehicle), -z.softmax(1)[0, 1:].sum().log()
        (tensor(0.1688), tensor(0.1688))
    """

    node_weights: Tensor | None

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        class_weights: ClassWeights | None = None,
    ) -> None:
        super().__init__()
        weights = validate_loss_args(  # trains the finest level only
            hierarchy, ignore_index, trained_levels=[-1], class_weights=class_weights
        )["class_weights"]
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        # every label id's weight: a leaf's at the finest level (the first K: cross-entropy's
        # class weights), a node's at its own level
        node_weights = None
        if weights is not None:
            tables = LevelTables.of(hierarchy, torch.device("cpu"))
            node_weights = weights[tables.node_levels, tables.node_leaves]
        self.register_buffer("node_weights", node_weights, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the mean cross-entropy, a scalar, of logits (B, K, *S) and target (B, *S)."""
        validate_inputs(logits, target, self.hierarchy, self.ignore_index)
        coarse = has_coarse_labels(target, self.hierarchy.num_leaves, self.ignore_index)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            z, target = flatten(logits, target)
            ignore = -100 if self.ignore_index is None else self.ignore_index
            weights = None if self.node_weights is None else self.node_weights.float()
            valid, leaf = valid_leaf(target, self.ignore_index)
            if coarse:
                return self._with_coarse_labels(z, target, valid, leaf, ignore)
            leaf_weights = None if weights is None else weights[: self.hierarchy.num_leaves]
            nll = F.cross_entropy(
                z, target, weight=leaf_weights, ignore_index=ignore, reduction="none"
            )
            # divided before the sum: a mean up to the fp32 maximum does not overflow on the way
            return (nll / _count(valid, leaf, weights)).sum()

    def _with_coarse_labels(
        self, z: Tensor, target: Tensor, valid: Tensor, label: Tensor, ignore: int
    ) -> Tensor:
        """Return the loss of fp32 logits (B, K, S) whose label ids (B, S; 0 where ignored)
        include internal nodes: their marginal NLLs take the place of cross-entropy's."""
        tables = LevelTables.of(self.hierarchy, z.device)
        coarse = label >= self.hierarchy.num_leaves
        weights = None if self.node_weights is None else self.node_weights.float()
        leaf_weights = None if weights is None else weights[: self.hierarchy.num_leaves]
        nll = F.cross_entropy(
            z,
            target.masked_fill(coarse, ignore),
            weight=leaf_weights,
            ignore_index=ignore,
            reduction="none",
        )
        rows, nodes = z.movedim(1, -1)[coarse], label[coarse]  # (n, K), (n,)
        marginal = -node_log_probs(rows, tables.node_members[nodes])
        if weights is not None:
            marginal = marginal * weights[nodes]
        nll = nll.masked_scatter(coarse, marginal)
        return (nll / _count(valid, label, weights)).sum()

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}"


def _count(valid: Tensor, label: Tensor, weights: Tensor | None) -> Tensor:
    """Return what the pixels' losses are divided by: the non-ignored pixels (B, S), or with
    class ``weights`` (one per label id) their labels' summed weight (1 where it is 0)."""
    if weights is None:
        return valid.sum().clamp_min(1)
    weight = torch.where(valid, weights[label], 0.0).sum()
    return torch.where(weight > 0, weight, 1.0)
