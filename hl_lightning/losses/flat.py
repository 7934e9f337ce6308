"""The flat baseline: cross-entropy on the leaves, optionally class-weighted."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.losses._common import flatten, valid_leaf
from hl_lightning.losses._options import ClassWeights, validate_loss_args
from hl_lightning.tables import validate_inputs

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
    """

    leaf_weights: Tensor | None

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
        self.register_buffer(
            "leaf_weights", None if weights is None else weights[-1], persistent=False
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the mean cross-entropy, a scalar, of logits (B, K, *S) and target (B, *S)."""
        validate_inputs(logits, target, self.hierarchy, self.ignore_index)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            z, target = flatten(logits, target)
            ignore = -100 if self.ignore_index is None else self.ignore_index
            weights = None if self.leaf_weights is None else self.leaf_weights.float()
            nll = F.cross_entropy(z, target, weight=weights, ignore_index=ignore, reduction="none")
            valid, leaf = valid_leaf(target, self.ignore_index)
            if weights is None:
                count = valid.sum().clamp_min(1)
            else:
                weight = torch.where(valid, weights[leaf], 0.0).sum()
                count = torch.where(weight > 0, weight, 1.0)
            # divided before the sum: a mean up to the fp32 maximum does not overflow on the way
            return (nll / count).sum()

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}"
