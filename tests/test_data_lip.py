"""Tests for hl_lightning/data/lip.py and HSSN's LIP tree: the official TrainVal layout.

The fixture writes ``TrainVal_images/{train,val}_images/<id>.jpg`` and
``TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png`` (label ids 0-19)
under ``tmp_path``: three 24 x 40 images per split, and the id lists the data set ships.
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

from hl_lightning.data import LIP_CLASSES, LIP_FLIP_PAIRS, BadDataError, LIPDataModule
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, lip_hierarchy, load_hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

HEIGHT, WIDTH = 24, 40
IDS = {
    "train": ["100034_483681", "10005_205677", "100142_449784"],
    "val": ["100034_483681_v", "10031_1248425", "10041_1214553"],
}
LEVELS = ("figure", "body", "part")
# HSSN's rmi_hiera_triplet_loss.py (20 classes): the upper- and lower-body label ids
UPPER = [1, 2, 3, 4, 5, 6, 7, 10, 11, 13, 14, 15]
LOWER = [8, 9, 12, 16, 17, 18, 19]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one torch thread: tiny tensors, and two busy threads slow every small op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def part_labels(seed: int) -> torch.Tensor:
    """Return a label map (H, W) with every LIP label id in 4 x 5 blocks."""
    rows = torch.arange(HEIGHT)[:, None] // 4
    cols = torch.arange(WIDTH)[None, :] // 5
    return (rows * 8 + cols + seed) % len(LIP_CLASSES)


def save(array: torch.Tensor, path: Path, mode: str) -> None:
    height, width = array.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(array.to(torch.uint8).flatten().tolist())
    Image.frombytes(mode, (width, height), data).save(path)


def make_lip(root: Path) -> Path:
    """Write the official TrainVal layout (with the id lists, which the loader does not need)."""
    for s, (split, ids) in enumerate(IDS.items()):
        for i, image_id in enumerate(ids):
            pixels = (torch.arange(HEIGHT * WIDTH * 3).view(HEIGHT, WIDTH, 3) + 11 * i) % 256
            save(pixels, root / "TrainVal_images" / f"{split}_images" / f"{image_id}.jpg", "RGB")
            mask = root / "TrainVal_parsing_annotations" / f"{split}_segmentations"
            save(part_labels(3 * s + i), mask / f"{image_id}.png", "L")
        ids_file = root / "TrainVal_images" / f"{split}_id.txt"
        ids_file.write_text("".join(f"{image_id}\n" for image_id in ids))
    return root


def module(root: Path, **kwargs: object) -> LIPDataModule:
    options = {"image_size": None, "batch_size": 2, "hflip": 0.0}
    return LIPDataModule(root, **{**options, **kwargs})


# ---------------------------------------------------------------------------- the tree
def test_classes_flip_pairs_and_hssn_tree() -> None:
    assert len(LIP_CLASSES) == 20 and LIP_CLASSES[0] == "background"
    assert LIP_CLASSES[13:] == (
        "face",
        "left_arm",
        "right_arm",
        "left_leg",
        "right_leg",
        "left_shoe",
        "right_shoe",
    )
    # HSSN's RandomSwapFlip: swap_index_left=[14, 16, 18], swap_index_right=[15, 17, 19]
    ids = {name: i for i, name in enumerate(LIP_CLASSES)}
    assert [(ids[a], ids[b]) for a, b in LIP_FLIP_PAIRS] == [(14, 15), (16, 17), (18, 19)]
    h = lip_hierarchy()
    assert sorted(h.leaves) == sorted(LIP_CLASSES) and h.level_names == LEVELS
    assert [h.num_groups(d) for d in range(h.num_levels)] == [2, 3, 20]
    assert BUILTIN_HIERARCHIES["lip"]() == h
    ordered = load_hierarchy("lip", LIP_CLASSES)
    body = [ordered.group_names(1)[g] for g in ordered.level_index(1).tolist()]
    assert [i for i, b in enumerate(body) if b == "upper_body"] == UPPER
    assert [i for i, b in enumerate(body) if b == "lower_body"] == LOWER
    assert body[0] == "background"
    assert ordered.level_index(0).tolist() == [0] + [1] * 19


# ---------------------------------------------------------------------------- loading
def test_label_maps_load_in_the_official_order(tmp_path: Path) -> None:
    dm = module(make_lip(tmp_path))
    assert dm.class_names == LIP_CLASSES and dm.num_classes == 20
    assert dm.hierarchy.leaves == LIP_CLASSES and dm.hierarchy.num_levels == 3
    dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == sorted(IDS["train"])
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, HEIGHT, WIDTH) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == torch.int64
    assert torch.equal(masks[0], part_labels(3)) and torch.equal(masks[1], part_labels(4))
    dm.setup("test")  # the test set has no public annotations: the test stage reads val
    assert [s.name for s in dm.test_dataset.samples] == sorted(IDS["val"])
    with pytest.raises(ValueError, match="test_split"):
        module(tmp_path, test_split="test")


def test_flip_swaps_left_and_right_arms_legs_and_shoes(tmp_path: Path) -> None:
    dm = module(make_lip(tmp_path), hflip=1.0)
    dm.setup("fit")
    swap = torch.arange(20)
    swap[[14, 15, 16, 17, 18, 19]] = torch.tensor([15, 14, 17, 16, 19, 18])
    name = dm.train_dataset.samples[0].name
    seed = IDS["train"].index(name)
    _, mask = dm.train_dataset[0]
    assert torch.equal(mask, swap[part_labels(seed).flip(-1)])
    plain = module(tmp_path, hflip=1.0, flip_pairs=[])
    plain.setup("fit")
    assert torch.equal(plain.train_dataset[0][1], part_labels(seed).flip(-1))


def test_resized_training_batches(tmp_path: Path) -> None:
    dm = module(make_lip(tmp_path), image_size=16, scale=[0.5, 2.0], hflip=0.5)
    dm.setup("fit")
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 16, 16) and masks.shape == (2, 16, 16)
    assert set(masks.unique().tolist()) <= {*range(20), 255}


# ---------------------------------------------------------------------------- bad data
def test_unpaired_files_and_bad_values_are_named(tmp_path: Path) -> None:
    make_lip(tmp_path)
    masks = tmp_path / "TrainVal_parsing_annotations" / "train_segmentations"
    (masks / "10005_205677.png").unlink()
    labels = part_labels(1)
    labels[0, :3] = 20  # not a LIP label id
    save(labels, masks / "100142_449784.png", "L")
    with pytest.raises(BadDataError, match=r"10005_205677\.jpg: no mask"):
        module(tmp_path).setup("fit")
    dm = module(tmp_path, on_bad="skip")
    with pytest.warns(UserWarning, match="skipped 1 bad samples"):
        dm.setup("fit")
    samples = [s.name for s in dm.train_dataset.samples]
    assert samples == ["100034_483681", "100142_449784"]
    with pytest.warns(UserWarning, match=r"100142_449784\.png: 3 pixels with values 20"):
        _, mask = dm.train_dataset[1]
    assert (mask[0, :3] == 255).all()


def test_missing_root_and_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data root"):
        module(tmp_path / "nowhere")
    (tmp_path / "TrainVal_images" / "train_images").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError, match=r"no folder .*TrainVal_parsing_annotations/train_segmentations"
    ):
        module(tmp_path).setup("fit")


def test_doubled_archive_folders_via_options(tmp_path: Path) -> None:
    make_lip(tmp_path / "TrainVal_images")  # TrainVal_images/TrainVal_images/...
    dm = module(
        tmp_path / "TrainVal_images",
        image_dir="TrainVal_images",
        mask_dir="TrainVal_parsing_annotations",
    )
    dm.setup("validate")
    assert len(dm.val_dataset) == 3


# ---------------------------------------------------------------------------- training
def test_one_batch_fit(tmp_path: Path) -> None:
    dm = module(make_lip(tmp_path), image_size=16, hflip=0.5)
    model = HierarchicalSegmenter(UNet(num_classes=20, width=4, depth=2), dm.hierarchy)
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
    root = make_lip(tmp_path / "lip")
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        cfg = compose("train", overrides=["data=lip", f"data.root={root}", "hierarchy=lip"])
    dm = instantiate(cfg.data)
    assert isinstance(dm, LIPDataModule) and dm.train_transform.size == (480, 480)
    assert dm.train_transform.flip_map is not None
    assert dm.train_transform.flip_map[[14, 16, 18]].tolist() == [15, 17, 19]
    hierarchy = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert hierarchy == dm.hierarchy and hierarchy.level_names == LEVELS
