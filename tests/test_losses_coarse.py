"""Coarse labels (internal node ids) in the losses' targets, against float64 definitions.

Each loss's written definition (docs/losses.md, "Coarse labels") is implemented here in
float64 from the hierarchy's public tables (``labels_at_level``, ``level_index``), and the
loss in float32 is compared with it, values and gradients, on the paper's trees and on
random unbalanced ones, with targets mixing leaf ids, internal node ids and ignore_index.

A batch without coarse labels takes the leaf path, unchanged: a spy checks that it never
enters the coarse branch, and the coarse branch, given the same leaf labels, gives the
same values bit for bit (so the coarse branch is an extension of the leaf path, not a
second definition of it).
"""

from __future__ import annotations

import math

import pytest
import torch
from _reference import assert_gradient_close

from hl_lightning import Hierarchy
from hl_lightning.hierarchies import cityscapes_hierarchy, mapillary_paper_hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.losses import (
    FlatLoss,
    HXELoss,
    SoftLabelsLoss,
    class_weight_table,
    hierarchical_nll,
)
from hl_lightning.losses import hierarchical as hierarchical_module
from hl_lightning.tables import LevelTables

IGNORE = 255


def trees() -> dict[str, Hierarchy]:
    """Return the paper's trees and random unbalanced ones (leaf ids in tree or random order)."""
    return {
        "cityscapes": cityscapes_hierarchy(),
        "mapillary": mapillary_paper_hierarchy(),
        "random40x4": random_hierarchy(40, 4, seed=1),
        "random25x5_shuffled": random_hierarchy(25, 5, seed=2, shuffle_leaves=True),
        "random12x3_shuffled": random_hierarchy(12, 3, seed=5, shuffle_leaves=True),
    }


TREES = trees()


def mixed_batch(
    h: Hierarchy, seed: int, scale: float = 3.0, ignore_index: int | None = IGNORE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return logits (2, K, 6, 7) and targets mixing leaf ids, internal node ids and ignored
    pixels (about a third each; none ignored without ``ignore_index``)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, h.num_leaves, 6, 7, generator=gen) * scale
    leaves = torch.randint(0, h.num_leaves, (2, 6, 7), generator=gen)
    nodes = torch.randint(h.num_leaves, h.num_nodes, (2, 6, 7), generator=gen)
    kind = torch.randint(0, 3 if ignore_index is not None else 2, (2, 6, 7), generator=gen)
    target = torch.where(kind == 0, leaves, nodes)
    if ignore_index is not None:
        target = torch.where(kind == 2, ignore_index, target)
    return logits, target


