"""Fixture data sets for the data-module tests: every file-backed loader's layout, written small.

A :class:`DataSetCase` knows where its data set's files lie and how its masks encode the
labels. :meth:`DataSetCase.write` writes three samples per split (24 x 32 pixels, LIP's
24 x 40) with label maps that cycle through the classes in blocks; :meth:`DataSetCase.labels`
is the label map a sample must decode to, :meth:`DataSetCase.module` the data module over
the folder with the test options (the files' size, batches of 2, no flip). :data:`CASES`
holds one case per loader, for the tests of their shared behaviour (``test_data_files.py``);
each loader's own test file tests only what is its own (folder structure, mask encoding,
class list).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from PIL import Image

from hl_lightning.data import (
    CITYSCAPES_CLASSES,
    COCO_STUFF_CLASSES,
    HELEN_CLASSES,
    IGNORE_INDEX,
    LIP_CLASSES,
    PASCAL_PERSON_PART_CLASSES,
    CityscapesDataModule,
    CocoStuffDataModule,
    FileDataModule,
    FolderDataModule,
    HelenDataModule,
    LIPDataModule,
    MapillaryDataModule,
    PascalPersonPartDataModule,
)
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

HEIGHT = 24
#: hl-train overrides of a seconds-long run on a fixture data set.
TINY = [
    "backbone.width=4",
    "backbone.depth=2",
    "data.image_size=[16,16]",
    "data.batch_size=2",
    "data.num_workers=0",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "logger=csv",
]


# ---------------------------------------------------------------------------- writing files
def save(array: torch.Tensor, path: Path, mode: str, format: str | None = None) -> Path:
    """Save a uint8-valued tensor (H, W) or (H, W, C) as an image file of ``mode``."""
    height, width = array.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(array.to(torch.uint8).flatten().tolist())
    Image.frombytes(mode, (width, height), data).save(path, format=format)
    return path


def rgb(height: int, width: int, seed: int) -> torch.Tensor:
    """Return an RGB image (H, W, 3) of values 0-255 that differs with ``seed``."""
    return (torch.arange(height * width * 3).view(height, width, 3) * (seed + 1)) % 256


def blocks(width: int, cell: tuple[int, int], stride: int, seed: int) -> torch.Tensor:
    """Return the index map (H, W) ``row_block * stride + column_block + seed``."""
    rows = torch.arange(HEIGHT)[:, None] // cell[0]
    cols = torch.arange(width)[None, :] // cell[1]
    return rows * stride + cols + seed


def truncate(path: Path) -> Path:
    """Overwrite the image at ``path`` with noise, then cut its body short: a sound header
    (the file opens and says its size) whose pixels cannot be decoded."""
    with Image.open(path) as image:
        size, format = image.size, image.format
    Image.effect_noise(size, 60).convert("RGB").save(path, format=format)
    data = path.read_bytes()
    body = data.index(b"IDAT") if format == "PNG" else data.index(b"\xff\xda")
    path.write_bytes(data[: body + 24])
    return path


def fit_one_batch(dm: FileDataModule, hierarchy: Hierarchy | None = None) -> L.Trainer:
    """Return a Trainer after a one-batch fit of a tiny U-Net on ``dm`` (its tree by default)."""
    model = HierarchicalSegmenter(
        UNet(num_classes=dm.num_classes, width=4, depth=2), hierarchy or dm.hierarchy
    )
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    return trainer


# ---------------------------------------------------------------------------- the cases
class DataSetCase:
    """A loader's fixture: its layout, its mask encoding and what the tests expect of it.

    Subclasses set the class attributes and :meth:`files`; ``samples`` maps each split
    folder (or list) the data set has to the names written there, in listing order, and
    ``reads`` maps the data module's splits to them. Sample ``i`` of the ``s``-th written
    split is drawn from seed ``3 s + i``.
    """

    name: ClassVar[str]  # the data config option: data=<name>
    module_class: ClassVar[type[FileDataModule]]
    classes: ClassVar[tuple[str, ...]]
    levels: ClassVar[tuple[str, ...]]  # level names of the module's tree
    width: ClassVar[int] = 32
    samples: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]]  # (split folder, names)
    reads: ClassVar[tuple[str, str, str]]  # the split folders train, val and test read
    paired: ClassVar[bool] = True  # images pair with masks by name (False: id lists)
    endings: ClassVar[bool] = False  # names end in fixed endings, not in a suffix
    hydra: ClassVar[tuple[str, ...]] = ()  # overrides beyond data= and data.root=
    tree_source: ClassVar[str]  # the tree they choose (hierarchy.source; {root}: the data root)
    hydra_levels: ClassVar[tuple[str, ...] | None] = None  # None: levels
    default_size: ClassVar[tuple[int, int]]  # the Hydra config's image size
    flips: ClassVar[tuple[tuple[int, int], ...]] = ()  # label ids the flip pairs swap
    ignores: ClassVar[bool] = True  # masks may hold the ignore value
    resize: ClassVar[tuple[int | tuple[int, int], tuple[float, float]]] = (16, (0.5, 2.0))
    bad_value: ClassVar[int | None]  # a mask value that is no label (None: there is none)
    #: what the message on bad values says they are not (a regex; {last}: the last label id)
    bad_meaning: ClassVar[str] = "which are neither label ids 0-{last} nor the ignore value 255"
    colour_refusal: ClassVar[str | None] = "holds colours, not integer label ids"
    bad_test_split: ClassVar[str | None] = None  # a test_split the module refuses

    def __repr__(self) -> str:
        return self.name

    # the layout ------------------------------------------------------------------------
    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        """Return the image and mask files of sample ``name`` in split folder ``key``."""
        raise NotImplementedError

    def listed_name(self, key: str, name: str) -> str:
        """Return the name the data module gives the sample (default: as written)."""
        return name

    def mask_folder(self, root: Path, split: str) -> Path:
        """Return the folder of the masks of ``split`` (train, val, test)."""
        return self.paths(root, split, 0)[1][0].parent

    def write_extra(self, root: Path) -> None:
        """Write the files besides images and masks (split lists, configs)."""

    # the encoding ----------------------------------------------------------------------
    def labels_of(self, seed: int) -> torch.Tensor:
        """Return the label map (H, W) of the sample of ``seed``."""
        raise NotImplementedError

    def values_of(self, seed: int) -> torch.Tensor:
        """Return the mask file values (H, W) of the sample of ``seed`` (default: labels)."""
        return self.labels_of(seed)

    def write_mask(self, values: torch.Tensor, paths: tuple[Path, ...]) -> None:
        """Write the mask file(s) of a sample holding ``values`` (default: an 8-bit PNG)."""
        save(values, paths[0], "L")

    # derived ---------------------------------------------------------------------------
    def read(self, split: str) -> str:
        """Return the split folder (or list) the data module's ``split`` reads."""
        return self.reads[("train", "val", "test").index(split)]

    def seed(self, split: str, index: int) -> int:
        """Return the seed of sample ``index`` of the data module's ``split``."""
        return 3 * [key for key, _ in self.samples].index(self.read(split)) + index

    def names(self, split: str) -> list[str]:
        """Return the names of the samples of ``split`` in the data module's order."""
        key = self.read(split)
        return [self.listed_name(key, name) for name in dict(self.samples)[key]]

    def paths(self, root: Path, split: str, index: int) -> tuple[Path, tuple[Path, ...]]:
        """Return the image and mask files of sample ``index`` of ``split``."""
        key = self.read(split)
        return self.files(root, key, dict(self.samples)[key][index])

    def labels(self, split: str, index: int) -> torch.Tensor:
        """Return the label map (H, W) that sample ``index`` of ``split`` decodes to."""
        return self.labels_of(self.seed(split, index))

    def values(self, split: str, index: int) -> torch.Tensor:
        """Return the mask values (H, W) written for sample ``index`` of ``split``."""
        return self.values_of(self.seed(split, index))

    def no_mask(self, image: Path, mask: Path) -> str:
        """Return the problem reported for an image whose mask is missing."""
        if not self.paired:
            return f"{mask}: mask file not found (for image {image})"
        return f"{image}: no mask {mask if self.endings else mask.with_suffix('.*')} for this image"

    def no_image(self, image: Path, mask: Path) -> str:
        """Return the problem reported for a mask whose image is missing."""
        if not self.paired:
            return f"{image}: image file not found"
        return (
            f"{mask}: no image {image if self.endings else image.with_suffix('.*')} for this mask"
        )

    def write(self, root: Path) -> Path:
        """Write the data set under ``root``; return ``root``."""
        for s, (key, names) in enumerate(self.samples):
            for i, name in enumerate(names):
                image, masks = self.files(root, key, name)
                save(rgb(HEIGHT, self.width, 3 * s + i), image, "RGB")
                if masks:
                    self.write_mask(self.values_of(3 * s + i), masks)
        root.mkdir(parents=True, exist_ok=True)
        self.write_extra(root)
        return root

    def options(self, root: Path) -> dict[str, Any]:
        """Return the constructor arguments the data set needs besides ``root``."""
        return {}

    def module(self, root: Path, **options: Any) -> FileDataModule:
        """Return the data module over ``root``: the files' size, batches of 2, no flip."""
        test = {"image_size": None, "batch_size": 2, "hflip": 0.0}
        return self.module_class(root, **{**self.options(root), **test, **options})


