"""The Helen face-parsing data set (Smith et al., CVPR 2013 labels) and its data module.

Supported layout, that of the ``SmithCVPR2013_dataset_resized`` release::

    root/images/<id>.jpg                          2330 face images
    root/labels/<id>/<id>_lbl00.png ... _lbl10.png one grey mask per class (0-255, soft)
    root/exemplars.txt                            train split (2000 ids)
    root/tuning.txt                               val split (230 ids)
    root/testing.txt                              test split (100 ids)

Split lines read ``index , id`` (``1 , 100032540_1``); a line with the id alone works too.
Mask ``_lblNN`` belongs to class ``NN`` of :data:`HELEN_CLASSES` (background, face skin,
left/right eyebrow, left/right eye, nose, upper lip, inner mouth, lower lip, hair); the
label map is the argmax over the eleven masks (ties go to the lower id).

A horizontal flip mirrors the face, so the left and right eyebrows and eyes swap:
:data:`HELEN_FLIP_PAIRS` (the default ``flip_pairs``) relabels them on every flip.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image
from typing_extensions import Unpack

from hl_lightning.data.files import FileDataModule, FileOptions
from hl_lightning.data.io import open_image, pixels, read_lines
from hl_lightning.data.layouts import ListedSamples
from hl_lightning.hierarchies import helen_hierarchy

__all__ = [
    "HELEN_CLASSES",
    "HELEN_FLIP_PAIRS",
    "HELEN_SPLITS",
    "HelenDataModule",
    "HelenMasks",
    "read_helen_split",
]

#: Label order: mask ``<id>_lblNN.png`` is class ``HELEN_CLASSES[NN]``.
HELEN_CLASSES: tuple[str, ...] = (
    "background",
    "face_skin",
    "left_eyebrow",
    "right_eyebrow",
    "left_eye",
    "right_eye",
    "nose",
    "upper_lip",
    "inner_mouth",
    "lower_lip",
    "hair",
)
#: Classes that swap places when the image is mirrored left-right.
HELEN_FLIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("left_eyebrow", "right_eyebrow"),
    ("left_eye", "right_eye"),
)
#: The split list file of each split.
HELEN_SPLITS: dict[str, str] = {
    "train": "exemplars.txt",
    "val": "tuning.txt",
    "test": "testing.txt",
}


def read_helen_split(path: str | Path) -> list[str]:
    """Return the image ids listed in a Helen split file (lines ``index , id``).

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "testing.txt"
        >>> _ = file.write_text("1 , 2908549_1\\n2 , 100040721_2\\n\\n")
        >>> read_helen_split(file)
        ['2908549_1', '100040721_2']
    """
    lines = read_lines(path, "Helen split", "image ids (lines 'index , id')")
    ids = (line.split(",")[-1].strip() for line in lines)
    return [i for i in ids if i]


class HelenMasks:
    """Decode Helen's per-class grey masks into one label map: argmax over the classes."""

    def check(self, mask: Image.Image) -> str | None:
        """Return the problem of a mask mode without one grey level per pixel, or None."""
        if mask.mode in ("L", "1", "P", "I", "I;16", "RGB", "RGBA", "LA"):
            return None
        return f"mask mode {mask.mode!r} is not a grey mask"

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64: the class of the strongest mask per pixel."""
        layers = []
        for path in paths:
            with open_image(path, "mask") as mask:
                layers.append(pixels(mask.convert("L")))
        return torch.stack(layers).argmax(0), None


class HelenDataModule(FileDataModule):
    """Helen face parsing: 11 classes, the paper's faces tree, the official splits.

    :attr:`hierarchy` is the paper's 4-level faces tree (:func:`helen_hierarchy`).
    The image size is the network input: the authors' public configs resize Helen to
    256 x 256. See the module documentation for the layout.

    Args:
        root: the dataset folder (``SmithCVPR2013_dataset_resized``).
        image_size: network input ``(height, width)`` or an int.
        flip_pairs: class pairs swapped by a horizontal flip (default
            :data:`HELEN_FLIP_PAIRS`, which keeps flips correct).
        scale, hflip, mean, std, on_bad, ignore_index, batch_size, num_workers, seed,
            pin_memory: the shared options, :class:`~hl_lightning.data.files.FileOptions`.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "images").mkdir()
        >>> Image.new("RGB", (8, 6)).save(root / "images" / "7_1.jpg")
        >>> (root / "labels" / "7_1").mkdir(parents=True)
        >>> for c in range(11):  # all hair
        ...     mask = Image.new("L", (8, 6), 200 * (c == 10))
        ...     mask.save(root / "labels" / "7_1" / f"7_1_lbl{c:02d}.png")
        >>> for split in ("exemplars", "tuning"):
        ...     _ = (root / f"{split}.txt").write_text("1 , 7_1\\n")
        >>> dm = HelenDataModule(root, image_size=4, batch_size=1)
        >>> dm.setup("fit")
        >>> image, mask = dm.train_dataset[0]
        >>> image.shape, mask.unique().tolist(), dm.class_names[10]
        (torch.Size([3, 4, 4]), [10], 'hair')
    """

    defaults: ClassVar[FileOptions] = {
        "image_size": 256,
        "hflip": 0.5,
        "flip_pairs": HELEN_FLIP_PAIRS,
    }

    def __init__(
        self,
        root: str | Path,
        **options: Unpack[FileOptions],
    ) -> None:
        super().__init__(root, HELEN_CLASSES, helen_hierarchy(), **options)
        self.save_plain_hyperparameters()
        self.layout = ListedSamples(
            "HelenDataModule",
            {split: self.root / file for split, file in HELEN_SPLITS.items()},
            self.root / "images",
            self.root / "labels",
            masks=tuple(f"{{0}}/{{0}}_lbl{c:02d}.png" for c in range(len(HELEN_CLASSES))),
            read_ids=read_helen_split,
        )
        self.decoder = HelenMasks()
