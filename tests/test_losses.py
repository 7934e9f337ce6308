"""Tests for hl_lightning.losses: exactness, stability, ignore handling and input errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _reference import assert_gradient_close
from hypothesis import given, settings
from hypothesis import strategies as st

from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.losses import HierarchicalLoss, class_weight_table, hierarchical_nll
from hl_lightning.losses._tree_sums import fast_exp

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}


def reference_nll(
    logits: torch.Tensor,
    target: torch.Tensor,
    h: Hierarchy,
    ignore_index: int | None = None,
    class_weights: list[list[float]] | None = None,
) -> torch.Tensor:
    """The paper's definition in float64, one level at a time with explicit group masks.

    With ``class_weights`` (one list of group weights per level), each level's mean is
    ``sum w(group of target) * nll / sum w(group of target)`` (0 if that sum is 0).
    """
    z = logits.double()
    valid = (
        torch.ones_like(target, dtype=torch.bool)
        if ignore_index is None
        else (target != ignore_index)
    )
    leaf = target.masked_fill(~valid, 0)
    log_total = torch.logsumexp(z, dim=1)
    levels = []
    for d in range(h.num_levels):
        index = h.level_index(d).to(z.device)
        shape = [1, -1] + [1] * (z.dim() - 2)
        member = index.view(shape) == index[leaf].unsqueeze(1)
        log_group = torch.logsumexp(z.masked_fill(~member, float("-inf")), dim=1)
        weight = valid.double()
        if class_weights is not None:
            weight = weight * torch.tensor(class_weights[d], dtype=torch.float64)[index[leaf]]
        nll = (log_total - log_group) * weight
        total = weight.sum()
        levels.append(nll.sum() / total if total > 0 else nll.sum() * 0)
    return torch.stack(levels)


def assert_matches_reference(
    logits, target, h, ignore_index=None, rtol=1e-5, class_weights=None
) -> None:
    """Loss and gradient of a random level weighting agree with the float64 reference."""
    x = logits.detach().float().requires_grad_()
    x64 = logits.detach().double().requires_grad_()
    weights = torch.rand(h.num_levels, generator=torch.Generator().manual_seed(1)) + 0.1
    ours = hierarchical_nll(x, target, h, ignore_index, class_weights=class_weights)
    ref = reference_nll(x64, target, h, ignore_index, class_weights)
    (ours * weights).sum().backward()
    (ref * weights.double()).sum().backward()
    assert torch.isfinite(ours).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(ours.double(), ref.detach(), rtol=rtol, atol=1e-6)
    assert_gradient_close(x.grad, x64.grad, target, ignore_index, weights.sum().item(), rtol)


def random_class_weights(h: Hierarchy, gen: torch.Generator) -> list[list[float]]:
    """Return per-level group weights in [0, 3), some exactly 0."""
    weights = []
    for d in range(h.num_levels):
        w = torch.rand(h.num_groups(d), generator=gen) * 3
        w[torch.rand(h.num_groups(d), generator=gen) < 0.2] = 0.0
        weights.append(w.tolist())
    return weights


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e3, 1e4])
def test_matches_float64_reference_on_toy_tree_at_any_logit_scale(scale):
    h = Hierarchy.from_dict(TOY)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, h.num_leaves, 6, 5, generator=gen) * scale
    target = torch.randint(0, h.num_leaves, (3, 6, 5), generator=gen)
    assert_matches_reference(logits, target, h)


@pytest.mark.parametrize("scale", [1.0, 1e4])
@pytest.mark.parametrize("tree", ["faces_tree.txt", "mapillary_tree.txt"])
def test_matches_float64_reference_on_seed_trees(paper_trees, tree, scale):
    h = Hierarchy.from_file(paper_trees / tree)
    h = h.reorder(sorted(h.leaves))  # label ids no longer follow tree order
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, h.num_leaves, 9, 7, generator=gen) * scale
    target = torch.randint(0, h.num_leaves, (2, 9, 7), generator=gen)
    target[0, :2] = 255
    assert_matches_reference(logits, target, h, ignore_index=255)


def test_matches_float64_reference_on_deep_random_tree():
    h = random_hierarchy(300, 6, seed=3)
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, h.num_leaves, 4, 4, generator=gen) * 50
    target = torch.randint(0, h.num_leaves, (2, 4, 4), generator=gen)
    assert_matches_reference(logits, target, h)


def test_extreme_logits_mixing_fast_and_exact_pixels_stay_exact():
    h = Hierarchy.from_dict(TOY)
    logits = torch.zeros(1, h.num_leaves, 1, 3)
    logits[0, 0, 0, 0] = 1e4  # target's whole branch has probability exp(-1e4)
    logits[0, 3, 0, 1] = -1e4  # target's leaf improbable but its group is not
    target = torch.tensor([[[2, 3, 1]]])
    assert_matches_reference(logits, target, h)
    levels = hierarchical_nll(logits, target, h)
    # level 0: vehicle (2 of e^0 against e^1e4), nature (1 of 4 e^0), vehicle (2 of 5 e^0)
    expected = (1e4 - math.log(2) + math.log(4) + math.log(5 / 2)) / 3
    assert levels[0].item() == pytest.approx(expected, rel=1e-6)


def test_the_cpus_fast_exponential_is_within_its_stated_bound_of_exp():
    # exp2(x * log2(e)): within a relative (1 + |x|) * 1.2e-7 over the whole normal fp32 range
    x = torch.linspace(-87.0, 88.0, 400_001)
    got = fast_exp(x, torch.empty_like(x)).double()
    exact = x.double().exp()
    assert ((got - exact).abs() / exact <= (1 + x.double().abs()) * 1.2e-7).all()
    assert fast_exp(torch.tensor([float("-inf")]), torch.empty(1)).item() == 0.0


@pytest.mark.parametrize(
    "offset", [-200.0, -60.0, -24.0, -22.0, -10.0, 0.0, 40.0, 68.0, 70.0, 500.0]
)
def test_any_common_offset_of_the_logits_keeps_loss_and_gradient_exact(offset):
    # Unshifted exponentials serve while every pixel's sum of exp(logits) stays in a safe
    # range (largest logits from about -23 to 69), a per-pixel shift beyond it: offsets on both
    # sides of that range, with target probabilities from 1 down past the exact-path limit.
    h = Hierarchy.from_dict(TOY)
    gen = torch.Generator().manual_seed(5)
    gaps = torch.tensor([0.0, 5.0, 20.0, 30.0, 35.0, 40.0, 45.0, 55.0, 57.0, 58.0, 60.0, 80.0])
    logits = torch.randn(2, h.num_leaves, gaps.numel(), generator=gen)
    target = torch.randint(0, h.num_leaves, (2, gaps.numel()), generator=gen)
    best = logits.amax(dim=1)
    logits.scatter_(1, target.unsqueeze(1), (best - gaps).unsqueeze(1))  # target far below
    assert_matches_reference(logits + offset, target, h)
    torch.testing.assert_close(
        hierarchical_nll(logits + offset, target, h), hierarchical_nll(logits, target, h)
    )


@settings(max_examples=40, deadline=None)
@given(
    num_leaves=st.integers(2, 60),
    depth=st.integers(1, 5),
    tree_seed=st.integers(0, 10**6),
    data_seed=st.integers(0, 10**6),
    scale=st.sampled_from([0.1, 1.0, 10.0, 300.0, 1e4]),
    ignore_share=st.floats(0.0, 1.0),
)
def test_matches_float64_reference_on_random_trees(
    num_leaves, depth, tree_seed, data_seed, scale, ignore_share
):
    depth = min(depth, num_leaves.bit_length())  # a depth the leaf count can fill
    h = random_hierarchy(num_leaves, depth, seed=tree_seed)
    gen = torch.Generator().manual_seed(data_seed)
    order = torch.randperm(num_leaves, generator=gen).tolist()
    h = h.reorder([h.leaves[i] for i in order])
    logits = torch.randn(2, num_leaves, 3, 4, generator=gen) * scale
    target = torch.randint(0, num_leaves, (2, 3, 4), generator=gen)
    target[torch.rand(target.shape, generator=gen) < ignore_share] = 255
    assert_matches_reference(logits, target, h, ignore_index=255)


# ---------------------------------------------------------------------------- class weights
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
@pytest.mark.parametrize("tree", ["faces_tree.txt", "mapillary_tree.txt"])
def test_class_weighted_levels_match_float64_reference(paper_trees, tree, scale):
    h = Hierarchy.from_file(paper_trees / tree)
    h = h.reorder(sorted(h.leaves))
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, h.num_leaves, 9, 7, generator=gen) * scale
    target = torch.randint(0, h.num_leaves, (2, 9, 7), generator=gen)
    target[1, :3] = 255
    weights = random_class_weights(h, gen)
    assert_matches_reference(logits, target, h, ignore_index=255, class_weights=weights)


@settings(max_examples=25, deadline=None)
@given(
    num_leaves=st.integers(2, 40),
    depth=st.integers(1, 4),
    seed=st.integers(0, 10**6),
    scale=st.sampled_from([0.1, 1.0, 30.0, 1e4]),
)
def test_class_weighted_levels_match_float64_reference_on_random_trees(
    num_leaves, depth, seed, scale
):
    depth = min(depth, num_leaves.bit_length())
    h = random_hierarchy(num_leaves, depth, seed=seed, shuffle_leaves=True)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, num_leaves, 3, 4, generator=gen) * scale
    target = torch.randint(0, num_leaves, (2, 3, 4), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.2] = 255
    weights = random_class_weights(h, gen)
    assert_matches_reference(logits, target, h, ignore_index=255, class_weights=weights)


def test_class_weights_on_the_flat_hierarchy_equal_weighted_cross_entropy():
    h = Hierarchy.flat([f"c{i}" for i in range(5)])
    weight = torch.tensor([0.5, 2.0, 1.0, 0.0, 3.0])
    logits = torch.randn(2, 5, 6, 6, requires_grad=True)
    target = torch.randint(0, 5, (2, 6, 6))
    target[0, 0] = 255
    ours = HierarchicalLoss(h, class_weights=[weight.tolist()])(logits, target)
    ce = F.cross_entropy(logits, target, weight=weight, ignore_index=255)
    torch.testing.assert_close(ours, ce)
    torch.testing.assert_close(*(torch.autograd.grad(v, logits)[0] for v in (ours, ce)))


def test_unit_class_weights_change_nothing():
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    ones = [[1.0] * h.num_groups(d) for d in range(h.num_levels)]
    torch.testing.assert_close(
        hierarchical_nll(logits, target, h, class_weights=ones), hierarchical_nll(logits, target, h)
    )


def test_class_weights_by_name_list_or_none_per_level():
    h = Hierarchy.from_dict(TOY)  # level 0: sky, vehicle, nature; level 1: sky, car, truck, ...
    table = class_weight_table(h, [{"vehicle": 2.0}, None])
    assert table.tolist() == [[1.0, 2.0, 2.0, 1.0, 1.0], [1.0] * 5]
    table = class_weight_table(h, [None, [1.0, 2.0, 3.0, 4.0, 5.0]])
    assert table[1].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # leaf order is group order here
    shuffled = h.reorder(["grass", "car", "sky", "tree", "truck"])
    assert class_weight_table(shuffled, [None, {"car": 7.0}])[1].tolist() == [1, 7, 1, 1, 1]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([None], r"one entry per level \(2: level0, level1\), got 1"),
        ({"sky": 1.0}, "got a mapping"),
        ([{"bus": 1.0}, None], "level level0: no groups bus"),
        ([[1.0, 2.0], None], r"2 weights for 3 groups \(sky, vehicle, nature\)"),
        ([[1.0, -1.0, 1.0], None], "finite and >= 0"),
        ([None, {"car": float("nan")}], "finite and >= 0"),
    ],
)
def test_bad_class_weights_are_named(weights, message):
    with pytest.raises(ValueError, match=message):
        HierarchicalLoss(Hierarchy.from_dict(TOY), class_weights=weights)


def test_a_class_weight_table_of_the_wrong_shape_is_refused():
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(1, 5, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"shape \(levels, leaves\) = \(2, 5\), got \(2, 3\)"):
        hierarchical_nll(logits, target, h, class_weights=torch.ones(2, 3))
    table = class_weight_table(h, [[1.0, 2.0, 3.0], None])
    torch.testing.assert_close(
        hierarchical_nll(logits, target, h, class_weights=table),
        hierarchical_nll(logits, target, h, class_weights=[[1.0, 2.0, 3.0], None]),
    )


def test_zero_total_class_weight_gives_zero_and_zero_grad():
    h = Hierarchy.from_dict(TOY)
    logits = torch.randn(1, 5, 2, 2, requires_grad=True)
    target = torch.zeros(1, 2, 2, dtype=torch.long)  # all sky, which weighs 0
    loss = HierarchicalLoss(h, class_weights=[{"sky": 0.0}, {"sky": 0.0}])(logits, target)
    loss.backward()
    assert loss.item() == 0.0 and not logits.grad.any()


def test_class_weighted_loss_under_autocast_is_fp32_and_finite():
    h = Hierarchy.from_dict(TOY)
    logits = (torch.randn(2, 5, 4, 4) * 100).bfloat16().requires_grad_()
    target = torch.randint(0, 5, (2, 4, 4))
    loss = HierarchicalLoss(h, class_weights=[[1.0, 2.0, 0.5], None])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(logits, target)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(logits.grad.float()).all()


def test_flat_hierarchy_equals_cross_entropy():
    h = Hierarchy.flat([f"c{i}" for i in range(7)])
    gen = torch.Generator().manual_seed(4)
    logits = (torch.randn(4, 7, 10, 10, generator=gen) * 5).requires_grad_()
    target = torch.randint(0, 7, (4, 10, 10), generator=gen)
    target[:, 0] = 255
    ours = HierarchicalLoss(h)(logits, target)
    (grad,) = torch.autograd.grad(ours, logits)
    ce = F.cross_entropy(logits, target, ignore_index=255)
    (ce_grad,) = torch.autograd.grad(ce, logits)
    torch.testing.assert_close(ours, ce, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, ce_grad, rtol=1e-5, atol=1e-7)


def test_leaf_level_equals_cross_entropy():
    h = Hierarchy.from_dict(TOY).reorder(["grass", "car", "sky", "tree", "truck"])
    logits = torch.randn(2, 5, 8, 8)
    target = torch.randint(0, 5, (2, 8, 8))
    levels = hierarchical_nll(logits, target, h)
    torch.testing.assert_close(levels[-1], F.cross_entropy(logits, target), rtol=1e-6, atol=1e-6)


def test_all_ignored_batch_gives_zero_loss_and_zero_grad():
    h = Hierarchy.from_dict(TOY)
    logits = torch.randn(2, 5, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    loss = HierarchicalLoss(h)(logits, target)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_ignored_pixels_do_not_change_loss_or_get_gradient():
    h = Hierarchy.from_dict(TOY)
    logits = torch.randn(1, 5, 2, 6, requires_grad=True)
    target = torch.randint(0, 5, (1, 2, 6))
    target[0, 1] = 255
    loss = HierarchicalLoss(h)(logits, target)
    loss.backward()
    assert torch.equal(logits.grad[0, :, 1], torch.zeros(5, 6))
    kept = HierarchicalLoss(h)(logits[:, :, :1].detach(), target[:, :1])
    torch.testing.assert_close(loss.detach(), kept)


def test_level_weights_scale_levels_and_total():
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(2, 5, 4, 4), torch.randint(0, 5, (2, 4, 4))
    plain = hierarchical_nll(logits, target, h)
    weighted = hierarchical_nll(logits, target, h, level_weights=[2.0, 0.5])
    torch.testing.assert_close(weighted, plain * torch.tensor([2.0, 0.5]))
    total = HierarchicalLoss(h, level_weights=[2.0, 0.5])(logits, target)
    torch.testing.assert_close(total, weighted.sum())


def test_coarse_mistake_costs_more_than_fine_mistake():
    h = Hierarchy.from_dict(TOY)
    target = torch.tensor([[[1]]])  # car
    inside = torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0]).view(1, 5, 1, 1)  # says truck
    across = torch.tensor([5.0, 0.0, 0.0, 0.0, 0.0]).view(1, 5, 1, 1)  # says sky
    loss = HierarchicalLoss(h)
    assert loss(across, target) > loss(inside, target)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_are_computed_in_fp32(dtype):
    h = Hierarchy.from_dict(TOY)
    logits = (torch.randn(2, 5, 4, 4) * 60).to(dtype).requires_grad_()
    target = torch.randint(0, 5, (2, 4, 4))
    levels = hierarchical_nll(logits, target, h)
    assert levels.dtype == torch.float32
    levels.sum().backward()
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad.float()).all()
    torch.testing.assert_close(
        levels.double(), reference_nll(logits.detach(), target, h), rtol=1e-5, atol=1e-6
    )


def test_under_cpu_autocast_loss_is_fp32_and_finite():
    h = Hierarchy.from_dict(TOY)
    conv = torch.nn.Conv2d(3, 5, 1)
    with torch.no_grad():
        conv.weight.mul_(1e3)
    image, target = torch.randn(2, 3, 8, 8), torch.randint(0, 5, (2, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(image)
        assert logits.dtype == torch.bfloat16
        loss = HierarchicalLoss(h)(logits, target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(conv.weight.grad).all()


def test_accepts_any_spatial_rank():
    h = Hierarchy.from_dict(TOY)
    logits = torch.randn(6, 5)
    target = torch.randint(0, 5, (6,))
    torch.testing.assert_close(
        hierarchical_nll(logits, target, h).double(), reference_nll(logits, target, h)
    )
    volume = torch.randn(1, 5, 2, 3, 4)
    assert hierarchical_nll(volume, torch.randint(0, 5, (1, 2, 3, 4)), h).shape == (2,)


def test_non_contiguous_logits_give_the_same_loss():
    h = Hierarchy.from_dict(TOY)
    logits, target = torch.randn(2, 5, 6, 6), torch.randint(0, 5, (2, 6, 6))
    channels_last = logits.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(
        hierarchical_nll(channels_last, target, h), hierarchical_nll(logits, target, h)
    )


def test_wrong_channel_count_names_both_numbers():
    h = Hierarchy.from_dict(TOY)
    with pytest.raises(ValueError, match="logits have 4 channels but the hierarchy has 5 leaves"):
        HierarchicalLoss(h)(torch.randn(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_out_of_range_labels_are_listed():
    h = Hierarchy.from_dict(TOY)
    target = torch.tensor([[[0, 7], [-1, 255]]])
    with pytest.raises(ValueError, match=r"label ids \[-1, 7\] outside \[0, 7\)"):
        HierarchicalLoss(h)(torch.randn(1, 5, 2, 2), target)
    with pytest.raises(ValueError, match=r"\[-1, 7, 255\]"):
        hierarchical_nll(torch.randn(1, 5, 2, 2), target, h, ignore_index=None)


@pytest.mark.parametrize(
    ("logits", "target", "message"),
    [
        (
            torch.zeros(1, 5, 2, 2, dtype=torch.long),
            torch.zeros(1, 2, 2).long(),
            "floating point tensor",
        ),
        (torch.zeros(1, 5, 2, 2), torch.zeros(1, 2, 2), "integer tensor of label ids"),
        (torch.zeros(1, 5, 2, 2), torch.zeros(1, 2, 3).long(), r"expected \(1, 2, 2\)"),
        (torch.zeros(5), torch.zeros(1).long(), r"shape \(B, K, ...\)"),
    ],
)
def test_bad_dtypes_and_shapes_are_named(logits, target, message):
    with pytest.raises(ValueError, match=message):
        hierarchical_nll(logits, target, Hierarchy.from_dict(TOY))


def test_wrong_number_of_level_weights_is_refused():
    h = Hierarchy.from_dict(TOY)
    with pytest.raises(ValueError, match="3 level weights given for a hierarchy with 2 levels"):
        HierarchicalLoss(h, level_weights=[1, 1, 1])
    with pytest.raises(ValueError, match="1 level weights given for 2 levels"):
        hierarchical_nll(torch.randn(1, 5, 1, 1), torch.zeros(1, 1, 1).long(), h, None, [1.0])


def test_loss_module_follows_its_device_and_is_a_plain_module():
    loss = HierarchicalLoss(Hierarchy.from_dict(TOY), level_weights=[1.0, 2.0])
    assert loss.state_dict() == {}  # everything derives from the hierarchy
    assert "levels=2" in repr(loss)
    assert loss.to(torch.float64).level_weights.dtype == torch.float64


def test_strided_logits_give_the_same_loss_and_gradient():
    h = Hierarchy.from_dict(TOY)
    wide = torch.randn(2, 5, 12, requires_grad=True)
    target = torch.randint(0, 5, (2, 6))
    strided = wide[:, :, ::2]  # (B, K, S) with a non-unit pixel stride
    hierarchical_nll(strided, target, h).sum().backward()
    dense = wide.detach()[:, :, ::2].contiguous().requires_grad_()
    hierarchical_nll(dense, target, h).sum().backward()
    torch.testing.assert_close(wide.grad[:, :, ::2], dense.grad)


def test_an_ignored_pixel_whose_stand_in_leaf_has_no_probability_gets_zero_gradient():
    # An ignored pixel is computed with leaf 0 as its stand-in target; where leaf 0's
    # exponential underflows to 0, its group sums are 0 and must not turn into NaN.
    h = Hierarchy.from_dict(TOY)
    logits = torch.randn(1, 5, 2, 2)
    logits[0, 0, 0, 0] = -300.0  # leaf 0 at the ignored pixel: exp underflows
    target = torch.tensor([[[255, 1], [2, 3]]])
    x = logits.clone().requires_grad_()
    levels = hierarchical_nll(x, target, h, ignore_index=255)
    levels.sum().backward()
    assert torch.isfinite(levels).all() and torch.isfinite(x.grad).all()
    assert not x.grad[0, :, 0, 0].any()
    assert_matches_reference(logits, target, h, ignore_index=255)
