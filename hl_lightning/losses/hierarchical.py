"""The paper's hierarchical loss: the sum over levels of negative log-likelihoods.

For pixel logits ``z`` (K,) and the group ``S`` of the target at level ``d``,
``log P(S) = logsumexp(z[S]) - logsumexp(z)``. The level loss is the mean over
non-ignored pixels of ``-log P(S)``; the total is ``sum_d w_d * level_loss_d``.
With per-level class weights ``c_d`` (for long-tailed data) the mean becomes a weighted
mean, as ``F.cross_entropy``'s ``weight``: ``sum_i c_d(S_i) nll_i / sum_i c_d(S_i)``.

The fast path aggregates the softmax bottom-up through the tree (one pass over the
K channels, then over ever fewer groups) and computes the gradient in closed form:
``dL/dz_k = p_k * (sum_d w_d - sum_{d: k in S_d} w_d / P(S_d))``. Pixels whose target
probability is below ``1e-25`` (where fp32 sums of probabilities lose precision) are
recomputed exactly in the log domain, in float64, so the result is exact and finite
for any finite logits. Class weights only change each pixel's factor in both passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.losses._common import level_weight_tensor
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = ["ClassWeights", "HierarchicalLoss", "class_weight_table", "hierarchical_nll"]

_TINY = 1e-25  # below this, fp32 sums of probabilities are replaced by exact log-domain values
_EXACT_CHUNK = 8192  # rows per chunk on the exact path, to bound its memory

# Per level (coarse to fine): None (all 1), one weight per group in group_names(d) order,
# or a mapping from group name to weight (unnamed groups weigh 1).
ClassWeights = Sequence[Sequence[float] | Mapping[str, float] | None]


def class_weight_table(hierarchy: Hierarchy, class_weights: ClassWeights) -> Tensor:
    """Return a float tensor (D, K): the class weight, at every level, of every leaf's group.

    ``class_weights`` has one entry per level, coarse to fine: ``None`` (every group
    weighs 1), a list of :meth:`Hierarchy.num_groups` weights in
    :meth:`Hierarchy.group_names` order, or a mapping ``{group name: weight}`` (the other
    groups weigh 1). Weights must be finite and non-negative.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> class_weight_table(h, [None, {"truck": 4.0}]).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 4.0]]
    """
    if isinstance(class_weights, str | Mapping) or len(class_weights) != hierarchy.num_levels:
        count = "a mapping" if isinstance(class_weights, Mapping) else len(class_weights)
        raise ValueError(
            f"class_weights needs one entry per level ({hierarchy.num_levels}: "
            f"{', '.join(hierarchy.level_names)}), got {count}"
        )
    rows = []
    for d, (name, spec) in enumerate(zip(hierarchy.level_names, class_weights, strict=True)):
        groups = hierarchy.group_names(d)
        if spec is None:
            weights = [1.0] * len(groups)
        elif isinstance(spec, Mapping):
            unknown = sorted(set(map(str, spec)) - set(groups))
            if unknown:
                raise ValueError(f"class_weights of level {name}: no groups {', '.join(unknown)}")
            given = {str(k): float(v) for k, v in spec.items()}
            weights = [given.get(g, 1.0) for g in groups]
        else:
            weights = [float(w) for w in spec]
            if len(weights) != len(groups):
                shown = ", ".join(groups[:8]) + (", ..." if len(groups) > 8 else "")
                raise ValueError(
                    f"class_weights of level {name}: {len(weights)} weights for "
                    f"{len(groups)} groups ({shown})"
                )
        if not all(math.isfinite(w) and w >= 0 for w in weights):
            raise ValueError(f"class_weights of level {name} must be finite and >= 0: {weights}")
        rows.append(torch.tensor(weights)[hierarchy.level_index(d)])
    return torch.stack(rows)


def hierarchical_nll(
    logits: Tensor,
    target: Tensor,
    hierarchy: Hierarchy,
    ignore_index: int | None = None,
    level_weights: Sequence[float] | Tensor | None = None,
    class_weights: ClassWeights | Tensor | None = None,
) -> Tensor:
    """Return the per-level losses (D,), coarse to fine, each multiplied by its weight.

    ``logits`` (B, K, *spatial) float of any dtype (computed in fp32, also under autocast),
    ``target`` (B, *spatial) integer leaf label ids. Level ``d``'s loss is the mean over
    non-ignored pixels of ``-log P(group of the target at level d)``; 0 when every pixel
    is ignored. The flat hierarchy gives exactly cross-entropy. With ``class_weights``
    (see :func:`class_weight_table`, or the (D, K) table it returns) the mean is weighted
    by the class weight of each pixel's target group, as ``F.cross_entropy``'s ``weight``
    (0 when the weights of all pixels sum to 0).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[2.0], [1.0], [1.0]]])  # (B=1, K=3, 1 pixel)
        >>> hierarchical_nll(logits, torch.tensor([[1]]), h)  # level0: vehicle, level1: car
        tensor([0.8583, 1.5514])
    """
    validate_inputs(logits, target, hierarchy, ignore_index)
    tables = LevelTables.of(hierarchy, logits.device)
    if class_weights is not None and not isinstance(class_weights, Tensor):
        class_weights = class_weight_table(hierarchy, class_weights)
    if class_weights is not None:
        if class_weights.shape != (hierarchy.num_levels, hierarchy.num_leaves):
            raise ValueError(
                f"a class weight table has shape (levels, leaves) = "
                f"{(hierarchy.num_levels, hierarchy.num_leaves)}, got {tuple(class_weights.shape)}"
            )
        class_weights = class_weights.to(device=logits.device, dtype=torch.float32)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        z = logits.float().reshape(logits.shape[0], logits.shape[1], -1)
        levels = _HierarchicalNLL.apply(
            z, target.reshape(target.shape[0], -1), tables, ignore_index, class_weights
        )
        if level_weights is not None:
            weights = torch.as_tensor(level_weights, dtype=levels.dtype, device=levels.device)
            if weights.shape != levels.shape:
                raise ValueError(
                    f"{weights.numel()} level weights given for {levels.numel()} levels"
                )
            levels = levels * weights
    return levels


class HierarchicalLoss(nn.Module):
    """The paper's hierarchical loss: the weighted sum over levels of per-level NLLs.

    ``class_weights`` (optional, see :func:`class_weight_table`) turns each level's mean
    into the class-weighted mean of ``F.cross_entropy(..., weight=...)``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> loss = HierarchicalLoss(h, level_weights=[1.0, 0.5])
        >>> logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
        >>> loss(logits, target).shape, loss.level_losses(logits, target).shape
        (torch.Size([]), torch.Size([2]))
        >>> HierarchicalLoss(h, class_weights=[None, {"truck": 5.0}]).class_weights.tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 5.0]]
    """

    level_weights: Tensor
    class_weights: Tensor | None

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None = 255,
        level_weights: Sequence[float] | None = None,
        class_weights: ClassWeights | None = None,
    ) -> None:
        super().__init__()
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        weights = level_weight_tensor(hierarchy, level_weights)
        self.register_buffer("level_weights", weights, persistent=False)
        table = None if class_weights is None else class_weight_table(hierarchy, class_weights)
        self.register_buffer("class_weights", table, persistent=False)

    def level_losses(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the per-level losses (D,), coarse to fine, not multiplied by level weights.

        Class-weighted means when the loss has ``class_weights``.
        """
        return hierarchical_nll(
            logits, target, self.hierarchy, self.ignore_index, class_weights=self.class_weights
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Return the weighted total loss, a scalar."""
        return (self.level_losses(logits, target) * self.level_weights).sum()

    def extra_repr(self) -> str:
        return f"{self.hierarchy!r}, ignore_index={self.ignore_index}"


class _HierarchicalNLL(torch.autograd.Function):
    """Per-level mean NLL (D,) of fp32 logits (B, K, S) and targets (B, S).

    With a class weight table (D, K), each level's mean is weighted by the class weight of
    each pixel's target group; without it (None), every valid pixel weighs 1.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        logits: Tensor,
        target: Tensor,
        tables: LevelTables,
        ignore_index: int | None,
        class_weights: Tensor | None,
    ) -> Tensor:
        valid = (
            torch.ones_like(target, dtype=torch.bool)
            if ignore_index is None
            else (target != ignore_index)
        )
        leaf = target.masked_fill(~valid, 0)
        groups = tables.level_matrix[:, leaf]  # (D, B, S)
        probs = _softmax(logits)
        group_probs = _target_group_sums(probs, leaf, groups, tables)  # (D, B, S)
        nll = group_probs.log().neg_()
        bad = (group_probs[-1] < _TINY) & valid  # levels are nested: the leaf is the smallest
        rows = logits.movedim(1, -1)[bad].double()  # (n, K), usually empty
        if rows.numel():
            nll[:, bad] = -_exact_log_probs(rows, groups[:, bad], tables.level_matrix).float()
        nll.masked_fill_(~valid, 0.0)
        if class_weights is None:  # every valid pixel weighs 1
            pixel_weights = None
            count = valid.sum().clamp_min(1)
        else:  # (D, B, S): the class weight of the target's group at every level
            pixel_weights = class_weights[:, leaf] * valid
            total = pixel_weights.sum(dim=(1, 2))
            count = torch.where(total > 0, total, 1.0).view(-1, 1, 1)  # (D, 1, 1)
            nll = nll * pixel_weights
        ctx.tables = tables
        ctx.save_for_backward(
            probs, leaf, groups, group_probs, valid, bad, rows, count, pixel_weights
        )
        return nll.sum(dim=(1, 2)) / count.view(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_levels: Tensor):
        probs, leaf, groups, group_probs, valid, bad, rows, count, pixel_weights = ctx.saved_tensors
        tables: LevelTables = ctx.tables
        depth = tables.num_levels
        level_grads = grad_levels.float().view(depth, 1, 1) / count  # (D, 1, 1)
        if pixel_weights is None:
            scale = (valid & ~bad).float()  # (B, S): fast-path pixels only
        else:
            scale = pixel_weights.masked_fill(bad, 0.0)  # (D, B, S)
        weights = level_grads * scale  # (D, B, S)
        # dL/dz_k = p_k * (sum_d w_d - sum_{d: k in S_d} w_d / P(S_d)). The second sum is
        # built top-down on the small group arrays; the leaf level's term is w_{D-1} at the
        # target alone, since P(S_{D-1}) = p_target.
        factor = weights.sum(0).unsqueeze(1)  # (B, 1, S)
        if depth > 1:
            coeffs = weights[:-1] / group_probs[:-1].clamp_min(_TINY)
            shared = probs.new_zeros(probs.shape[0], tables.sizes[0], probs.shape[2])
            for d in range(depth - 1):
                if d:
                    shared = shared.index_select(1, tables.parents[d - 1])
                shared.scatter_add_(1, groups[d].unsqueeze(1), coeffs[d].unsqueeze(1))
            factor = torch.sub(factor, shared)
        grad = _scale_by_group(probs, factor, tables.level_matrix[-2] if depth > 1 else None)
        grad.view(-1).index_add_(0, _flat_leaf_index(leaf, grad.shape[1]), -weights[-1].view(-1))
        if rows.numel():
            row_weights = level_grads.view(depth, 1)  # (D, 1), or per row (D, n)
            if pixel_weights is not None:
                row_weights = row_weights * pixel_weights[:, bad]
            exact = _exact_grad(rows, groups[:, bad], tables.level_matrix, row_weights)
            grad.movedim(1, -1)[bad] = exact.to(grad.dtype)
        return grad, None, None, None, None


