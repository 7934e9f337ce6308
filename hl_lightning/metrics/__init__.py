"""Hierarchical torchmetrics: per-level IoU and pixel accuracy, mistake severity, calibration
error, tree consistency, and all of them from one pass; hierarchical precision and recall
of node predictions and their operating curve; temperature scaling before thresholds.

Each metric comes in two layers, as in torchmetrics: a functional core of pure functions
on tensors in :mod:`hl_lightning.metrics.functional` (``_..._update`` returns one batch's
counts from the per-pixel predictions of :func:`~hl_lightning.decode.level_outputs`,
``_..._compute`` turns counts into values; the public functional forms such as
:func:`hierarchical_jaccard_index` call it on one batch), and a thin
:class:`torchmetrics.Metric` class beside it that owns the summed states, so that DDP
sync is exact. Arguments are checked by one helper,
:func:`~hl_lightning.metrics.functional.arguments._validate_args`.

:class:`HierarchicalJaccardIndex` and :class:`HierarchicalPixelAccuracy` share their state
(per-level confusion matrices), so a ``MetricCollection(..., compute_groups=True)``
updates it once for both. :class:`HierarchicalSegmentationMetrics` holds the states of
all of them, calibration and consistency included, and fills them from one check and
one pass per batch.

Targets hold label ids of any node of the tree (:attr:`Hierarchy.node_names`): a leaf,
or an internal node as a coarse label, which each metric counts at the node's level and
the coarser ones and skips below, as it skips ``ignore_index`` (see each metric).

One file per metric in each layer: ``confusion`` (mIoU, accuracy), ``severity``,
``calibration``, ``consistency``, ``nodes`` (precision, recall, the curve);
``segmentation`` (all in one), ``base`` (what the classes share), ``functional/batch``
(the checks and the one pass of an update) and ``functional/arguments`` (the argument
types and their check).
"""

from hl_lightning.metrics.calibration import HierarchicalCalibrationError
from hl_lightning.metrics.confusion import HierarchicalJaccardIndex, HierarchicalPixelAccuracy
from hl_lightning.metrics.consistency import HierarchicalConsistency
from hl_lightning.metrics.functional import (
    Average,
    Norm,
    OperatingCurve,
    hierarchical_calibration_error,
    hierarchical_consistency,
    hierarchical_jaccard_index,
    hierarchical_operating_curve,
    hierarchical_pixel_accuracy,
    hierarchical_precision_recall,
    mistake_severity,
)
from hl_lightning.metrics.nodes import (
    HierarchicalOperatingCurve,
    HierarchicalPrecisionRecall,
    plot_operating_curve,
    save_operating_curve,
)
from hl_lightning.metrics.segmentation import HierarchicalSegmentationMetrics
from hl_lightning.metrics.severity import MistakeSeverity
from hl_lightning.metrics.temperature import TemperatureFit, TemperatureScaling, fit_temperature

__all__ = [
    "Average",
    "HierarchicalCalibrationError",
    "HierarchicalConsistency",
    "HierarchicalJaccardIndex",
    "HierarchicalOperatingCurve",
    "HierarchicalPixelAccuracy",
    "HierarchicalPrecisionRecall",
    "HierarchicalSegmentationMetrics",
    "MistakeSeverity",
    "Norm",
    "OperatingCurve",
    "TemperatureFit",
    "TemperatureScaling",
    "fit_temperature",
    "hierarchical_calibration_error",
    "hierarchical_consistency",
    "hierarchical_jaccard_index",
    "hierarchical_operating_curve",
    "hierarchical_pixel_accuracy",
    "hierarchical_precision_recall",
    "mistake_severity",
    "plot_operating_curve",
    "save_operating_curve",
]
