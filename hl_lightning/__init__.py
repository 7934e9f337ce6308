"""hl_lightning: train any segmentation network with a hierarchical loss on Lightning."""

from hl_lightning.hierarchy import Hierarchy, HierarchyError

__all__ = ["Hierarchy", "HierarchyError"]
__version__ = "0.1.0"
