"""Tests for hl_lightning/data/folder.py: a folder of images and masks, in either layout.

What every loader shares (batches, label maps, splits, seeds, bad data, the Hydra config,
a fit) is tested in ``test_data_files.py`` on the folder fixture of ``_data_sets.py``:
``images/<split>/<name>.png`` and ``labels/<split>/<name>.png`` (three 24 x 32 samples per
split), a class list and a tree. Here: the split-file layout, the class list and tree
options, colour-coded masks with a palette, and the split options.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _data_sets import HEIGHT, Folder, save

from hl_lightning.data import BadDataError, FolderDataModule
from hl_lightning.hierarchy import HierarchyError

CASE = Folder()
CLASSES = list(CASE.classes)
PALETTE = {
    "sky": [70, 130, 180],
    "road": [128, 64, 128],
    "car": [0, 0, 142],
    "person": [220, 20, 60],
}
SPLITS = ("train", "val", "test")


def colours(labels: torch.Tensor) -> torch.Tensor:
    """Return the colour mask (H, W, 3) of a label map (ignored pixels black)."""
    table = torch.zeros(256, 3, dtype=torch.long)
    for i, name in enumerate(CLASSES):
        table[i] = torch.tensor(PALETTE[name])
    return table[labels]


def split_files(root: Path) -> Path:
    """Move the written samples into flat folders and list each split in ``<split>.txt``."""
    CASE.write(root)
    for split in SPLITS:
        names = CASE.names(split)
        for sub in ("images", "labels"):
            for name in names:
                (root / sub / split / f"{name}.png").rename(root / sub / f"{name}.png")
            (root / sub / split).rmdir()
        (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def palette_masks(root: Path) -> Path:
    """Write the data set with colour-coded masks (the palette's colours)."""
    CASE.write(root)
    for split in SPLITS:
        for i in range(3):
            _, (mask,) = CASE.paths(root, split, i)
            save(colours(CASE.labels(split, i)), mask, "RGB")
    return root


def module(root: Path, **options: object) -> FolderDataModule:
    """Return the data module over ``root`` with the classes and no tree (flat)."""
    test = {"class_names": CLASSES, "batch_size": 2, "image_size": None, "hflip": 0.0}
    return FolderDataModule(root, **{**test, **options})


# ---------------------------------------------------------------------------- layouts
def test_split_files_give_batches_of_the_files(tmp_path: Path) -> None:
    dm = module(split_files(tmp_path))
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 3
    images, masks = next(iter(dm.val_dataloader()))  # val: in file order, no augmentation
    assert images.shape == (2, 3, HEIGHT, CASE.width) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, CASE.width) and masks.dtype == torch.int64
    assert torch.equal(masks[0], CASE.labels("val", 0))
    assert torch.equal(masks[1], CASE.labels("val", 1))
    dm.setup("test")
    assert [s.name for s in dm.test_dataset.samples] == ["test_0", "test_1", "test_2"]


def test_split_file_naming_a_missing_sample_raises(tmp_path: Path) -> None:
    split_files(tmp_path)
    (tmp_path / "val.txt").write_text("val_0\nval_9\n")
    with pytest.raises(BadDataError, match=r"val\.txt: lists 'val_9', but .* has no image"):
        module(tmp_path).setup("validate")


def test_class_order_and_hierarchy_follow_the_config(tmp_path: Path) -> None:
    CASE.write(tmp_path)
    (tmp_path / "classes.txt").write_text("# label ids\nsky\nroad\ncar\nperson\n")
    dm = module(tmp_path, class_names="classes.txt", hierarchy=tmp_path / "tree.yaml")
    assert dm.class_names == tuple(CLASSES) and dm.num_classes == 4
    assert dm.hierarchy.leaves == tuple(CLASSES)
    assert dm.hierarchy.num_levels == 2
    assert dm.hierarchy.level_index(0).tolist() == [0, 0, 1, 1]
    assert module(tmp_path).hierarchy.num_levels == 1  # no tree: flat
    with pytest.raises(HierarchyError, match="missing from the class names: person"):
        module(tmp_path, class_names=["sky", "road", "car"], hierarchy=str(tmp_path / "tree.yaml"))


# ---------------------------------------------------------------------------- colour masks
def test_palette_masks_decode_to_label_ids(tmp_path: Path) -> None:
    palette_masks(tmp_path)  # ignored pixels are black, not in the palette
    dm = module(tmp_path, class_names=None, palette=PALETTE, unknown_colour="ignore")
    assert dm.class_names == tuple(PALETTE)
    dm.setup("validate")
    _, mask = dm.val_dataset[0]
    assert torch.equal(mask, CASE.labels("val", 0))


def test_unknown_colour_is_an_error_naming_file_and_colour(tmp_path: Path) -> None:
    palette_masks(tmp_path)
    palette = {name: PALETTE[name] for name in CLASSES[:3]}  # no colour for person
    dm = module(tmp_path, palette=palette)
    dm.setup("validate")
    with pytest.raises(BadDataError, match=r"val_0\.png: colours \(0, 0, 0\), \(220, 20, 60\)"):
        dm.val_dataset[0]
    lenient = module(tmp_path, palette=palette, unknown_colour="ignore")
    lenient.setup("validate")
    _, mask = lenient.val_dataset[0]
    expected = CASE.labels("val", 0).masked_fill(CASE.labels("val", 0) == 3, 255)
    assert torch.equal(mask, expected)


def test_palette_checks(tmp_path: Path) -> None:
    CASE.write(tmp_path)
    with pytest.raises(ValueError, match="'bus' is not a class name"):
        module(tmp_path, palette={**PALETTE, "bus": [1, 2, 3]})
    with pytest.raises(ValueError, match="share the colour"):
        module(tmp_path, palette={**PALETTE, "car": PALETTE["sky"]})
    with pytest.raises(ValueError, match=r"needs \[r, g, b\]"):
        module(tmp_path, palette={**PALETTE, "car": [0, 300, 0]})
    dm = module(tmp_path, palette=PALETTE)  # the label-id PNGs are greyscale
    with pytest.raises(BadDataError, match=r"train_0\.png: mask mode 'L' has no colours"):
        dm.setup("fit")


# ---------------------------------------------------------------------------- the options
def test_missing_split_and_class_file_raise(tmp_path: Path) -> None:
    CASE.write(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"classes\.txt"):
        module(tmp_path, class_names="classes.txt")
    with pytest.raises(ValueError, match="class_names"):
        module(tmp_path, class_names=None)
    dm = module(tmp_path, splits={"train": "train", "val": "dev", "test": None})
    with pytest.raises(FileNotFoundError, match=r"no val split: neither a folder .*images/dev"):
        dm.setup("fit")
    with pytest.raises(FileNotFoundError, match="no test split configured"):
        dm.setup("test")
