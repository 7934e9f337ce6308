"""The paper's hierarchical loss: the sum over levels of negative log-likelihoods.

For pixel logits ``z`` (K,) and the group ``S`` of the target at level ``d``,
``log P(S) = logsumexp(z[S]) - logsumexp(z)``. The level loss is the mean over
non-ignored pixels of ``-log P(S)``; the total is ``sum_d w_d * level_loss_d``.
With per-level class weights ``c_d`` (for long-tailed data) the mean becomes a weighted
mean, as ``F.cross_entropy``'s ``weight``: ``sum_i c_d(S_i) nll_i / sum_i c_d(S_i)``.

The fast path takes one exponential per logit, ``e = exp(z - c)`` (on the CPU as
``exp2((z - c) * log2(e))``, within a relative ``(1 + |z - c|) * 1.2e-7``: an error of the
kind that cross-entropy's rounding of ``z - max(z)`` gives its exponentials), and aggregates it
bottom-up through the tree, one sample at a time while the sample is in the cache (one
pass over the K channels, then over ever fewer groups):
``P(S) = E_S / T`` with ``E_S`` the sum of ``e`` over ``S`` and ``T`` over all leaves. The
shift ``c`` is 0 while every pixel's ``T`` lies where fp32 keeps those sums exact (each
pixel's largest logit between about -23 and 69), else each pixel's largest logit. The
gradient is computed in closed form,
``dL/dz_k = e_k * (sum_d w_d / T - sum_{d: k in S_d} w_d / E_{S_d})``. Pixels whose target
probability is below ``1e-25`` (where fp32 sums of probabilities lose precision) are
recomputed exactly in the log domain, in float64, so the result is exact and finite
for any finite logits. Class weights only change each pixel's factor in both passes.

Coarse labels: a target may be an internal node's id (:attr:`Hierarchy.node_names`). Such
a pixel is labelled at the node's level and the coarser ones, and at none below: level
``d``'s loss is the mean over the pixels labelled at ``d`` (class-weighted by their group
there), as ``ignore_index`` works, per level. It is computed on the same path with a leaf
under the node standing in for it (it shares the node's groups where the node is known)
and a per-level mask; a batch without coarse labels (one ``amax`` of the labels tells) takes
the leaf path unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy
from hl_lightning.label_ids import has_coarse_labels
from hl_lightning.losses._common import flatten
from hl_lightning.losses._options import ClassWeights, class_weight_table, validate_loss_args
from hl_lightning.losses._tree_sums import (
    add_at_target,
    leaf_factors,
    target_group_sums,
    target_groups,
)
from hl_lightning.tables import LevelTables, validate_inputs

__all__ = [
    "ClassWeights",
    "HierarchicalLoss",
    "class_weight_table",
    "hierarchical_nll",
    "level_nlls",
]

_TINY = 1e-25  # below this, fp32 sums of probabilities are replaced by exact log-domain values
_EXACT_CHUNK = 8192  # rows per chunk on the exact path, to bound its memory
# Totals of exp(logits) within which, with _TINY, the unshifted exponentials stay normal fp32
# numbers (>= 1e-35) for every probability the fast path uses, far from overflow.
_TOTAL_RANGE = (1e-10, 1e30)


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
    ``target`` (B, *spatial) integer label ids: leaf ids, or internal node ids (coarse
    labels, known at the node's level and above). Level ``d``'s loss is the mean over the
    pixels labelled at level ``d`` of ``-log P(group of the target at level d)``; 0 when
    there is none. The flat hierarchy gives exactly cross-entropy. With ``class_weights``
    (see :func:`class_weight_table`, or the (D, K) table it returns) the mean is weighted
    by the class weight of each pixel's target group, as ``F.cross_entropy``'s ``weight``
    (0 when the weights of all pixels sum to 0).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[2.0], [1.0], [1.0]]])  # (B=1, K=3, 1 pixel)
        >>> hierarchical_nll(logits, torch.tensor([[1]]), h)  # level0: vehicle, level1: car
        tensor([0.8583, 1.5514])
        >>> hierarchical_nll(logits, torch.tensor([[3]]), h)  # coarse: vehicle, nothing below
        tensor([0.8583, 0.0000])
    """
    validate_loss_args(hierarchy, ignore_index)
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
    coarse = has_coarse_labels(target, hierarchy.num_leaves, ignore_index)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        levels, _ = level_nlls(
            *flatten(logits, target), tables, ignore_index, class_weights, coarse=coarse
        )
        if level_weights is not None:
            weights = torch.as_tensor(level_weights, dtype=levels.dtype, device=levels.device)
            if weights.shape != levels.shape:
                raise ValueError(
                    f"{weights.numel()} level weights given for {levels.numel()} levels"
                )
            levels = levels * weights
    return levels


