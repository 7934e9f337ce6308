"""hl_lightning: train any segmentation network with a hierarchical loss on Lightning.

The public API: :class:`Hierarchy` (the class tree), :class:`HierarchicalLoss` and
:func:`hierarchical_nll` (the loss), :class:`HierarchicalJaccardIndex` and friends (the
torchmetrics) and :class:`HierarchicalSegmenter` (the LightningModule).

Each name is imported on first use (:func:`__getattr__`): ``import hl_lightning`` and its
torch-free parts (``hl_lightning.atomic``, ``hl_lightning.cli.compare``) start without
torch, torchmetrics or Lightning, so hl-compare and the table scripts start in a blink.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hl_lightning.hierarchy import Hierarchy, HierarchyError
    from hl_lightning.lightning.module import HierarchicalSegmenter
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

#: The module each public name lives in.
_HOMES = {
    "Hierarchy": "hl_lightning.hierarchy",
    "HierarchyError": "hl_lightning.hierarchy",
    "HierarchicalLoss": "hl_lightning.losses",
    "hierarchical_nll": "hl_lightning.losses",
    "HierarchicalSegmenter": "hl_lightning.lightning.module",
    **dict.fromkeys(
        [
            "HierarchicalCalibrationError",
            "HierarchicalConsistency",
            "HierarchicalJaccardIndex",
            "HierarchicalPixelAccuracy",
            "HierarchicalSegmentationMetrics",
            "MistakeSeverity",
            "hierarchical_calibration_error",
            "hierarchical_consistency",
            "hierarchical_jaccard_index",
            "hierarchical_pixel_accuracy",
            "mistake_severity",
        ],
        "hl_lightning.metrics",
    ),
}


def __getattr__(name: str) -> object:
    """Return the public name ``name``, imported from its module on first use (then kept)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'hl_lightning' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
