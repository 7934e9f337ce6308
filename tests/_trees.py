"""Trees, file helpers and the random-tree strategy shared by the hierarchy tests."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from hl_lightning import Hierarchy, HierarchyError
from hl_lightning.hierarchies.random import random_hierarchy

FACES_LEAVES = (
    "background",
    "hair",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "face_skin",
    "nose",
    "left_eye",
    "right_eye",
    "left_eyebrow",
    "right_eyebrow",
)

# a -- leaf at depth 0;  b/c -- leaf at depth 1;  b/d/{e,f} -- leaves at depth 2
UNBALANCED = {"a": None, "b": {"c": None, "d": {"e": None, "f": None}}}

# (leaves, levels) of random unbalanced trees with shuffled leaves, and the small tree above
TREE_CASES: list[Any] = [(5, 2), (11, 4), (30, 3), (40, 5), "unbalanced"]


def tree_case_id(case: Any) -> str:
    """Return a test id for one of :data:`TREE_CASES`."""
    return "unbalanced" if case == "unbalanced" else f"K{case[0]}-D{case[1]}"


def tree_case(case: Any, seed_offset: int) -> Hierarchy:
    """Return the tree of one of :data:`TREE_CASES`: a random tree seeded with its leaf count
    plus ``seed_offset``, or UNBALANCED with leaves at 3 depths, reordered."""
    if case == "unbalanced":
        return Hierarchy.from_dict(UNBALANCED).reorder(["f", "a", "e", "c"])
    num_leaves, num_levels = case
    return random_hierarchy(
        num_leaves, num_levels, seed=num_leaves + seed_offset, shuffle_leaves=True
    )


ZOO_TEXT = "animal\n\tcat\n\tdog\nplant\n\ttree\n\tflower\nrock\n"


ZOO_DICT = {
    "animal": {"cat": None, "dog": None},
    "plant": {"tree": None, "flower": None},
    "rock": None,
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    """Return the path of a new UTF-8 file holding ``text`` verbatim (no newline translation)."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def to_text(tree: dict[str, Any], indent: str = "\t", depth: int = 0) -> str:
    """Return a nested mapping written in the indented text format."""
    lines = []
    for name, children in tree.items():
        lines.append(indent * depth + name + "\n")
        if children is not None:
            lines.append(to_text(children, indent, depth + 1))
    return "".join(lines)


def leaf_depths(tree: dict[str, Any], depth: int = 0) -> dict[str, int]:
    """Return the depth of every leaf of a nested mapping, in depth-first order."""
    out: dict[str, int] = {}
    for name, children in tree.items():
        if children is None:
            out[name] = depth
        else:
            out.update(leaf_depths(children, depth + 1))
    return out


def error_at(path: Path, line: int, match: str) -> str:
    """Return the message of the HierarchyError that reading ``path`` raises at ``line``."""
    with pytest.raises(HierarchyError, match=match) as info:
        Hierarchy.from_file(path)
    message = str(info.value)
    assert f"{path}:{line}: " in message, message
    return message


TRICKY = ["null", "true", "yes", "off", "1", "2.5", "~", "café", "traffic sign", "a-b", "x_y"]


NAMES = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=7),
    st.sampled_from(TRICKY),
)


@st.composite
def random_trees(draw: st.DrawFn) -> dict[str, Any]:
    """Return a random unbalanced tree as a nested mapping: 2..40 unique leaves, depth <= 5."""
    leaves = draw(st.lists(NAMES, min_size=2, max_size=40, unique=True))
    max_depth = draw(st.integers(0, 4))  # leaf depth 0..4 gives at most 5 levels
    counter = itertools.count()

    def build(chunk: list[str], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        i = 0
        while i < len(chunk):
            size = draw(st.integers(1, len(chunk) - i))
            part, i = chunk[i : i + size], i + size
            if depth < max_depth and draw(st.booleans()):
                out[f"G{next(counter)}"] = build(part, depth + 1)  # upper case: never a leaf
            else:
                out.update(dict.fromkeys(part))
        return out

    return build(leaves, 0)


PROPERTY = settings(max_examples=50, deadline=None)