def level_nlls(
    logits: Tensor,
    target: Tensor,
    tables: LevelTables,
    ignore_index: int | None,
    class_weights: Tensor | None = None,
    coarse_weights: Tensor | None = None,
    coarse: bool | None = None,
) -> tuple[Tensor, bool]:
    """Return the per-level losses (D,) of fp32 logits (B, K, S) and label ids (B, S), and
    whether the batch has coarse labels (internal node ids): ``coarse`` when given (the
    caller knows, :func:`~hl_lightning.label_ids.has_coarse_labels`), else read here.

    Without coarse labels: the per-level means of :func:`hierarchical_nll` (class-weighted
    with a (D, K) ``class_weights`` table). With them, a pixel counts at the levels where
    its label is known (its node's level and the coarser ones): level ``d``'s mean is over
    those pixels (class-weighted by the node's group there); or, given ``coarse_weights``
    (D, N), a weight for every label id at every level (0 below a node's level), each
    level's loss is ``sum_i coarse_weights[d, label_i] * nll_{i,d} / n`` with ``n`` the
    number of non-ignored pixels (a weighted sum of per-pixel losses, as HXE's).
    """
    valid = None if ignore_index is None else target != ignore_index
    label = target if valid is None else target.masked_fill(~valid, 0)
    if coarse is None:
        coarse = has_coarse_labels(target, tables.num_leaves, ignore_index)
    if coarse:  # coarse labels: rare, looked up
        known = target_groups(tables.node_matrix, label) >= 0  # (D, B, S)
        if valid is not None:
            known &= valid
        return _coarse_level_nlls(logits, label, known, tables, class_weights, coarse_weights), True
    if class_weights is None:  # every valid pixel weighs 1
        pixel_weights = None
        count = logits.new_tensor(label.numel()) if valid is None else valid.sum()
        count = count.clamp_min(1)
    else:  # (D, B, S): the class weight of the target's group at every level
        pixel_weights = class_weights[:, label]
        if valid is not None:
            pixel_weights *= valid
        count = _weighted_counts(pixel_weights)
    return _HierarchicalNLL.apply(logits, label, valid, pixel_weights, count, tables), False


def _coarse_level_nlls(
    logits: Tensor,
    label: Tensor,
    known: Tensor,
    tables: LevelTables,
    class_weights: Tensor | None,
    coarse_weights: Tensor | None,
) -> Tensor:
    """Return :func:`level_nlls`'s per-level losses for node ids ``label`` (B, S), 0 where
    ignored, with ``known`` (D, B, S) the levels at which each pixel is labelled."""
    leaf = tables.node_leaves[label]  # a stand-in leaf: the node's groups at its levels
    pixel_weights: Tensor | None
    if coarse_weights is not None:  # a weighted sum of per-pixel losses, over every pixel
        pixel_weights = coarse_weights[:, label] * known
        count = known[0].sum().clamp_min(1)  # every label is known at level 0
    elif class_weights is None:  # level d: the mean over the pixels known at d
        pixel_weights = None
        count = known.sum(dim=(1, 2)).clamp_min(1).view(-1, 1, 1)
    else:  # level d: the class-weighted mean over the pixels known at d
        pixel_weights = class_weights[:, leaf] * known
        count = _weighted_counts(pixel_weights)
    return _HierarchicalNLL.apply(logits, leaf, known, pixel_weights, count, tables)


