"""The built-in class trees and the one registry of them; :func:`load_hierarchy` by name.

Shipped trees, one YAML file each, with their level names:

- ``synthetic``: the embedded data's 3-level tree over its 13 classes;
- ``synthetic_hard``: the same levels over the 17 classes of its hard variant;
- ``helen``: the paper's 4-level faces tree over the 11 Helen labels;
- ``mapillary_paper``: the paper's 3-level tree over the 66 Mapillary Vistas v1.2 labels;
- ``cityscapes``: the 7 official Cityscapes categories over the 19 evaluated classes;
- ``coco_stuff``: the official COCO-Stuff hierarchy over its 171 classes (80 things, 91 stuff);
- ``pascal_person_part``: HSSN's human tree over the 7 Pascal-Person-Part labels;
- ``lip``: HSSN's human tree over the 20 LIP labels;
- ``voc``: the 4 official Pascal VOC super-categories over its 20 classes and background.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from importlib import resources
from pathlib import Path

from hl_lightning.hierarchies.mapillary import mapillary_hierarchy
from hl_lightning.hierarchy import Hierarchy, HierarchyError

__all__ = [
    "BUILTIN_HIERARCHIES",
    "LEVEL_NAMES",
    "builtin_hierarchy",
    "cityscapes_hierarchy",
    "coco_stuff_hierarchy",
    "helen_hierarchy",
    "lip_hierarchy",
    "load_hierarchy",
    "mapillary_paper_hierarchy",
    "pascal_person_part_hierarchy",
    "synthetic_hierarchy",
    "voc_hierarchy",
]

#: The level names (coarse to fine) of every shipped tree, by file name.
LEVEL_NAMES: dict[str, tuple[str, ...]] = {
    "synthetic": ("kind", "family", "class"),
    "synthetic_hard": ("kind", "family", "class"),
    "helen": ("figure", "region", "part", "class"),
    "mapillary_paper": ("category", "group", "class"),
    "cityscapes": ("category", "class"),
    "coco_stuff": ("kind", "setting", "supercategory", "class"),
    "pascal_person_part": ("figure", "body", "part"),
    "lip": ("figure", "body", "part"),
    "voc": ("category", "class"),
}


def builtin_hierarchy(name: str) -> Hierarchy:
    """Return the shipped tree ``name`` (a key of :data:`LEVEL_NAMES`), leaves in tree order.

    Example:
        >>> h = builtin_hierarchy("cityscapes")
        >>> h.level_names, [h.num_groups(d) for d in range(h.num_levels)]
        (('category', 'class'), [7, 19])
    """
    if name not in LEVEL_NAMES:
        raise KeyError(f"no shipped hierarchy {name!r}; known: {', '.join(LEVEL_NAMES)}")
    file = resources.files(__name__).joinpath(f"{name}.yaml")
    with resources.as_file(file) as path:
        return Hierarchy.from_file(path, level_names=LEVEL_NAMES[name])


def helen_hierarchy() -> Hierarchy:
    """Return the paper's faces tree (4 levels: 2, 3, 6, 11 groups) over the Helen labels.

    Example:
        >>> h = helen_hierarchy()
        >>> [h.num_groups(d) for d in range(h.num_levels)]
        [2, 3, 6, 11]
    """
    return builtin_hierarchy("helen")


def mapillary_paper_hierarchy() -> Hierarchy:
    """Return the paper's Mapillary Vistas tree (3 levels: 7, 37, 66 groups).

    Example:
        >>> h = mapillary_paper_hierarchy()
        >>> [h.num_groups(d) for d in range(h.num_levels)]
        [7, 37, 66]
    """
    return builtin_hierarchy("mapillary_paper")


def cityscapes_hierarchy() -> Hierarchy:
    """Return the Cityscapes categories over the 19 evaluated classes (2 levels: 7, 19).

    Example:
        >>> cityscapes_hierarchy().group_names(0)
        ('flat', 'construction', 'object', 'nature', 'sky', 'human', 'vehicle')
    """
    return builtin_hierarchy("cityscapes")


def coco_stuff_hierarchy() -> Hierarchy:
    """Return the official COCO-Stuff tree over its 171 classes (4 levels: 2, 4, 27, 171).

    Example:
        >>> h = coco_stuff_hierarchy()
        >>> [h.num_groups(d) for d in range(h.num_levels)], h.group_names(0)
        ([2, 4, 27, 171], ('things', 'stuff'))
    """
    return builtin_hierarchy("coco_stuff")


def pascal_person_part_hierarchy() -> Hierarchy:
    """Return HSSN's Pascal-Person-Part tree (3 levels: 2, 3, 7 groups).

    Example:
        >>> pascal_person_part_hierarchy().group_names(1)
        ('background', 'upper_body', 'lower_body')
    """
    return builtin_hierarchy("pascal_person_part")


def lip_hierarchy() -> Hierarchy:
    """Return HSSN's LIP tree (3 levels: 2, 3, 20 groups).

    Example:
        >>> h = lip_hierarchy()
        >>> [h.num_groups(d) for d in range(h.num_levels)]
        [2, 3, 20]
    """
    return builtin_hierarchy("lip")


def voc_hierarchy() -> Hierarchy:
    """Return Pascal VOC's super-categories over its 20 classes and background (2 levels: 5, 21).

    Example:
        >>> voc_hierarchy().group_names(0)
        ('background', 'person', 'animal', 'vehicle', 'indoor')
    """
    return builtin_hierarchy("voc")


def synthetic_hierarchy() -> Hierarchy:
    """Return the synthetic data's tree (3 levels: 3, 6, 13 groups), leaves in tree order.

    Reorder it with ``.reorder(SYNTHETIC_CLASSES)`` to match the label ids.

    Example:
        >>> h = synthetic_hierarchy()
        >>> h.num_levels, [h.num_groups(d) for d in range(h.num_levels)]
        (3, [3, 6, 13])
    """
    return builtin_hierarchy("synthetic")


#: Every built-in tree by its ``hierarchy.source`` name.
BUILTIN_HIERARCHIES: dict[str, Callable[[], Hierarchy]] = {
    name: partial(builtin_hierarchy, name) for name in LEVEL_NAMES
}


def load_hierarchy(
    source: str | Path,
    class_names: Sequence[str] | None = None,
    level_names: Sequence[str] | None = None,
) -> Hierarchy:
    """Return the hierarchy named by ``source``, with leaf ``i`` = ``class_names[i]`` if given.

    ``source`` is a built-in name (see :data:`BUILTIN_HIERARCHIES`), ``"flat"`` (every
    class a child of the root; needs ``class_names``), a path to a text/YAML/JSON tree
    (:meth:`Hierarchy.from_file`), or a Mapillary Vistas ``config*.json`` (its label names'
    tree, ``construction--flat--road``): a ``.json`` file whose top level has ``labels``.
    Every problem is a :class:`HierarchyError` naming the file.

    Example:
        >>> load_hierarchy("flat", ["sky", "car"]).num_levels
        1
    """
    name = str(source)
    if name == "flat":
        if class_names is None:
            raise HierarchyError("the flat hierarchy needs the dataset's class names")
        hierarchy = Hierarchy.flat(class_names)
    elif name in BUILTIN_HIERARCHIES:
        hierarchy = BUILTIN_HIERARCHIES[name]()
    elif Path(name).is_file() and _is_vistas_config(name):
        hierarchy = mapillary_hierarchy(name)
    elif Path(name).is_file():
        hierarchy = Hierarchy.from_file(name)
    else:
        known = ", ".join(["flat", *BUILTIN_HIERARCHIES])
        raise HierarchyError(
            f"no hierarchy {name!r}: not a built-in name ({known}) and no such file"
        )
    if level_names is not None:
        hierarchy = hierarchy.with_level_names(level_names)
    return hierarchy if class_names is None else hierarchy.reorder(class_names)


def _is_vistas_config(path: str) -> bool:
    """Whether a file is a Mapillary Vistas config: a ``.json`` object with ``labels``."""
    if not path.lower().endswith(".json"):
        return False
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):  # Hierarchy.from_file names the problem
        return False
    return isinstance(data, dict) and "labels" in data
