"""Tests for hl_lightning/data/coco_stuff.py and the shipped COCO-Stuff tree: stuffthingmaps.

The fixture writes ``images/{train2017,val2017}/<id>.jpg`` and
``stuffthingmaps/{train2017,val2017}/<id>.png`` under ``tmp_path``: three 24 x 32 images
per split whose 8-bit label maps hold official label indices (id - 1: used things and
stuff, removed thing ids, 255 unlabeled).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from PIL import Image

from hl_lightning.data import COCO_STUFF_CLASSES, COCO_STUFF_LABELS, BadDataError
from hl_lightning.data.coco_stuff import COCO_STUFF_REMOVED, CocoStuffDataModule, CocoStuffMasks
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, coco_stuff_hierarchy, load_hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

HEIGHT, WIDTH = 24, 32
IMAGES = {
    "train2017": ["000000000009", "000000000025", "000000000030"],
    "val2017": ["000000000139", "000000000285", "000000000632"],
}
LEVELS = ("kind", "setting", "supercategory", "class")
# PNG values (official id - 1) and the class each is: person, street sign (removed), car,
# hair brush (removed), banner (first stuff), sky-other, wood (last), unlabeled
VALUES = [0, 11, 2, 90, 91, 156, 181, 255]
NAMES = ["person", None, "car", None, "banner", "sky-other", "wood", None]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one torch thread: tiny tensors, and two busy threads slow every small op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def expected_ids() -> list[int]:
    """Our label id of every entry of VALUES, looked up by class name (255: ignored)."""
    return [255 if name is None else COCO_STUFF_CLASSES.index(name) for name in NAMES]


def blocks(seed: int) -> torch.Tensor:
    """Return an index map (H, W) into VALUES: 4 x 8 blocks."""
    rows = torch.arange(HEIGHT)[:, None] // 4
    cols = torch.arange(WIDTH)[None, :] // 8
    return (rows * 3 + cols + seed) % len(VALUES)


def save(array: torch.Tensor, path: Path, mode: str) -> None:
    height, width = array.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(array.to(torch.uint8).flatten().tolist())
    Image.frombytes(mode, (width, height), data).save(path)


def make_coco_stuff(root: Path, mask_dir: str = "stuffthingmaps") -> Path:
    """Write the official layout: images/<split>/<id>.jpg, <mask_dir>/<split>/<id>.png."""
    for s, (split, ids) in enumerate(IMAGES.items()):
        for i, image_id in enumerate(ids):
            pixels = (torch.arange(HEIGHT * WIDTH * 3).view(HEIGHT, WIDTH, 3) + 7 * i) % 256
            save(pixels, root / "images" / split / f"{image_id}.jpg", "RGB")
            values = torch.tensor(VALUES)[blocks(3 * s + i)]
            save(values, root / mask_dir / split / f"{image_id}.png", "L")
    return root


def module(root: Path, **kwargs: object) -> CocoStuffDataModule:
    options = {"image_size": None, "batch_size": 2, "hflip": 0.0}
    return CocoStuffDataModule(root, **{**options, **kwargs})


# ---------------------------------------------------------------------------- the table
def test_171_classes_by_name_in_official_id_order() -> None:
    assert len(COCO_STUFF_LABELS) == 182 and [i for i, _ in COCO_STUFF_LABELS] == list(
        range(1, 183)
    )
    assert len(COCO_STUFF_REMOVED) == 11 and COCO_STUFF_REMOVED.issubset(
        dict(COCO_STUFF_LABELS).values()
    )
    assert len(COCO_STUFF_CLASSES) == 171 and len(set(COCO_STUFF_CLASSES)) == 171
    things = [n for i, n in COCO_STUFF_LABELS if i <= 91 and n not in COCO_STUFF_REMOVED]
    assert len(things) == 80 and COCO_STUFF_CLASSES[:80] == tuple(things)
    assert COCO_STUFF_CLASSES[0] == "person" and COCO_STUFF_CLASSES[79] == "toothbrush"
    assert COCO_STUFF_CLASSES[80] == "banner" and COCO_STUFF_CLASSES[-1] == "wood"


def test_lookup_maps_official_indices_by_name() -> None:
    decoder = CocoStuffMasks(ignore_index=255)
    names = dict(COCO_STUFF_LABELS)
    for value in range(182):
        name = names[value + 1]
        expected = 255 if name in COCO_STUFF_REMOVED else COCO_STUFF_CLASSES.index(name)
        assert decoder.lookup[value].item() == expected, name
    assert decoder.lookup[255].item() == 255
    assert (decoder.lookup[182:255] == -1).all()  # no COCO-Stuff index: bad data
    assert CocoStuffMasks(ignore_index=-1).lookup[[11, 255]].tolist() == [-1, -1]


# ---------------------------------------------------------------------------- the tree
def test_shipped_tree_is_the_official_hierarchy_over_the_classes() -> None:
    h = coco_stuff_hierarchy()
    assert sorted(h.leaves) == sorted(COCO_STUFF_CLASSES)
    assert h.level_names == LEVELS
    assert [h.num_groups(d) for d in range(h.num_levels)] == [2, 4, 27, 171]
    assert h.group_names(0) == ("things", "stuff")
    assert h.group_names(1) == (
        "indoor-super-things",
        "outdoor-super-things",
        "indoor-super-stuff",
        "outdoor-super-stuff",
    )
    assert BUILTIN_HIERARCHIES["coco_stuff"]() == h
    ordered = load_hierarchy("coco_stuff", COCO_STUFF_CLASSES)
    assert ordered.leaves == COCO_STUFF_CLASSES
    index = {name: i for i, name in enumerate(COCO_STUFF_CLASSES)}

    def group(level: int, name: str) -> str:
        return ordered.group_names(level)[ordered.level_index(level)[index[name]]]

    # every thing is under "things", every stuff class under "stuff"
    for i, name in enumerate(COCO_STUFF_CLASSES):
        assert group(0, name) == ("things" if i < 80 else "stuff"), name
    assert group(2, "person") == "person-things" and group(1, "person") == "outdoor-super-things"
    assert group(2, "wall-brick") == "wall-stuff" and group(1, "wall-brick") == "indoor-super-stuff"
    assert group(2, "sky-other") == "sky-stuff" and group(1, "sea") == "outdoor-super-stuff"
    assert group(2, "pizza") == "food-things" and group(2, "salad") == "food-stuff"


# ---------------------------------------------------------------------------- loading
def test_label_maps_decode_to_contiguous_ids(tmp_path: Path) -> None:
    dm = module(make_coco_stuff(tmp_path))
    assert dm.class_names == COCO_STUFF_CLASSES and dm.num_classes == 171
    assert dm.hierarchy.leaves == COCO_STUFF_CLASSES and dm.hierarchy.level_names == LEVELS
    dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == IMAGES["train2017"]
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, HEIGHT, WIDTH) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == torch.int64
    expected = torch.tensor(expected_ids())
    assert torch.equal(masks[0], expected[blocks(3)]) and torch.equal(masks[1], expected[blocks(4)])
    dm.setup("test")  # no public test annotations: the test stage reads val2017
    assert [s.name for s in dm.test_dataset.samples] == IMAGES["val2017"]


def test_the_readme_annotations_folder_is_found(tmp_path: Path) -> None:
    dm = module(make_coco_stuff(tmp_path, mask_dir="annotations"))
    assert dm.mask_dir == tmp_path / "annotations"
    dm.setup("validate")
    assert len(dm.val_dataset) == 3


def test_resized_training_batches(tmp_path: Path) -> None:
    dm = module(make_coco_stuff(tmp_path), image_size=16, scale=[1.0, 1.5], hflip=0.5)
    dm.setup("fit")
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 16, 16) and masks.shape == (2, 16, 16)
    assert set(masks.unique().tolist()) <= {*range(171), 255}


# ---------------------------------------------------------------------------- bad data
def test_values_without_an_id_raise_naming_the_file_or_are_ignored(tmp_path: Path) -> None:
    make_coco_stuff(tmp_path)
    values = torch.tensor(VALUES)[blocks(3)]
    values[0, :6] = 200
    save(values, tmp_path / "stuffthingmaps" / "val2017" / "000000000139.png", "L")
    dm = module(tmp_path)
    dm.setup("validate")
    with pytest.raises(BadDataError, match=r"000000000139\.png: 6 pixels with values 200"):
        dm.val_dataset[0]
    lenient = module(tmp_path, on_bad="skip")
    lenient.setup("validate")
    with pytest.warns(UserWarning, match="those pixels are ignored"):
        _, mask = lenient.val_dataset[0]
    assert (mask[0, :6] == 255).all()


def test_unpaired_image_and_colour_mask_are_named(tmp_path: Path) -> None:
    make_coco_stuff(tmp_path)
    (tmp_path / "stuffthingmaps" / "train2017" / "000000000025.png").unlink()
    save(
        torch.zeros(HEIGHT, WIDTH, 3),
        tmp_path / "stuffthingmaps" / "train2017" / "000000000030.png",
        "RGB",
    )
    with pytest.raises(BadDataError) as error:
        module(tmp_path).setup("fit")
    message = str(error.value)
    assert "000000000025.jpg: no mask" in message
    assert "000000000030.png: mask mode 'RGB'" in message
    dm = module(tmp_path, on_bad="skip")
    with pytest.warns(UserWarning, match="skipped 2 bad samples"):
        dm.setup("fit")
    assert len(dm.train_dataset) == 1


def test_missing_root_and_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data root"):
        module(tmp_path / "nowhere")
    (tmp_path / "images" / "train2017").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError, match=r"no folder .*stuffthingmaps/train2017 nor .*annotations/train2017"
    ):
        module(tmp_path).setup("fit")
    with pytest.raises(ValueError, match="test_split"):
        module(tmp_path, test_split="test-dev")


# ---------------------------------------------------------------------------- training
def test_one_batch_fit(tmp_path: Path) -> None:
    dm = module(make_coco_stuff(tmp_path), image_size=16)
    model = HierarchicalSegmenter(UNet(num_classes=171, width=4, depth=2), dm.hierarchy)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert {f"val/miou/{level}" for level in LEVELS} <= trainer.callback_metrics.keys()


def test_hydra_options_compose(tmp_path: Path) -> None:
    root = make_coco_stuff(tmp_path / "coco")
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        cfg = compose(
            "train", overrides=["data=coco_stuff", f"data.root={root}", "hierarchy=coco_stuff"]
        )
    dm = instantiate(cfg.data)
    assert isinstance(dm, CocoStuffDataModule) and dm.train_transform.size == (512, 512)
    hierarchy = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert hierarchy == dm.hierarchy and hierarchy.level_names == LEVELS
