"""The class hierarchy: parsing, validation, leaf order and per-level group maps.

A :class:`Hierarchy` is a tree whose leaves are the K classes a network predicts.
Levels are depths: level 0 holds the children of the implicit root, level ``D - 1`` the
deepest leaves, and a leaf shallower than level ``d`` stands for itself at level ``d``.
Everything else in the package (losses, decoders, metrics) derives from the tensors
:meth:`Hierarchy.level_index` returns.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import torch
import yaml

__all__ = ["Hierarchy", "HierarchyError", "Node"]

_COMMENT = re.compile(r"(^|\s)#.*$")
_NEWLINE = re.compile(r"\r\n|\r|\n")


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


def _preorder(nodes: Sequence[Node]) -> Iterator[tuple[Node, int]]:
    """Yield ``(node, depth)`` for the nodes and their descendants, depth-first in tree order."""
    stack = [(node, 0) for node in reversed(nodes)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(node.children))


def _signature(nodes: Sequence[Node]) -> tuple[tuple[str, int | None, int], ...]:
    """Return (name, line, number of children) of every node, depth-first: it fixes the trees."""
    return tuple((node.name, node.line, len(node.children)) for node, _ in _preorder(nodes))


def _where(source: str | None, line: int | None) -> str:
    if source is None:
        return "" if line is None else f"line {line}: "
    return f"{source}:{line}: " if line is not None else f"{source}: "


def _names(names: Sequence[str], what: str) -> list[str]:
    """Return the names as strings; a bare string is refused (it is not a list of names)."""
    if isinstance(names, str):
        raise HierarchyError(f"{what} must be a list of names, not the string {names!r}")
    return [str(n) for n in names]


class Hierarchy:
    """A class hierarchy whose leaves are the K classes of a segmentation network.

    Build it with :meth:`from_file`, :meth:`from_dict` or :meth:`flat`; then
    :meth:`reorder` it so that leaf ``i`` is dataset label id ``i``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
        >>> h.leaves
        ('sky', 'car', 'truck')
        >>> h.num_levels, h.group_names(0)
        (2, ('sky', 'vehicle'))
        >>> h.level_index(0).tolist()
        [0, 1, 1]
        >>> h.reorder(["car", "truck", "sky"]).level_index(0).tolist()
        [1, 1, 0]
    """

    def __init__(
        self,
        roots: Sequence[Node],
        leaves: Sequence[str] | None = None,
        level_names: Sequence[str] | None = None,
        source: str | None = None,
    ) -> None:
        self._roots = tuple(roots)
        self._source = source
        self._check_tree()
        tree_leaves = tuple(node.name for node, _ in self.walk() if node.is_leaf)
        self._leaves = tree_leaves if leaves is None else tuple(leaves)
        if sorted(self._leaves) != sorted(tree_leaves):
            raise HierarchyError("leaf order must be a permutation of the tree's leaves")
        depth = max(d for node, d in self.walk() if node.is_leaf) + 1
        names = tuple(f"level{d}" for d in range(depth)) if level_names is None else level_names
        self._level_names = self._check_level_names(names, depth)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_file(cls, path: str | Path, level_names: Sequence[str] | None = None) -> Hierarchy:
        """Return the hierarchy read from an indented text file or a YAML file.

        Text: one class name a line, one tab (or a consistent number of spaces) per depth,
        blank lines and ``#`` comments ignored. YAML (``.yaml``/``.yml``): nested mappings,
        where a leaf is a key with an empty value or an item of a list.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise HierarchyError(f"cannot read hierarchy file {path}: {err.strerror}") from err
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = err.object[: err.start].count(b"\n") + 1
            raise HierarchyError(f"{path}:{line}: not UTF-8 text ({err.reason})") from err
        if path.suffix.lower() in {".yaml", ".yml"}:
            roots = _parse_yaml(text, str(path))
        else:
            roots = _parse_indented(text, str(path))
        return cls(roots, level_names=level_names, source=str(path))

    @classmethod
    def from_text(cls, text: str, level_names: Sequence[str] | None = None) -> Hierarchy:
        """Return the hierarchy written in the indented text format.

        Example:
            >>> Hierarchy.from_text("animal\\n\\tcat\\n\\tdog\\nplant\\n").num_levels
            2
        """
        return cls(_parse_indented(text.lstrip("\ufeff"), "<text>"), level_names=level_names)

    @classmethod
    def from_dict(
        cls, tree: Mapping[str, Any] | Sequence[Any], level_names: Sequence[str] | None = None
    ) -> Hierarchy:
        """Return the hierarchy of a nested mapping; a leaf maps to ``None`` or is a list item.

        Example:
            >>> Hierarchy.from_dict({"bg": None, "fg": ["hair", {"face": ["eye", "nose"]}]}).leaves
            ('bg', 'hair', 'eye', 'nose')
        """
        return cls(_nodes_from_data(tree, "<dict>"), level_names=level_names)

    @classmethod
    def flat(cls, names: Iterable[str]) -> Hierarchy:
        """Return the one-level hierarchy where every class is a child of the root.

        Example:
            >>> Hierarchy.flat(["a", "b", "c"]).num_levels
            1
        """
        return cls([Node(str(name)) for name in names])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Hierarchy:
        """Return the hierarchy saved by :meth:`to_config` (tree, leaf order, level names)."""
        h = cls.from_dict(config["tree"], level_names=config.get("level_names"))
        leaves = config.get("leaves")
        return h if leaves is None else h.reorder(list(leaves))

    def to_dict(self) -> dict[str, Any]:
        """Return the tree as a nested mapping (leaves map to ``None``), inverse of from_dict."""
        tree: dict[str, Any] = {}
        stack: list[tuple[Sequence[Node], dict[str, Any]]] = [(self._roots, tree)]
        while stack:  # each group's mapping is filled in after its parent's keys are in order
            nodes, mapping = stack.pop()
            for node in nodes:
                mapping[node.name] = {} if node.children else None
                if node.children:
                    stack.append((node.children, mapping[node.name]))
        return tree

    def to_config(self) -> dict[str, Any]:
        """Return plain data that :meth:`from_config` turns back into this hierarchy."""
        return {
            "tree": self.to_dict(),
            "leaves": list(self._leaves),
            "level_names": list(self._level_names),
        }

    # ------------------------------------------------------------------ derived views
    def reorder(self, class_names: Sequence[str]) -> Hierarchy:
        """Return the same tree with leaf ``i`` being ``class_names[i]`` (dataset label id ``i``).

        Raises one :class:`HierarchyError` listing every missing, extra and duplicate name.
        """
        names = _names(class_names, "class names")
        given, known = set(names), set(self._leaves)
        duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
        missing = [n for n in self._leaves if n not in given]
        extra = [n for n in dict.fromkeys(names) if n not in known]
        problems = []
        if missing:
            problems.append(f"missing from the class names: {', '.join(missing)}")
        if extra:
            problems.append(f"not leaves of the hierarchy: {', '.join(extra)}")
        if duplicates:
            problems.append(f"duplicated in the class names: {', '.join(duplicates)}")
        if problems:
            where = f" ({self._source})" if self._source else ""
            raise HierarchyError(
                f"class names do not match the hierarchy's leaves{where}: " + "; ".join(problems)
            )
        return Hierarchy(self._roots, names, self._level_names, self._source)

    def with_level_names(self, level_names: Sequence[str]) -> Hierarchy:
        """Return the same hierarchy with other level names (one per level, coarse to fine)."""
        return Hierarchy(self._roots, self._leaves, level_names, self._source)

    @property
    def roots(self) -> tuple[Node, ...]:
        """The children of the implicit root."""
        return self._roots

    @property
    def leaves(self) -> tuple[str, ...]:
        """The K class names; leaf ``i`` is label id ``i``."""
        return self._leaves

    @property
    def num_leaves(self) -> int:
        """K, the number of classes the network predicts."""
        return len(self._leaves)

    @property
    def num_levels(self) -> int:
        """D, the number of levels (the depth of the deepest leaf plus one)."""
        return len(self._level_names)

    @property
    def level_names(self) -> tuple[str, ...]:
        """One name per level, coarse to fine (``level0``, ``level1``, ... by default)."""
        return self._level_names

    @property
    def source(self) -> str | None:
        """The file the hierarchy was read from, if any."""
        return self._source

    def num_groups(self, level: int) -> int:
        """Return the number of groups at ``level``."""
        return len(self.group_names(level))

    def group_names(self, level: int) -> tuple[str, ...]:
        """Return the names of the groups at ``level``, in tree (depth-first) order."""
        return self._levels[self._check_level(level)][0]

    def level_index(self, level: int) -> torch.Tensor:
        """Return a LongTensor (K,): the group id at ``level`` of every leaf."""
        return self.level_matrix()[self._check_level(level)].clone()

    def level_matrix(self) -> torch.Tensor:
        """Return a LongTensor (D, K): row ``d`` is :meth:`level_index` ``(d)``."""
        return self._level_matrix.clone()

    def labels_at_level(
        self, labels: torch.Tensor, level: int, ignore_index: int | None = None
    ) -> torch.Tensor:
        """Return leaf label ids of any shape mapped to group ids at ``level``.

        ``labels`` is any integer tensor (uint8 masks included); pixels equal to
        ``ignore_index`` keep that value. The result is a LongTensor of the same shape.

        Example:
            >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
            >>> h.labels_at_level(torch.tensor([2, 0, 255]), 0, ignore_index=255).tolist()
            [1, 0, 255]
        """
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must be integer label ids, got dtype {labels.dtype}")
        labels = labels.long()  # uint8 would index as a mask; compare ignore_index in int64
        index = self._level_matrix[self._check_level(level)].to(labels.device)
        if ignore_index is None:
            return index[labels]
        ignored = labels == ignore_index
        mapped = index[labels.masked_fill(ignored, 0)]
        return mapped.masked_fill(ignored, ignore_index)

    def leaf_distance(self) -> torch.Tensor:
        """Return a LongTensor (K, K): the number of levels at which two leaves' groups differ.

        It is the height of their lowest common ancestor in the tree padded so that every
        leaf sits at the deepest level (a shallow leaf standing for itself below): 0 on the
        diagonal, ``D`` for leaves under different level-0 groups.
        """
        distance = torch.zeros(self.num_leaves, self.num_leaves, dtype=torch.long)
        for row in self._level_matrix:  # one (K, K) at a time, not (D, K, K)
            distance += row[:, None] != row[None, :]
        return distance

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hierarchy):
            return NotImplemented
        return self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    @cached_property
    def _key(self) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...], tuple[str, ...]]:
        """What equality compares: the tree (every node's name and depth, depth-first, which
        fixes it with its child order), the leaf order and the level names. Flat tuples:
        comparing and hashing them does not recurse, whatever the depth."""
        shape = tuple((node.name, depth) for node, depth in self.walk())
        return shape, self._leaves, self._level_names

    @cached_property
    def _hash(self) -> int:
        """The hash, computed once: caches keyed by hierarchy look it up on every call."""
        return hash(self._key)

    def __repr__(self) -> str:
        groups = [self.num_groups(d) for d in range(self.num_levels)]
        src = f", source={self._source!r}" if self._source else ""
        return (
            f"Hierarchy(leaves={self.num_leaves}, levels={self.num_levels}, groups={groups}{src})"
        )

    def __str__(self) -> str:
        label = {name: i for i, name in enumerate(self._leaves)}
        lines = [
            "  " * depth + node.name + ("" if node.children else f"  [{label[node.name]}]")
            for node, depth in self.walk()
        ]
        return "\n".join(lines)

    def walk(self) -> Iterator[tuple[Node, int]]:
        """Yield ``(node, depth)`` of every node, depth-first in tree order (the file's lines).

        Example:
            >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
            >>> [(node.name, depth) for node, depth in h.walk()]
            [('sky', 0), ('vehicle', 0), ('car', 1), ('truck', 1)]
        """
        return _preorder(self._roots)

    # ------------------------------------------------------------------ internals
    @cached_property
    def _levels(self) -> list[tuple[tuple[str, ...], dict[str, int]]]:
        """Per level: group names in tree order, and each leaf's group id."""
        depth = self.num_levels
        groups: list[list[str]] = [[] for _ in range(depth)]
        leaf_group: list[dict[str, int]] = [{} for _ in range(depth)]
        path: list[int] = []  # group ids of the current node and its ancestors
        for node, level in self.walk():
            del path[level:]
            path.append(len(groups[level]))
            groups[level].append(node.name)
            if node.children:
                continue
            for d in range(level + 1, depth):  # a shallow leaf stands for itself below
                path.append(len(groups[d]))
                groups[d].append(node.name)
            for d in range(depth):
                leaf_group[d][node.name] = path[d]
        return [(tuple(g), m) for g, m in zip(groups, leaf_group, strict=True)]

    @cached_property
    def _level_matrix(self) -> torch.Tensor:
        rows = [[ids[name] for name in self._leaves] for _, ids in self._levels]
        return torch.tensor(rows, dtype=torch.long)

    def _check_level(self, level: int) -> int:
        if not -self.num_levels <= level < self.num_levels:
            raise IndexError(f"level {level} out of range for {self.num_levels} levels")
        return level % self.num_levels

    def _check_level_names(self, names: Sequence[str], depth: int) -> tuple[str, ...]:
        names = tuple(_names(names, "level names"))
        if len(names) != depth:
            raise HierarchyError(
                f"{len(names)} level names given for a hierarchy with {depth} levels: {names}"
            )
        if len(set(names)) != len(names):
            raise HierarchyError(f"level names must be unique: {names}")
        return names

    def _check_tree(self) -> None:
        if not self._roots:
            raise HierarchyError(f"{_where(self._source, None)}the hierarchy is empty")
        seen: dict[str, Node] = {}
        for node, _ in self.walk():
            if not node.name:
                raise HierarchyError(f"{_where(self._source, node.line)}empty class name")
            first = seen.get(node.name)
            if first is None:
                seen[node.name] = node
                continue
            lines = f" (lines {first.line} and {node.line})" if node.line is not None else ""
            if first.is_leaf and node.is_leaf:
                what = "duplicate leaf name"
            elif first.is_leaf or node.is_leaf:
                what = "node is both a leaf and a parent"
            else:
                what = "duplicate group name"
            raise HierarchyError(f"{_where(self._source, node.line)}{what} {node.name!r}{lines}")
        leaves = [node for node in seen.values() if node.is_leaf]
        if len(leaves) < 2:
            raise HierarchyError(
                f"{_where(self._source, leaves[0].line)}a hierarchy needs at least two leaves "
                f"(classes), found only {leaves[0].name!r}"
            )


