"""The metrics' functional layer: pure functions on tensors, one file per metric.

Each file holds a metric's core, ``_..._update`` (one batch's counts from the per-pixel
predictions of :func:`~hl_lightning.decode.level_outputs`) and ``_..._compute`` (counts
into values), and its public functional form for one batch, which calls that core
directly, as torchmetrics' ``multiclass_jaccard_index``. The Metric classes of
:mod:`hl_lightning.metrics` sum the same counts over batches (and processes).
"""

from hl_lightning.metrics.functional.arguments import Average, Norm
from hl_lightning.metrics.functional.calibration import hierarchical_calibration_error
from hl_lightning.metrics.functional.confusion import (
    hierarchical_jaccard_index,
    hierarchical_pixel_accuracy,
)
from hl_lightning.metrics.functional.consistency import hierarchical_consistency
from hl_lightning.metrics.functional.nodes import (
    OperatingCurve,
    hierarchical_operating_curve,
    hierarchical_precision_recall,
)
from hl_lightning.metrics.functional.severity import mistake_severity

__all__ = [
    "Average",
    "Norm",
    "OperatingCurve",
    "hierarchical_calibration_error",
    "hierarchical_consistency",
    "hierarchical_jaccard_index",
    "hierarchical_operating_curve",
    "hierarchical_pixel_accuracy",
    "hierarchical_precision_recall",
    "mistake_severity",
]