class Cityscapes(DataSetCase):
    """The gtFine layout; masks hold official label ids (void, evaluated and rare ones)."""

    name = "cityscapes"
    module_class = CityscapesDataModule
    classes = CITYSCAPES_CLASSES
    levels = ("category", "class")
    samples = (
        ("train", ("aachen_000000_000019", "aachen_000001_000019", "bremen_000000_000019")),
        ("val", ("frankfurt_000000_000294", "frankfurt_000000_000576", "lindau_000000_000019")),
        ("test", ("berlin_000000_000019", "berlin_000001_000019", "bonn_000000_000019")),
    )
    reads = ("train", "val", "val")  # no public test annotations
    endings = True
    hydra = ("hierarchy=cityscapes",)
    tree_source = "cityscapes"
    default_size = (512, 1024)
    resize = ((12, 24), (1.0, 1.5))
    bad_value = 200
    bad_meaning = "not Cityscapes label ids"
    colour_refusal = "is not an 8-bit label map"
    bad_test_split = "extra"
    #: official label ids: unlabeled, road, sidewalk, parking (not evaluated), building, sky,
    #: person, car, caravan (not evaluated), bicycle; and the train id of each
    IDS = (0, 7, 8, 9, 11, 23, 24, 26, 29, 33)
    TRAIN_IDS = (255, 0, 1, 255, 2, 10, 11, 13, 255, 18)

    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        city = name.split("_")[0]
        image = root / "leftImg8bit" / key / city / f"{name}_leftImg8bit.png"
        return image, (root / "gtFine" / key / city / f"{name}_gtFine_labelIds.png",)

    def listed_name(self, key: str, name: str) -> str:
        return f"{name.split('_')[0]}/{name}"

    def mask_folder(self, root: Path, split: str) -> Path:
        return root / "gtFine" / self.read(split)

    def labels_of(self, seed: int) -> torch.Tensor:
        return torch.tensor(self.TRAIN_IDS)[blocks(self.width, (4, 8), 3, seed) % 10]

    def values_of(self, seed: int) -> torch.Tensor:
        return torch.tensor(self.IDS)[blocks(self.width, (4, 8), 3, seed) % 10]

    def write_mask(self, values: torch.Tensor, paths: tuple[Path, ...]) -> None:
        save(values, paths[0], "L")
        # the other gtFine files of a frame: not read
        name = paths[0].name.removesuffix("_labelIds.png")
        save(torch.zeros(HEIGHT, self.width, 3), paths[0].with_name(f"{name}_color.png"), "RGB")
        save(values, paths[0].with_name(f"{name}_instanceIds.png"), "L")


