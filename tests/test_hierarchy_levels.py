"""Tests for hl_lightning/hierarchy/levels.py and the node ids of Hierarchy: node_names,
num_nodes, label_id, node_level, node_level_matrix and labels_at_level on coarse labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from _trees import FACES_LEAVES, PROPERTY, UNBALANCED, random_trees
from hypothesis import given
from hypothesis import strategies as st

from hl_lightning import Hierarchy, HierarchyError
from hl_lightning.hierarchies import cityscapes_hierarchy, mapillary_paper_hierarchy
from hl_lightning.hierarchies.random import random_hierarchy

FACES_INTERNAL = ("foreground", "face", "mouth", "skin", "eyes", "eyebrows")
# group id at each level (rows) of every faces node (columns: the leaves, then FACES_INTERNAL)
FACES_NODE_LEVELS = [
    [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, -1, 2, 2, 2, 2, 2],
    [0, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5, -1, -1, 2, 3, 4, 5],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1, -1, -1, -1, -1, -1],
]


def reference_node_table(tree: dict[str, Any], h: Hierarchy) -> tuple[tuple[str, ...], list]:
    """Return node names by id and the (D, N) table, straight from the definitions.

    Ids: the leaves in ``h``'s leaf order, then the internal nodes sorted by (depth, tree
    order). Entry (d, n): the index in ``h.group_names(d)`` of n's ancestor-or-self at depth
    d; a leaf shallower than d is itself; an internal node says nothing (-1) below its depth.
    """
    paths: dict[str, list[str]] = {}
    internal: list[tuple[int, int, str]] = []
    stack: list[tuple[str, Any, list[str]]] = [(k, v, []) for k, v in reversed(tree.items())]
    while stack:
        name, children, parents = stack.pop()
        path = [*parents, name]
        paths[name] = path
        if children is not None:
            internal.append((len(path) - 1, len(paths), name))
            stack.extend((k, v, path) for k, v in reversed(children.items()))
    names = h.leaves + tuple(name for *_, name in sorted(internal))
    table = []
    for d in range(h.num_levels):
        row = []
        for name in names:
            path = paths[name]
            if d < len(path):
                row.append(h.group_names(d).index(path[d]))
            else:
                row.append(h.group_names(d).index(name) if name in h.leaves else -1)
        table.append(row)
    return names, table


# ------------------------------------------------------------------ the paper's trees
def test_faces_node_ids_levels_and_table(paper_trees: Path) -> None:
    h = Hierarchy.from_file(paper_trees / "faces_tree.txt")
    assert h.node_names == FACES_LEAVES + FACES_INTERNAL
    assert h.num_nodes == 17
    assert [h.label_id(name) for name in h.node_names] == list(range(17))
    assert h.label_id("foreground") == 11 and h.label_id("eyebrows") == 16
    assert [h.node_level(i) for i in range(17)] == [3] * 11 + [0, 1, 2, 2, 2, 2]
    table = h.node_level_matrix()
    assert table.dtype == torch.long and table.tolist() == FACES_NODE_LEVELS
    assert torch.equal(table[:, :11], h.level_matrix())


def test_faces_coarse_labels_map_down_to_their_level(paper_trees: Path) -> None:
    h = Hierarchy.from_file(paper_trees / "faces_tree.txt")
    mouth, face, nose, background = (h.label_id(n) for n in ("mouth", "face", "nose", "background"))
    labels = torch.tensor([[mouth, face], [nose, background]], dtype=torch.uint8)
    expected = [
        [[1, 1], [1, 0]],
        [[2, 2], [2, 0]],
        [[2, 255], [3, 0]],  # "mouth" is group 2 (mouth) at level 2, "face" unknown there
        [[255, 255], [6, 0]],
    ]
    for d in range(4):
        assert h.labels_at_level(labels, d, ignore_index=255).tolist() == expected[d]


def test_mapillary_internal_nodes_are_coarse_to_fine() -> None:
    h = mapillary_paper_hierarchy()
    categories = ("animal", "construction", "human", "marking", "nature", "object", "void")
    groups = ("barrier", "flat", "structure", "rider", "support", "traffic-sign", "vehicle")
    assert h.node_names[66:] == categories + groups
    assert h.num_nodes == 80
    assert [h.node_level(i) for i in range(66, 80)] == [0] * 7 + [1] * 7
    table = h.node_level_matrix()
    assert table[0, 66:73].tolist() == list(range(7))
    assert (table[1:, 66:73] == -1).all() and (table[2, 73:] == -1).all()
    for g in range(73, 80):  # a depth-1 node's group at level 1 is itself
        assert h.group_names(1)[table[1, g]] == h.node_names[g]


def test_cityscapes_internal_nodes_skip_the_shallow_leaf_sky() -> None:
    h = cityscapes_hierarchy()
    internal = ("flat", "construction", "object", "nature", "human", "vehicle")
    assert h.node_names[19:] == internal
    assert h.node_level_matrix()[:, 19:].tolist() == [[0, 1, 2, 3, 5, 6], [-1] * 6]
    assert h.node_level(h.label_id("sky")) == 1  # a leaf: known at every level


# ------------------------------------------------------------------ the unbalanced tree
def test_unbalanced_node_ids_follow_the_leaf_order() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    assert h.node_names == ("a", "c", "e", "f", "b", "d")
    r = h.reorder(["f", "a", "e", "c"])
    assert r.node_names == ("f", "a", "e", "c", "b", "d")
    assert r.node_level_matrix().tolist() == [
        [1, 0, 1, 1, 1, 1],
        [2, 0, 2, 1, -1, 2],
        [3, 0, 2, 1, -1, -1],
    ]
    assert [r.node_level(i) for i in range(6)] == [2, 2, 2, 2, 0, 1]
    assert Hierarchy.from_config(r.to_config()).node_names == r.node_names


def test_a_flat_hierarchy_has_only_leaf_ids() -> None:
    h = Hierarchy.flat(["x", "y", "z"])
    assert h.node_names == h.leaves and h.num_nodes == 3
    assert torch.equal(h.node_level_matrix(), h.level_matrix())


def test_labels_at_level_maps_coarse_ids() -> None:
    h = Hierarchy.from_dict(UNBALANCED)  # ids: a c e f b d
    labels = torch.tensor([4, 5, 0, 3, 255])
    assert h.labels_at_level(labels, 0, ignore_index=255).tolist() == [1, 1, 0, 1, 255]
    assert h.labels_at_level(labels, 1, ignore_index=255).tolist() == [255, 2, 0, 2, 255]
    assert h.labels_at_level(labels[:4], -1, ignore_index=-100).tolist() == [-100, -100, 0, 3]
    assert h.labels_at_level(labels[:4], 0).tolist() == [1, 1, 0, 1]  # known: no ignore needed


def test_ignore_index_wins_over_the_node_id_it_equals() -> None:
    h = Hierarchy.from_dict(UNBALANCED)  # id 4 is "b"
    labels = torch.tensor([4, 5, 1])
    assert h.labels_at_level(labels, 0, ignore_index=4).tolist() == [4, 1, 1]
    assert h.labels_at_level(labels, 2, ignore_index=4).tolist() == [4, 4, 1]


@pytest.mark.parametrize("level", [1, 2, -1])
def test_coarse_ids_below_their_level_need_an_ignore_index(level: int) -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    labels = torch.tensor([[0, 4], [4, 2]])
    with pytest.raises(ValueError, match=r"label ids 4 \('b', known down to level 0\) .*"):
        h.labels_at_level(labels, level)
    with pytest.raises(ValueError, match="pass an ignore_index"):
        h.labels_at_level(labels, level)


def test_several_coarse_ids_below_their_level_are_named() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    with pytest.raises(ValueError, match=r"4 \('b', .*level 0\), 5 \('d', .*level 1\) .*level 2"):
        h.labels_at_level(torch.tensor([5, 4, 1, 5]), 2)


def test_leaf_only_labels_map_as_the_level_matrix() -> None:
    h = Hierarchy.from_dict(UNBALANCED).reorder(["f", "a", "e", "c"])
    labels = torch.randint(0, 4, (2, 3, 5), generator=torch.Generator().manual_seed(0))
    for d in range(3):
        assert torch.equal(h.labels_at_level(labels, d), h.level_index(d)[labels])


def test_label_id_of_an_unknown_name_names_close_matches(tmp_path: Path) -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"], "vegetation": ["tree"]})
    with pytest.raises(HierarchyError, match=r"'vehicel' is not a node .*did you mean 'vehicle'"):
        h.label_id("vehicel")
    with pytest.raises(HierarchyError, match=r"'zebra' is not a node of the hierarchy$"):
        h.label_id("zebra")
    path = tmp_path / "zoo.txt"
    path.write_text("sky\nvehicle\n\tcar\n\ttruck\n")
    with pytest.raises(HierarchyError, match=rf"'bus' is not a node of the hierarchy {path}"):
        Hierarchy.from_file(path).label_id("bus")


@pytest.mark.parametrize("node_id", [-1, 6, True])
def test_node_level_out_of_range_raises_index_error(node_id: int) -> None:
    with pytest.raises(IndexError, match="out of range for 6 nodes"):
        Hierarchy.from_dict(UNBALANCED).node_level(node_id)


def test_node_level_matrix_returns_a_copy() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    h.node_level_matrix().fill_(7)
    assert h.node_level_matrix()[0].tolist() == [0, 1, 1, 1, 1, 1]


# ------------------------------------------------------------------ random unbalanced trees
@PROPERTY
@given(random_trees(), st.randoms(use_true_random=False))
def test_random_tree_node_table_matches_its_definition(tree: dict[str, Any], rnd: Any) -> None:
    base = Hierarchy.from_dict(tree)
    order = list(base.leaves)
    rnd.shuffle(order)
    h = base.reorder(order)
    names, table = reference_node_table(tree, h)
    assert h.node_names == names and h.num_nodes == len(names)
    assert h.node_level_matrix().tolist() == table
    assert [h.label_id(name) for name in names] == list(range(len(names)))
    for i in range(h.num_nodes):  # the finest level with a group
        known = [d for d in range(h.num_levels) if table[d][i] >= 0]
        assert h.node_level(i) == known[-1] and known == list(range(len(known)))
    labels = torch.tensor([rnd.randrange(h.num_nodes) for _ in range(64)] + [255])
    for d in range(h.num_levels):
        expected = [255 if i == 255 or table[d][i] < 0 else table[d][i] for i in labels.tolist()]
        assert h.labels_at_level(labels, d, ignore_index=255).tolist() == expected


@pytest.mark.parametrize(("leaves", "depth", "seed"), [(40, 4, 0), (200, 6, 1), (9, 3, 2)])
def test_random_hierarchy_node_ids(leaves: int, depth: int, seed: int) -> None:
    h = random_hierarchy(leaves, depth, seed=seed, shuffle_leaves=True)
    groups = [node.name for node, _ in h.walk() if not node.is_leaf]
    assert sorted(h.node_names[leaves:]) == sorted(groups)
    assert all(name.startswith("group") for name in h.node_names[leaves:])
    levels = [h.node_level(i) for i in range(leaves, h.num_nodes)]
    assert levels == sorted(levels)  # coarse to fine
    table = h.node_level_matrix()
    for i in range(leaves, h.num_nodes):  # a group's column is its leaves' above its level
        level = h.node_level(i)
        assert h.group_names(level)[table[level, i]] == h.node_names[i]
        assert (table[level + 1 :, i] == -1).all()
        below = table[level, :leaves] == table[level, i]
        assert (
            below.any()
            and (table[: level + 1, :leaves][:, below] == table[: level + 1, i, None]).all()
        )