def _parse_indented(text: str, source: str) -> list[Node]:
    """Return the root nodes of the tab- or space-indented text format."""
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
                kinds = {"\t": "tabs", " ": "spaces"}
                raise HierarchyError(
                    f"{where}indented with {kinds[char]} but line {indent_line} uses "
                    f"{kinds[indent_char]}; use one kind in the whole file"
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


# A node to build: its name, its line (None if unknown) and the container of its children
# (a mapping, a list or a YAML node), None for a leaf.
_Entry = tuple[str, int | None, Any]


def _build_tree(
    top: list[_Entry], children: Callable[[list[_Entry], _Entry], list[_Entry]]
) -> list[Node]:
    """Return the nodes of the entries ``top`` and, depth-first, of all their descendants.

    ``children(path, entry)`` returns the (non-empty) entries of ``entry``'s container, or
    raises; ``path`` holds the entries of its ancestors. No recursion: any depth works.
    """
    roots: list[Node] = []
    path: list[_Entry] = []  # the groups being built, outermost first
    levels: list[tuple[Iterator[_Entry], list[Node]]] = [(iter(top), roots)]
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


def _nodes_from_data(data: Any, source: str) -> list[Node]:
    """Return nodes from nested mappings/lists (a dict, or YAML loaded as plain data).

    A mapping or list met twice is refused before it is expanded again: one that contains
    itself (a cycle) would never end, and a sub-tree shared by two groups repeats its names.
    """

    def where(path: list[_Entry], name: str | None = None) -> str:
        names = [entry[0] for entry in path] + ([] if name is None else [name])
        return f"{source}: under {'/'.join(names)}: " if names else f"{source}: "

    seen: dict[int, tuple[Any, str | None]] = {id(data): (data, None)}  # keeps them alive

    def children(path: list[_Entry], entry: _Entry) -> list[_Entry]:
        name, _, value = entry
        entries = _data_entries(value, where(path, name))
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

    return _build_tree(_data_entries(data, where([])), children)


def _data_entries(data: Any, where: str) -> list[_Entry]:
    """Return the entries of a mapping (key: children or None) or a list (names, mappings)."""
    if isinstance(data, Mapping):
        return [(str(key), None, value) for key, value in data.items()]
    if isinstance(data, Sequence) and not isinstance(data, str):
        entries: list[_Entry] = []
        for item in data:
            if isinstance(item, Mapping):
                entries.extend((str(key), None, value) for key, value in item.items())
            elif isinstance(item, str | int):
                entries.append((str(item), None, None))
            else:
                raise HierarchyError(f"{where}expected a class name or a mapping, got {item!r}")
        return entries
    raise HierarchyError(f"{where}expected a mapping or a list, got {data!r}")


def _parse_yaml(text: str, source: str) -> list[Node]:
    """Return the root nodes of a YAML hierarchy, keeping line numbers for errors."""
    try:
        document = _compose_yaml(text, source)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}: " if mark is not None else f"{source}: "
        what = "; ".join(str(part) for part in (err.context, err.problem) if part)
        raise HierarchyError(f"{where}not valid YAML: {what or err}") from err
    except yaml.YAMLError as err:
        raise HierarchyError(f"{source}: not valid YAML: {err}") from err
    if document is None:
        raise HierarchyError(f"{source}: the hierarchy file is empty (no class names)")

    def children(path: list[_Entry], entry: _Entry) -> list[_Entry]:
        name, line, value = entry
        entries = _yaml_entries(value, source)
        if not entries:
            raise HierarchyError(f"{source}:{line}: {name!r} has no children")
        return entries

    return _build_tree(_yaml_entries(document, source), children)


