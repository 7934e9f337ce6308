"""The class tree: :class:`Hierarchy`, its leaf order, per-level group maps and distances."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from hl_lightning.hierarchy.data_format import parse_data
from hl_lightning.hierarchy.names import name_list, name_problem
from hl_lightning.hierarchy.node import HierarchyError, Node, preorder, where
from hl_lightning.hierarchy.text_format import parse_text
from hl_lightning.hierarchy.yaml_format import parse_json, parse_yaml

__all__ = ["Hierarchy"]

_PARSERS = {".yaml": parse_yaml, ".yml": parse_yaml, ".json": parse_json}


def _shown(names: Iterable[str]) -> str:
    """Return the names joined by commas, quoted where they hold something hard to see."""
    return ", ".join(name if name_problem(name) is None else repr(name) for name in names)


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
        self._leaves = tree_leaves if leaves is None else tuple(name_list(leaves, "leaf order"))
        if sorted(self._leaves) != sorted(tree_leaves):
            raise HierarchyError("leaf order must be a permutation of the tree's leaves")
        depth = max(d for node, d in self.walk() if node.is_leaf) + 1
        names = tuple(f"level{d}" for d in range(depth)) if level_names is None else level_names
        self._level_names = self._check_level_names(names, depth)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_file(cls, path: str | Path, level_names: Sequence[str] | None = None) -> Hierarchy:
        """Return the hierarchy read from an indented text file, a YAML or a JSON file.

        Text (any other suffix): one class name a line, one tab (or a consistent number of
        spaces) per depth, blank lines and ``#`` comments ignored. YAML (``.yaml``/``.yml``)
        and JSON (``.json``): nested mappings, where a leaf is a key with an empty value
        (``null``) or an item of a list. Every error is a :class:`HierarchyError` naming
        the file, and the line where there is one.
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
        parse = _PARSERS.get(path.suffix.lower(), parse_text)
        return cls(parse(text, str(path)), level_names=level_names, source=str(path))

    @classmethod
    def from_text(cls, text: str, level_names: Sequence[str] | None = None) -> Hierarchy:
        """Return the hierarchy written in the indented text format.

        Example:
            >>> Hierarchy.from_text("animal\\n\\tcat\\n\\tdog\\nplant\\n").num_levels
            2
        """
        return cls(parse_text(text.removeprefix("\ufeff"), "<text>"), level_names=level_names)

    @classmethod
    def from_dict(
        cls, tree: Mapping[str, Any] | Sequence[Any], level_names: Sequence[str] | None = None
    ) -> Hierarchy:
        """Return the hierarchy of a nested mapping; a leaf maps to ``None`` or is a list item.

        Example:
            >>> Hierarchy.from_dict({"bg": None, "fg": ["hair", {"face": ["eye", "nose"]}]}).leaves
            ('bg', 'hair', 'eye', 'nose')
        """
        return cls(parse_data(tree, "<dict>"), level_names=level_names)

    @classmethod
    def flat(cls, names: Iterable[str]) -> Hierarchy:
        """Return the one-level hierarchy where every class is a child of the root.

        Example:
            >>> Hierarchy.flat(["a", "b", "c"]).num_levels
            1
        """
        return cls([Node(name) for name in name_list(names, "class names")])

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Hierarchy:
        """Return the hierarchy saved by :meth:`to_config` (tree, leaf order, level names)."""
        h = cls.from_dict(config["tree"], level_names=config.get("level_names"))
        leaves = config.get("leaves")
        return h if leaves is None else h.reorder(leaves)

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
        names = name_list(class_names, "class names")
        given, known = set(names), set(self._leaves)
        duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
        missing = [n for n in self._leaves if n not in given]
        extra = [n for n in dict.fromkeys(names) if n not in known]
        problems = []
        if missing:
            problems.append(f"missing from the class names: {_shown(missing)}")
        if extra:
            problems.append(f"not leaves of the hierarchy: {_shown(extra)}")
        if duplicates:
            problems.append(f"duplicated in the class names: {_shown(duplicates)}")
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
        return preorder(self._roots)

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
        names = tuple(name_list(names, "level names"))
        if len(names) != depth:
            raise HierarchyError(
                f"{len(names)} level names given for a hierarchy with {depth} levels: {names}"
            )
        if len(set(names)) != len(names):
            raise HierarchyError(f"level names must be unique: {names}")
        return names

    def _check_tree(self) -> None:
        if not self._roots:
            raise HierarchyError(f"{where(self._source, None)}the hierarchy is empty")
        seen: dict[str, Node] = {}
        path: list[str] = []  # the names of the node's ancestors
        for node, depth in self.walk():
            del path[depth:]
            problem = name_problem(node.name)
            if problem is not None:
                under = f"under {'/'.join(path)}: " if path and node.line is None else ""
                raise HierarchyError(f"{where(self._source, node.line)}{under}{problem}")
            path.append(node.name)
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
            raise HierarchyError(f"{where(self._source, node.line)}{what} {node.name!r}{lines}")
        leaves = [node for node in seen.values() if node.is_leaf]
        if len(leaves) < 2:
            raise HierarchyError(
                f"{where(self._source, leaves[0].line)}a hierarchy needs at least two leaves "
                f"(classes), found only {leaves[0].name!r}"
            )
