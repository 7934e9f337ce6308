"""Datasets and LightningDataModules: the synthetic default, any folder, and real data sets."""

from hl_lightning.data.cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABELS,
    CityscapesDataModule,
)
from hl_lightning.data.coco_stuff import (
    COCO_STUFF_CLASSES,
    COCO_STUFF_LABELS,
    CocoStuffDataModule,
)
from hl_lightning.data.datamodule import SegmentationDataModule, SyntheticDataModule
from hl_lightning.data.files import FileDataModule, FileOptions
from hl_lightning.data.folder import FolderDataModule
from hl_lightning.data.helen import HELEN_CLASSES, HELEN_FLIP_PAIRS, HelenDataModule
from hl_lightning.data.io import IGNORE_INDEX, BadDataError
from hl_lightning.data.lip import LIP_CLASSES, LIP_FLIP_PAIRS, LIPDataModule
from hl_lightning.data.mapillary import (
    MapillaryDataModule,
    mapillary_class_names,
    mapillary_hierarchy,
)
from hl_lightning.data.pascal_person_part import (
    PASCAL_PERSON_PART_CLASSES,
    PascalPersonPartDataModule,
)
from hl_lightning.data.synthetic import SyntheticShapes
from hl_lightning.data.synthetic_variants import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_HARD_CLASSES,
    SYNTHETIC_MEAN,
    SYNTHETIC_STD,
    synthetic_classes,
    synthetic_normalisation,
    synthetic_variant_hierarchy,
)
from hl_lightning.data.transforms import PairedTransform
from hl_lightning.hierarchies import synthetic_hierarchy

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "COCO_STUFF_CLASSES",
    "COCO_STUFF_LABELS",
    "HELEN_CLASSES",
    "HELEN_FLIP_PAIRS",
    "IGNORE_INDEX",
    "LIP_CLASSES",
    "LIP_FLIP_PAIRS",
    "PASCAL_PERSON_PART_CLASSES",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_HARD_CLASSES",
    "SYNTHETIC_MEAN",
    "SYNTHETIC_STD",
    "BadDataError",
    "CityscapesDataModule",
    "CocoStuffDataModule",
    "FileDataModule",
    "FileOptions",
    "FolderDataModule",
    "HelenDataModule",
    "LIPDataModule",
    "MapillaryDataModule",
    "PairedTransform",
    "PascalPersonPartDataModule",
    "SegmentationDataModule",
    "SyntheticDataModule",
    "SyntheticShapes",
    "mapillary_class_names",
    "mapillary_hierarchy",
    "synthetic_classes",
    "synthetic_hierarchy",
    "synthetic_normalisation",
    "synthetic_variant_hierarchy",
]
