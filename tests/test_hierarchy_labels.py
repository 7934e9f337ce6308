"""Tests for hl_lightning/hierarchy/labels.py: a data set's class list against the tree (leaf
order, label ids of class names, coarse classes), the ignore value, ancestors' ids."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from _trees import PROPERTY, UNBALANCED, ZOO_DICT, random_trees
from hypothesis import given
from hypothesis import strategies as st

from hl_lightning import Hierarchy, HierarchyError
from hl_lightning.hierarchy import (
    ancestor_ids,
    check_ignore_index,
    class_label_ids,
    match_class_names,
)
from hl_lightning.metrics.functional.arguments import _validate_args

ZOO = Hierarchy.from_dict(ZOO_DICT)  # animal: cat, dog; plant: tree, flower; rock


def paths(tree: dict[str, Any]) -> dict[str, list[str]]:
    """Return every leaf's path of names from the root's child down to the leaf itself."""
    found: dict[str, list[str]] = {}
    stack: list[tuple[dict[str, Any], list[str]]] = [(tree, [])]
    while stack:
        node, above = stack.pop()
        for name, children in node.items():
            if children is None:
                found[name] = [*above, name]
            else:
                stack.append((children, [*above, name]))
    return found


def test_a_class_list_of_the_leaves_is_reorder() -> None:
    names = ["rock", "flower", "cat", "tree", "dog"]
    assert match_class_names(ZOO, names) == ZOO.reorder(names)


def test_coarse_classes_keep_the_named_leaves_in_list_order_the_rest_in_tree_order() -> None:
    matched = match_class_names(ZOO, ["rock", "animal", "flower", "tree"])
    assert matched.leaves == ("rock", "flower", "tree", "cat", "dog")
    assert class_label_ids(matched, ["rock", "animal", "flower", "tree"]).tolist() == [
        0,
        matched.label_id("animal"),
        1,
        2,
    ]
    assert matched.node_names[5:] == ("animal", "plant")  # internal ids after the leaves
    # an internal node named beside its own leaves: both kinds of label in one data set
    both = match_class_names(ZOO, ["animal", "cat", "plant", "rock"])
    assert both.leaves == ("cat", "rock", "dog", "tree", "flower")


def test_mismatches_are_listed_in_one_error_naming_the_source() -> None:
    tree = Hierarchy.from_dict(ZOO_DICT).with_level_names(["kind", "class"])
    with pytest.raises(HierarchyError) as info:
        match_class_names(tree, ["animal", "stone", "tree", "tree", "beast"])
    message = str(info.value)
    assert "missing from the class names: flower, rock;" in message  # not covered
    assert "not leaves of the hierarchy: stone, beast;" in message
    assert "duplicated in the class names: tree" in message
    assert "every leaf is named or lies under a named node" in message
    source = Hierarchy.from_text("animal\n\tcat\n\tdog\n")
    assert match_class_names(source, ["animal"]).leaves == ("cat", "dog")


@PROPERTY
@given(random_trees(), st.randoms(use_true_random=False))
def test_any_covering_class_list_gives_the_label_ids_of_its_names(
    tree: dict[str, Any], draw: random.Random
) -> None:
    """Each leaf named itself or through one of its ancestors, the list shuffled (a name
    sometimes dropped): the named leaves come first in list order, every name's label id
    is its node's; a leaf's ancestor at a level is the node on its path there (itself
    where its path is shorter)."""
    h = Hierarchy.from_dict(tree)
    leaf_paths = paths(tree)
    names = list(dict.fromkeys(p[draw.randrange(len(p))] for p in leaf_paths.values()))
    draw.shuffle(names)
    if len(names) > 1 and draw.random() < 0.3:
        names.pop()  # some leaves may be left uncovered
    named = [n for n in names if n in leaf_paths]
    covered_leaves = {leaf for leaf, path in leaf_paths.items() if set(path) & set(names)}
    if covered_leaves != set(leaf_paths):
        with pytest.raises(HierarchyError, match="missing from the class names"):
            match_class_names(h, names)
        return
    matched = match_class_names(h, names)
    assert matched.leaves[: len(named)] == tuple(named)
    ids = class_label_ids(matched, names).tolist()
    assert [matched.node_names[i] for i in ids] == names
    for level in range(matched.num_levels):
        ancestors = ancestor_ids(matched, level).tolist()
        for leaf, node in zip(matched.leaves, ancestors, strict=True):
            path = leaf_paths[leaf]
            assert matched.node_names[node] == path[min(level, len(path) - 1)]


def test_class_label_ids_name_every_unknown_name() -> None:
    assert class_label_ids(ZOO, ["plant", "cat"]).tolist() == [ZOO.label_id("plant"), 0]
    with pytest.raises(HierarchyError, match="not nodes of the hierarchy: bush, stone"):
        class_label_ids(ZOO, ["bush", "cat", "stone"])


def test_ignore_index_may_be_no_node_id_with_the_metrics_wording() -> None:
    h = Hierarchy.from_dict(UNBALANCED)  # leaves a, c, e, f; internal b (4), d (5)
    check_ignore_index(h, 255)
    check_ignore_index(h, -1)
    check_ignore_index(h, 6)
    with pytest.raises(ValueError) as info:
        check_ignore_index(h, 1)
    assert str(info.value) == (
        "ignore_index=1 is the label id of leaf 'c'; use a value outside the node ids 0..5 "
        "(e.g. 255)"
    )
    with pytest.raises(ValueError) as info:
        check_ignore_index(h, 5, optional=True)
    assert str(info.value) == (
        "ignore_index=5 is the label id of internal node 'd'; use a value outside the node "
        "ids 0..5 (e.g. 255), or None"
    )
    many = Hierarchy.flat([f"c{i}" for i in range(300)])
    with pytest.raises(
        ValueError, match=r"ignore_index=255 is the label id of leaf 'c255'.*e\.g\. -1"
    ):
        check_ignore_index(many, 255)


def test_ancestor_ids_on_the_unbalanced_tree() -> None:
    h = Hierarchy.from_dict(UNBALANCED)  # a; b: c, d: e, f
    b, d = h.label_id("b"), h.label_id("d")
    assert ancestor_ids(h, 0).tolist() == [0, b, b, b]
    assert ancestor_ids(h, 1).tolist() == [0, 1, d, d]  # a: shallow, itself; c: itself
    assert ancestor_ids(h, 2).tolist() == [0, 1, 2, 3]
    assert torch.equal(ancestor_ids(h, -1), torch.arange(4))


@pytest.mark.parametrize("ignore_index", [1, 4, 5])
def test_the_data_and_the_metrics_refuse_an_ignore_index_in_one_wording(ignore_index: int) -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    with pytest.raises(ValueError) as metrics:
        _validate_args(h, ignore_index)
    with pytest.raises(ValueError) as data:
        check_ignore_index(h, ignore_index, optional=True)
    assert str(data.value) == str(metrics.value)
