"""Hierarchies by name: the built-in trees, the flat tree of a dataset, or a file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from hl_lightning.data.mapillary import mapillary_hierarchy
from hl_lightning.data.synthetic import synthetic_hierarchy
from hl_lightning.hierarchies import (
    cityscapes_hierarchy,
    coco_stuff_hierarchy,
    helen_hierarchy,
    lip_hierarchy,
    mapillary_paper_hierarchy,
    pascal_person_part_hierarchy,
)
from hl_lightning.hierarchy import Hierarchy, HierarchyError

__all__ = ["BUILTIN_HIERARCHIES", "load_hierarchy"]

BUILTIN_HIERARCHIES: dict[str, Callable[[], Hierarchy]] = {
    "synthetic": synthetic_hierarchy,
    "helen": helen_hierarchy,
    "mapillary_paper": mapillary_paper_hierarchy,
    "cityscapes": cityscapes_hierarchy,
    "coco_stuff": coco_stuff_hierarchy,
    "pascal_person_part": pascal_person_part_hierarchy,
    "lip": lip_hierarchy,
}


def load_hierarchy(
    source: str | Path,
    class_names: Sequence[str] | None = None,
    level_names: Sequence[str] | None = None,
) -> Hierarchy:
    """Return the hierarchy named by ``source``, with leaf ``i`` = ``class_names[i]`` if given.

    ``source`` is a built-in name (see :data:`BUILTIN_HIERARCHIES`), ``"flat"`` (every
    class a child of the root; needs ``class_names``), a path to a text/YAML tree, or a
    Mapillary Vistas ``config*.json`` (its label names' tree, ``construction--flat--road``).

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
    elif Path(name).is_file() and name.lower().endswith(".json"):
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
    return hierarchy if class_names is None else hierarchy.reorder(list(class_names))
