"""Tests for hl_lightning/hierarchies: the built-in trees, their registry and load_hierarchy."""

from __future__ import annotations

import json
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


def test_a_json_file_is_a_vistas_config_if_it_has_labels_else_a_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree.json"
    zoo = {"animal": ["cat", "dog"], "plant": ["tree", "flower"], "rock": None}
    tree.write_text(json.dumps(zoo))
    assert load_hierarchy(tree).leaves == ZOO_TREE_ORDER
    assert load_hierarchy(str(tree), list(reversed(ZOO_TREE_ORDER))).source == str(tree)
    config = tmp_path / "config.json"
    names = ["nature--sky", "construction--flat--road", "construction--flat--curb"]
    config.write_text(json.dumps({"labels": [{"name": name} for name in names]}))
    assert load_hierarchy(config).leaves == ("sky", "road", "curb")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"labels": 5}', r"tree\.json: expected \{'labels': \[\{'name'"),
        ('{"labels": [{"readable": "Road"}]}', r"tree\.json: label 0 has no 'name'"),
        ('{"labels": [{"name": "a--b"}, {"name": "a--b"}]}', r"tree\.json: .*not unique"),
        ('{"a": ["b", "c"]', r"tree\.json:1: not valid JSON"),
        ("[1.5]", r"tree\.json:1: a hierarchy needs at least two leaves"),
        ("\x89PNG\r\n", r"tree\.json:1: not UTF-8 text"),
    ],
)
def test_a_bad_json_file_gives_one_hierarchy_error_naming_it(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "tree.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(HierarchyError, match=match):
        load_hierarchy(path)
