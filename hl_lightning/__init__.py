"""hl_lightning: train any segmentation network with a hierarchical loss on Lightning.

The public API: :class:`Hierarchy` (the class tree), :class:`HierarchicalLoss` and
:func:`hierarchical_nll` (the loss), :class:`HierarchicalJaccardIndex` and friends (the
torchmetrics) and :class:`HierarchicalSegmenter` (the LightningModule).
"""

from hl_lightning.hierarchy import Hierarchy, HierarchyError
from hl_lightning.losses import HierarchicalLoss, hierarchical_nll
from hl_lightning.metrics import (
    HierarchicalCalibrationError,
    HierarchicalConsistency,
    HierarchicalJaccardIndex,
    HierarchicalPixelAccuracy,
    HierarchicalSegmentationMetrics,
    MistakeSeverity,
    hierarchical_calibration_error,
    hierarchical_consistency,
    hierarchical_jaccard_index,
    hierarchical_pixel_accuracy,
    mistake_severity,
)

__all__ = [
    "HierarchicalCalibrationError",
    "HierarchicalConsistency",
    "HierarchicalJaccardIndex",
    "HierarchicalLoss",
    "HierarchicalPixelAccuracy",
    "HierarchicalSegmentationMetrics",
    "HierarchicalSegmenter",
    "Hierarchy",
    "HierarchyError",
    "MistakeSeverity",
    "hierarchical_calibration_error",
    "hierarchical_consistency",
    "hierarchical_jaccard_index",
    "hierarchical_nll",
    "hierarchical_pixel_accuracy",
    "mistake_severity",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """Import the LightningModule lazily: the loss and metrics work without Lightning/Hydra."""
    if name == "HierarchicalSegmenter":
        from hl_lightning.lightning.module import HierarchicalSegmenter

        return HierarchicalSegmenter
    raise AttributeError(f"module 'hl_lightning' has no attribute {name!r}")
