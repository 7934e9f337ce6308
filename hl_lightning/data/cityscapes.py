"""Cityscapes (fine annotations): the official label table, train ids and categories.

Supported layout (``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip``
unpacked into ``root``)::

    root/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

The ``labelIds`` masks hold the official label ids (0-33); they are mapped to the 19
official train ids, the classes of :data:`CITYSCAPES_CLASSES`, and every other id
(void labels, and the rare ones such as parking, guard rail, caravan) to the ignore
value, exactly as the dataset's ``labels.py`` defines. The test annotations are not
public, so the test split reads ``val`` by default. The hierarchy is the official
7 categories over the 19 classes (:func:`~hl_lightning.hierarchies.cityscapes_hierarchy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, NamedTuple

from typing_extensions import Unpack

from hl_lightning.data.files import FileDataModule, FileOptions, one_of
from hl_lightning.data.layouts import PairedFolders
from hl_lightning.data.masks import LookupMasks
from hl_lightning.hierarchies import cityscapes_hierarchy

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "CityscapesDataModule",
    "CityscapesLabel",
    "CityscapesMasks",
]


class CityscapesLabel(NamedTuple):
    """One row of the official label table: ``train_id`` 255 (or -1) is not evaluated."""

    name: str
    id: int
    train_id: int
    category: str


#: The official label table (cityscapesScripts ``helpers/labels.py``).
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, "void"),
    CityscapesLabel("ego vehicle", 1, 255, "void"),
    CityscapesLabel("rectification border", 2, 255, "void"),
    CityscapesLabel("out of roi", 3, 255, "void"),
    CityscapesLabel("static", 4, 255, "void"),
    CityscapesLabel("dynamic", 5, 255, "void"),
    CityscapesLabel("ground", 6, 255, "void"),
    CityscapesLabel("road", 7, 0, "flat"),
    CityscapesLabel("sidewalk", 8, 1, "flat"),
    CityscapesLabel("parking", 9, 255, "flat"),
    CityscapesLabel("rail track", 10, 255, "flat"),
    CityscapesLabel("building", 11, 2, "construction"),
    CityscapesLabel("wall", 12, 3, "construction"),
    CityscapesLabel("fence", 13, 4, "construction"),
    CityscapesLabel("guard rail", 14, 255, "construction"),
    CityscapesLabel("bridge", 15, 255, "construction"),
    CityscapesLabel("tunnel", 16, 255, "construction"),
    CityscapesLabel("pole", 17, 5, "object"),
    CityscapesLabel("polegroup", 18, 255, "object"),
    CityscapesLabel("traffic light", 19, 6, "object"),
    CityscapesLabel("traffic sign", 20, 7, "object"),
    CityscapesLabel("vegetation", 21, 8, "nature"),
    CityscapesLabel("terrain", 22, 9, "nature"),
    CityscapesLabel("sky", 23, 10, "sky"),
    CityscapesLabel("person", 24, 11, "human"),
    CityscapesLabel("rider", 25, 12, "human"),
    CityscapesLabel("car", 26, 13, "vehicle"),
    CityscapesLabel("truck", 27, 14, "vehicle"),
    CityscapesLabel("bus", 28, 15, "vehicle"),
    CityscapesLabel("caravan", 29, 255, "vehicle"),
    CityscapesLabel("trailer", 30, 255, "vehicle"),
    CityscapesLabel("train", 31, 16, "vehicle"),
    CityscapesLabel("motorcycle", 32, 17, "vehicle"),
    CityscapesLabel("bicycle", 33, 18, "vehicle"),
    CityscapesLabel("license plate", -1, -1, "vehicle"),
)
#: The 19 evaluated classes in train-id order: label id ``i`` is ``CITYSCAPES_CLASSES[i]``.
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(
    label.name
    for label in sorted(CITYSCAPES_LABELS, key=lambda label: label.train_id)
    if 0 <= label.train_id < 255
)
_SPLITS = ("train", "val", "test")
_IMAGE_SUFFIX = "_leftImg8bit.png"
_MASK_SUFFIX = "_gtFine_labelIds.png"


class CityscapesMasks(LookupMasks):
    """Decode ``*_gtFine_labelIds.png``: official label ids -> train ids (others ignored).

    Example:
        >>> decoder = CityscapesMasks(ignore_index=255)
        >>> decoder.lookup[[0, 7, 26, 33]].tolist()  # unlabeled, road, car, bicycle
        [255, 0, 13, 18]
    """

    def __init__(self, ignore_index: int) -> None:
        table = {
            label.id: label.train_id if 0 <= label.train_id < 255 else ignore_index
            for label in CITYSCAPES_LABELS
            if label.id >= 0
        }
        super().__init__(table, ignore_index, "Cityscapes label ids", f"*{_MASK_SUFFIX}")


class CityscapesDataModule(FileDataModule):
    """Cityscapes fine annotations: 19 classes (train ids), the 7 official categories above.

    Args:
        root: the dataset folder with ``leftImg8bit/`` and ``gtFine/``.
        test_split: the split folder the test stage reads (``val``: ``test`` has no
            public annotations).
        image_size: network input ``(height, width)`` (the files are 1024 x 2048).
        scale, hflip, flip_pairs, mean, std, on_bad, ignore_index, batch_size,
            num_workers, seed, pin_memory: as in
            :class:`~hl_lightning.data.files.FileDataModule`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for split in ("train", "val"):
        ...     images = root / "leftImg8bit" / split / "ulm"
        ...     masks = root / "gtFine" / split / "ulm"
        ...     images.mkdir(parents=True)
        ...     masks.mkdir(parents=True)
        ...     Image.new("RGB", (8, 4)).save(images / "ulm_1_1_leftImg8bit.png")
        ...     Image.new("L", (8, 4), 26).save(masks / "ulm_1_1_gtFine_labelIds.png")
        >>> dm = CityscapesDataModule(root, image_size=None, batch_size=1)
        >>> dm.setup("fit")
        >>> image, mask = dm.train_dataset[0]  # label id 26 (car) is train id 13
        >>> image.shape, mask.unique().tolist(), dm.class_names[13]
        (torch.Size([3, 4, 8]), [13], 'car')
    """

    defaults: ClassVar[FileOptions] = {"image_size": (512, 1024), "hflip": 0.5}

    def __init__(
        self,
        root: str | Path,
        test_split: str = "val",
        **options: Unpack[FileOptions],
    ) -> None:
        one_of("test_split", test_split, _SPLITS)
        super().__init__(root, CITYSCAPES_CLASSES, cityscapes_hierarchy(), **options)
        self.save_plain_hyperparameters(test_split=test_split)
        split_dirs = {"train": "train", "val": "val", "test": test_split}
        self.layout = PairedFolders(
            "CityscapesDataModule",
            {
                split: (self.root / "leftImg8bit" / folder, self.root / "gtFine" / folder)
                for split, folder in split_dirs.items()
            },
            image_suffixes=(".png",),
            endings=(_IMAGE_SUFFIX, _MASK_SUFFIX),
        )
        self.decoder = CityscapesMasks(self.ignore_index)