def _compose_yaml(text: str, source: str) -> yaml.Node | None:
    """Return the node graph of a one-document YAML text (None when it has no document).

    ``yaml.compose`` without its recursion (one Python frame per nesting level), and with
    aliases refused where they appear, before anything is expanded: a hierarchy is a tree,
    and nested aliases would expand exponentially (or, referring to their own anchor, never end).
    """
    loader = yaml.SafeLoader(text)
    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        document = _compose_events(loader, source)
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            line = loader.peek_event().start_mark.line + 1
            raise HierarchyError(
                f"{source}:{line}: a second YAML document; a hierarchy file holds one"
            )
        return document
    finally:
        loader.dispose()


def _compose_events(loader: yaml.SafeLoader, source: str) -> yaml.Node:
    """Return the node of the loader's next YAML node event and the events up to its end."""
    open_nodes: list[tuple[yaml.CollectionNode, list[yaml.Node]]] = []  # with their items
    while True:
        event = loader.get_event()
        start, end = _marks(event)
        node: yaml.Node
        if isinstance(event, yaml.AliasEvent):
            raise HierarchyError(
                f"{source}:{start.line + 1}: YAML aliases (&anchor / *alias) are not "
                f"allowed in a hierarchy (found *{event.anchor}); write the class names out"
            )
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(tag, event.value, start, end)
        elif isinstance(event, yaml.CollectionStartEvent):
            kind = (
                yaml.SequenceNode
                if isinstance(event, yaml.SequenceStartEvent)
                else yaml.MappingNode
            )
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(kind, None, event.implicit)
            open_nodes.append((kind(tag, [], start, end), []))
            continue
        else:  # the end of the innermost open collection
            collection, items = open_nodes.pop()
            if isinstance(collection, yaml.MappingNode):  # keys and values alternate
                collection.value = list(zip(items[::2], items[1::2], strict=True))
            else:
                collection.value = items
            collection.end_mark = end
            node = collection
        if not open_nodes:
            return node
        open_nodes[-1][1].append(node)


