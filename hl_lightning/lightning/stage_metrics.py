"""The metrics of each stage of a run and the values logged from them, per level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
from torch import Tensor
from torchmetrics import MetricCollection

from hl_lightning.decode import DecodeMethod
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics import (
    HierarchicalSegmentationMetrics,
    OperatingCurve,
    save_operating_curve,
)
from hl_lightning.metrics.functional.nodes import DEFAULT_THRESHOLD

__all__ = ["per_level_values", "stage_metrics", "write_curve"]

#: The values (D,) logged once per level, under ``<key>/<level name>``.
PER_LEVEL = ("/miou", "/acc", "/ece")


def stage_metrics(
    hierarchy: Hierarchy, ignore_index: int | None, decode: DecodeMethod, stage: str
) -> MetricCollection:
    """Return the metrics of ``stage`` (train, val, test), keyed ``<stage>/miou``, ... (one
    pass per batch for all): mIoU, accuracy and severity; validation and test add
    calibration, consistency and the hierarchical precision, recall and F1 of node
    predictions at the default threshold.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> list(stage_metrics(h, 255, "marginal", "val").keys(keep_base=True))
        ['all']
    """
    reliability = stage != "train"
    metric = HierarchicalSegmentationMetrics(
        hierarchy,
        ignore_index,
        decode=decode,
        reliability=reliability,
        threshold=DEFAULT_THRESHOLD if reliability else None,
    )
    return MetricCollection({"all": metric}, prefix=f"{stage}/", compute_groups=False)


def per_level_values(
    values: Mapping[str, Tensor], level_names: Sequence[str], stage: str
) -> dict[str, Tensor]:
    """Return the computed ``values`` to log: per-level tensors (D,) split into
    ``<key>/<level>``, the others as they are, and ``<stage>/miou`` the finest level's.

    Example:
        >>> import torch
        >>> values = {"val/miou": torch.tensor([0.9, 0.5]), "val/severity": torch.tensor(1.5)}
        >>> sorted(per_level_values(values, ["kind", "class"], "val"))
        ['val/miou', 'val/miou/class', 'val/miou/kind', 'val/severity']
    """
    logged: dict[str, Tensor] = {}
    for key, value in values.items():
        if key.endswith(PER_LEVEL):  # torchmetrics squeezes (1,) to () for D = 1
            per_level = value.reshape(-1)
            logged.update({f"{key}/{n}": v for n, v in zip(level_names, per_level, strict=True)})
        else:
            logged[key] = value
    logged[f"{stage}/miou"] = logged[f"{stage}/miou/{level_names[-1]}"]
    return logged


def write_curve(curve: OperatingCurve, trainer: L.Trainer) -> None:
    """Write the operating curve's points to ``hpr_curve.csv`` in the trainer's ``log_dir``
    (on the first process only; nothing without a logger)."""
    log_dir = trainer.log_dir if trainer.loggers else None
    if trainer.is_global_zero and log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        save_operating_curve(curve, Path(log_dir) / "hpr_curve.csv")