def _weighted_counts(pixel_weights: Tensor) -> Tensor:
    """Return what each level's class-weighted NLLs are divided by (D, 1, 1): the level's
    summed pixel weights (D, B, S), 1 where they sum to 0."""
    level_totals = pixel_weights.sum(dim=(1, 2))
    return torch.where(level_totals > 0, level_totals, 1.0).view(-1, 1, 1)


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
        options = validate_loss_args(
            hierarchy, ignore_index, level_weights=level_weights, class_weights=class_weights
        )
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.register_buffer("level_weights", options["level_weights"], persistent=False)
        self.register_buffer("class_weights", options["class_weights"], persistent=False)

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
    """Per-level NLLs (D,) of fp32 logits (B, K, S) and target leaves (B, S), each level's
    pixel NLLs divided by ``count`` (a scalar or (D, 1, 1)) and summed.

    ``known`` says where a pixel counts: None (everywhere), (B, S) (the non-ignored pixels,
    at every level) or (D, B, S) (per level: coarse labels, whose ``leaf`` is a stand-in
    sharing the node's groups where it is known). ``pixel_weights`` (D, B, S), 0 where a
    pixel does not count, multiply each pixel's NLL (class weights); None: 1 where it counts.
    """

    @staticmethod
    def forward(
        ctx: Any,
        logits: Tensor,
        leaf: Tensor,
        known: Tensor | None,
        pixel_weights: Tensor | None,
        count: Tensor,
        tables: LevelTables,
    ) -> Tensor:
        groups = target_groups(tables.level_matrix, leaf)
        exps = torch.empty_like(logits)
        group_sums, total = target_group_sums(exps, leaf, groups, tables, exp_of=logits)
        group_probs, bad = _group_probs(group_sums, total, known)
        # one host read (a sync on a GPU) answers both rare cases
        shift, any_bad = torch.stack((_outside_exact_range(total), bad.any())).tolist()
        if shift:  # rare: exp(z - c), c each pixel's largest logit
            torch.sub(logits, logits.amax(dim=1, keepdim=True), out=exps).exp_()
            group_sums, total = target_group_sums(exps, leaf, groups, tables)
            group_probs, bad = _group_probs(group_sums, total, known)
            any_bad = bool(bad.any())
        nll = group_probs.log().neg_()
        rows = logits.new_empty(0, logits.shape[1], dtype=torch.float64)
        if any_bad:  # rare: looked up only then
            rows = logits.movedim(1, -1)[bad].double()  # (n, K)
            nll[:, bad] = -_exact_log_probs(rows, groups[:, bad], tables.level_matrix).float()
        if known is not None:
            nll.masked_fill_(~known, 0.0)
        # Each pixel's share of the mean is taken before the sum: a mean of NLLs up to the
        # fp32 maximum does not overflow on the way (a sum of them would).
        if pixel_weights is None:
            nll /= count
        else:
            nll *= pixel_weights / count
        ctx.tables = tables
        ctx.save_for_backward(
            exps, leaf, groups, group_sums, total, known, bad, rows, count, pixel_weights
        )
        return nll.sum(dim=(1, 2))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_levels: Tensor):
        exps, leaf, groups, group_sums, total, known, bad, rows, count, pixel_weights = (
            ctx.saved_tensors
        )
        tables: LevelTables = ctx.tables
        depth = tables.num_levels
        level_grads = grad_levels.float().view(depth, 1, 1) / count  # (D, 1, 1)
        per_level = known is not None and known.dim() == 3
        # With e = exp(z - c), E_d the target's group sum at level d and T the sum of all e:
        # dL/dz_k = e_k * (sum_d w_d / T - sum_{d: k in S_d} w_d / E_d). The leaf level's
        # term is w_{D-1} at the target alone, since E_{D-1} = e_target.
        if pixel_weights is None and not rows.numel() and not per_level:
            valid = known  # w_d: the level's gradient, or 0 where ignored
            top = torch.div(level_grads.sum(), total)  # (B, S)
            sums = group_sums[:-1]  # > 0 but at ignored pixels, whose stand-in leaf may have 0
            if valid is not None:
                sums = sums.clamp_min(torch.finfo(torch.float32).tiny)
            coeffs = torch.div(level_grads[:-1].neg(), sums)  # (D-1, B, S)
            leaf_term = level_grads[-1].neg().expand_as(total)
            if valid is not None:  # 0 where ignored
                top *= valid
                coeffs *= valid
                leaf_term = leaf_term * valid
        else:
            if pixel_weights is None:
                scale = ~bad if known is None else known & ~bad  # fast-path pixels, levels
                weights = level_grads * scale  # (D, B, S)
            else:
                weights = level_grads * pixel_weights.masked_fill(bad, 0.0)  # (D, B, S)
            top = weights.sum(0) / total  # (B, S)
            coeffs = weights[:-1] / group_sums[:-1].clamp_min(torch.finfo(torch.float32).tiny)
            coeffs.neg_()
            leaf_term = weights[-1].neg()
        for block, factors in leaf_factors(exps, top, coeffs, groups, tables):
            block.values(exps).mul_(factors)  # while the block is in the cache
            add_at_target(exps, block, leaf, leaf_term)
        grad = exps
        if rows.numel():
            row_weights = level_grads.view(depth, 1)  # (D, 1), or per row (D, n)
            if pixel_weights is not None:
                row_weights = row_weights * pixel_weights[:, bad]
            elif per_level:
                row_weights = row_weights * known[:, bad]
            exact = _exact_grad(rows, groups[:, bad], tables.level_matrix, row_weights)
            grad.movedim(1, -1)[bad] = exact.to(grad.dtype)
        return grad, None, None, None, None, None


