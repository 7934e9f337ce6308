"""Datasets and LightningDataModules: a generic module and the embedded synthetic default."""

from hl_lightning.data.datamodule import SegmentationDataModule, SyntheticDataModule
from hl_lightning.data.synthetic import (
    IGNORE_INDEX,
    SYNTHETIC_CLASSES,
    SYNTHETIC_MEAN,
    SYNTHETIC_STD,
    SyntheticShapes,
    synthetic_hierarchy,
)

__all__ = [
    "IGNORE_INDEX",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_MEAN",
    "SYNTHETIC_STD",
    "SegmentationDataModule",
    "SyntheticDataModule",
    "SyntheticShapes",
    "synthetic_hierarchy",
]
