"""Tests for hl_lightning/hierarchy/tree.py: validation, reorder, level maps, distances, text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from _trees import (
    FACES_LEAVES,
    PROPERTY,
    UNBALANCED,
    ZOO_DICT,
    ZOO_TEXT,
    error_at,
    leaf_depths,
    random_trees,
    to_text,
    write,
)
from hypothesis import given
from hypothesis import strategies as st

from hl_lightning import Hierarchy, HierarchyError


def test_faces_seed_has_paper_levels(paper_trees: Path) -> None:
    h = Hierarchy.from_file(paper_trees / "faces_tree.txt")
    assert h.num_levels == 4
    assert [h.num_groups(d) for d in range(4)] == [2, 3, 6, 11]
    assert h.leaves == FACES_LEAVES
    assert h.group_names(0) == ("background", "foreground")
    assert h.group_names(1) == ("background", "hair", "face")
    assert h.group_names(2) == ("background", "hair", "mouth", "skin", "eyes", "eyebrows")
    assert h.source == str(paper_trees / "faces_tree.txt")


def test_mapillary_seed_has_paper_levels(paper_trees: Path) -> None:
    h = Hierarchy.from_file(paper_trees / "mapillary_tree.txt")
    assert h.num_levels == 3
    assert [h.num_groups(d) for d in range(3)] == [7, 37, 66]
    assert h.num_leaves == 66
    assert len(set(h.leaves)) == 66
    assert torch.equal(h.level_index(2).sort().values, torch.arange(66))


def test_shallow_leaf_stands_for_itself_at_deeper_levels() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    assert h.leaves == ("a", "c", "e", "f")
    assert h.num_levels == 3
    assert h.group_names(0) == ("a", "b")
    assert h.group_names(1) == ("a", "c", "d")
    assert h.group_names(2) == ("a", "c", "e", "f")
    assert h.level_index(0).tolist() == [0, 1, 1, 1]
    assert h.level_index(1).tolist() == [0, 1, 2, 2]
    assert h.level_index(2).tolist() == [0, 1, 2, 3]


def test_faces_shallow_leaves_keep_their_own_group(paper_trees: Path) -> None:
    h = Hierarchy.from_file(paper_trees / "faces_tree.txt")
    for d in range(h.num_levels):
        assert h.group_names(d)[h.level_index(d)[0]] == "background"
    for d in (1, 2, 3):
        assert h.group_names(d)[h.level_index(d)[1]] == "hair"
    assert h.group_names(0)[h.level_index(0)[1]] == "foreground"


def test_leaf_level_is_the_flat_problem() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    assert h.group_names(-1) == h.leaves
    assert torch.equal(h.level_index(-1), torch.arange(h.num_leaves))


def test_flat_hierarchy_has_one_level() -> None:
    h = Hierarchy.flat(["a", "b", "c", "d"])
    assert h.num_levels == 1
    assert h.leaves == ("a", "b", "c", "d")
    assert h.group_names(0) == h.leaves
    assert torch.equal(h.level_index(0), torch.arange(4))
    assert h.level_index(0).dtype == torch.long
    assert h == Hierarchy.from_text("a\nb\nc\nd\n")


def test_same_tree_in_text_and_yaml_is_equal(tmp_path: Path) -> None:
    txt = write(tmp_path, "tree.txt", to_text(ZOO_DICT))
    yml = write(tmp_path, "tree.yaml", yaml.safe_dump(ZOO_DICT, sort_keys=False))
    a, b = Hierarchy.from_file(txt), Hierarchy.from_file(yml)
    assert a == b
    assert hash(a) == hash(b)
    assert a.source != b.source


def test_from_file_accepts_a_string_path(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", ZOO_TEXT)
    assert Hierarchy.from_file(str(path)) == Hierarchy.from_file(path)


def test_sibling_order_matters_for_equality() -> None:
    a = Hierarchy.from_dict({"x": None, "y": None})
    b = Hierarchy.from_dict({"y": None, "x": None})
    assert a != b
    assert a != "not a hierarchy"


def test_hierarchy_error_is_a_value_error() -> None:
    assert issubclass(HierarchyError, ValueError)


def test_duplicate_leaf_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "a\n\tx\nb\n\ty\n\tx\n")
    message = error_at(path, 5, "duplicate leaf name 'x'")
    assert "lines 2 and 5" in message


def test_node_both_leaf_and_parent_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "x\nb\n\tx\n\t\ty\n\tz\n")
    message = error_at(path, 3, "both a leaf and a parent")
    assert "lines 1 and 3" in message


def test_duplicate_group_names_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "g\n\ta\n\tb\ng\n\tc\n")
    error_at(path, 4, "duplicate group name 'g'")


def test_single_leaf_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "# one class\nonly\n")
    error_at(path, 2, "at least two leaves")


def test_single_leaf_under_a_group_names_the_leaf(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "group\n\tonly\n")
    error_at(path, 2, "found only 'only'")


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    with pytest.raises(HierarchyError, match="cannot read") as info:
        Hierarchy.from_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_non_utf8_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tree.txt"
    path.write_bytes(b"a\nb\n\xff\n")
    error_at(path, 3, "not UTF-8")


@pytest.mark.parametrize(
    ("names", "match"), [([], "empty"), (["a"], "at least two"), (["a", "a"], "duplicate")]
)
def test_flat_rejects_too_few_or_duplicate_names(names: list[str], match: str) -> None:
    with pytest.raises(HierarchyError, match=match):
        Hierarchy.flat(names)


def test_reorder_puts_class_names_at_their_label_ids() -> None:
    h = Hierarchy.from_dict(ZOO_DICT)
    order = ["rock", "dog", "flower", "cat", "tree"]
    r = h.reorder(order)
    assert r.leaves == tuple(order)
    for d in range(h.num_levels):
        original = dict(zip(h.leaves, h.level_index(d).tolist(), strict=True))
        assert r.level_index(d).tolist() == [original[name] for name in order]


def test_reorder_keeps_group_ids_and_names() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    r = h.reorder(["f", "a", "e", "c"])
    for d in range(h.num_levels):
        assert r.group_names(d) == h.group_names(d)
        assert r.num_groups(d) == h.num_groups(d)
    assert r.level_index(0).tolist() == [1, 0, 1, 1]
    assert r.level_index(2).tolist() == [3, 0, 2, 1]
    assert r.group_names(2)[r.level_index(2)[0]] == "f"


def test_reorder_keeps_the_tree_and_level_names() -> None:
    h = Hierarchy.from_dict(UNBALANCED, level_names=["coarse", "mid", "fine"])
    r = h.reorder(["f", "a", "e", "c"])
    assert r.to_dict() == h.to_dict()
    assert r.level_names == h.level_names
    assert r != h
    assert r.reorder(h.leaves) == h


def test_reorder_reports_missing_extra_and_duplicates_in_one_error() -> None:
    h = Hierarchy.from_dict(ZOO_DICT)
    with pytest.raises(HierarchyError) as info:
        h.reorder(["cat", "dog", "dog", "tree", "bush", "tree", "stone"])
    message = str(info.value)
    assert "missing from the class names: flower, rock" in message
    assert "not leaves of the hierarchy: bush, stone" in message
    assert "duplicated in the class names: dog, tree" in message


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (["cat", "dog", "tree", "flower"], "missing from the class names: rock"),
        (["cat", "dog", "tree", "flower", "rock", "moss"], "not leaves of the hierarchy: moss"),
        (["cat", "dog", "tree", "flower", "rock", "cat"], "duplicated in the class names: cat"),
        (["cat", "dog", "tree", "flower", "animal"], "not leaves of the hierarchy: animal"),
    ],
)
def test_reorder_reports_each_kind_of_mismatch(names: list[str], fragment: str) -> None:
    with pytest.raises(HierarchyError, match=fragment):
        Hierarchy.from_dict(ZOO_DICT).reorder(names)


def test_reorder_error_names_the_source_file(tmp_path: Path) -> None:
    path = write(tmp_path, "zoo.txt", ZOO_TEXT)
    with pytest.raises(HierarchyError) as info:
        Hierarchy.from_file(path).reorder(["cat"])
    assert str(path) in str(info.value)


def test_reorder_refuses_a_bare_string() -> None:
    with pytest.raises(HierarchyError, match="not the string"):
        Hierarchy.flat(["a", "b"]).reorder("ab")


def test_level_names_default_to_level_numbers() -> None:
    assert Hierarchy.from_dict(UNBALANCED).level_names == ("level0", "level1", "level2")
    assert Hierarchy.flat(["a", "b"]).level_names == ("level0",)


def test_with_level_names_renames_levels() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    named = h.with_level_names(["coarse", "mid", "fine"])
    assert named.level_names == ("coarse", "mid", "fine")
    assert h.level_names == ("level0", "level1", "level2")
    assert named.leaves == h.leaves
    assert torch.equal(named.level_matrix(), h.level_matrix())
    assert named != h


def test_level_names_argument_of_constructors(tmp_path: Path) -> None:
    names = ["coarse", "mid", "fine"]
    path = write(tmp_path, "tree.txt", to_text(UNBALANCED))
    assert Hierarchy.from_file(path, level_names=names).level_names == tuple(names)
    assert Hierarchy.from_dict(UNBALANCED, level_names=names).level_names == tuple(names)
    assert Hierarchy.from_text(to_text(UNBALANCED), level_names=names).level_names == tuple(names)


@pytest.mark.parametrize("names", [["a", "b"], ["a", "b", "c", "d"], []])
def test_wrong_number_of_level_names_raises(names: list[str]) -> None:
    with pytest.raises(HierarchyError, match="level names given for a hierarchy with 3 levels"):
        Hierarchy.from_dict(UNBALANCED, level_names=names)
    with pytest.raises(HierarchyError, match="3 levels"):
        Hierarchy.from_dict(UNBALANCED).with_level_names(names)


def test_duplicate_level_names_raise() -> None:
    with pytest.raises(HierarchyError, match="unique"):
        Hierarchy.from_dict(UNBALANCED, level_names=["x", "y", "x"])


def test_level_names_refuse_a_bare_string() -> None:
    with pytest.raises(HierarchyError, match="not the string"):
        Hierarchy.flat(["a", "b"]).with_level_names("x")


def test_level_out_of_range_raises_index_error() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    for level in (3, -4):
        with pytest.raises(IndexError, match="out of range"):
            h.level_index(level)
        with pytest.raises(IndexError):
            h.group_names(level)
    assert torch.equal(h.level_index(-3), h.level_index(0))


def test_level_index_returns_a_copy() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    h.level_index(0).fill_(7)
    h.level_matrix().fill_(7)
    assert h.level_index(0).tolist() == [0, 1, 1, 1]


def test_level_matrix_stacks_level_indices() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    m = h.level_matrix()
    assert m.shape == (3, 4)
    assert m.dtype == torch.long
    for d in range(3):
        assert torch.equal(m[d], h.level_index(d))


def test_labels_at_level_maps_leaf_ids_to_groups() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    labels = torch.tensor([[[0, 1], [2, 3]]])  # (B, H, W)
    assert h.labels_at_level(labels, 0).tolist() == [[[0, 1], [1, 1]]]
    assert h.labels_at_level(labels, 1).tolist() == [[[0, 1], [2, 2]]]
    assert torch.equal(h.labels_at_level(labels, 2), labels)


@pytest.mark.parametrize("ignore_index", [255, -100, 4])
def test_labels_at_level_keeps_ignore_index(ignore_index: int) -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    labels = torch.tensor([[3, ignore_index], [ignore_index, 1]])
    out = h.labels_at_level(labels, 0, ignore_index=ignore_index)
    assert out.tolist() == [[1, ignore_index], [ignore_index, 1]]
    assert out.dtype == torch.long


def test_labels_at_level_accepts_uint8_masks() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    labels = torch.tensor([3, 0, 255, 1], dtype=torch.uint8)
    assert h.labels_at_level(labels, 0, ignore_index=255).tolist() == [1, 0, 255, 1]
    assert h.labels_at_level(labels[[0, 1, 3]], 1).tolist() == [2, 0, 1]


def test_labels_at_level_refuses_float_labels() -> None:
    with pytest.raises(TypeError, match="integer"):
        Hierarchy.from_dict(UNBALANCED).labels_at_level(torch.zeros(3), 0)


def test_leaf_distance_is_symmetric_with_zero_diagonal(paper_trees: Path) -> None:
    for name in ("faces_tree.txt", "mapillary_tree.txt"):
        h = Hierarchy.from_file(paper_trees / name)
        dist = h.leaf_distance()
        assert dist.shape == (h.num_leaves, h.num_leaves)
        assert dist.dtype == torch.long
        assert torch.equal(dist, dist.T)
        assert torch.equal(dist.diagonal(), torch.zeros(h.num_leaves, dtype=torch.long))


def test_leaf_distance_is_depth_across_level0_groups(paper_trees: Path) -> None:
    h = Hierarchy.from_file(paper_trees / "mapillary_tree.txt")
    top = h.level_index(0)
    across = top[:, None] != top[None, :]
    dist = h.leaf_distance()
    assert (dist[across] == h.num_levels).all()
    assert (dist[~across] < h.num_levels).all()


def test_leaf_distance_faces_example_values(paper_trees: Path) -> None:
    h = Hierarchy.from_file(paper_trees / "faces_tree.txt")
    dist = h.leaf_distance()
    i = {name: k for k, name in enumerate(h.leaves)}
    assert dist[i["background"], i["hair"]] == 4
    assert dist[i["background"], i["nose"]] == 4
    assert dist[i["hair"], i["upper_lip"]] == 3
    assert dist[i["upper_lip"], i["nose"]] == 2
    assert dist[i["left_eye"], i["left_eyebrow"]] == 2
    assert dist[i["upper_lip"], i["lower_lip"]] == 1
    assert dist[i["left_eye"], i["right_eye"]] == 1
    assert dist[i["nose"], i["nose"]] == 0


def test_leaf_distance_follows_reorder() -> None:
    h = Hierarchy.from_dict(UNBALANCED)
    r = h.reorder(["f", "a", "e", "c"])
    perm = [h.leaves.index(n) for n in r.leaves]
    assert torch.equal(r.leaf_distance(), h.leaf_distance()[perm][:, perm])


def test_to_config_round_trips() -> None:
    h = Hierarchy.from_dict(UNBALANCED, level_names=["coarse", "mid", "fine"])
    config = h.to_config()
    assert config == {
        "tree": UNBALANCED,
        "leaves": ["a", "c", "e", "f"],
        "level_names": ["coarse", "mid", "fine"],
    }
    assert Hierarchy.from_config(config) == h


def test_to_config_round_trips_after_reorder() -> None:
    h = Hierarchy.from_dict(ZOO_DICT).reorder(["rock", "flower", "cat", "tree", "dog"])
    back = Hierarchy.from_config(h.to_config())
    assert back == h
    assert back.leaves == ("rock", "flower", "cat", "tree", "dog")
    assert torch.equal(back.level_matrix(), h.level_matrix())


def test_to_config_survives_yaml_dump() -> None:
    h = Hierarchy.from_dict(UNBALANCED).reorder(["e", "a", "f", "c"])
    loaded = yaml.safe_load(yaml.safe_dump(h.to_config(), sort_keys=False))
    assert Hierarchy.from_config(loaded) == h


def test_from_config_needs_only_the_tree() -> None:
    assert Hierarchy.from_config({"tree": UNBALANCED}) == Hierarchy.from_dict(UNBALANCED)


def test_to_dict_round_trips() -> None:
    h = Hierarchy.from_text(ZOO_TEXT)
    assert h.to_dict() == ZOO_DICT
    assert list(h.to_dict()) == ["animal", "plant", "rock"]
    assert Hierarchy.from_dict(h.to_dict()) == h


def test_str_prints_the_tree_with_node_ids() -> None:
    h = Hierarchy.from_dict(UNBALANCED).reorder(["f", "a", "e", "c"])
    assert str(h) == "a  [1]\nb  [4]\n  c  [3]\n  d  [5]\n    e  [2]\n    f  [0]"


def test_repr_shows_group_counts(paper_trees: Path) -> None:
    assert (
        repr(Hierarchy.from_dict(UNBALANCED)) == "Hierarchy(leaves=4, levels=3, groups=[2, 3, 4])"
    )
    path = paper_trees / "faces_tree.txt"
    assert repr(Hierarchy.from_file(path)) == (
        f"Hierarchy(leaves=11, levels=4, groups=[2, 3, 6, 11], source={str(path)!r})"
    )


def test_roots_expose_nodes_with_lines() -> None:
    h = Hierarchy.from_text(ZOO_TEXT)
    assert [n.name for n in h.roots] == ["animal", "plant", "rock"]
    assert [n.line for n in h.roots] == [1, 4, 7]
    assert h.roots[2].is_leaf and not h.roots[0].is_leaf
    assert [c.name for c in h.roots[0].children] == ["cat", "dog"]


@PROPERTY
@given(random_trees())
def test_random_tree_levels_are_leaf_depths(tree: dict[str, Any]) -> None:
    h = Hierarchy.from_dict(tree)
    depths = leaf_depths(tree)
    assert h.leaves == tuple(depths)
    assert h.num_levels == max(depths.values()) + 1
    assert h.num_leaves == len(depths)


@PROPERTY
@given(random_trees())
def test_random_tree_rows_are_non_decreasing_in_tree_order(tree: dict[str, Any]) -> None:
    m = Hierarchy.from_dict(tree).level_matrix()
    assert (m[:, 1:] >= m[:, :-1]).all()


@PROPERTY
@given(random_trees(), st.randoms(use_true_random=False))
def test_random_tree_level_maps_are_nested_partitions(tree: dict[str, Any], rnd: Any) -> None:
    base = Hierarchy.from_dict(tree)
    order = list(base.leaves)
    rnd.shuffle(order)
    h = base.reorder(order)
    m = h.level_matrix()
    k, depth = h.num_leaves, h.num_levels
    assert torch.equal(m[-1].sort().values, torch.arange(k))
    counts = [h.num_groups(d) for d in range(depth)]
    assert counts == sorted(counts)
    assert counts[-1] == k
    for d in range(depth):
        assert torch.equal(m[d].unique(), torch.arange(counts[d]))  # every group holds a leaf
        assert h.group_names(d) == base.group_names(d)
    for d in range(depth - 1):
        for g in m[d + 1].unique():
            assert m[d][m[d + 1] == g].unique().numel() == 1  # level d coarsens level d + 1
    tree_order = [h.leaves.index(name) for name in base.leaves]
    assert (m[:, tree_order][:, 1:] >= m[:, tree_order][:, :-1]).all()


@PROPERTY
@given(random_trees())
def test_random_tree_leaf_distance_properties(tree: dict[str, Any]) -> None:
    h = Hierarchy.from_dict(tree)
    dist = h.leaf_distance()
    assert torch.equal(dist, dist.T)
    assert (dist.diagonal() == 0).all()
    top = h.level_index(0)
    assert (dist[top[:, None] != top[None, :]] == h.num_levels).all()
    off = ~torch.eye(h.num_leaves, dtype=torch.bool)
    assert (dist[off] >= 1).all()


@PROPERTY
@given(random_trees(), st.randoms(use_true_random=False))
def test_random_tree_round_trips_through_config(tree: dict[str, Any], rnd: Any) -> None:
    base = Hierarchy.from_dict(tree)
    order = list(base.leaves)
    rnd.shuffle(order)
    h = base.reorder(order)
    assert Hierarchy.from_config(h.to_config()) == h
