"""The paper's indented text format: one class name a line, one tab (or spaces) per depth."""

from __future__ import annotations

import json
import re

from hl_lightning.hierarchy.names import check_invisible
from hl_lightning.hierarchy.node import HierarchyError, Node

__all__ = ["parse_text"]

_COMMENT = re.compile(r"(^|\s)#.*$")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_KINDS = {"\t": "tabs", " ": "spaces"}


def parse_text(text: str, source: str) -> list[Node]:
    """Return the root nodes of the tab- or space-indented text format.

    Blank lines and ``#`` comments (at a line's start or after whitespace) are ignored;
    errors name ``source`` and the line. JSON, and names that look like YAML (ending with
    a colon, starting with a dash and a space), are refused with a hint to use that format.

    Example:
        >>> [(node.name, len(node.children)) for node in parse_text("a\\n\\tb\\nc\\n", "<text>")]
        [('a', 1), ('c', 0)]
    """
    check_invisible(text, source)
    entries: list[tuple[int, str, int]] = []  # (line number, name, depth)
    indent_char: str | None = None
    indent_line = 0
    width: int | None = None
    for number, raw in enumerate(_NEWLINE.split(text), start=1):
        content = _COMMENT.sub("", raw).rstrip()
        if not content.strip():
            continue
        name = content.strip()
        indent = content[: len(content) - len(content.lstrip())]
        where = f"{source}:{number}: "
        if not entries and name[0] in "[{" and _is_json(text):
            raise HierarchyError(
                f"{where}this is JSON, not the indented text format (one class name a line): "
                "give the file a .json suffix"
            )
        if name.endswith(":") or name.startswith("- "):
            what = "ends with a colon" if name.endswith(":") else "starts with a dash"
            raise HierarchyError(
                f"{where}{name!r} {what}: this looks like YAML, not the indented text format "
                "(one class name a line): give the file a .yaml suffix"
            )
        if indent:
            chars = set(indent)
            if chars - {"\t", " "}:
                odd = ", ".join(sorted(repr(c) for c in chars - {"\t", " "}))
                raise HierarchyError(f"{where}indentation may use only tabs or spaces, found {odd}")
            if len(chars) > 1:
                raise HierarchyError(f"{where}indentation mixes tabs and spaces")
            char = indent[0]
            if indent_char is None:
                indent_char, indent_line = char, number
            elif char != indent_char:
                raise HierarchyError(
                    f"{where}indented with {_KINDS[char]} but line {indent_line} uses "
                    f"{_KINDS[indent_char]}; use one kind in the whole file"
                )
        if indent_char == " " and indent:
            width = width or len(indent)
            if len(indent) % width:
                raise HierarchyError(
                    f"{where}indentation of {len(indent)} spaces is not a multiple of "
                    f"{width} (the width used at line {indent_line})"
                )
            depth = len(indent) // width
        else:
            depth = len(indent)
        previous = entries[-1][2] if entries else -1
        if not entries and depth:
            raise HierarchyError(f"{where}the first class name {name!r} must not be indented")
        if depth > previous + 1:
            raise HierarchyError(
                f"{where}{name!r} is indented {depth - previous} levels deeper than the line "
                "above; indent one level at a time"
            )
        entries.append((number, name, depth))
    if not entries:
        raise HierarchyError(f"{source}: the hierarchy file is empty (no class names)")

    roots: list[Node] = []
    open_groups: list[tuple[int, str, list[Node]]] = []  # (line, name, children so far)
    for number, name, depth in entries:  # depth <= len(open_groups): checked above
        while len(open_groups) > depth:
            _close_group(open_groups, roots)
        open_groups.append((number, name, []))
    while open_groups:
        _close_group(open_groups, roots)
    return roots


def _close_group(open_groups: list[tuple[int, str, list[Node]]], roots: list[Node]) -> None:
    """Pop the innermost open group and add its node to its parent's children (or the roots)."""
    number, name, children = open_groups.pop()
    (open_groups[-1][2] if open_groups else roots).append(Node(name, tuple(children), number))


def _is_json(text: str) -> bool:
    """Whether the text is a JSON object or array."""
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False
