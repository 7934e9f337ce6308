"""Old import path of :mod:`hl_lightning.lightning.module`, kept for saved configs."""

from hl_lightning.lightning.module import LOSSES, HierarchicalSegmenter

__all__ = ["LOSSES", "HierarchicalSegmenter"]
