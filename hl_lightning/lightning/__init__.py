"""The Lightning layer: the HierarchicalSegmenter module, its callbacks and loggers.

The core (:mod:`hl_lightning.hierarchy`, :mod:`hl_lightning.losses`,
:mod:`hl_lightning.metrics`, :mod:`hl_lightning.decode`) imports none of this.
"""

from hl_lightning.lightning.module import (
    ChannelCountError,
    HierarchicalSegmenter,
    MissingBackboneError,
    NonFiniteLossError,
)

__all__ = [
    "ChannelCountError",
    "HierarchicalSegmenter",
    "MissingBackboneError",
    "NonFiniteLossError",
]
