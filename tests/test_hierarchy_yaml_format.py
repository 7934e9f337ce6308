"""Tests for hl_lightning/hierarchy/yaml_format.py: YAML hierarchy files and their errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from _trees import PROPERTY, UNBALANCED, ZOO_DICT, error_at, random_trees, write
from hypothesis import given

from hl_lightning import Hierarchy, HierarchyError


def test_seed_files_round_trip_through_yaml(paper_trees: Path, tmp_path: Path) -> None:
    for name in ("faces_tree.txt", "mapillary_tree.txt"):
        h = Hierarchy.from_file(paper_trees / name)
        path = write(tmp_path, name + ".yaml", yaml.safe_dump(h.to_dict(), sort_keys=False))
        assert Hierarchy.from_file(path) == h


def test_utf8_bom_is_skipped_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "tree.yaml"
    path.write_bytes("\ufeff".encode() + yaml.safe_dump(ZOO_DICT, sort_keys=False).encode())
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(ZOO_DICT)


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML"])
def test_yaml_nested_mapping_with_null_leaves(tmp_path: Path, suffix: str) -> None:
    text = "animal:\n  cat:\n  dog: null\nplant:\n  tree: ~\n  flower:\nrock:\n"
    path = write(tmp_path, "tree" + suffix, text)
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(ZOO_DICT)


def test_yaml_list_leaves(tmp_path: Path) -> None:
    text = "animal: [cat, dog]\nplant:\n  - tree\n  - flower\nrock:\n"
    path = write(tmp_path, "tree.yml", text)
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(ZOO_DICT)


def test_yaml_mixed_list_of_names_and_mappings(tmp_path: Path) -> None:
    text = "- a\n- b:\n    - c\n    - d:\n        e:\n        f:\n"
    path = write(tmp_path, "tree.yaml", text)
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(UNBALANCED)


def test_yaml_keeps_names_yaml_would_retype(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.yaml", "yes:\n'null':\n1:\n3.0:\noff: [on, ~x]\n")
    assert Hierarchy.from_file(path).leaves == ("yes", "null", "1", "3.0", "on", "~x")


def test_duplicate_leaf_names_in_yaml_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.yaml", "a:\n  - x\n  - y\nb:\n  x:\n  z:\n")
    message = error_at(path, 5, "duplicate leaf name 'x'")
    assert "lines 2 and 5" in message


@pytest.mark.parametrize("text", ["", "# nothing here\n"])
def test_empty_yaml_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "tree.yaml", text)
    with pytest.raises(HierarchyError, match="empty") as info:
        Hierarchy.from_file(path)
    assert str(path) in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.yaml", "a:\n  b: c: d\n")
    error_at(path, 2, "not valid YAML")


def test_yaml_scalar_value_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.yaml", "a:\n  b: 3\n  c:\nd:\n")
    error_at(path, 2, "'b' maps to '3'")


def test_yaml_empty_children_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.yaml", "a:\nb: []\nc:\n")
    error_at(path, 2, "no children")


def test_yaml_nested_list_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.yaml", "a:\n  - b\n  - [c, d]\n")
    error_at(path, 3, "not a list")


def test_yaml_null_list_item_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.yaml", "a:\n  - b\n  -\n  - c\n")
    error_at(path, 3, "empty list item")


@PROPERTY
@given(tree=random_trees())
def test_random_tree_round_trips_through_yaml(scratch: Path, tree: dict[str, Any]) -> None:
    h = Hierarchy.from_dict(tree)
    text = yaml.safe_dump(h.to_dict(), sort_keys=False)
    assert Hierarchy.from_file(write(scratch, "tree.yaml", text)) == h


# ------------------------------------------------------------------ JSON tree files (read as YAML)
def test_json_tree_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.json", '{"a": ["b", "c"], "d": null}')
    assert Hierarchy.from_file(path) == Hierarchy.from_dict({"a": ["b", "c"], "d": None})
    assert Hierarchy.from_file(path).source == str(path)


@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_json_tree_file_in_any_layout_is_read(tmp_path: Path, indent: int | str | None) -> None:
    path = write(tmp_path, "zoo.JSON", json.dumps(ZOO_DICT, indent=indent))
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(ZOO_DICT)


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ('{\n\t"a": ["x", "y"],\n\t"b": ["x"]\n}\n', 3, r"duplicate leaf name 'x' \(lines 2 and 3"),
        ('{"a": ["b", "c"]', 1, r"not valid JSON: Expecting ',' delimiter"),
        ('[\n  "a",\n  "b",\n]\n', 4, r"not valid JSON"),
        ("", 1, r"not valid JSON"),
        ("{'a': null}", 1, r"not valid JSON"),
        ('{\n  "a": "b",\n  "c": null\n}', 2, r"'a' maps to 'b'"),
        ('{\n  "a": [],\n  "c": null\n}', 2, r"'a' has no children"),
        ('"just a name"', 1, r"expected a mapping or a list of class names"),
    ],
)
def test_bad_json_tree_files_name_file_and_line(
    tmp_path: Path, text: str, line: int, match: str
) -> None:
    error_at(write(tmp_path, "tree.json", text), line, match)


def test_json_tree_deeper_than_the_recursion_limit_is_read(tmp_path: Path) -> None:
    depth = 1100
    text = "".join(f'{{"l{d}": null, "g{d}": ' for d in range(depth))
    text += '["last", "end"]' + "}" * depth
    h = Hierarchy.from_file(write(tmp_path, "deep.json", text))
    assert h.num_levels == depth + 1 and h.leaves[-2:] == ("last", "end")