def _softmax(logits: Tensor) -> Tensor:
    """Return the softmax over dim 1 of (B, K, S) logits, as ``exp(log_softmax)``.

    On the CPU ``torch.softmax`` over a non-last dimension is about 3x slower than
    ``log_softmax``, which computes one exp per element; one more exp, in place, follows.
    """
    return torch.log_softmax(logits.contiguous(), dim=1).exp_()


def _scale_by_group(probs: Tensor, factor: Tensor, index: Tensor | None) -> Tensor:
    """Return ``probs * factor[:, index]`` in place of probs (B, K, S); factor (B, G, S).

    The factor of each leaf is its group's (``index`` (K,): the group of every leaf), or
    ``factor`` (B, 1, S) itself when ``index`` is None. One sample at a time, along the
    sample's first dimension: contiguous row copies, faster on the CPU than a gather along
    dim 1, with a temporary of one sample instead of the batch.
    """
    if index is None:
        return probs.mul_(factor)
    for sample_probs, sample_factor in zip(probs, factor, strict=True):
        sample_probs.mul_(sample_factor.index_select(0, index))
    return probs


def _flat_leaf_index(leaf: Tensor, num_leaves: int) -> Tensor:
    """Return the flat positions (B * S,) of each pixel's target leaf in a (B, K, S) tensor.

    Reading or adding at them in the flattened tensor is cheaper on the CPU than a gather
    or scatter along dim 1.
    """
    batch, pixels = leaf.shape
    base = torch.arange(batch, device=leaf.device).unsqueeze(1) * num_leaves
    return ((base + leaf) * pixels + torch.arange(pixels, device=leaf.device)).view(-1)