def pixel_rows(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return float64 logit rows (P, K) and label ids (P,) of a batch."""
    k = logits.shape[1]
    return logits.double().movedim(1, -1).reshape(-1, k), target.reshape(-1)


def group_log_probs(rows: torch.Tensor, h: Hierarchy, groups: torch.Tensor, d: int) -> torch.Tensor:
    """Return log P(group) (P,) of float64 rows (P, K) for group ids (P,) at level ``d``."""
    member = h.level_index(d).unsqueeze(0) == groups.unsqueeze(1)
    log_p = torch.log_softmax(rows, dim=1)
    return torch.logsumexp(log_p.masked_fill(~member, float("-inf")), dim=1)


def known_groups(h: Hierarchy, labels: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the mask of pixels labelled at level ``d`` and their group ids there (0 if not)."""
    groups = h.labels_at_level(labels, d, ignore_index=-1)
    known = groups >= 0
    return known, groups.clamp_min(0)


# ------------------------------------------------------------------ hierarchical
def reference_levels(
    logits: torch.Tensor,
    target: torch.Tensor,
    h: Hierarchy,
    ignore_index: int | None,
    class_table: torch.Tensor | None = None,
) -> torch.Tensor:
    """The definition: level d's loss is the (class-weighted) mean of -log P(group at d)
    over the pixels whose label is known at d: leaf pixels, and coarse pixels whose node
    lies at level d or below it in the tree (d <= the node's level)."""
    rows, labels = pixel_rows(logits, target)
    if ignore_index is not None:
        labels = torch.where(labels == ignore_index, -1, labels)
    out = []
    for d in range(h.num_levels):
        known, groups = known_groups(h, labels.clamp_min(0), d)
        known &= labels >= 0
        nll = -group_log_probs(rows, h, groups, d)
        if class_table is None:
            weights = known.double()
        else:  # the class weight of the pixel's group at level d
            group_weights = torch.zeros(h.num_groups(d), dtype=torch.float64)
            group_weights[h.level_index(d)] = class_table[d].double()
            weights = group_weights[groups] * known
        total = weights.sum()
        level = (weights * nll.masked_fill(~known, 0.0)).sum()
        out.append(level / total if total > 0 else level * 0)
    return torch.stack(out)


def level_weighting(h: Hierarchy, seed: int) -> torch.Tensor:
    return torch.rand(h.num_levels, generator=torch.Generator().manual_seed(seed)) + 0.5


@pytest.mark.parametrize("name", list(TREES))
@pytest.mark.parametrize("class_weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [IGNORE, None])
def test_hierarchical_matches_its_coarse_definition(name, class_weighted, ignore_index):
    h = TREES[name]
    logits, target = mixed_batch(h, seed=len(name), ignore_index=ignore_index)
    table = None
    if class_weighted:
        gen = torch.Generator().manual_seed(3)
        table = class_weight_table(
            h, [torch.rand(h.num_groups(d), generator=gen).tolist() for d in range(h.num_levels)]
        )
    weights = level_weighting(h, 4)
    logits.requires_grad_()
    levels = hierarchical_nll(logits, target, h, ignore_index, class_weights=table)
    (grad,) = torch.autograd.grad((levels * weights).sum(), logits)
    wide = logits.detach().double().requires_grad_()
    expected = reference_levels(wide, target, h, ignore_index, table)
    (expected_grad,) = torch.autograd.grad((expected * weights.double()).sum(), wide)
    torch.testing.assert_close(levels.double(), expected, rtol=2e-5, atol=1e-6)
    assert_gradient_close(grad, expected_grad, target, ignore_index, float(weights.sum()))


@pytest.mark.parametrize("name", ["cityscapes", "random25x5_shuffled"])
def test_hierarchical_coarse_stays_exact_at_extreme_logits(name):
    h = TREES[name]
    logits, target = mixed_batch(h, seed=7, scale=60.0)  # tiny probabilities: exact path
    logits.requires_grad_()
    levels = hierarchical_nll(logits, target, h, IGNORE)
    (grad,) = torch.autograd.grad(levels.sum(), logits)
    wide = logits.detach().double().requires_grad_()
    expected = reference_levels(wide, target, h, IGNORE)
    (expected_grad,) = torch.autograd.grad(expected.sum(), wide)
    assert torch.isfinite(levels).all()
    torch.testing.assert_close(levels.double(), expected, rtol=2e-5, atol=1e-5)
    assert_gradient_close(grad, expected_grad, target, IGNORE, float(h.num_levels))


def test_a_coarse_pixel_counts_at_its_levels_and_not_below():
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    logits = torch.randn(1, 3, 2, requires_grad=True)
    levels = hierarchical_nll(logits, torch.tensor([[1, 3]]), h)  # car, vehicle
    only_car = hierarchical_nll(logits, torch.tensor([[1, 255]]), h, 255)
    two_cars = hierarchical_nll(logits, torch.tensor([[1, 1]]), h)
    # level 0: both pixels say "vehicle" (as two cars would); level 1: the car alone
    assert torch.allclose(levels[0], two_cars[0])
    assert torch.allclose(levels[1], only_car[1])
    coarse_only = hierarchical_nll(logits, torch.tensor([[3, 3]]), h)
    assert coarse_only[1] == 0
    (grad,) = torch.autograd.grad(coarse_only.sum(), logits)
    assert torch.isfinite(grad).all()


# ------------------------------------------------------------------ leaf-only batches
def leaf_batch(h: Hierarchy) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(2, h.num_leaves, 5, 6, generator=gen) * 4
    target = torch.randint(0, h.num_leaves, (2, 5, 6), generator=gen)
    target[0, 0] = IGNORE
    return logits, target


@pytest.mark.parametrize("class_weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [IGNORE, None])
def test_hierarchical_coarse_branch_on_leaf_labels_equals_the_leaf_path_bit_for_bit(
    class_weighted, ignore_index, monkeypatch
):
    h = TREES["mapillary"]
    logits, target = leaf_batch(h)
    if ignore_index is None:
        target = target.clamp_max(h.num_leaves - 1)
    table = class_weight_table(h, [None] * (h.num_levels - 1) + [[2.0] * h.num_leaves])
    table = table if class_weighted else None
    tables = LevelTables.of(h, logits.device)
    z, t = logits.reshape(2, h.num_leaves, -1).requires_grad_(), target.reshape(2, -1)

    def no_coarse_branch(*args, **kwargs):
        raise AssertionError("a batch without coarse labels entered the coarse branch")

    with monkeypatch.context() as patch:
        patch.setattr(hierarchical_module, "_coarse_level_nlls", no_coarse_branch)
        leaf_path, coarse = hierarchical_module.level_nlls(z, t, tables, ignore_index, table)
    assert not coarse
    # the coarse branch, forced on the same leaf labels
    label = t if ignore_index is None else t.masked_fill(t == ignore_index, 0)
    known = (tables.node_matrix[:, label] >= 0) & (t != ignore_index)
    forced = hierarchical_module._coarse_level_nlls(z, label, known, tables, table, None)
    assert torch.equal(leaf_path, forced)
    (grad,) = torch.autograd.grad(leaf_path.sum(), z)
    (forced_grad,) = torch.autograd.grad(forced.sum(), z)
    torch.testing.assert_close(grad, forced_grad, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ flat, hxe, soft labels
def own_levels(h: Hierarchy, labels: torch.Tensor) -> torch.Tensor:
    """Return each label's own level (P,): the finest level at which it is known."""
    known = [known_groups(h, labels, d)[0] for d in range(h.num_levels)]
    return torch.stack(known).sum(0) - 1


def valid_rows(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    rows, labels = pixel_rows(logits, target)
    keep = labels != ignore_index if ignore_index is not None else labels >= 0
    return rows[keep], labels[keep]


def reference_flat(logits, target, h, ignore_index, class_table=None) -> torch.Tensor:
    """The definition: -log of the summed softmax probabilities of the leaves under the
    label (the leaf itself for a leaf id), averaged over non-ignored pixels; with class
    weights weighted by the label's weight at its own level."""
    rows, labels = valid_rows(logits, target, ignore_index)
    levels = own_levels(h, labels)
    nll, weights = [], []
    for row, label, level in zip(rows, labels, levels.tolist(), strict=True):
        group = h.labels_at_level(label.view(1), level, ignore_index=-1)
        under = h.level_index(level) == group  # (K,): the leaves under the label
        nll.append(-torch.logsumexp(torch.log_softmax(row, 0)[under], 0))
        leaf = int(under.nonzero()[0])
        weights.append(1.0 if class_table is None else float(class_table[level, leaf]))
    w = torch.tensor(weights, dtype=torch.float64)
    return (w * torch.stack(nll)).sum() / w.sum()


def hxe_terms(logits, target, h, ignore_index, alpha) -> torch.Tensor:
    """The definition's edge terms (D,): lambda_d = exp(-alpha d) times the mean over
    non-ignored pixels of -log(P(v_d) / P(v_{d-1})) for pixels labelled at level d (the
    chain of a coarse label ends at its node), 0 for the others."""
    rows, labels = valid_rows(logits, target, ignore_index)
    previous = torch.zeros(len(labels), dtype=torch.float64)
    terms = []
    for d in range(h.num_levels):
        known, groups = known_groups(h, labels, d)
        log_p = group_log_probs(rows, h, groups, d)
        edge = torch.where(known, previous - log_p, 0.0)
        terms.append(math.exp(-alpha * d) * edge.sum() / max(len(labels), 1))
        previous = log_p
    return torch.stack(terms)


def reference_soft(logits, target, h, ignore_index, beta) -> torch.Tensor:
    """The definition: -sum_g y_l(g|n) log P(g) over the groups g of the label's level l,
    y_l(g|n) ∝ exp(-beta d_l(g, n) / d_max), d_l the number of levels 0..l at which g and n
    lie in different groups; the mean over non-ignored pixels."""
    rows, labels = valid_rows(logits, target, ignore_index)
    d_max = float(h.leaf_distance().max())
    levels = own_levels(h, labels)
    log_p = torch.log_softmax(rows, 1)
    out = []
    for row, label, level in zip(log_p, labels, levels.tolist(), strict=True):
        index = h.level_index(level)
        losses, scores = [], []
        for g in range(h.num_groups(level)):
            under = index == g
            leaf = torch.tensor([int(under.nonzero()[0])])
            distance = sum(
                int(
                    h.labels_at_level(leaf, j, ignore_index=-1)
                    != h.labels_at_level(label.view(1), j, ignore_index=-1)
                )
                for j in range(level + 1)
            )
            scores.append(math.exp(-beta * distance / d_max))
            losses.append(-torch.logsumexp(row[under], 0))
        y = torch.tensor(scores, dtype=torch.float64)
        out.append((y / y.sum() * torch.stack(losses)).sum())
    return torch.stack(out).sum() / max(len(out), 1)


def random_table(h: Hierarchy) -> torch.Tensor:
    gen = torch.Generator().manual_seed(9)
    return class_weight_table(
        h, [torch.rand(h.num_groups(d), generator=gen).tolist() for d in range(h.num_levels)]
    )


def check_against(loss, reference, h, seed, ignore_index, scale=3.0) -> None:
    """Assert loss(logits, target) and its gradient match ``reference`` in float64."""
    logits, target = mixed_batch(h, seed=seed, scale=scale, ignore_index=ignore_index)
    logits.requires_grad_()
    value = loss(logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    wide = logits.detach().double().requires_grad_()
    expected = reference(wide, target)
    (expected_grad,) = torch.autograd.grad(expected, wide)
    torch.testing.assert_close(value.double(), expected, rtol=2e-5, atol=1e-6)
    assert_gradient_close(grad, expected_grad, target, ignore_index)


@pytest.mark.parametrize("name", list(TREES))
@pytest.mark.parametrize("class_weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [IGNORE, None])
def test_flat_matches_its_coarse_definition(name, class_weighted, ignore_index):
    h = TREES[name]
    table = random_table(h) if class_weighted else None
    weights = None if table is None else [row.tolist() for row in _group_rows(h, table)]
    loss = FlatLoss(h, ignore_index, class_weights=weights)

    def reference(z, t):
        return reference_flat(z, t, h, ignore_index, table)

    check_against(loss, reference, h, len(name) + 1, ignore_index)


def _group_rows(h: Hierarchy, table: torch.Tensor) -> list[torch.Tensor]:
    """Return per-level group weights (the class_weights format) of a (D, K) table."""
    rows = []
    for d in range(h.num_levels):
        weights = torch.zeros(h.num_groups(d))
        weights[h.level_index(d)] = table[d]
        rows.append(weights)
    return rows


@pytest.mark.parametrize("name", list(TREES))
@pytest.mark.parametrize("alpha", [0.0, 0.7])
@pytest.mark.parametrize("ignore_index", [IGNORE, None])
def test_hxe_matches_its_coarse_definition(name, alpha, ignore_index):
    h = TREES[name]
    loss = HXELoss(h, ignore_index, alpha=alpha)

    def reference(z, t):
        return hxe_terms(z, t, h, ignore_index, alpha).sum()

    check_against(loss, reference, h, len(name) + 2, ignore_index)
    logits, target = mixed_batch(h, seed=3, ignore_index=ignore_index)
    expected = hxe_terms(logits, target, h, ignore_index, alpha)
    torch.testing.assert_close(
        loss.level_losses(logits, target).double(), expected, rtol=2e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", list(TREES))
@pytest.mark.parametrize("beta", [0.0, 10.0])
@pytest.mark.parametrize("ignore_index", [IGNORE, None])
def test_soft_labels_match_their_coarse_definition(name, beta, ignore_index):
    h = TREES[name]
    loss = SoftLabelsLoss(h, ignore_index, beta=beta)

    def reference(z, t):
        return reference_soft(z, t, h, ignore_index, beta)

    check_against(loss, reference, h, len(name) + 3, ignore_index)


@pytest.mark.parametrize("loss_type", [FlatLoss, HXELoss, SoftLabelsLoss])
def test_coarse_losses_stay_exact_at_extreme_logits(loss_type):
    h = TREES["random25x5_shuffled"]
    loss = loss_type(h, IGNORE)
    references = {
        FlatLoss: lambda z, t: reference_flat(z, t, h, IGNORE),
        HXELoss: lambda z, t: hxe_terms(z, t, h, IGNORE, 0.5).sum(),
        SoftLabelsLoss: lambda z, t: reference_soft(z, t, h, IGNORE, 10.0),
    }
    check_against(loss, references[loss_type], h, 17, IGNORE, scale=60.0)


@pytest.mark.parametrize(
    ("loss_type", "class_weighted"),
    [(FlatLoss, False), (FlatLoss, True), (SoftLabelsLoss, False)],  # soft: no class weights
)
def test_flat_and_soft_coarse_branches_on_leaf_labels_equal_the_leaf_path_bit_for_bit(
    loss_type, class_weighted, monkeypatch
):
    h = TREES["mapillary"]
    options = {"class_weights": _group_rows(h, random_table(h))} if class_weighted else {}
    loss = loss_type(h, IGNORE, **options)
    logits, target = leaf_batch(h)
    logits.requires_grad_()

    def no_coarse_branch(*args, **kwargs):
        raise AssertionError("a batch without coarse labels entered the coarse branch")

    with monkeypatch.context() as patch:
        patch.setattr(loss_type, "_with_coarse_labels", no_coarse_branch)
        leaf_path = loss(logits, target)
    # the coarse branch, forced on the same leaf labels
    z, t = logits.reshape(2, h.num_leaves, -1), target.reshape(2, -1)
    valid = t != IGNORE
    label = t.masked_fill(~valid, 0)
    if loss_type is FlatLoss:
        forced = loss._with_coarse_labels(z, t, valid, label, IGNORE)
    else:
        tables = LevelTables.of(h, z.device)
        forced = loss._with_coarse_labels(z, valid, label, valid.sum().clamp_min(1), tables)
    assert torch.equal(leaf_path, forced)
    (grad,) = torch.autograd.grad(leaf_path, logits)
    (forced_grad,) = torch.autograd.grad(forced, logits)
    torch.testing.assert_close(grad, forced_grad, rtol=1e-5, atol=1e-8)


def test_hxe_leaf_batches_never_enter_the_coarse_branch(monkeypatch):
    h = TREES["cityscapes"]
    logits, target = leaf_batch(h)
    loss = HXELoss(h, IGNORE, alpha=0.5)

    def no_coarse_branch(*args, **kwargs):
        raise AssertionError("a batch without coarse labels entered the coarse branch")

    with monkeypatch.context() as patch:
        patch.setattr(hierarchical_module, "_coarse_level_nlls", no_coarse_branch)
        value, levels = loss(logits, target), loss.level_losses(logits, target)
    nll = hierarchical_nll(logits, target, h, IGNORE)
    assert torch.equal(value, (nll * loss.nll_weights).sum())
    assert torch.equal(levels, loss.edge_weights * torch.diff(nll, prepend=nll.new_zeros(1)))
