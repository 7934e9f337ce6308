"""Tests for hl_lightning/hierarchy/data_format.py: hierarchies from nested mappings and lists."""

from __future__ import annotations

from typing import Any

import pytest
from _trees import UNBALANCED

from hl_lightning import Hierarchy, HierarchyError


def test_from_dict_accepts_null_leaves_lists_and_mixed_lists() -> None:
    h = Hierarchy.from_dict({"a": None, "b": ["c", {"d": ["e", "f"]}]})
    assert h == Hierarchy.from_dict(UNBALANCED)
    assert Hierarchy.from_dict(["a", {"b": {"c": None, "d": ["e", "f"]}}]) == h


@pytest.mark.parametrize(
    ("tree", "match"),
    [
        ({"a": "b", "c": None}, "expected a mapping or a list"),
        ({"a": [], "c": None}, "empty list of children"),
        ({"a": ["b", ["c", "d"]]}, "expected a class name or a mapping"),
        ({"a": None}, "at least two leaves"),
        ({}, "empty"),
        ({"a": None, "": None}, "empty class name"),
    ],
)
def test_from_dict_rejects_bad_trees(tree: dict[str, Any], match: str) -> None:
    with pytest.raises(HierarchyError, match=match):
        Hierarchy.from_dict(tree)