def _target_group_sums(probs: Tensor, leaf: Tensor, groups: Tensor, tables: LevelTables) -> Tensor:
    """Return P(the target's group) at every level (D, B, S): sums of ``probs`` (B, K, S).

    Sums are aggregated bottom-up: leaves to level D-2, then from each level to its parent.
    """
    depth = tables.num_levels
    out = probs.new_empty(depth, *leaf.shape)
    out[-1] = probs.view(-1).take(_flat_leaf_index(leaf, probs.shape[1])).view(leaf.shape)
    level_sums = probs
    for d in range(depth - 2, -1, -1):
        index = tables.level_matrix[d] if d == depth - 2 else tables.parents[d]
        summed = probs.new_zeros(probs.shape[0], tables.sizes[d], probs.shape[2])
        level_sums = summed.index_add_(1, index, level_sums)
        out[d] = level_sums.gather(1, groups[d].unsqueeze(1)).squeeze(1)
    return out


def _group_masked(rows: Tensor, groups: Tensor, level_matrix: Tensor, level: int) -> Tensor:
    """Return rows (n, K) with -inf outside each row's target group at ``level``."""
    member = level_matrix[level].unsqueeze(0) == groups[level].unsqueeze(1)
    return rows.masked_fill(~member, float("-inf"))


