"""The class tree: :class:`Hierarchy`, its leaf order, node ids, per-level group maps, distances."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from hl_lightning.hierarchy.data_format import parse_data, tree_data
from hl_lightning.hierarchy.levels import (
    InternalNode,
    internal_nodes,
    level_groups,
    node_level_matrix,
)
from hl_lightning.hierarchy.names import check_class_names, check_level_names, check_tree, name_list
from hl_lightning.hierarchy.node import HierarchyError, Node, preorder
from hl_lightning.hierarchy.text_format import parse_text
from hl_lightning.hierarchy.yaml_format import parse_json, parse_yaml

__all__ = ["Hierarchy"]

_PARSERS = {".yaml": parse_yaml, ".yml": parse_yaml, ".json": parse_json}


class Hierarchy:
    """A class hierarchy whose leaves are the K classes of a segmentation network.

    Build it with :meth:`from_file`, :meth:`from_dict` or :meth:`flat`; then
    :meth:`reorder` it so that leaf ``i`` is dataset label id ``i``. Every node has a label
    id (:attr:`node_names`): the leaves ``0..K-1``, then the internal nodes (coarse labels).

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
        check_tree(self._roots, source)
        tree_leaves = tuple(node.name for node, _ in self.walk() if node.is_leaf)
        self._leaves = tree_leaves if leaves is None else tuple(name_list(leaves, "leaf order"))
        if sorted(self._leaves) != sorted(tree_leaves):
            raise HierarchyError("leaf order must be a permutation of the tree's leaves")
        depth = max(d for node, d in self.walk() if node.is_leaf) + 1
        names = tuple(f"level{d}" for d in range(depth)) if level_names is None else level_names
        self._level_names = check_level_names(names, depth)

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
        return tree_data(self._roots)

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
        check_class_names(names, self._leaves, self._source)
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

    @property
    def node_names(self) -> tuple[str, ...]:
        """Every node's name by node id: the K leaves in leaf order, then the internal nodes.

        Leaf ``i`` keeps label id ``i``; the internal nodes follow coarse to fine (by depth,
        in tree order within a depth). A mask may hold any node id: an internal node's id
        is a coarse label, known at its own and every coarser level, unknown below.

        Example:
            >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
            >>> h.node_names, h.num_nodes
            (('sky', 'car', 'truck', 'vehicle'), 4)
        """
        return self._node_names

    @property
    def num_nodes(self) -> int:
        """N, the number of node ids: the K leaves and the internal nodes."""
        return len(self._node_names)

    def label_id(self, name: str) -> int:
        """Return the node id (the label id in a mask) of the leaf or internal node ``name``.

        An unknown name raises a :class:`HierarchyError` that names the closest node names.

        Example:
            >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
            >>> h.label_id("truck"), h.label_id("vehicle")
            (2, 3)
        """
        node_id = self._node_ids.get(name)
        if node_id is None:
            close = difflib.get_close_matches(str(name), self._node_names, n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            where = f" {self._source}" if self._source else ""
            raise HierarchyError(f"{name!r} is not a node of the hierarchy{where}{hint}")
        return node_id

    def node_level(self, node_id: int) -> int:
        """Return the finest level at which node ``node_id`` is a group (its label is known).

        An internal node's depth; ``D - 1`` for every leaf, a shallow one included (it
        stands for itself at the deeper levels).

        Example:
            >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
            >>> [h.node_level(i) for i in range(h.num_nodes)]
            [1, 1, 1, 0]
        """
        if isinstance(node_id, bool) or not 0 <= node_id < self.num_nodes:
            raise IndexError(f"node id {node_id!r} out of range for {self.num_nodes} nodes")
        if node_id < self.num_leaves:
            return self.num_levels - 1
        return self._internal[node_id - self.num_leaves].depth

    def node_level_matrix(self) -> torch.Tensor:
        """Return a LongTensor (D, N): row ``d`` holds the group id at level ``d`` of every node.

        The first K columns are :meth:`level_matrix`; an internal node's column holds its
        group at its own and every coarser level, and ``-1`` (never a group id) at the
        levels below its own, where its label says nothing.

        Example:
            >>> h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
            >>> h.node_level_matrix().tolist()
            [[0, 1, 1, 1], [0, 1, 2, -1]]
        """
        return self._node_matrix.clone()

    def labels_at_level(
        self, labels: torch.Tensor, level: int, ignore_index: int | None = None
    ) -> torch.Tensor:
        """Return label ids (node ids) of any shape mapped to group ids at ``level``.

        ``labels`` is any integer tensor (uint8 masks included). A leaf id maps to its
        group; an internal node's id (a coarse label) maps to its group at its own and
        every coarser level, and to ``ignore_index`` at the levels below. Pixels equal to
        ``ignore_index`` keep that value (even where it is also a node id). Without an
        ``ignore_index``, a coarse label below its level is a ValueError. The result is a
        LongTensor of the same shape: one table lookup.

        Example:
            >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
            >>> h.labels_at_level(torch.tensor([2, 0, 255]), 0, ignore_index=255).tolist()
            [1, 0, 255]
            >>> h.labels_at_level(torch.tensor([3, 1]), 1, ignore_index=255).tolist()
            [255, 1]
        """
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must be integer label ids, got dtype {labels.dtype}")
        labels = labels.long()  # uint8 would index as a mask; compare ignore_index in int64
        level = self._check_level(level)
        row = self._node_matrix[level]
        if ignore_index is None:
            mapped = row.to(labels.device)[labels]
            if bool(row.lt(0).any()) and mapped.numel() and int(mapped.min()) < 0:
                self._raise_coarse_below(labels[mapped < 0], level)
            return mapped
        index = row.masked_fill(row < 0, ignore_index).to(labels.device)
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
        ids = self._node_ids
        return "\n".join(
            f"{'  ' * depth}{node.name}  [{ids[node.name]}]" for node, depth in self.walk()
        )

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
        return level_groups(self._roots, self.num_levels)

    @cached_property
    def _level_matrix(self) -> torch.Tensor:
        rows = [[ids[name] for name in self._leaves] for _, ids in self._levels]
        return torch.tensor(rows, dtype=torch.long)

    @cached_property
    def _internal(self) -> list[InternalNode]:
        """The internal nodes in node-id order (ids ``K``, ``K + 1``, ...)."""
        return internal_nodes(self._roots)

    @cached_property
    def _node_names(self) -> tuple[str, ...]:
        return self._leaves + tuple(node.name for node in self._internal)

    @cached_property
    def _node_ids(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self._node_names)}

    @cached_property
    def _node_matrix(self) -> torch.Tensor:
        return node_level_matrix(self._level_matrix, self._leaves, self._internal)

    def _raise_coarse_below(self, coarse: torch.Tensor, level: int) -> None:
        """Raise the ValueError for coarse labels mapped below their level without ignore_index."""
        found = ", ".join(
            f"{i} ({self._node_names[i]!r}, known down to level {self.node_level(i)})"
            for i in coarse.unique()[:5].tolist()
        )
        raise ValueError(
            f"labels_at_level: label ids {found} are internal nodes that say nothing at level "
            f"{level}; pass an ignore_index to map them to it"
        )

    def _check_level(self, level: int) -> int:
        if not -self.num_levels <= level < self.num_levels:
            raise IndexError(f"level {level} out of range for {self.num_levels} levels")
        return level % self.num_levels