class CocoStuff(DataSetCase):
    """stuffthingmaps: 8-bit maps of official label indices (id - 1; removed ids; 255)."""

    name = "coco_stuff"
    module_class = CocoStuffDataModule
    classes = COCO_STUFF_CLASSES
    levels = ("kind", "setting", "supercategory", "class")
    samples = (
        ("train2017", ("000000000009", "000000000025", "000000000030")),
        ("val2017", ("000000000139", "000000000285", "000000000632")),
    )
    reads = ("train2017", "val2017", "val2017")
    hydra = ("hierarchy=coco_stuff",)
    tree_source = "coco_stuff"
    default_size = (512, 512)
    resize = (16, (1.0, 1.5))
    bad_value = 200
    bad_meaning = r"not COCO-Stuff label indices \(0-181, 255 unlabeled\)"
    colour_refusal = "is not an 8-bit label map"
    bad_test_split = "test-dev"
    #: PNG values (official id - 1) and their classes: person, street sign (removed), car,
    #: hair brush (removed), banner (first stuff), sky-other, wood (last), unlabeled
    VALUES = (0, 11, 2, 90, 91, 156, 181, 255)
    NAMES = ("person", None, "car", None, "banner", "sky-other", "wood", None)

    def __init__(self, mask_dir: str = "stuffthingmaps") -> None:
        self.mask_dir = mask_dir

    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        return root / "images" / key / f"{name}.jpg", (root / self.mask_dir / key / f"{name}.png",)

    def labels_of(self, seed: int) -> torch.Tensor:
        ids = [255 if name is None else COCO_STUFF_CLASSES.index(name) for name in self.NAMES]
        return torch.tensor(ids)[blocks(self.width, (4, 8), 3, seed) % 8]

    def values_of(self, seed: int) -> torch.Tensor:
        return torch.tensor(self.VALUES)[blocks(self.width, (4, 8), 3, seed) % 8]


