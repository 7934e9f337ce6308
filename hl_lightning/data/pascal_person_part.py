"""Pascal-Person-Part human parsing (Chen et al., CVPR 2014): 7 labels and its data module.

Supported layout, the one the data set is commonly distributed in (and that HSSN's and
other human-parsing code reads)::

    root/JPEGImages/<id>.jpg          Pascal VOC 2010 images
    root/SegmentationPart/<id>.png    label ids 0-6 (8-bit or palette PNG), 255 ignored
    root/train_id.txt                 train split: one image id a line (1716 ids)
    root/val_id.txt                   val split (1817 ids; also the test split by default)

Label ``i`` is :data:`PASCAL_PERSON_PART_CLASSES` ``[i]``: background, head, torso, upper
arms, lower arms, upper legs, lower legs. Sources: the 7-class list of
Self-Correction-Human-Parsing (github.com/GoGoDuck912/Self-Correction-Human-Parsing,
``simple_extractor.py``: Background, Head, Torso, Upper Arms, Lower Arms, Upper Legs,
Lower Legs) and HSSN's configs (github.com/qhanghu/HSSN_pytorch,
``configs/deeplabv3plus/deeplabv3plus_r101-d8_480x480_60k_pascal_person_part_hiera_triplet.py``:
7 classes; ``configs/_base_/datasets/pascal_person_part.py``: plain flips, no class swap).
The parts are not split into left and right, so a flip swaps no class (no flip pairs).
HSSN itself reads an mmseg conversion (``img_dir/{train,val}``, ``ann_dir/{train,val}``)
whose conversion script is not published; read that one with ``data=folder``. The split
sizes (1716 / 1817) are those reported in the human-parsing literature, not checked here.

The hierarchy is HSSN's (:func:`~hl_lightning.hierarchies.pascal_person_part_hierarchy`):
background against the human, the human split into upper body (head, torso, arms) and
lower body (legs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from typing_extensions import Unpack

from hl_lightning.data.files import FileDataModule, FileOptions, check_split_names
from hl_lightning.data.layouts import ListedSamples, read_id_list
from hl_lightning.hierarchies import pascal_person_part_hierarchy

__all__ = [
    "PASCAL_PERSON_PART_CLASSES",
    "PASCAL_PERSON_PART_SPLITS",
    "PascalPersonPartDataModule",
    "read_id_list",
]

#: Label order: annotation value ``i`` is class ``PASCAL_PERSON_PART_CLASSES[i]``.
PASCAL_PERSON_PART_CLASSES: tuple[str, ...] = (
    "background",
    "head",
    "torso",
    "upper_arms",
    "lower_arms",
    "upper_legs",
    "lower_legs",
)
#: The split list file of each split.
PASCAL_PERSON_PART_SPLITS: dict[str, str] = {"train": "train_id.txt", "val": "val_id.txt"}


class PascalPersonPartDataModule(FileDataModule):
    """Pascal-Person-Part: 7 classes, HSSN's human tree, the train/val id lists.

    Args:
        root: the dataset folder (see the module documentation for the layout).
        image_dir: the image folder, relative to ``root``.
        mask_dir: the annotation folder, relative to ``root``.
        splits: split -> its id list file, relative to ``root`` (``test`` defaults to
            the val list: the data set has no separate test split).
        image_size: network input ``(height, width)`` or an int (HSSN crops 480 x 480).
        scale, hflip, flip_pairs, mean, std, on_bad, ignore_index, batch_size,
            num_workers, seed, pin_memory: as in
            :class:`~hl_lightning.data.files.FileDataModule`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "JPEGImages").mkdir()
        >>> (root / "SegmentationPart").mkdir()
        >>> Image.new("RGB", (8, 6)).save(root / "JPEGImages" / "2008_000003.jpg")
        >>> Image.new("L", (8, 6), 2).save(root / "SegmentationPart" / "2008_000003.png")
        >>> for name in ("train_id.txt", "val_id.txt"):
        ...     _ = (root / name).write_text("2008_000003\\n")
        >>> dm = PascalPersonPartDataModule(root, image_size=4, batch_size=1)
        >>> dm.setup("validate")
        >>> image, mask = dm.val_dataset[0]
        >>> image.shape, mask.unique().tolist(), dm.class_names[2]
        (torch.Size([3, 4, 4]), [2], 'torso')
    """

    defaults: ClassVar[FileOptions] = {"image_size": (480, 480), "hflip": 0.5}

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "JPEGImages",
        mask_dir: str = "SegmentationPart",
        splits: Mapping[str, str] | None = None,
        **options: Unpack[FileOptions],
    ) -> None:
        files = {**PASCAL_PERSON_PART_SPLITS, **dict(splits or {})}
        files.setdefault("test", files["val"])
        check_split_names(files)
        super().__init__(
            root, PASCAL_PERSON_PART_CLASSES, pascal_person_part_hierarchy(), **options
        )
        self.save_plain_hyperparameters(image_dir=image_dir, mask_dir=mask_dir, splits=files)
        self.image_dir = self.root / image_dir
        self.mask_dir = self.root / mask_dir
        self.splits = files
        self.layout = ListedSamples(
            "PascalPersonPartDataModule",
            {split: self.root / file for split, file in files.items()},
            self.image_dir,
            self.mask_dir,
        )
