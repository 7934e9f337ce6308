"""Tests for hl_lightning/hierarchy/text_format.py: the indented text format and its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _trees import PROPERTY, UNBALANCED, ZOO_DICT, ZOO_TEXT, error_at, random_trees, to_text, write
from hypothesis import given

from hl_lightning import Hierarchy, HierarchyError


def test_tab_indented_text_parses() -> None:
    h = Hierarchy.from_text(ZOO_TEXT)
    assert h.leaves == ("cat", "dog", "tree", "flower", "rock")
    assert h.group_names(0) == ("animal", "plant", "rock")
    assert h.level_index(0).tolist() == [0, 0, 1, 1, 2]
    assert h == Hierarchy.from_dict(ZOO_DICT)


@pytest.mark.parametrize("width", [2, 4])
def test_consistent_space_indentation_parses(tmp_path: Path, width: int) -> None:
    text = to_text(UNBALANCED, " " * width)
    path = write(tmp_path, "tree.txt", text)
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(UNBALANCED)
    assert Hierarchy.from_text(text) == Hierarchy.from_dict(UNBALANCED)


def test_blank_lines_are_ignored() -> None:
    text = "\n\nanimal\n\n\tcat\n   \n\t\n\tdog\n\nplant\n\ttree\n\tflower\n\n\nrock\n\n"
    assert Hierarchy.from_text(text) == Hierarchy.from_dict(ZOO_DICT)


def test_comment_lines_and_trailing_comments_are_ignored() -> None:
    text = (
        "# the zoo\n"
        "animal  # living things that move\n"
        "\t# a comment inside a group\n"
        "\tcat\t# meow\n"
        "\tdog # woof\n"
        "#plant is next\n"
        "plant\n"
        "\ttree\n"
        "\tflower\n"
        "rock #\n"
    )
    assert Hierarchy.from_text(text) == Hierarchy.from_dict(ZOO_DICT)


def test_hash_inside_a_name_is_kept() -> None:
    h = Hierarchy.from_text("c#\nf#  # sharp\n")
    assert h.leaves == ("c#", "f#")


def test_names_with_inner_spaces_are_kept() -> None:
    h = Hierarchy.from_text("traffic sign\n\tfront side\n\tback side\nsky\n")
    assert h.leaves == ("front side", "back side", "sky")


def test_utf8_bom_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "tree.txt"
    path.write_bytes("\ufeff".encode() + ZOO_TEXT.encode())
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(ZOO_DICT)
    assert Hierarchy.from_text("\ufeff" + ZOO_TEXT) == Hierarchy.from_dict(ZOO_DICT)


def test_crlf_line_endings_parse(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", ZOO_TEXT.replace("\n", "\r\n"))
    assert Hierarchy.from_file(path) == Hierarchy.from_dict(ZOO_DICT)


def test_crlf_errors_report_the_editor_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "a\r\n\tx\r\nb\r\n\tx\r\n")
    error_at(path, 4, "duplicate leaf")


def test_lone_cr_line_endings_parse() -> None:
    assert Hierarchy.from_text(ZOO_TEXT.replace("\n", "\r")) == Hierarchy.from_dict(ZOO_DICT)


def test_error_lines_count_only_line_breaks(tmp_path: Path) -> None:
    # a form feed is whitespace but not a line break for editors: line numbers must not shift
    path = write(tmp_path, "tree.txt", "a\x0c\nb\nb\n")
    error_at(path, 3, "duplicate leaf name 'b'")


def test_utf8_names_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "café\nthé\n")
    assert Hierarchy.from_file(path).leaves == ("café", "thé")


def test_from_text_parses_the_docstring_example() -> None:
    h = Hierarchy.from_text("animal\n\tcat\n\tdog\nplant\n")
    assert h.leaves == ("cat", "dog", "plant")
    assert h.num_levels == 2


def test_indentation_jump_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "a\n\tb\n\t\t\tc\nd\n")
    error_at(path, 3, "indent one level at a time")


def test_indented_first_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "# header\n\ta\n\tb\n")
    error_at(path, 2, "must not be indented")


def test_tabs_and_spaces_in_one_line_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "a\n\tb\n \tc\n")
    error_at(path, 3, "mixes tabs and spaces")


def test_tabs_and_spaces_across_the_file_name_file_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "a\n\tb\nc\n  d\n")
    message = error_at(path, 4, "one kind")
    assert "line 2" in message


def test_non_space_whitespace_indentation_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "a\n\u00a0b\nc\n")
    error_at(path, 2, "only tabs or spaces")


def test_space_width_not_a_multiple_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tree.txt", "a\n    b\n      c\nd\n")
    error_at(path, 3, "not a multiple of 4")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n\n\t# another\n"])
def test_empty_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "tree.txt", text)
    with pytest.raises(HierarchyError, match="empty") as info:
        Hierarchy.from_file(path)
    assert str(path) in str(info.value)


def test_from_text_errors_give_the_line() -> None:
    with pytest.raises(HierarchyError, match="<text>:2: "):
        Hierarchy.from_text("a\n\t\tb\n")
    with pytest.raises(HierarchyError, match="line 3: duplicate leaf name 'a'"):
        Hierarchy.from_text("a\nb\na\n")


@PROPERTY
@given(tree=random_trees())
def test_random_tree_round_trips_through_text(scratch: Path, tree: dict[str, Any]) -> None:
    h = Hierarchy.from_dict(tree)
    assert Hierarchy.from_file(write(scratch, "tree.txt", to_text(h.to_dict(), "\t"))) == h
    assert Hierarchy.from_text(to_text(h.to_dict(), "  ")) == h


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ('{"a": ["b", "c"]}\n', 1, r"this is JSON, not the indented text format"),
        ('[\n  "a",\n  "b"\n]\n', 1, r"this is JSON, not the indented text format"),
        ("# a tree\na:\n  b:\n  c:\n", 2, r"'a:' ends with a colon: this looks like YAML"),
        ("a\n\tb:\n\tc\n", 2, r"'b:' ends with a colon: this looks like YAML"),
        ("- a\n- b\n", 1, r"'- a' starts with a dash: this looks like YAML"),
    ],
)
def test_json_or_yaml_in_a_text_file_is_named(
    tmp_path: Path, text: str, line: int, match: str
) -> None:
    error_at(write(tmp_path, "tree.txt", text), line, match)
    with pytest.raises(HierarchyError, match=rf"<text>:{line}: .*{match}"):
        Hierarchy.from_text(text)


def test_brackets_and_colons_inside_names_are_kept() -> None:
    h = Hierarchy.from_text("[unlabeled]\nratio 1:2\n{x}\n")
    assert h.leaves == ("[unlabeled]", "ratio 1:2", "{x}")
