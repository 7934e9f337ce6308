"""Tests for hl_lightning/hierarchy/names.py: invisible characters and lists of names.

Every format (indented text, YAML, JSON, a dict) refuses a class name that could look like
another one: a tab, a control or format (zero-width) character inside it, whitespace
other than a plain space, whitespace at its ends, only whitespace; a byte-order mark or a
zero-width character anywhere in a file but its start; ``None`` as a name; a bare string
where a list of names is expected. Files name the file and line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _trees import UNBALANCED, write

from hl_lightning import Hierarchy, HierarchyError
from hl_lightning.hierarchies import load_hierarchy
from hl_lightning.hierarchy import Node

# (a bad leaf name, the message fragment that names its problem)
VISIBLE_TROUBLE = [
    ("traffic\tsign", r"contains a tab"),
    ("tree\u200b", r"invisible character U\+200B \(ZERO WIDTH SPACE\)"),
    ("\u2060car", r"invisible character U\+2060 \(WORD JOINER\)"),
    ("bi\u200dke", r"invisible character U\+200D \(ZERO WIDTH JOINER\)"),
    ("ro\u00adad", r"invisible character U\+00AD \(SOFT HYPHEN\)"),
    ("sky\u200e", r"invisible character U\+200E \(LEFT-TO-RIGHT MARK\)"),
    ("a\ufeffb", r"invisible character U\+FEFF \(ZERO WIDTH NO-BREAK SPACE\)"),
    ("traffic\u00a0sign", r"whitespace character U\+00A0 \(NO-BREAK SPACE\)"),
    ("traffic\u3000sign", r"whitespace character U\+3000 \(IDEOGRAPHIC SPACE\)"),
    ("bell\x07", r"control character U\+0007"),
]
# names only YAML, JSON and dicts can spell (the text format strips a line's ends)
SPELLED_ONLY_IN_DATA = [
    (" ", r"class name ' ' is blank"),
    ("\u3000", r"class name '\\u3000' is blank"),
    ("\u200b", r"class name '\\u200b' is blank"),
    (" \u200b\t", r"is blank"),
    (" sky", r"class name ' sky' starts or ends with whitespace"),
    ("sky ", r"class name 'sky ' starts or ends with whitespace"),
    ("line\nbreak", r"control character U\+000A"),
]


def _yaml_string(name: str) -> str:
    """Return ``name`` as a YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(name)


def _tree_text(bad: str) -> str:
    return f"group\n\tfine\n\t{bad}\nother\n"  # the bad name is on line 3


def _tree_yaml(bad: str) -> str:
    return f"group:\n  - fine\n  - {_yaml_string(bad)}\nother:\n"  # line 3


def _tree_json(bad: str) -> str:
    return json.dumps({"group": ["fine", bad], "other": None}, indent="\t")  # line 4


def _tree_dict(bad: str) -> dict[str, Any]:
    return {"group": ["fine", bad], "other": None}


