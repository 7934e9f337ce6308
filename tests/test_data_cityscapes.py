"""Tests for hl_lightning/data/cityscapes.py and the shipped categories tree: the gtFine layout.

The fixture writes ``leftImg8bit/{train,val,test}/<city>/..._leftImg8bit.png`` and
``gtFine/{split}/<city>/..._gtFine_labelIds.png`` under ``tmp_path``: three 24 x 32 frames
per split over two cities, with official label ids (void, evaluated and rare classes).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from PIL import Image

from hl_lightning.data import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABELS,
    BadDataError,
    CityscapesDataModule,
)
from hl_lightning.hierarchies import cityscapes_hierarchy, load_hierarchy
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

HEIGHT, WIDTH = 24, 32
FRAMES = {
    "train": ["aachen_000000_000019", "aachen_000001_000019", "bremen_000000_000019"],
    "val": ["frankfurt_000000_000294", "frankfurt_000000_000576", "lindau_000000_000019"],
    "test": ["berlin_000000_000019", "berlin_000001_000019", "bonn_000000_000019"],
}
# official label ids: unlabeled, road, sidewalk, parking (not evaluated), building, sky,
# person, car, caravan (not evaluated), bicycle
IDS = [0, 7, 8, 9, 11, 23, 24, 26, 29, 33]
TRAIN_IDS = [255, 0, 1, 255, 2, 10, 11, 13, 255, 18]


def blocks(seed: int) -> torch.Tensor:
    """Return an index map (H, W) into :data:`IDS`: 4 x 8 blocks."""
    rows = torch.arange(HEIGHT)[:, None] // 4
    cols = torch.arange(WIDTH)[None, :] // 8
    return (rows * 3 + cols + seed) % len(IDS)


def label_ids(seed: int) -> torch.Tensor:
    """Return the official label-id map (H, W) of frame ``seed``."""
    return torch.tensor(IDS)[blocks(seed)]


def train_ids(seed: int) -> torch.Tensor:
    """Return the expected train-id map (H, W) of frame ``seed``."""
    return torch.tensor(TRAIN_IDS)[blocks(seed)]


def save(array: torch.Tensor, path: Path, mode: str) -> None:
    height, width = array.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(array.to(torch.uint8).flatten().tolist())
    Image.frombytes(mode, (width, height), data).save(path)


def frame_paths(root: Path, split: str, frame: str) -> tuple[Path, Path]:
    city = frame.split("_")[0]
    image = root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png"
    mask = root / "gtFine" / split / city / f"{frame}_gtFine_labelIds.png"
    return image, mask


def make_cityscapes(root: Path) -> Path:
    """Write the gtFine layout; each frame also gets the color and instance files."""
    for s, (split, frames) in enumerate(FRAMES.items()):
        for i, frame in enumerate(frames):
            image, mask = frame_paths(root, split, frame)
            pixels = (torch.arange(HEIGHT * WIDTH * 3).view(HEIGHT, WIDTH, 3) + 5 * i) % 256
            save(pixels, image, "RGB")
            save(label_ids(3 * s + i), mask, "L")
            # the other gtFine files of a frame: not read
            save(torch.zeros(HEIGHT, WIDTH, 3), mask.with_name(f"{frame}_gtFine_color.png"), "RGB")
            save(label_ids(0), mask.with_name(f"{frame}_gtFine_instanceIds.png"), "L")
    return root


def module(root: Path, **kwargs: object) -> CityscapesDataModule:
    options = {"image_size": None, "batch_size": 2, "hflip": 0.0}
    return CityscapesDataModule(root, **{**options, **kwargs})


# ---------------------------------------------------------------------------- the table
def test_official_table_gives_19_classes_in_train_id_order() -> None:
    assert len(CITYSCAPES_CLASSES) == 19
    assert CITYSCAPES_CLASSES[:3] == ("road", "sidewalk", "building")
    assert CITYSCAPES_CLASSES[-1] == "bicycle"
    train_ids = sorted(label.train_id for label in CITYSCAPES_LABELS if 0 <= label.train_id < 255)
    assert train_ids == list(range(19))
    assert len({label.id for label in CITYSCAPES_LABELS}) == len(CITYSCAPES_LABELS)


def test_shipped_tree_is_the_tables_categories() -> None:
    categories: dict[str, list[str]] = {}
    for label in sorted(CITYSCAPES_LABELS, key=lambda label: label.train_id):
        if 0 <= label.train_id < 255:
            categories.setdefault(label.category, []).append(label.name)
    # a category holding only its namesake (sky) is a leaf at level 0
    tree = {
        category: None if names == [category] else names for category, names in categories.items()
    }
    table = Hierarchy.from_dict(tree, level_names=("category", "class"))
    assert cityscapes_hierarchy() == table
    h = load_hierarchy("cityscapes", CITYSCAPES_CLASSES)
    assert [h.num_groups(d) for d in range(2)] == [7, 19]
    assert h.group_names(0) == (
        "flat",
        "construction",
        "object",
        "nature",
        "sky",
        "human",
        "vehicle",
    )


# ---------------------------------------------------------------------------- loading
def test_label_ids_map_to_train_ids(tmp_path: Path) -> None:
    dm = module(make_cityscapes(tmp_path))
    assert dm.class_names == CITYSCAPES_CLASSES and dm.num_classes == 19
    assert dm.hierarchy.leaves == CITYSCAPES_CLASSES and dm.hierarchy.num_levels == 2
    dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == [
        "aachen/aachen_000000_000019",
        "aachen/aachen_000001_000019",
        "bremen/bremen_000000_000019",
    ]
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, HEIGHT, WIDTH) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == torch.int64
    assert torch.equal(masks[0], train_ids(3)) and torch.equal(masks[1], train_ids(4))
    dm.setup("test")  # test annotations are not public: the test stage reads val
    assert [s.name for s in dm.test_dataset.samples] == [s.name for s in dm.val_dataset.samples]


def test_test_split_option(tmp_path: Path) -> None:
    dm = module(make_cityscapes(tmp_path), test_split="test")
    dm.setup("test")
    assert dm.test_dataset.samples[0].name == "berlin/berlin_000000_000019"
    with pytest.raises(ValueError, match="test_split"):
        module(tmp_path, test_split="extra")


def test_resized_training_batches(tmp_path: Path) -> None:
    dm = module(make_cityscapes(tmp_path), image_size=[12, 24], scale=[1.0, 1.5], hflip=0.5)
    dm.setup("fit")
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 12, 24) and masks.shape == (2, 12, 24)
    assert set(masks.unique().tolist()) <= {*range(19), 255}


# ---------------------------------------------------------------------------- bad data
def test_unknown_label_id_raises_naming_the_file_or_is_ignored(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    ids = label_ids(3)
    ids[0, :5] = 200
    _, mask_path = frame_paths(tmp_path, "val", FRAMES["val"][0])
    save(ids, mask_path, "L")
    dm = module(tmp_path)
    dm.setup("validate")
    with pytest.raises(
        BadDataError,
        match=r"frankfurt_000000_000294_gtFine_labelIds\.png: 5 pixels with values 200",
    ):
        dm.val_dataset[0]
    lenient = module(tmp_path, on_bad="skip")
    lenient.setup("validate")
    with pytest.warns(UserWarning, match="those pixels are ignored"):
        _, mask = lenient.val_dataset[0]
    assert (mask[0, :5] == 255).all() and torch.equal(mask[1:], train_ids(3)[1:])


def test_unpaired_frame_and_colour_annotation_are_named(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    _, mask_path = frame_paths(tmp_path, "train", FRAMES["train"][1])
    mask_path.unlink()
    _, mask_path = frame_paths(tmp_path, "train", FRAMES["train"][2])
    save(torch.zeros(HEIGHT, WIDTH, 3), mask_path, "RGB")
    with pytest.raises(BadDataError) as error:
        module(tmp_path).setup("fit")
    message = str(error.value)
    assert "aachen_000001_000019_leftImg8bit.png: no mask" in message
    assert "aachen_000001_000019_gtFine_labelIds.png for this image" in message
    assert "bremen_000000_000019_gtFine_labelIds.png: mask mode 'RGB'" in message
    dm = module(tmp_path, on_bad="skip")
    with pytest.warns(UserWarning, match="skipped 2 bad samples"):
        dm.setup("fit")
    assert len(dm.train_dataset) == 1


def test_missing_root_and_split_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data root"):
        module(tmp_path / "nowhere")
    (tmp_path / "leftImg8bit" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no folder .*gtFine/train \(train split\)"):
        module(tmp_path).setup("fit")


# ---------------------------------------------------------------------------- training
def test_one_batch_fit(tmp_path: Path) -> None:
    dm = module(make_cityscapes(tmp_path), image_size=[16, 16])
    model = HierarchicalSegmenter(UNet(num_classes=19, width=4, depth=2), dm.hierarchy)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert {"val/miou/category", "val/miou/class"} <= trainer.callback_metrics.keys()


def test_hydra_options_compose(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cityscapes")
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["data=cityscapes", f"data.root={root}", "hierarchy=cityscapes"],
        )
    dm = instantiate(cfg.data)
    assert isinstance(dm, CityscapesDataModule) and dm.train_transform.size == (512, 1024)
    hierarchy = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert hierarchy == dm.hierarchy and hierarchy.level_names == ("category", "class")
