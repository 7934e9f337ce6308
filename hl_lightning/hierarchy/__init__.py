"""The class hierarchy: parsing, validation, leaf order and per-level group maps.

A :class:`Hierarchy` is a tree whose leaves are the K classes a network predicts.
Levels are depths: level 0 holds the children of the implicit root, level ``D - 1`` the
deepest leaves, and a leaf shallower than level ``d`` stands for itself at level ``d``.
Everything else in the package (losses, decoders, metrics) derives from the tensors
:meth:`Hierarchy.level_index` returns.

One module per idea: :mod:`~hl_lightning.hierarchy.tree` (the :class:`Hierarchy`),
:mod:`~hl_lightning.hierarchy.node` (:class:`Node`, :class:`HierarchyError`),
:mod:`~hl_lightning.hierarchy.names` (what a class name may be),
:mod:`~hl_lightning.hierarchy.labels` (a data set's class list against the tree: leaf order,
label ids of class names, coarse labels), and one parser per format:
:mod:`~hl_lightning.hierarchy.text_format` (the paper's indented text),
:mod:`~hl_lightning.hierarchy.yaml_format` (YAML and JSON) and
:mod:`~hl_lightning.hierarchy.data_format` (nested mappings and lists).
"""

from hl_lightning.hierarchy.labels import (
    ancestor_ids,
    check_ignore_index,
    class_label_ids,
    match_class_names,
)
from hl_lightning.hierarchy.node import HierarchyError, Node
from hl_lightning.hierarchy.tree import Hierarchy

__all__ = [
    "Hierarchy",
    "HierarchyError",
    "Node",
    "ancestor_ids",
    "check_ignore_index",
    "class_label_ids",
    "match_class_names",
]