class Helen(DataSetCase):
    """SmithCVPR2013_dataset_resized: eleven soft grey masks an image, ``index , id`` lists."""

    name = "helen"
    module_class = HelenDataModule
    classes = HELEN_CLASSES
    levels = ("figure", "region", "part", "class")
    samples = (
        ("exemplars.txt", ("100_1", "101_2", "102_3")),
        ("tuning.txt", ("103_1", "104_2", "105_3")),
        ("testing.txt", ("106_1", "107_2", "108_3")),
    )
    reads = ("exemplars.txt", "tuning.txt", "testing.txt")
    paired = False
    hydra = ("hierarchy=helen",)
    tree_source = "helen"
    default_size = (256, 256)
    flips = ((2, 3), (4, 5))  # eyebrows, eyes
    ignores = False
    resize = (16, (1.0, 1.25))
    bad_value = None  # the argmax of the class masks is always a class
    colour_refusal = None  # colour masks are read as grey

    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        masks = tuple(root / "labels" / name / f"{name}_lbl{c:02d}.png" for c in range(11))
        return root / "images" / f"{name}.jpg", masks

    def mask_folder(self, root: Path, split: str) -> Path:
        return root / "labels"

    def write_extra(self, root: Path) -> None:
        for key, names in self.samples:
            (root / key).write_text("".join(f"{i + 1} , {name}\n" for i, name in enumerate(names)))

    def labels_of(self, seed: int) -> torch.Tensor:
        return blocks(self.width, (6, 8), 4, seed) % 11

    def write_mask(self, values: torch.Tensor, paths: tuple[Path, ...]) -> None:
        for c, path in enumerate(paths):  # soft masks: the class strong, the next one faint
            save(torch.where(values == c, 230, 40 * (values == (c + 1) % 11)), path, "L")


class LIP(DataSetCase):
    """TrainVal_images / TrainVal_parsing_annotations: 8-bit label ids 0-19."""

    name = "lip"
    module_class = LIPDataModule
    classes = LIP_CLASSES
    levels = ("figure", "body", "part")
    width = 40
    samples = (
        ("train", ("100034_483681", "10005_205677", "100142_449784")),
        ("val", ("100034_483681_v", "10031_1248425", "10041_1214553")),
    )
    reads = ("train", "val", "val")  # no public test annotations
    hydra = ("hierarchy=lip",)
    tree_source = "lip"
    default_size = (480, 480)
    flips = ((14, 15), (16, 17), (18, 19))  # arms, legs, shoes
    bad_value = 20
    bad_test_split = "test"

    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        image = root / "TrainVal_images" / f"{key}_images" / f"{name}.jpg"
        return image, (
            root / "TrainVal_parsing_annotations" / f"{key}_segmentations" / f"{name}.png",
        )

    def write_extra(self, root: Path) -> None:
        for key, names in self.samples:  # the id lists (not read: pairing by name)
            (root / "TrainVal_images" / f"{key}_id.txt").write_text(
                "".join(f"{n}\n" for n in names)
            )

    def labels_of(self, seed: int) -> torch.Tensor:
        return blocks(self.width, (4, 5), 8, seed) % 20


