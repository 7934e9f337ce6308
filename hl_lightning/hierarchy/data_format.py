"""Hierarchies written as plain data: nested mappings and lists (a dict, or parsed JSON)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hl_lightning.hierarchy.node import Entry, HierarchyError, Node, build_tree

__all__ = ["parse_data", "tree_data"]


def parse_data(data: Any, source: str) -> list[Node]:
    """Return the root nodes of nested mappings/lists; a leaf maps to ``None`` or is a list item.

    A mapping or list met twice is refused before it is expanded again: one that contains
    itself (a cycle) would never end, and a sub-tree shared by two groups repeats its names.

    Example:
        >>> [node.name for node in parse_data({"sky": None, "vehicle": ["car"]}, "<dict>")]
        ['sky', 'vehicle']
    """

    def where(path: list[Entry], name: str | None = None) -> str:
        names = [entry[0] for entry in path] + ([] if name is None else [name])
        return f"{source}: under {'/'.join(names)}: " if names else f"{source}: "

    seen: dict[int, tuple[Any, str | None]] = {id(data): (data, None)}  # keeps them alive

    def children(path: list[Entry], entry: Entry) -> list[Entry]:
        name, _, value = entry
        entries = _entries(value, where(path, name))
        if not entries:
            raise HierarchyError(f"{where(path)}{name!r} has an empty list of children")
        first = seen.get(id(value))
        if first is not None:
            if value is data or any(value is parent[2] for parent in path):
                raise HierarchyError(
                    f"{where(path)}{name!r} contains one of its ancestors (a cycle); a "
                    "hierarchy must be a tree: give every group its own mapping or list"
                )
            raise HierarchyError(
                f"{where(path)}{name!r} has the same mapping or list of children as "
                f"{first[1]!r}; a sub-tree shared by two groups repeats its names"
            )
        seen[id(value)] = (value, name)
        return entries

    return build_tree(_entries(data, where([])), children)


def _entries(data: Any, where: str) -> list[Entry]:
    """Return the entries of a mapping (key: children or None) or a list (names, mappings)."""
    if isinstance(data, Mapping):
        return _mapping_entries(data, where)
    if isinstance(data, Sequence) and not isinstance(data, str):
        entries: list[Entry] = []
        for item in data:
            if isinstance(item, Mapping):
                entries.extend(_mapping_entries(item, where))
            elif isinstance(item, str | int):
                entries.append((str(item), None, None))
            else:
                raise HierarchyError(f"{where}expected a class name or a mapping, got {item!r}")
        return entries
    raise HierarchyError(f"{where}expected a mapping or a list, got {data!r}")


def _mapping_entries(data: Mapping[Any, Any], where: str) -> list[Entry]:
    """Return the entries of a mapping; a key must be a name (a string, or an integer)."""
    for key in data:
        if not isinstance(key, str | int):
            raise HierarchyError(f"{where}expected a class name, got the key {key!r}")
    return [(str(key), None, value) for key, value in data.items()]


def tree_data(roots: Sequence[Node]) -> dict[str, Any]:
    """Return the tree as nested mappings, leaves mapping to ``None``: :func:`parse_data`'s inverse.

    Example:
        >>> tree_data(parse_data({"sky": None, "vehicle": ["car"]}, "<dict>"))
        {'sky': None, 'vehicle': {'car': None}}
    """
    tree: dict[str, Any] = {}
    stack: list[tuple[Sequence[Node], dict[str, Any]]] = [(roots, tree)]
    while stack:  # each group's mapping is filled in after its parent's keys are in order
        nodes, mapping = stack.pop()
        for node in nodes:
            mapping[node.name] = {} if node.children else None
            if node.children:
                stack.append((node.children, mapping[node.name]))
    return tree