def _outside_exact_range(total: Tensor) -> Tensor:
    """Return whether the softmax needs each pixel's largest logit subtracted, a 0-dim bool:
    whether a pixel's total ``T = sum_k exp(z_k)`` (B, S) lies outside the range where fp32
    keeps the probabilities the loss needs (>= 1e-25) exact (or is NaN).

    Within it, ``exp(z)`` unshifted is one exp per logit, the cheapest way to a softmax on
    the CPU; outside it, a pixel's largest logit is below about -23 or above about 69.
    Also unshifted, ``e_k >= 1e-35`` (a normal fp32 number) for every leaf with
    ``P(k) >= 1e-25``, and the smaller, subnormal ones add at most ``K * 1e-45`` to a group
    sum of at least ``1e-35``.
    """
    if total.numel() == 0:
        return torch.zeros((), dtype=torch.bool, device=total.device)
    low, high = torch.aminmax(total)
    return ~((low >= _TOTAL_RANGE[0]) & (high <= _TOTAL_RANGE[1]))  # also True on NaN


def _group_probs(group_sums: Tensor, total: Tensor, known: Tensor | None) -> tuple[Tensor, Tensor]:
    """Return the target group's probability at every level (D, B, S) and the mask of the
    pixels (B, S) whose smallest used probability is below ``_TINY``: fp32 sums cannot
    give their NLL, the exact float64 path does."""
    group_probs = group_sums / total
    if known is None or known.dim() == 2:
        bad = group_probs[-1] < _TINY  # levels are nested: the leaf is the smallest
        if known is not None:
            bad &= known
    else:  # the smallest probability a pixel uses: at the finest level it is known
        bad = torch.where(known, group_probs, 1.0).amin(0) < _TINY
    return group_probs, bad


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