class PascalPersonPart(DataSetCase):
    """JPEGImages / SegmentationPart (label ids 0-6, some 255) and the two id lists."""

    name = "pascal_person_part"
    module_class = PascalPersonPartDataModule
    classes = PASCAL_PERSON_PART_CLASSES
    levels = ("figure", "body", "part")
    samples = (
        ("train_id.txt", ("2008_000003", "2008_000008", "2008_000023")),
        ("val_id.txt", ("2008_000026", "2008_000041", "2008_000045")),
    )
    reads = ("train_id.txt", "val_id.txt", "val_id.txt")
    paired = False
    hydra = ("hierarchy=pascal_person_part",)
    tree_source = "pascal_person_part"
    default_size = (480, 480)
    bad_value = 9

    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        return root / "JPEGImages" / f"{name}.jpg", (root / "SegmentationPart" / f"{name}.png",)

    def write_extra(self, root: Path) -> None:
        for key, names in self.samples:
            (root / key).write_text("".join(f"{name}\n" for name in names))

    def labels_of(self, seed: int) -> torch.Tensor:
        labels = blocks(self.width, (6, 8), 4, seed) % 8
        return torch.where(labels == 7, IGNORE_INDEX, labels)  # an ignored block


#: The Vistas v1.2 label names, in label-id order (the data set's config.json).
V12_LABELS = (
    "animal--bird",
    "animal--ground-animal",
    "construction--barrier--curb",
    "construction--barrier--fence",
    "construction--barrier--guard-rail",
    "construction--barrier--other-barrier",
    "construction--barrier--wall",
    "construction--flat--bike-lane",
    "construction--flat--crosswalk-plain",
    "construction--flat--curb-cut",
    "construction--flat--parking",
    "construction--flat--pedestrian-area",
    "construction--flat--rail-track",
    "construction--flat--road",
    "construction--flat--service-lane",
    "construction--flat--sidewalk",
    "construction--structure--bridge",
    "construction--structure--building",
    "construction--structure--tunnel",
    "human--person",
    "human--rider--bicyclist",
    "human--rider--motorcyclist",
    "human--rider--other-rider",
    "marking--crosswalk-zebra",
    "marking--general",
    "nature--mountain",
    "nature--sand",
    "nature--sky",
    "nature--snow",
    "nature--terrain",
    "nature--vegetation",
    "nature--water",
    "object--banner",
    "object--bench",
    "object--bike-rack",
    "object--billboard",
    "object--catch-basin",
    "object--cctv-camera",
    "object--fire-hydrant",
    "object--junction-box",
    "object--mailbox",
    "object--manhole",
    "object--phone-booth",
    "object--pothole",
    "object--street-light",
    "object--support--pole",
    "object--support--traffic-sign-frame",
    "object--support--utility-pole",
    "object--traffic-light",
    "object--traffic-sign--back",
    "object--traffic-sign--front",
    "object--trash-can",
    "object--vehicle--bicycle",
    "object--vehicle--boat",
    "object--vehicle--bus",
    "object--vehicle--car",
    "object--vehicle--caravan",
    "object--vehicle--motorcycle",
    "object--vehicle--on-rails",
    "object--vehicle--other-vehicle",
    "object--vehicle--trailer",
    "object--vehicle--truck",
    "object--vehicle--wheeled-slow",
    "void--car-mount",
    "void--ego-vehicle",
    "void--unlabeled",
)


