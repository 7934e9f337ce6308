"""The tree's nodes, the hierarchy error, and building nodes from nested entries (no recursion)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "HierarchyError", "Node", "build_tree", "preorder", "where"]


class HierarchyError(ValueError):
    """A hierarchy that cannot be used, with the file and line where known."""


@dataclass(frozen=True, eq=False, repr=False)
class Node:
    """One node of the tree: a leaf when it has no children.

    ``line`` is the 1-based line of the file the node was read from, if any. Equality,
    hash and repr walk the subtree without recursion, so any depth works.

    Example:
        >>> Node("vehicle", (Node("car"),))
        Node(name='vehicle', children=(Node(name='car', children=(), line=None),), line=None)
    """

    name: str
    children: tuple[Node, ...] = ()
    line: int | None = None

    @property
    def is_leaf(self) -> bool:
        """Whether the node has no children."""
        return not self.children

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return _signature([self]) == _signature([other])

    def __hash__(self) -> int:
        return hash(_signature([self]))

    def __repr__(self) -> str:
        parts: list[str] = []
        stack: list[Node | str] = [self]  # nodes still to write, and the text that closes them
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
                continue
            parts.append(f"Node(name={item.name!r}, children=(")
            stack.append(("," if len(item.children) == 1 else "") + f"), line={item.line!r})")
            for i in range(len(item.children) - 1, -1, -1):
                stack.append(item.children[i])
                if i:
                    stack.append(", ")
        return "".join(parts)


def preorder(nodes: Sequence[Node]) -> Iterator[tuple[Node, int]]:
    """Yield ``(node, depth)`` for the nodes and their descendants, depth-first in tree order.

    Example:
        >>> [(n.name, d) for n, d in preorder([Node("a", (Node("b"),)), Node("c")])]
        [('a', 0), ('b', 1), ('c', 0)]
    """
    stack = [(node, 0) for node in reversed(nodes)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(node.children))


def _signature(nodes: Sequence[Node]) -> tuple[tuple[str, int | None, int], ...]:
    """Return (name, line, number of children) of every node, depth-first: it fixes the trees."""
    return tuple((node.name, node.line, len(node.children)) for node, _ in preorder(nodes))


def where(source: str | None, line: int | None) -> str:
    """Return the ``file:line: `` prefix of an error message (parts that are unknown left out).

    Example:
        >>> where("tree.txt", 3), where("tree.txt", None), where(None, 3), where(None, None)
        ('tree.txt:3: ', 'tree.txt: ', 'line 3: ', '')
    """
    if source is None:
        return "" if line is None else f"line {line}: "
    return f"{source}:{line}: " if line is not None else f"{source}: "


#: A node to build: its name, its line (None if unknown) and the container of its children
#: (a mapping, a list or a YAML node), None for a leaf.
Entry = tuple[str, int | None, Any]


def build_tree(
    top: list[Entry], children: Callable[[list[Entry], Entry], list[Entry]]
) -> list[Node]:
    """Return the nodes of the entries ``top`` and, depth-first, of all their descendants.

    ``children(path, entry)`` returns the (non-empty) entries of ``entry``'s container, or
    raises; ``path`` holds the entries of its ancestors. No recursion: any depth works.

    Example:
        >>> roots = build_tree([("a", 1, ["b"]), ("c", 2, None)], lambda path, e: [("b", 1, None)])
        >>> [(node.name, [child.name for child in node.children]) for node in roots]
        [('a', ['b']), ('c', [])]
    """
    roots: list[Node] = []
    path: list[Entry] = []  # the groups being built, outermost first
    levels: list[tuple[Iterator[Entry], list[Node]]] = [(iter(top), roots)]
    while levels:
        pending, built = levels[-1]
        entry = next(pending, None)
        if entry is None:  # every child built: the group is done
            levels.pop()
            if path:
                name, line, _ = path.pop()
                levels[-1][1].append(Node(name, tuple(built), line))
        elif entry[2] is None:
            built.append(Node(entry[0], (), entry[1]))
        else:
            levels.append((iter(children(path, entry)), []))
            path.append(entry)
    return roots
