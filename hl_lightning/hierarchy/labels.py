"""A data set's class list against the tree: leaf order, label ids of names, the ignore value.

A data set's class names (mask value ``i`` is ``class_names[i]``) are matched to the tree
**by name**, and may name internal nodes: their pixels are coarse labels, the node's id
(:attr:`~hl_lightning.hierarchy.Hierarchy.node_names`). One matching serves every data
module and the app (``hl-train``):

- :func:`match_class_names`: the tree with its leaves in the order the class list gives
  them (leaf ``i`` is label id ``i``): the leaves the list names, in its order, then those
  it reaches only through a named internal node, in tree order. For a list of exactly the
  leaves that is :meth:`Hierarchy.reorder`.
- :func:`class_label_ids`: the node id of every class name (mask value -> label id).
- :func:`check_ignore_index`: the ignore value must be no node id.
- :func:`ancestor_ids`: the node id of every leaf's group at a level (coarse labels made
  from fine ones).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from hl_lightning.hierarchy.names import name_list
from hl_lightning.hierarchy.node import HierarchyError, preorder
from hl_lightning.hierarchy.tree import Hierarchy

__all__ = ["ancestor_ids", "check_ignore_index", "class_label_ids", "match_class_names"]

_SHOWN = 20  # names listed in one message


def _shown(names: Sequence[str]) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def match_class_names(hierarchy: Hierarchy, class_names: Sequence[str]) -> Hierarchy:
    """Return the tree with its leaves ordered for a class list that may name internal nodes.

    Leaf order: the leaves ``class_names`` names, in its order, then the leaves it covers
    only through a named internal node (a coarse class: ``vehicle`` for ``car`` and
    ``truck``), in tree order. Leaf ids therefore follow the class list where it names
    every leaf; internal nodes keep their ids after the leaves.

    Raises one :class:`HierarchyError` listing every problem: names that are no node of
    the tree, leaves neither named nor under a named node, duplicated names.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> match_class_names(h, ["truck", "sky", "car"]).leaves  # reorder
        ('truck', 'sky', 'car')
        >>> matched = match_class_names(h, ["sky", "vehicle"])  # a coarse data set
        >>> matched.leaves, [matched.label_id(n) for n in ("sky", "vehicle")]
        (('sky', 'car', 'truck'), [0, 3])
        >>> match_class_names(h, ["sky", "car"])
        Traceback (most recent call last):
            ...
        hl_lightning.hierarchy.node.HierarchyError: class names do not match the hierarchy: \
missing from the class names: truck (a class name is a leaf or, for coarse labels, an \
internal node; every leaf is named or lies under a named node)
    """
    names = name_list(class_names, "class names")
    nodes = set(hierarchy.node_names)
    unknown = [n for n in dict.fromkeys(names) if n not in nodes]
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    named = set(names)
    covered = {  # the leaves under a named internal node
        leaf.name
        for node, _ in hierarchy.walk()
        if node.name in named and not node.is_leaf
        for leaf, _ in preorder(node.children)
        if leaf.is_leaf
    }
    missing = [leaf for leaf in hierarchy.leaves if leaf not in named and leaf not in covered]
    problems = []
    if missing:
        problems.append(f"missing from the class names: {_shown(missing)}")
    if unknown:
        problems.append(f"not leaves of the hierarchy: {_shown(unknown)}")
    if duplicates:
        problems.append(f"duplicated in the class names: {_shown(duplicates)}")
    if problems:
        where = f" ({hierarchy.source})" if hierarchy.source else ""
        raise HierarchyError(
            f"class names do not match the hierarchy{where}: {'; '.join(problems)} (a class "
            "name is a leaf or, for coarse labels, an internal node; every leaf is named or "
            "lies under a named node)"
        )
    leaves = set(hierarchy.leaves)
    first = [n for n in names if n in leaves]
    tree_order = [node.name for node, _ in hierarchy.walk() if node.is_leaf]
    return hierarchy.reorder([*first, *(n for n in tree_order if n not in named)])


def class_label_ids(hierarchy: Hierarchy, class_names: Sequence[str]) -> torch.Tensor:
    """Return a LongTensor (C,): the label id (node id) of every class name.

    Raises one :class:`HierarchyError` naming every class name that is no node of the tree.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> class_label_ids(h, ["vehicle", "sky", "truck"]).tolist()
        [3, 0, 2]
    """
    names = name_list(class_names, "class names")
    nodes = set(hierarchy.node_names)
    unknown = [n for n in dict.fromkeys(names) if n not in nodes]
    if unknown:
        where = f" ({hierarchy.source})" if hierarchy.source else ""
        raise HierarchyError(f"not nodes of the hierarchy{where}: {_shown(unknown)}")
    return torch.tensor([hierarchy.label_id(n) for n in names], dtype=torch.long)


def check_ignore_index(hierarchy: Hierarchy, ignore_index: Any, optional: bool = False) -> None:
    """Raise a ValueError where ``ignore_index`` is no int, or is a node id (a leaf's, or an
    internal node's: a coarse label), naming the node; ``optional``: None is allowed too
    (said so). The one check of the losses, the metrics and the data modules.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> check_ignore_index(h, 255)
        >>> check_ignore_index(h, 3)
        Traceback (most recent call last):
            ...
        ValueError: ignore_index=3 is the label id of internal node 'vehicle'; use a value \
outside the node ids 0..3 (e.g. 255)
    """
    if ignore_index is None and optional:
        return
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        allowed = "an int or None" if optional else "an int"
        raise ValueError(f"ignore_index must be {allowed}, got {ignore_index!r}")
    if 0 <= ignore_index < hierarchy.num_nodes:
        name = hierarchy.node_names[ignore_index]
        what = "leaf" if ignore_index < hierarchy.num_leaves else "internal node"
        n = hierarchy.num_nodes
        default = f" (with {n} node ids the default 255 is one)" if ignore_index == 255 else ""
        raise ValueError(
            f"ignore_index={ignore_index} is the label id of {what} {name!r}{default}; use a "
            f"value outside the node ids 0..{n - 1} (e.g. {255 if n <= 255 else -1})"
            + (", or None" if optional else "")
        )


def ancestor_ids(hierarchy: Hierarchy, level: int) -> torch.Tensor:
    """Return a LongTensor (K,): the node id of every leaf's group at ``level``.

    An internal node's id where the leaf lies below ``level``; the leaf's own id where it
    is a group there (a leaf at that depth, or a shallower one standing for itself).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> ancestor_ids(h, 0).tolist(), ancestor_ids(h, 1).tolist()
        ([0, 3, 3], [0, 1, 2])
    """
    groups = hierarchy.group_names(level)
    ids = [hierarchy.label_id(groups[g]) for g in hierarchy.level_index(level).tolist()]
    return torch.tensor(ids, dtype=torch.long)
