"""COCO-Stuff 164k (Caesar et al., CVPR 2018): its 171 classes, label ids and data module.

Supported layout (COCO 2017 ``train2017.zip`` / ``val2017.zip`` and COCO-Stuff's
``stuffthingmaps_trainval2017.zip`` unpacked into ``root``)::

    root/images/train2017/<id>.jpg           118K images
    root/images/val2017/<id>.jpg             5K images
    root/stuffthingmaps/train2017/<id>.png   one 8-bit label map per image
    root/stuffthingmaps/val2017/<id>.png

The official README (github.com/nightrome/cocostuff, "Setup") unpacks the label maps into
``annotations/`` instead of ``stuffthingmaps/``: both names are found (``mask_dir``).
The test images have no public annotations: the test split reads ``val2017``.

Label maps: "thing+stuff labels cover indices 0-181 and 255 indicates the 'unlabeled' or
void class" (README, "Downloads"): a PNG value ``v`` is the official label id ``v + 1`` of
``labels.md`` / ``labels.txt`` (1-91 things, 92-182 stuff; 0 is unlabeled).
:data:`COCO_STUFF_LABELS` is that list of (official id, name). 11 thing ids have no
annotations ("Removed from COCO" in labels.md: :data:`COCO_STUFF_REMOVED`); the other 171
names are :data:`COCO_STUFF_CLASSES`, our label ids 0-170 in official-id order. The
decoder's lookup is built from these names: value ``id - 1`` of a used class maps to that
class's index in :data:`COCO_STUFF_CLASSES`; removed ids and 255 map to the ignore value,
and values 182-254 (no COCO-Stuff id) are bad data.

The hierarchy is the authors' (:func:`~hl_lightning.hierarchies.coco_stuff_hierarchy`):
things and stuff, indoor and outdoor, 27 supercategories, then the classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from typing_extensions import Unpack

from hl_lightning.data.files import FileDataModule, FileOptions, one_of
from hl_lightning.data.layouts import PairedFolders
from hl_lightning.data.masks import LookupMasks
from hl_lightning.hierarchies import coco_stuff_hierarchy

__all__ = [
    "COCO_STUFF_CLASSES",
    "COCO_STUFF_LABELS",
    "COCO_STUFF_REMOVED",
    "COCO_STUFF_SPLITS",
    "CocoStuffDataModule",
    "CocoStuffMasks",
]

#: (official id, name) of every COCO-Stuff label, from ``labels.txt`` of
#: github.com/nightrome/cocostuff (0 "unlabeled" left out: PNG value 255).
COCO_STUFF_LABELS: tuple[tuple[int, str], ...] = (
    (1, "person"),
    (2, "bicycle"),
    (3, "car"),
    (4, "motorcycle"),
    (5, "airplane"),
    (6, "bus"),
    (7, "train"),
    (8, "truck"),
    (9, "boat"),
    (10, "traffic light"),
    (11, "fire hydrant"),
    (12, "street sign"),
    (13, "stop sign"),
    (14, "parking meter"),
    (15, "bench"),
    (16, "bird"),
    (17, "cat"),
    (18, "dog"),
    (19, "horse"),
    (20, "sheep"),
    (21, "cow"),
    (22, "elephant"),
    (23, "bear"),
    (24, "zebra"),
    (25, "giraffe"),
    (26, "hat"),
    (27, "backpack"),
    (28, "umbrella"),
    (29, "shoe"),
    (30, "eye glasses"),
    (31, "handbag"),
    (32, "tie"),
    (33, "suitcase"),
    (34, "frisbee"),
    (35, "skis"),
    (36, "snowboard"),
    (37, "sports ball"),
    (38, "kite"),
    (39, "baseball bat"),
    (40, "baseball glove"),
    (41, "skateboard"),
    (42, "surfboard"),
    (43, "tennis racket"),
    (44, "bottle"),
    (45, "plate"),
    (46, "wine glass"),
    (47, "cup"),
    (48, "fork"),
    (49, "knife"),
    (50, "spoon"),
    (51, "bowl"),
    (52, "banana"),
    (53, "apple"),
    (54, "sandwich"),
    (55, "orange"),
    (56, "broccoli"),
    (57, "carrot"),
    (58, "hot dog"),
    (59, "pizza"),
    (60, "donut"),
    (61, "cake"),
    (62, "chair"),
    (63, "couch"),
    (64, "potted plant"),
    (65, "bed"),
    (66, "mirror"),
    (67, "dining table"),
    (68, "window"),
    (69, "desk"),
    (70, "toilet"),
    (71, "door"),
    (72, "tv"),
    (73, "laptop"),
    (74, "mouse"),
    (75, "remote"),
    (76, "keyboard"),
    (77, "cell phone"),
    (78, "microwave"),
    (79, "oven"),
    (80, "toaster"),
    (81, "sink"),
    (82, "refrigerator"),
    (83, "blender"),
    (84, "book"),
    (85, "clock"),
    (86, "vase"),
    (87, "scissors"),
    (88, "teddy bear"),
    (89, "hair drier"),
    (90, "toothbrush"),
    (91, "hair brush"),
    (92, "banner"),
    (93, "blanket"),
    (94, "branch"),
    (95, "bridge"),
    (96, "building-other"),
    (97, "bush"),
    (98, "cabinet"),
    (99, "cage"),
    (100, "cardboard"),
    (101, "carpet"),
    (102, "ceiling-other"),
    (103, "ceiling-tile"),
    (104, "cloth"),
    (105, "clothes"),
    (106, "clouds"),
    (107, "counter"),
    (108, "cupboard"),
    (109, "curtain"),
    (110, "desk-stuff"),
    (111, "dirt"),
    (112, "door-stuff"),
    (113, "fence"),
    (114, "floor-marble"),
    (115, "floor-other"),
    (116, "floor-stone"),
    (117, "floor-tile"),
    (118, "floor-wood"),
    (119, "flower"),
    (120, "fog"),
    (121, "food-other"),
    (122, "fruit"),
    (123, "furniture-other"),
    (124, "grass"),
    (125, "gravel"),
    (126, "ground-other"),
    (127, "hill"),
    (128, "house"),
    (129, "leaves"),
    (130, "light"),
    (131, "mat"),
    (132, "metal"),
    (133, "mirror-stuff"),
    (134, "moss"),
    (135, "mountain"),
    (136, "mud"),
    (137, "napkin"),
    (138, "net"),
    (139, "paper"),
    (140, "pavement"),
    (141, "pillow"),
    (142, "plant-other"),
    (143, "plastic"),
    (144, "platform"),
    (145, "playingfield"),
    (146, "railing"),
    (147, "railroad"),
    (148, "river"),
    (149, "road"),
    (150, "rock"),
    (151, "roof"),
    (152, "rug"),
    (153, "salad"),
    (154, "sand"),
    (155, "sea"),
    (156, "shelf"),
    (157, "sky-other"),
    (158, "skyscraper"),
    (159, "snow"),
    (160, "solid-other"),
    (161, "stairs"),
    (162, "stone"),
    (163, "straw"),
    (164, "structural-other"),
    (165, "table"),
    (166, "tent"),
    (167, "textile-other"),
    (168, "towel"),
    (169, "tree"),
    (170, "vegetable"),
    (171, "wall-brick"),
    (172, "wall-concrete"),
    (173, "wall-other"),
    (174, "wall-panel"),
    (175, "wall-stone"),
    (176, "wall-tile"),
    (177, "wall-wood"),
    (178, "water-other"),
    (179, "waterdrops"),
    (180, "window-blind"),
    (181, "window-other"),
    (182, "wood"),
)
#: The thing classes without segmentation annotations ("Removed from COCO", labels.md).
COCO_STUFF_REMOVED: frozenset[str] = frozenset(
    {
        "street sign",
        "hat",
        "shoe",
        "eye glasses",
        "plate",
        "mirror",
        "window",
        "desk",
        "door",
        "blender",
        "hair brush",
    }
)
#: The 171 used classes in official-id order: our label id ``i`` is ``COCO_STUFF_CLASSES[i]``.
COCO_STUFF_CLASSES: tuple[str, ...] = tuple(
    name for _, name in COCO_STUFF_LABELS if name not in COCO_STUFF_REMOVED
)
#: The folder of each split (under the image and the label-map folders).
COCO_STUFF_SPLITS: dict[str, str] = {"train": "train2017", "val": "val2017"}
_MASK_DIRS = ("stuffthingmaps", "annotations")


class CocoStuffMasks(LookupMasks):
    """Decode ``stuffthingmaps`` PNGs: value ``id - 1`` -> our label id, by class name.

    Example:
        >>> decoder = CocoStuffMasks(ignore_index=255)
        >>> # person (id 1), street sign (id 12: removed), wood (id 182), unlabeled
        >>> decoder.lookup[[0, 11, 181, 255]].tolist()
        [0, 255, 170, 255]
    """

    def __init__(self, ignore_index: int) -> None:
        index = {name: i for i, name in enumerate(COCO_STUFF_CLASSES)}
        table = {i - 1: index.get(name, ignore_index) for i, name in COCO_STUFF_LABELS}
        table[255] = ignore_index  # unlabeled
        super().__init__(
            table,
            ignore_index,
            "COCO-Stuff label indices (0-181, 255 unlabeled)",
            "a stuffthingmaps PNG",
        )


class CocoStuffDataModule(FileDataModule):
    """COCO-Stuff 164k: 171 classes (80 things, 91 stuff), the authors' 4-level tree.

    Args:
        root: the dataset folder (see the module documentation for the layout).
        image_dir: the folder of the split image folders, relative to ``root``.
        mask_dir: the folder of the split label-map folders, relative to ``root``;
            None: ``stuffthingmaps`` or, failing that, ``annotations``.
        test_split: the split the test stage reads (``val``: the test images have no
            public annotations).
        image_size: network input ``(height, width)`` or an int.
        scale, hflip, flip_pairs, mean, std, on_bad, ignore_index, batch_size,
            num_workers, seed, pin_memory: as in
            :class:`~hl_lightning.data.files.FileDataModule`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for split in COCO_STUFF_SPLITS.values():
        ...     (root / "images" / split).mkdir(parents=True)
        ...     (root / "stuffthingmaps" / split).mkdir(parents=True)
        ...     Image.new("RGB", (8, 6)).save(root / "images" / split / "000000000139.jpg")
        ...     mask = Image.new("L", (8, 6), 2)  # value 2: official id 3, car
        ...     mask.save(root / "stuffthingmaps" / split / "000000000139.png")
        >>> dm = CocoStuffDataModule(root, image_size=None, batch_size=1)
        >>> dm.setup("test")
        >>> image, mask = dm.test_dataset[0]  # the test stage reads val2017
        >>> image.shape, mask.unique().tolist(), dm.class_names[2]
        (torch.Size([3, 6, 8]), [2], 'car')
    """

    defaults: ClassVar[FileOptions] = {"image_size": (512, 512), "hflip": 0.5}

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "images",
        mask_dir: str | None = None,
        test_split: str = "val",
        **options: Unpack[FileOptions],
    ) -> None:
        one_of("test_split", test_split, COCO_STUFF_SPLITS)
        super().__init__(root, COCO_STUFF_CLASSES, coco_stuff_hierarchy(), **options)
        self.save_plain_hyperparameters(
            image_dir=image_dir, mask_dir=mask_dir, test_split=test_split
        )
        self.image_dir = self.root / image_dir
        found = [self.root / name for name in _MASK_DIRS if (self.root / name).is_dir()]
        default = found[0] if found else self.root / _MASK_DIRS[0]
        self.mask_dir = default if mask_dir is None else self.root / mask_dir
        split_dirs = {**COCO_STUFF_SPLITS, "test": COCO_STUFF_SPLITS[test_split]}
        elsewhere = {}
        if mask_dir is None and not found:  # name the other folder a missing one may be
            elsewhere = {
                self.mask_dir / folder: self.root / _MASK_DIRS[1] / folder
                for folder in split_dirs.values()
            }
        self.layout = PairedFolders(
            "CocoStuffDataModule",
            {
                split: (self.image_dir / folder, self.mask_dir / folder)
                for split, folder in split_dirs.items()
            },
            elsewhere=elsewhere,
        )
        self.decoder = CocoStuffMasks(self.ignore_index)