def _error(call: Any) -> str:
    with pytest.raises(HierarchyError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize(("bad", "match"), VISIBLE_TROUBLE)
@pytest.mark.parametrize("kind", ["text", "yaml", "json"])
def test_a_bad_name_in_a_file_is_refused_at_its_line(
    tmp_path: Path, kind: str, bad: str, match: str
) -> None:
    text, line = {
        "text": (_tree_text(bad), 3),
        "yaml": (_tree_yaml(bad), 3),
        "json": (_tree_json(bad), 4),
    }[kind]
    path = write(tmp_path, f"tree.{'txt' if kind == 'text' else kind}", text)
    message = _error(lambda: Hierarchy.from_file(path))
    assert message.startswith(f"{path}:{line}: "), message
    assert re.search(match, message), message


@pytest.mark.parametrize(("bad", "match"), VISIBLE_TROUBLE)
def test_a_bad_name_from_text_is_refused_at_its_line(bad: str, match: str) -> None:
    message = _error(lambda: Hierarchy.from_text(_tree_text(bad)))
    assert re.match(r"(<text>:|line )3: ", message), message  # the parser's or the tree's
    assert re.search(match, message), message


@pytest.mark.parametrize(("bad", "match"), VISIBLE_TROUBLE + SPELLED_ONLY_IN_DATA)
def test_a_bad_name_in_a_dict_is_refused_under_its_group(bad: str, match: str) -> None:
    message = _error(lambda: Hierarchy.from_dict(_tree_dict(bad)))
    assert re.search(match, message), message
    assert "under group" in message, message
    top = _error(lambda: Hierarchy.from_dict({bad: None, "fine": None}))
    assert re.search(match, top), top


@pytest.mark.parametrize(("bad", "match"), SPELLED_ONLY_IN_DATA)
@pytest.mark.parametrize("kind", ["yaml", "json"])
def test_a_blank_or_padded_name_in_a_data_file_is_refused_at_its_line(
    tmp_path: Path, kind: str, bad: str, match: str
) -> None:
    text, line = (_tree_yaml(bad), 3) if kind == "yaml" else (_tree_json(bad), 4)
    path = write(tmp_path, f"tree.{kind}", text)
    message = _error(lambda: Hierarchy.from_file(path))
    assert message.startswith(f"{path}:{line}: "), message
    assert re.search(match, message), message


def test_flat_and_node_built_trees_check_their_names() -> None:
    assert re.search("contains a tab", _error(lambda: Hierarchy.flat(["a\tb", "c"])))
    message = _error(lambda: Hierarchy([Node("g", (Node("x\u200b", (), 4), Node("y"))), Node("z")]))
    assert message.startswith("line 4: class name 'x\\u200b' contains the invisible character")


# ------------------------------------------------------------------ invisible characters in files
@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("a\n\ufeffb\n", 2, r"U\+FEFF .*a byte-order mark"),
        ("\ufeff\ufeffa\nb\n", 1, r"U\+FEFF .*a byte-order mark"),
        ("a\nb\n\ufeff", 3, r"U\+FEFF .*a byte-order mark"),
        ("a\n\u200b\tb\n", 2, r"invisible character U\+200B \(ZERO WIDTH SPACE\)"),
        ("a\n\u200b\nb\n", 2, r"invisible character U\+200B"),
        ("a  # see\u200b\nb\n", 1, r"invisible character U\+200B"),
        ("a\r\nb\r\n\u2060c\r\n", 3, r"invisible character U\+2060 \(WORD JOINER\)"),
    ],
)
@pytest.mark.parametrize("suffix", [".txt", ".yaml"])
def test_a_bom_or_zero_width_character_past_the_start_is_refused(
    tmp_path: Path, suffix: str, text: str, line: int, match: str
) -> None:
    if suffix == ".yaml":  # the same characters in a YAML tree of the same lines
        text = re.sub(r"([ab])(?=\r?\n)", r"\1:", text).replace("\tb", "b")
    path = write(tmp_path, "tree" + suffix, text)
    message = _error(lambda: Hierarchy.from_file(path))
    assert message.startswith(f"{path}:{line}: "), message
    assert re.search(match, message), message


def test_a_bom_past_the_start_of_text_is_refused() -> None:
    assert Hierarchy.from_text("\ufeffa\nb\n").leaves == ("a", "b")
    message = _error(lambda: Hierarchy.from_text("\ufeff\ufeffa\nb\n"))
    assert message.startswith("<text>:1: ") and "byte-order mark" in message


# ------------------------------------------------------------------ None and bare strings
@pytest.mark.parametrize(
    ("tree", "match"),
    [
        ({None: None, "a": None, "b": None}, r"<dict>: expected a class name, got the key None"),
        (
            {"g": {None: None, "x": None}, "y": None},
            r"<dict>: under g: expected a class name, got the key None",
        ),
        (["a", {None: ["b", "c"]}], r"<dict>: expected a class name, got the key None"),
        ({"a": None, 2.5: None}, r"expected a class name, got the key 2\.5"),
    ],
)
def test_none_as_a_dict_key_is_refused(tree: Any, match: str) -> None:
    with pytest.raises(HierarchyError, match=match):
        Hierarchy.from_dict(tree)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Hierarchy.flat("abc"), r"class names must be a list of names, not the string"),
        (lambda: Hierarchy.flat(["a", None, "b"]), r"class names\[1\] is None"),
        (
            lambda: Hierarchy.from_config({"tree": UNBALANCED, "leaves": "acef"}),
            r"must be a list of names, not the string 'acef'",
        ),
        (
            lambda: Hierarchy(Hierarchy.from_dict(UNBALANCED).roots, leaves="acef"),
            r"leaf order must be a list of names, not the string 'acef'",
        ),
        (lambda: load_hierarchy("flat", "ab"), r"must be a list of names, not the string 'ab'"),
        (
            lambda: load_hierarchy("cityscapes", "road"),
            r"must be a list of names, not the string 'road'",
        ),
        (
            lambda: Hierarchy.from_dict(UNBALANCED).reorder(["a", "c", None, "f"]),
            r"class names\[2\] is None",
        ),
    ],
)
def test_a_bare_string_or_none_where_names_are_expected_is_refused(call: Any, match: str) -> None:
    with pytest.raises(HierarchyError, match=match):
        call()


def test_reorder_shows_an_invisible_difference() -> None:
    message = _error(lambda: Hierarchy.flat(["sky", "car"]).reorder(["sky\u200b", "car"]))
    assert "missing from the class names: sky;" in message
    assert "not leaves of the hierarchy: 'sky\\u200b'" in message
