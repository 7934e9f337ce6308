"""Tests for hl_lightning/hierarchies: the built-in trees, their registry and load_hierarchy."""

from __future__ import annotations

from pathlib import Path

import pytest

from hl_lightning import Hierarchy, HierarchyError
from hl_lightning.data import SYNTHETIC_CLASSES, synthetic_hierarchy
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, load_hierarchy

ZOO_TEXT = "animal\n\tcat\n\tdog\nplant\n\ttree\n\tflower\nrock\n"
ZOO_YAML = "animal: [cat, dog]\nplant:\n  tree:\n  flower:\nrock:\n"
ZOO_TREE_ORDER = ("cat", "dog", "tree", "flower", "rock")


def test_builtin_synthetic_is_the_datasets_tree() -> None:
    assert "synthetic" in BUILTIN_HIERARCHIES
    h = load_hierarchy("synthetic")
    assert h == synthetic_hierarchy()
    assert h.level_names == ("kind", "family", "class")
    assert [h.num_groups(d) for d in range(h.num_levels)] == [3, 6, 13]


def test_builtin_reordered_to_the_class_names() -> None:
    h = load_hierarchy("synthetic", SYNTHETIC_CLASSES)
    assert h.leaves == SYNTHETIC_CLASSES
    # the tree is unchanged: "disc" and "ring" stay siblings under "round", "things"
    index = {name: i for i, name in enumerate(SYNTHETIC_CLASSES)}
    for d in range(h.num_levels - 1):
        assert h.level_index(d)[index["disc"]] == h.level_index(d)[index["ring"]]
    assert h.level_index(0)[index["disc"]] != h.level_index(0)[index["sky"]]


def test_flat_needs_class_names_and_keeps_their_order() -> None:
    h = load_hierarchy("flat", ["sky", "car", "road"])
    assert h.num_levels == 1
    assert h.leaves == ("sky", "car", "road")
    assert h == Hierarchy.flat(["sky", "car", "road"])
    with pytest.raises(HierarchyError, match="class names"):
        load_hierarchy("flat")


@pytest.mark.parametrize(("name", "text"), [("zoo.txt", ZOO_TEXT), ("zoo.yaml", ZOO_YAML)])
def test_file_text_and_yaml(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    for source in (path, str(path)):
        h = load_hierarchy(source)
        assert h.leaves == ZOO_TREE_ORDER
        assert h.group_names(0) == ("animal", "plant", "rock")
        assert h.source == str(path)


def test_file_reordered_to_class_names(tmp_path: Path) -> None:
    path = tmp_path / "zoo.txt"
    path.write_text(ZOO_TEXT)
    names = ["rock", "flower", "cat", "tree", "dog"]
    h = load_hierarchy(path, names)
    assert h.leaves == tuple(names)
    assert h.level_index(0).tolist() == [2, 1, 0, 1, 0]  # rock, plant, animal, plant, animal


def test_class_name_mismatch_lists_missing_and_extra(tmp_path: Path) -> None:
    path = tmp_path / "zoo.txt"
    path.write_text(ZOO_TEXT)
    with pytest.raises(HierarchyError) as info:
        load_hierarchy(path, ["rock", "flower", "cat", "tree", "dogg"])
    message = str(info.value)
    assert "missing from the class names: dog" in message
    assert "not leaves of the hierarchy: dogg" in message


def test_unknown_name_names_the_choices(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    for source in ("helen-typo", missing):
        with pytest.raises(HierarchyError) as info:
            load_hierarchy(source)
        message = str(info.value)
        assert str(source) in message
        assert "flat" in message and "synthetic" in message
        assert "no such file" in message


def test_level_names_override(tmp_path: Path) -> None:
    path = tmp_path / "zoo.txt"
    path.write_text(ZOO_TEXT)
    h = load_hierarchy(path, ZOO_TREE_ORDER[::-1], level_names=["coarse", "fine"])
    assert h.level_names == ("coarse", "fine")
    assert h.leaves == ZOO_TREE_ORDER[::-1]
    flat = load_hierarchy("flat", ["a", "b"], level_names=["class"])
    assert flat.level_names == ("class",)
    synthetic = load_hierarchy("synthetic", level_names=["a", "b", "c"])
    assert synthetic.level_names == ("a", "b", "c")
    with pytest.raises(HierarchyError, match="level names"):
        load_hierarchy(path, level_names=["only_one"])