def _exact_log_probs(rows: Tensor, groups: Tensor, level_matrix: Tensor) -> Tensor:
    """Return log P(target group) (D, n) from float64 logit rows (n, K), in the log domain."""
    out = rows.new_empty(groups.shape)
    for start in range(0, rows.shape[0], _EXACT_CHUNK):
        part, part_groups = (
            rows[start : start + _EXACT_CHUNK],
            groups[:, start : start + _EXACT_CHUNK],
        )
        total = torch.logsumexp(part, dim=1)
        for d in range(groups.shape[0]):
            masked = _group_masked(part, part_groups, level_matrix, d)
            out[d, start : start + _EXACT_CHUNK] = torch.logsumexp(masked, dim=1) - total
    return out


def _exact_grad(rows: Tensor, groups: Tensor, level_matrix: Tensor, weights: Tensor) -> Tensor:
    """Return d(sum_d weights_d * -log P_d)/d rows (n, K), in float64.

    ``weights`` is (D, 1) (the same for every row) or (D, n) (one column per row).
    """
    weights = weights.to(rows.dtype).unsqueeze(-1)  # (D, 1 or n, 1)
    out = torch.softmax(rows, dim=1) * weights.sum(0)
    for d in range(groups.shape[0]):
        out -= weights[d] * torch.softmax(_group_masked(rows, groups, level_matrix, d), dim=1)
    return out
