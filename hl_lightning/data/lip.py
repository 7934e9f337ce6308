"""LIP (Look into Person, Gong et al., CVPR 2017) human parsing: 20 labels and its data module.

Supported layout, that of the official ``TrainVal_images.zip`` and
``TrainVal_parsing_annotations.zip`` unpacked into ``root``::

    root/TrainVal_images/train_images/<id>.jpg                     30462 images
    root/TrainVal_images/val_images/<id>.jpg                       10000 images
    root/TrainVal_parsing_annotations/train_segmentations/<id>.png label ids 0-19
    root/TrainVal_parsing_annotations/val_segmentations/<id>.png

An image pairs with the annotation of the same name; the split lists
(``TrainVal_images/train_id.txt``, ``val_id.txt``) are not needed. The test images have no
public annotations: the test split reads ``val`` by default. Some archives unpack into a
doubled folder (``TrainVal_images/TrainVal_images/...``): point ``image_dir`` /
``mask_dir`` at the inner one.

Label ``i`` is :data:`LIP_CLASSES` ``[i]``, the official order (0 background, 1 hat,
2 hair, 3 glove, 4 sunglasses, 5 upper-clothes, 6 dress, 7 coat, 8 socks, 9 pants,
10 jumpsuits, 11 scarf, 12 skirt, 13 face, 14 left-arm, 15 right-arm, 16 left-leg,
17 right-leg, 18 left-shoe, 19 right-shoe), spelt in snake case here. Sources: the LIP
page (sysu-hcp.net/lip), the class list of Self-Correction-Human-Parsing
(github.com/GoGoDuck912/Self-Correction-Human-Parsing, ``simple_extractor.py``), and the
``RandomSwapFlip(swap_index_left=[14, 16, 18], swap_index_right=[15, 17, 19])`` of HSSN's
``configs/_base_/datasets/LIP.py`` (github.com/qhanghu/HSSN_pytorch), which gives the
three left/right pairs :data:`LIP_FLIP_PAIRS` (the default ``flip_pairs``).

The hierarchy is HSSN's (:func:`~hl_lightning.hierarchies.lip_hierarchy`): background
against the human, the human split into upper and lower body, then the 19 parts.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from typing_extensions import Unpack

from hl_lightning.data.files import FileDataModule, FileOptions, one_of
from hl_lightning.data.layouts import PairedFolders
from hl_lightning.hierarchies import lip_hierarchy

__all__ = ["LIP_CLASSES", "LIP_FLIP_PAIRS", "LIP_SPLITS", "LIPDataModule"]

#: Label order: annotation value ``i`` is class ``LIP_CLASSES[i]``.
LIP_CLASSES: tuple[str, ...] = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper_clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "jumpsuits",
    "scarf",
    "skirt",
    "face",
    "left_arm",
    "right_arm",
    "left_leg",
    "right_leg",
    "left_shoe",
    "right_shoe",
)
#: Classes that swap places when the image is mirrored left-right (HSSN's swap indices).
LIP_FLIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("left_arm", "right_arm"),
    ("left_leg", "right_leg"),
    ("left_shoe", "right_shoe"),
)
#: Split -> (image folder under ``image_dir``, annotation folder under ``mask_dir``).
LIP_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train_images", "train_segmentations"),
    "val": ("val_images", "val_segmentations"),
}


class LIPDataModule(FileDataModule):
    """LIP single-person parsing: 20 classes, HSSN's human tree, the official train/val split.

    Args:
        root: the dataset folder (see the module documentation for the layout).
        image_dir: the folder of the split image folders, relative to ``root``.
        mask_dir: the folder of the split annotation folders, relative to ``root``.
        test_split: the split the test stage reads (``val``: the test set has no public
            annotations).
        image_size: network input ``(height, width)`` or an int (HSSN crops 480 x 480).
        flip_pairs: class pairs swapped by a horizontal flip (default
            :data:`LIP_FLIP_PAIRS`, which keeps flips correct).
        scale, hflip, mean, std, on_bad, ignore_index, batch_size, num_workers, seed,
            pin_memory: the shared options, :class:`~hl_lightning.data.files.FileOptions`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for images, masks in LIP_SPLITS.values():
        ...     (root / "TrainVal_images" / images).mkdir(parents=True)
        ...     (root / "TrainVal_parsing_annotations" / masks).mkdir(parents=True)
        ...     Image.new("RGB", (8, 6)).save(root / "TrainVal_images" / images / "1_2.jpg")
        ...     mask = Image.new("L", (8, 6), 14)  # left arm
        ...     mask.save(root / "TrainVal_parsing_annotations" / masks / "1_2.png")
        >>> dm = LIPDataModule(root, image_size=None, hflip=1.0, batch_size=1)
        >>> dm.setup("fit")
        >>> image, mask = dm.train_dataset[0]  # flipped: the left arm becomes the right arm
        >>> image.shape, mask.unique().tolist(), dm.class_names[15]
        (torch.Size([3, 6, 8]), [15], 'right_arm')
    """

    defaults: ClassVar[FileOptions] = {
        "image_size": (480, 480),
        "hflip": 0.5,
        "flip_pairs": LIP_FLIP_PAIRS,
    }

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "TrainVal_images",
        mask_dir: str = "TrainVal_parsing_annotations",
        test_split: str = "val",
        **options: Unpack[FileOptions],
    ) -> None:
        one_of("test_split", test_split, LIP_SPLITS)
        super().__init__(root, LIP_CLASSES, lip_hierarchy(), **options)
        self.save_plain_hyperparameters(
            image_dir=image_dir, mask_dir=mask_dir, test_split=test_split
        )
        self.image_dir = self.root / image_dir
        self.mask_dir = self.root / mask_dir
        split_dirs = {**LIP_SPLITS, "test": LIP_SPLITS[test_split]}
        self.layout = PairedFolders(
            "LIPDataModule",
            {
                split: (self.image_dir / images, self.mask_dir / masks)
                for split, (images, masks) in split_dirs.items()
            },
            image_suffixes=(".jpg", ".jpeg", ".png"),
        )
