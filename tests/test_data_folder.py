"""Tests for hl_lightning/data/folder.py: a folder of images and masks, and bad data.

Every test writes a small data set in the documented layout under ``tmp_path``: three
images of 24 x 32 pixels per split, label PNGs (or colour masks) of the same names.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from PIL import Image

from hl_lightning.data import BadDataError, FolderDataModule
from hl_lightning.hierarchies import load_hierarchy
from hl_lightning.hierarchy import HierarchyError
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

CLASSES = ["sky", "road", "car", "person"]
PALETTE = {
    "sky": [70, 130, 180],
    "road": [128, 64, 128],
    "car": [0, 0, 142],
    "person": [220, 20, 60],
}
TREE = "stuff:\n  - sky\n  - road\nthings: [car, person]\n"
HEIGHT, WIDTH = 24, 32
SPLITS = ("train", "val", "test")


def label_map(seed: int) -> torch.Tensor:
    """Return a label map (H, W) of the 4 classes in vertical bands, with an ignored corner."""
    cols = torch.arange(WIDTH)[None, :].expand(HEIGHT, WIDTH)
    labels = (cols // 8 + seed) % len(CLASSES)
    labels = labels.clone()
    labels[:3, :3] = 255
    return labels


def save(array: torch.Tensor, path: Path, mode: str) -> None:
    """Save a uint8-valued tensor (H, W) or (H, W, C) as an image file of ``mode``."""
    height, width = array.shape[:2]
    data = bytes(array.to(torch.uint8).flatten().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes(mode, (width, height), data).save(path)


def colours(labels: torch.Tensor) -> torch.Tensor:
    """Return the colour mask (H, W, 3) of a label map (ignored pixels black)."""
    table = torch.zeros(256, 3, dtype=torch.long)
    for i, name in enumerate(CLASSES):
        table[i] = torch.tensor(PALETTE[name])
    return table[labels]


def image_of(seed: int) -> torch.Tensor:
    return (torch.arange(HEIGHT * WIDTH * 3).view(HEIGHT, WIDTH, 3) * (seed + 1)) % 256


def make_folder(root: Path, layout: str = "subfolders", palette: bool = False) -> Path:
    """Write 3 samples per split: ``images/<split>/<name>.png`` + ``labels/<split>/<name>.png``
    (``subfolders``), or flat folders and ``<split>.txt`` files (``split_files``)."""
    for s, split in enumerate(SPLITS):
        names = [f"{split}_{i}" for i in range(3)]
        for i, name in enumerate(names):
            seed = 3 * s + i
            sub = split if layout == "subfolders" else ""
            save(image_of(seed), root / "images" / sub / f"{name}.png", "RGB")
            labels = label_map(seed)
            if palette:
                save(colours(labels), root / "labels" / sub / f"{name}.png", "RGB")
            else:
                save(labels, root / "labels" / sub / f"{name}.png", "L")
        if layout == "split_files":
            (root / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def module(root: Path, **kwargs: object) -> FolderDataModule:
    options = {"class_names": CLASSES, "batch_size": 2, "image_size": None, "hflip": 0.0}
    return FolderDataModule(root, **{**options, **kwargs})


def fit_one_batch(dm: FolderDataModule) -> L.Trainer:
    model = HierarchicalSegmenter(UNet(num_classes=dm.num_classes, width=4, depth=2), dm.hierarchy)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    return trainer


# ---------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("layout", ["subfolders", "split_files"])
def test_both_layouts_give_batches_of_the_files(tmp_path: Path, layout: str) -> None:
    dm = module(make_folder(tmp_path, layout))
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 3
    images, masks = next(iter(dm.val_dataloader()))  # val: in file order, no augmentation
    assert images.shape == (2, 3, HEIGHT, WIDTH) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == torch.int64
    assert torch.equal(masks[0], label_map(3)) and torch.equal(masks[1], label_map(4))
    dm.setup("test")
    assert [s.name for s in dm.test_dataset.samples] == ["test_0", "test_1", "test_2"]


def test_class_order_and_hierarchy_follow_the_config(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "classes.txt").write_text("# label ids\nsky\nroad\ncar\nperson\n")
    (tmp_path / "tree.yaml").write_text(TREE)
    dm = module(tmp_path, class_names="classes.txt", hierarchy=tmp_path / "tree.yaml")
    assert dm.class_names == tuple(CLASSES) and dm.num_classes == 4
    assert dm.hierarchy.leaves == tuple(CLASSES)
    assert dm.hierarchy.num_levels == 2
    assert dm.hierarchy.level_index(0).tolist() == [0, 0, 1, 1]
    assert module(tmp_path).hierarchy.num_levels == 1  # no tree: flat
    with pytest.raises(HierarchyError, match="missing from the class names: person"):
        module(tmp_path, class_names=["sky", "road", "car"], hierarchy=str(tmp_path / "tree.yaml"))


def test_image_size_and_augmentation_apply_to_training_only(tmp_path: Path) -> None:
    dm = module(make_folder(tmp_path), image_size=[16, 20], scale=[1.0, 1.5], hflip=0.5)
    dm.setup("fit")
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 16, 20) and masks.shape == (2, 16, 20)
    again = module(tmp_path, image_size=[16, 20], scale=[1.0, 1.5], hflip=0.5)
    again.setup("fit")
    assert torch.equal(next(iter(again.train_dataloader()))[1], masks)  # seeded
    val_masks = next(iter(dm.val_dataloader()))[1]
    assert set(val_masks.unique().tolist()) <= {0, 1, 2, 3, 255}


def test_loader_workers_augment_reproducibly(tmp_path: Path) -> None:
    make_folder(tmp_path)

    def masks(seed: int) -> list[torch.Tensor]:
        options = {"image_size": 16, "scale": [1.0, 2.0], "hflip": 0.5, "batch_size": 1}
        dm = module(tmp_path, num_workers=2, seed=seed, **options)
        dm.setup("fit")
        return [mask for _, mask in dm.train_dataloader()]

    first, again, other = masks(0), masks(0), masks(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_palette_masks_decode_to_label_ids(tmp_path: Path) -> None:
    make_folder(tmp_path, palette=True)  # ignored pixels are black, not in the palette
    dm = module(tmp_path, class_names=None, palette=PALETTE, unknown_colour="ignore")
    assert dm.class_names == tuple(PALETTE)
    dm.setup("validate")
    _, mask = dm.val_dataset[0]
    assert torch.equal(mask, label_map(3))


def test_unknown_colour_is_an_error_naming_file_and_colour(tmp_path: Path) -> None:
    make_folder(tmp_path, palette=True)
    palette = {name: PALETTE[name] for name in CLASSES[:3]}  # no colour for person
    dm = module(tmp_path, palette=palette)
    dm.setup("validate")
    with pytest.raises(BadDataError, match=r"val_0\.png: colours \(0, 0, 0\), \(220, 20, 60\)"):
        dm.val_dataset[0]
    lenient = module(tmp_path, palette=palette, unknown_colour="ignore")
    lenient.setup("validate")
    _, mask = lenient.val_dataset[0]
    expected = label_map(3).masked_fill(label_map(3) == 3, 255)
    assert torch.equal(mask, expected)


def test_palette_checks(tmp_path: Path) -> None:
    make_folder(tmp_path)
    with pytest.raises(ValueError, match="'bus' is not a class name"):
        module(tmp_path, palette={**PALETTE, "bus": [1, 2, 3]})
    with pytest.raises(ValueError, match="share the colour"):
        module(tmp_path, palette={**PALETTE, "car": PALETTE["sky"]})
    with pytest.raises(ValueError, match=r"needs \[r, g, b\]"):
        module(tmp_path, palette={**PALETTE, "car": [0, 300, 0]})
    dm = module(tmp_path, palette=PALETTE)  # the label-id PNGs are greyscale
    with pytest.raises(BadDataError, match=r"train_0\.png: mask mode 'L' has no colours"):
        dm.setup("fit")


# ---------------------------------------------------------------------------- bad data
def test_missing_root_split_and_class_file_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data root .*nowhere is not a folder"):
        module(tmp_path / "nowhere")
    make_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"classes\.txt"):
        module(tmp_path, class_names="classes.txt")
    with pytest.raises(ValueError, match="class_names"):
        module(tmp_path, class_names=None)
    dm = module(tmp_path, splits={"train": "train", "val": "dev", "test": None})
    with pytest.raises(FileNotFoundError, match=r"no val split: neither a folder .*images/dev"):
        dm.setup("fit")
    with pytest.raises(FileNotFoundError, match="no test split configured"):
        dm.setup("test")


def test_unpaired_files_raise_naming_them_or_are_skipped(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "labels" / "train" / "train_1.png").unlink()
    save(label_map(0), tmp_path / "labels" / "train" / "stray.png", "L")
    with pytest.raises(BadDataError) as error:
        module(tmp_path).setup("fit")
    message = str(error.value)
    assert "2 bad samples" in message and "on_bad=skip" in message
    assert "images/train/train_1.png: no mask" in message
    assert "labels/train/stray.png: no image" in message
    dm = module(tmp_path, on_bad="skip")
    with pytest.warns(UserWarning, match=r"skipped 2 bad samples .* \(2 left\)"):
        dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == ["train_0", "train_2"]


def test_split_file_naming_a_missing_sample_raises(tmp_path: Path) -> None:
    make_folder(tmp_path, "split_files")
    (tmp_path / "val.txt").write_text("val_0\nval_9\n")
    with pytest.raises(BadDataError, match=r"val\.txt: lists 'val_9', but .* has no image"):
        module(tmp_path).setup("validate")


def test_mask_values_outside_the_classes_raise_at_load_or_are_ignored(tmp_path: Path) -> None:
    make_folder(tmp_path)
    labels = label_map(3)
    labels[10, 10:12] = 7
    save(labels, tmp_path / "labels" / "val" / "val_0.png", "L")
    dm = module(tmp_path)
    dm.setup("validate")
    with pytest.raises(BadDataError, match=r"val_0\.png: 2 pixels with values 7, .*label ids 0-3"):
        dm.val_dataset[0]
    lenient = module(tmp_path, on_bad="skip")
    lenient.setup("validate")
    with pytest.warns(UserWarning, match=r"val_0\.png: .* those pixels are ignored"):
        _, mask = lenient.val_dataset[0]
    assert (mask[10, 10:12] == 255).all()


def test_rgb_mask_for_label_ids_is_refused_at_setup(tmp_path: Path) -> None:
    make_folder(tmp_path)
    save(colours(label_map(0)), tmp_path / "labels" / "train" / "train_0.png", "RGB")
    with pytest.raises(BadDataError, match=r"train_0\.png: mask mode 'RGB' holds colours"):
        module(tmp_path).setup("fit")


def test_image_modes_convert_or_raise(tmp_path: Path) -> None:
    make_folder(tmp_path)
    folder = tmp_path / "images" / "val"
    save(image_of(3)[..., 0], folder / "val_0.png", "L")  # greyscale: expanded
    rgba = torch.cat([image_of(4), torch.full((HEIGHT, WIDTH, 1), 9)], dim=-1)
    save(rgba, folder / "val_1.png", "RGBA")  # alpha: dropped
    dm = module(tmp_path, mean=[0, 0, 0], std=[1, 1, 1])
    dm.setup("validate")
    grey, _ = dm.val_dataset[0]
    assert grey.shape == (3, HEIGHT, WIDTH) and torch.equal(grey[0], grey[2])
    rgb, _ = dm.val_dataset[1]
    assert torch.allclose(rgb * 255, image_of(4).permute(2, 0, 1).float())
    Image.new("I;16", (WIDTH, HEIGHT)).save(folder / "val_2.png")
    with pytest.raises(BadDataError, match=r"val_2\.png: image mode 'I;16' is not supported"):
        module(tmp_path).setup("validate")


def test_image_and_mask_sizes_must_match(tmp_path: Path) -> None:
    make_folder(tmp_path)
    save(label_map(0)[:, :20], tmp_path / "labels" / "train" / "train_0.png", "L")
    with pytest.raises(BadDataError, match=r"train_0\.png: mask size \(20, 24\) differs"):
        module(tmp_path).setup("fit")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "images" / "train" / "train_2.png").write_bytes(b"not a png")
    with pytest.raises(BadDataError, match=r"train_2\.png: cannot read the image"):
        module(tmp_path).setup("fit")


def test_ignore_index_must_not_be_a_label(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ignore_index 2 is a label id"):
        module(make_folder(tmp_path), ignore_index=2)


# ---------------------------------------------------------------------------- training
def test_one_batch_fit_with_a_tree(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "tree.yaml").write_text(TREE)
    dm = module(tmp_path, hierarchy=tmp_path / "tree.yaml", image_size=16)
    trainer = fit_one_batch(dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert "val/miou/level0" in trainer.callback_metrics


def test_hydra_config_composes_and_builds(tmp_path: Path) -> None:
    make_folder(tmp_path, "split_files")
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES))
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "data=folder",
                f"data.root={tmp_path}",
                "data.class_names=classes.txt",
                "data.num_workers=0",
                "hierarchy=flat",
            ],
        )
    dm = instantiate(cfg.data)
    assert isinstance(dm, FolderDataModule) and dm.class_names == tuple(CLASSES)
    assert dm.train_transform.size == (256, 256) and dm.on_bad == "error"
    hierarchy = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert hierarchy == dm.hierarchy
    # hyper-parameters are plain data (checkpoints load with weights_only)
    assert type(dm.hparams["splits"]) is dict and type(dm.hparams["mean"]) is list
