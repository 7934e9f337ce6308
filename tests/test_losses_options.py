"""Tests for hl_lightning/losses/_options.py: every loss checks its options at set-up, in one
place and with one wording (the wording of the metrics' checks), and names the bad option."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from hl_lightning import Hierarchy
from hl_lightning.losses import (
    LOSSES,
    FlatLoss,
    HierarchicalLoss,
    TreeMinLoss,
    build_loss,
    hierarchical_nll,
    tree_min_level_losses,
)

TOY = {"sky": None, "vehicle": {"car": None, "truck": None}, "nature": ["tree", "grass"]}
LOSS_NAMES = list(LOSSES)
NUMERIC_OPTIONS = [("hxe", "alpha"), ("soft_labels", "beta"), ("tree_min", "gamma")]


def toy() -> Hierarchy:
    """Return the five-leaf, two-level test tree (leaves sky, car, truck, tree, grass)."""
    return Hierarchy.from_dict(TOY)


def inputs(loss: torch.nn.Module, h: Hierarchy) -> tuple[torch.Tensor, torch.Tensor]:
    """Return logits (2, C, 3, 3) for the loss (N node logits for tree-min) and leaf targets."""
    channels = loss.num_nodes if isinstance(loss, TreeMinLoss) else h.num_leaves
    return torch.randn(2, channels, 3, 3), torch.randint(0, h.num_leaves, (2, 3, 3))


# ------------------------------------------------------------------ ignore_index
@pytest.mark.parametrize("ignore_index", [0, 2, 4, 5, 6])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_an_ignore_index_that_is_a_node_id_is_refused_naming_the_node(name, ignore_index):
    h = toy()  # leaves 0..4, internal nodes 5 and 6 (coarse labels)
    node = h.node_names[ignore_index]
    what = "leaf" if ignore_index < h.num_leaves else "internal node"
    match = (
        rf"ignore_index={ignore_index} is the label id of {what} '{node}'; "
        r"use a value outside the node ids 0\.\.6 \(e\.g\. 255\), or None"
    )
    with pytest.raises(ValueError, match=match):
        build_loss(name, h, ignore_index)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_the_default_ignore_index_is_refused_where_255_is_a_class(name):
    h = Hierarchy.flat([f"c{i}" for i in range(300)])
    match = (
        r"ignore_index=255 is the label id of leaf 'c255' \(with 300 node ids the default 255 "
        r"is one\); use a value outside the node ids 0\.\.299 \(e\.g\. -1\), or None"
    )
    with pytest.raises(ValueError, match=match):
        build_loss(name, h)
    assert build_loss(name, h, -1).ignore_index == -1
    assert build_loss(name, h, None).ignore_index is None


@pytest.mark.parametrize("bad", [True, False, 2.0, "255", [255]])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_an_ignore_index_that_is_not_an_int_is_refused(name, bad):
    match = rf"ignore_index must be an int or None, got {re.escape(repr(bad))}"
    with pytest.raises(ValueError, match=match):
        build_loss(name, toy(), bad)


def test_the_functional_losses_refuse_a_class_id_as_ignore_index():
    h = toy()
    logits, target = torch.randn(1, 5, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="ignore_index=1 is the label id of leaf 'car'"):
        hierarchical_nll(logits, target, h, ignore_index=1)
    with pytest.raises(ValueError, match="ignore_index=1 is the label id of leaf 'car'"):
        tree_min_level_losses(torch.randn(1, 7, 2, 2), target, h, ignore_index=1)
    with pytest.raises(ValueError, match="ignore_index must be an int or None, got True"):
        hierarchical_nll(logits, target, h, ignore_index=True)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_hierarchy_that_is_not_a_hierarchy_is_named(name):
    with pytest.raises(ValueError, match="hierarchy must be a Hierarchy, got dict"):
        build_loss(name, TOY)  # type: ignore[arg-type]


# ------------------------------------------------------------------ numeric options
@pytest.mark.parametrize(
    ("value", "match"),
    [
        (True, "must be a number, got True"),
        ("2", "must be a number, got '2'"),
        (None, "must be a number, got None"),
        ([1.0], r"must be a number, got \[1\.0\]"),
        (float("inf"), "must be finite and >= 0, got inf"),
        (float("-inf"), "must be finite and >= 0, got -inf"),
        (float("nan"), "must be finite and >= 0, got nan"),
        (-0.5, "must be finite and >= 0, got -0.5"),
    ],
)
@pytest.mark.parametrize(("name", "option"), NUMERIC_OPTIONS)
def test_a_numeric_option_must_be_a_finite_number(name: str, option: str, value: Any, match: str):
    with pytest.raises(ValueError, match=f"{option} {match}"):
        build_loss(name, toy(), **{option: value})


@pytest.mark.parametrize(("name", "option"), NUMERIC_OPTIONS)
def test_integer_numeric_options_are_taken_as_floats(name: str, option: str):
    loss = build_loss(name, toy(), **{option: 2})
    assert getattr(loss, option) == 2.0 and isinstance(getattr(loss, option), float)


# ------------------------------------------------------------------ level weights
@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (2.0, r"level_weights must be a sequence of 2 numbers \(levels level0, level1\), got 2\.0"),
        ("ab", r"level_weights must be a sequence of 2 numbers .*, got 'ab'"),
        ({"level0": 1.0}, r"level_weights must be a sequence of 2 numbers .*, got \{'level0'"),
        ([True, 1.0], r"level_weights must be numbers, got \[True, 1\.0\]"),
        (["1", 1.0], r"level_weights must be numbers, got \['1', 1\.0\]"),
        ([None, 1.0], r"level_weights must be numbers, got \[None, 1\.0\]"),
    ],
)
@pytest.mark.parametrize("name", ["hierarchical", "tree_min"])
def test_level_weights_must_be_a_sequence_of_numbers(name: str, weights: Any, match: str):
    with pytest.raises(ValueError, match=match):
        build_loss(name, toy(), level_weights=weights)


@pytest.mark.parametrize("name", ["hierarchical", "tree_min"])
def test_level_weights_may_be_any_sequence_of_real_numbers(name: str):
    loss = build_loss(name, toy(), level_weights=(1, 0.5))
    assert loss.level_weights.tolist() == [1.0, 0.5]


# ------------------------------------------------------------------ class weights
@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (
            2.0,
            r"class_weights must be a sequence with one entry per level \(2: level0, level1\), "
            r"got 2\.0",
        ),
        ("ab", r"class_weights must be a sequence with one entry per level .*, got 'ab'"),
        (
            [None, 3.0],
            r"class_weights of level level1 must be None, a list of 5 weights or a mapping from "
            r"group name to weight, got 3\.0",
        ),
        ([None, "abcde"], r"class_weights of level level1 must be None, .*, got 'abcde'"),
        ([None, [True, 1, 1, 1, 1]], r"class_weights of level level1 must be numbers, got \[True"),
        ([None, {"car": True}], r"of level level1 must be numbers, got \{'car': True"),
        ([None, {"car": "2"}], r"of level level1 must be numbers, got \{'car': '2'"),
        ([None, [float("inf")] * 5], r"class_weights of level level1 must be finite and >= 0"),
        ([[0, 0.0, 0], [0.0] * 5], r"class_weights are all 0 .*: no pixel would be trained"),
    ],
)
@pytest.mark.parametrize("loss_class", [HierarchicalLoss, FlatLoss])
def test_class_weights_must_be_finite_sequences_of_the_right_length(
    loss_class: type, weights: Any, match: str
):
    with pytest.raises(ValueError, match=match):
        loss_class(toy(), class_weights=weights)


def test_class_weights_that_leave_nothing_to_train_are_refused():
    h = toy()
    # the flat loss uses the finest level only
    with pytest.raises(
        ValueError, match=r"class_weights are all 0 at the levels this loss trains \(level1\)"
    ):
        FlatLoss(h, class_weights=[None, [0.0] * 5])
    HierarchicalLoss(h, class_weights=[None, [0.0] * 5])  # level0 still trains
    with pytest.raises(ValueError, match=r"at every level with a level weight above 0 \(level1\)"):
        HierarchicalLoss(h, level_weights=[0.0, 1.0], class_weights=[None, [0.0] * 5])


# ------------------------------------------------------------------ tensors at call time
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_target_or_logits_that_is_not_a_tensor_is_named(name: str):
    h = toy()
    loss = build_loss(name, h)
    logits, target = inputs(loss, h)
    with pytest.raises(TypeError, match="target must be a tensor of label ids, got list"):
        loss(logits, target.tolist())
    with pytest.raises(ValueError, match="target must be a tensor of label ids, got ndarray"):
        loss(logits, target.numpy())
    with pytest.raises(TypeError, match="logits must be a tensor, got ndarray"):
        loss(logits.numpy(), target)