def vistas_config(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Return a Vistas config: one entry per label, with a colour and the evaluate flag."""
    return {
        "labels": [
            {
                "name": name,
                "readable": name.split("--")[-1].replace("-", " ").title(),
                "color": [(37 * i) % 256, (91 * i) % 256, (53 * i) % 256],
                "instances": False,
                "evaluate": name != "void--unlabeled",
            }
            for i, name in enumerate(names)
        ]
    }


def save_palette_png(ids: torch.Tensor, path: Path, colours: int = 256) -> Path:
    """Save label ids (H, W) as a palette PNG whose indices are the ids (Vistas' encoding)."""
    height, width = ids.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (width, height), bytes(ids.to(torch.uint8).flatten().tolist()))
    image.putpalette([(c * k) % 256 for c in range(colours) for k in (37, 91, 53)])
    image.save(path)
    return path


class Mapillary(DataSetCase):
    """Vistas v1.2 (or v2.0): palette label PNGs (index = label id), testing without labels."""

    name = "mapillary"
    module_class = MapillaryDataModule
    levels = ("level0", "level1", "level2")
    samples = (
        ("training", ("traKey0", "traKey1", "traKey2")),
        ("validation", ("valKey0", "valKey1", "valKey2")),
        ("testing", ("tesKey0", "tesKey1", "tesKey2")),
    )
    reads = ("training", "validation", "validation")
    hydra = ("hierarchy=mapillary_auto",)
    tree_source = "{root}/config.json"  # the data set's own label names
    default_size = (480, 640)
    resize = ((12, 16), (0.5, 2.0))
    bad_value = 70

    def __init__(
        self,
        version: str = "1.2",
        labels: tuple[str, ...] = V12_LABELS,
        classes: tuple[str, ...] | None = None,
    ) -> None:
        self.version = version
        self.label_names = labels
        self.classes = classes or tuple(name.split("--")[-1] for name in labels)

    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        image = root / key / "images" / f"{name}.jpg"
        if key == "testing":  # the test split has no public labels
            return image, ()
        labels = "labels" if self.version == "1.2" else "v2.0/labels"
        return image, (root / key / labels / f"{name}.png",)

    def write_extra(self, root: Path) -> None:
        config = "config.json" if self.version == "1.2" else "config_v2.0.json"
        (root / config).write_text(json.dumps(vistas_config(self.label_names)))

    def labels_of(self, seed: int) -> torch.Tensor:
        return blocks(self.width, (4, 4), 8, 7 * seed) % len(self.label_names)

    def write_mask(self, values: torch.Tensor, paths: tuple[Path, ...]) -> None:
        save_palette_png(values, paths[0])

    def options(self, root: Path) -> dict[str, Any]:
        return {"version": self.version}


class Folder(DataSetCase):
    """Any folder: images/<split>/<name>.png, labels/<split>/<name>.png, a class list, a tree."""

    name = "folder"
    module_class = FolderDataModule
    classes = ("sky", "road", "car", "person")
    levels = ("level0", "level1")
    samples = tuple(
        (split, tuple(f"{split}_{i}" for i in range(3))) for split in ("train", "val", "test")
    )
    reads = ("train", "val", "test")
    hydra = ("data.class_names=classes.txt", "data.num_workers=0", "hierarchy=flat")
    tree_source = "flat"
    hydra_levels = ("level0",)
    default_size = (256, 256)
    resize = ((16, 20), (1.0, 1.5))
    bad_value = 7
    TREE = "stuff:\n  - sky\n  - road\nthings: [car, person]\n"

    def files(self, root: Path, key: str, name: str) -> tuple[Path, tuple[Path, ...]]:
        return root / "images" / key / f"{name}.png", (root / "labels" / key / f"{name}.png",)

    def write_extra(self, root: Path) -> None:
        (root / "classes.txt").write_text("\n".join(self.classes))
        (root / "tree.yaml").write_text(self.TREE)

    def labels_of(self, seed: int) -> torch.Tensor:
        labels = (torch.arange(self.width)[None, :] // 8 + seed) % 4
        labels = labels.expand(HEIGHT, self.width).clone()
        labels[:3, :3] = IGNORE_INDEX  # an ignored corner
        return labels

    def options(self, root: Path) -> dict[str, Any]:
        return {"class_names": list(self.classes), "hierarchy": root / "tree.yaml"}


class CoarseFolder(Folder):
    """The folder layout labelled coarsely: classes sky, road and things, where things is an
    internal node of the tree (car, person): its pixels are coarse labels."""

    classes = ("sky", "road", "things")

    def labels_of(self, seed: int) -> torch.Tensor:
        labels = (torch.arange(self.width)[None, :] // 8 + seed) % 3
        labels = labels.expand(HEIGHT, self.width).clone()
        labels[:3, :3] = IGNORE_INDEX  # an ignored corner
        return labels


#: One case per file-backed loader.
CASES: list[DataSetCase] = [
    Folder(),
    Helen(),
    Mapillary(),
    Cityscapes(),
    CocoStuff(),
    PascalPersonPart(),
    LIP(),
]
