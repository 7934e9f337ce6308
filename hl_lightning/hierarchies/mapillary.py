"""The class tree a Mapillary Vistas config's label names spell (``construction--flat--road``).

A label name is a path in a tree, ``construction--flat--road`` is construction > flat >
road. A class (and a group) is named by the last component of its path, ``road``; where
last components collide, the shortest unique path suffix is used
(:func:`mapillary_class_names`). The data module is :mod:`hl_lightning.data.mapillary`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hl_lightning.hierarchy import Hierarchy, HierarchyError

__all__ = ["mapillary_class_names", "mapillary_hierarchy", "read_mapillary_labels"]

_SEPARATOR = "--"


def read_mapillary_labels(config: str | Path) -> list[dict[str, Any]]:
    """Return the label entries of a Vistas config file, checked to have a ``name`` each.

    A config that is not JSON, or not of that shape, is a :class:`HierarchyError` naming it.

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "config.json"
        >>> _ = file.write_text('{"labels": [{"name": "nature--sky", "color": [70, 130, 180]}]}')
        >>> [label["name"] for label in read_mapillary_labels(file)]
        ['nature--sky']
    """
    try:
        data = json.loads(Path(config).read_text(encoding="utf-8"))
    except OSError as err:
        raise FileNotFoundError(f"cannot read the Vistas config {config}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise HierarchyError(f"{config}:{err.lineno}: not valid JSON: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise HierarchyError(f"{config}: not UTF-8 text ({err.reason})") from err
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not labels:
        raise HierarchyError(f"{config}: expected {{'labels': [{{'name': ...}}, ...]}}")
    for i, label in enumerate(labels):
        if not isinstance(label, dict) or not isinstance(label.get("name"), str):
            raise HierarchyError(f"{config}: label {i} has no 'name': {label!r}")
    return labels


def _short_names(paths: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Return, for every path, its shortest suffix no other path ends with (joined by --)."""
    names = {}
    for path in paths:
        k = 1
        while k < len(path) and any(
            other != path and other[-k:] == path[-k:] for other in paths if len(other) >= k
        ):
            k += 1
        names[path] = _SEPARATOR.join(path[-k:])
    return names


def _label_tree(label_names: Sequence[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Return the nested tree of short names and the label ids' short names, in label order."""
    paths = [tuple(name.split(_SEPARATOR)) for name in label_names]
    for name, path in zip(label_names, paths, strict=True):
        if not all(path):
            raise ValueError(f"Vistas label {name!r} has an empty path component")
    nodes = list(dict.fromkeys(path[:k] for path in paths for k in range(1, len(path) + 1)))
    labels = set(paths)
    for path in labels:
        inner = [other for other in labels if len(other) > len(path) and other[: len(path)] == path]
        if inner:
            raise ValueError(
                f"Vistas label {_SEPARATOR.join(path)!r} is also a group of "
                f"{_SEPARATOR.join(inner[0])!r}: a label must be a leaf"
            )
    if len(labels) != len(paths):
        raise ValueError("Vistas label names are not unique")
    short = _short_names(nodes)
    tree: dict[str, Any] = {}
    for node in nodes:  # parents come before their children
        parent = tree
        for k in range(1, len(node)):
            parent = parent[short[node[:k]]]
        parent[short[node]] = None if node in labels else {}
    return tree, tuple(short[path] for path in paths)


def mapillary_class_names(label_names: Sequence[str]) -> tuple[str, ...]:
    """Return the class names of Vistas labels: the last path component, unless it collides.

    Colliding names take the shortest unique suffix of their path (see the module
    documentation).

    Example:
        >>> mapillary_class_names(["construction--flat--road", "object--sign--back",
        ...                        "object--traffic-sign--back"])
        ('road', 'sign--back', 'traffic-sign--back')
    """
    return _label_tree(label_names)[1]


def mapillary_hierarchy(config: str | Path) -> Hierarchy:
    """Return the tree spelled by the label names of a Vistas config, leaves in label-id order.

    ``construction--flat--road`` is the leaf ``road`` under ``flat`` under
    ``construction``; nodes are named as :func:`mapillary_class_names` says. For v1.2 it
    is the paper's tree (3 levels: 7, 37, 66 groups).

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "config.json"
        >>> names = ["nature--sky", "construction--flat--road", "construction--flat--sidewalk"]
        >>> _ = file.write_text(json.dumps({"labels": [{"name": n} for n in names]}))
        >>> h = mapillary_hierarchy(file)
        >>> h.leaves, h.group_names(0), h.group_names(1)
        (('sky', 'road', 'sidewalk'), ('nature', 'construction'), ('sky', 'flat'))
    """
    names = [label["name"] for label in read_mapillary_labels(config)]
    try:
        tree, class_names = _label_tree(names)
    except ValueError as err:
        raise HierarchyError(f"{config}: {err}") from err
    hierarchy = Hierarchy.from_dict(tree)
    return Hierarchy(hierarchy.roots, class_names, source=str(config))