def _marks(event: yaml.Event) -> tuple[yaml.Mark, yaml.Mark]:
    """Return the start and end marks of an event: the pure-Python parser sets both."""
    return cast(yaml.Mark, event.start_mark), cast(yaml.Mark, event.end_mark)


def _scalar(node: yaml.Node) -> str | None:
    """Return the text of a scalar node; None for a null or a non-scalar."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        return None
    return str(node.value)


def _yaml_entries(node: yaml.Node, source: str) -> list[_Entry]:
    """Return the entries of a YAML mapping (key: children or nothing) or list (names, mappings)."""
    if isinstance(node, yaml.MappingNode):
        return _yaml_mapping_entries(node, source)
    if isinstance(node, yaml.SequenceNode):
        entries: list[_Entry] = []
        for item in node.value:
            line = item.start_mark.line + 1
            if isinstance(item, yaml.ScalarNode):
                name = _scalar(item)
                if name is None:
                    raise HierarchyError(f"{source}:{line}: empty list item")
                entries.append((name, line, None))
            elif isinstance(item, yaml.SequenceNode):
                raise HierarchyError(
                    f"{source}:{line}: a list item must be a class name or a mapping, not a list"
                )
            else:
                entries.extend(_yaml_mapping_entries(item, source))
        return entries
    line = node.start_mark.line + 1
    raise HierarchyError(f"{source}:{line}: expected a mapping or a list of class names")


def _yaml_mapping_entries(node: yaml.MappingNode, source: str) -> list[_Entry]:
    """Return the entries of a YAML mapping: a null value is a leaf, a collection a group."""
    entries: list[_Entry] = []
    for key, value in node.value:
        name = _scalar(key)
        line = key.start_mark.line + 1
        if name is None:
            raise HierarchyError(f"{source}:{line}: a class name must be a plain value")
        if isinstance(value, yaml.ScalarNode):
            if _scalar(value) is not None:
                raise HierarchyError(
                    f"{source}:{line}: {name!r} maps to {value.value!r}; a leaf maps to "
                    "nothing, a group to a mapping or a list"
                )
            value = None
        entries.append((name, line, value))
    return entries
