"""A real photograph: Pascal VOC's tree (hl_lightning/hierarchies/voc.yaml) and data preset
(conf/data/voc.yaml, the folder data module), with one VOC 2012 photo and its label map.

The photo is the sample that imgviz ships (``imgviz.data.voc()``: 500 x 375, people at
tables, with bottles and chairs; imgviz is MIT-licensed, the [test] extra installs it), laid
out as the VOC development kit unpacks: JPEGImages/, SegmentationClass/ (palette PNGs),
ImageSets/Segmentation/*.txt. It is not in the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _compose import make_config
from hydra.utils import instantiate
from PIL import Image

from hl_lightning.cli import predict
from hl_lightning.cli.train import train
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, load_hierarchy, voc_hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter

imgviz = pytest.importorskip("imgviz", reason="needs the [test] extra (imgviz)")

#: The VOC2012 development kit's classes by super-category (its documentation, "Classes").
OFFICIAL = {
    "person": ["person"],
    "animal": ["bird", "cat", "cow", "dog", "horse", "sheep"],
    "vehicle": ["aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train"],
    "indoor": ["bottle", "chair", "diningtable", "pottedplant", "sofa", "tvmonitor"],
}
NAME = "2007_000000"  # any VOC-style id


@pytest.fixture(scope="module")
def sample() -> dict:
    """imgviz's VOC sample: ``rgb`` (375, 500, 3), ``class_label`` (375, 500), class names."""
    return imgviz.data.voc()


@pytest.fixture(scope="module")
def devkit(tmp_path_factory: pytest.TempPathFactory, sample: dict) -> Path:
    """Return a VOC2012 folder holding the one photo in the train and val splits."""
    root = tmp_path_factory.mktemp("VOC2012")
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(sample["rgb"]).save(root / "JPEGImages" / f"{NAME}.jpg", quality=95)
    mask = Image.fromarray(sample["class_label"].astype(np.uint8), mode="P")
    mask.putpalette(imgviz.label_colormap().flatten().tolist())  # VOC's own colours
    mask.save(root / "SegmentationClass" / f"{NAME}.png")
    for split in ("train", "val"):
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(f"{NAME}\n")
    return root


def test_voc_tree_is_the_official_super_categories() -> None:
    h = voc_hierarchy()
    assert h == BUILTIN_HIERARCHIES["voc"]() == load_hierarchy("voc")
    assert h.level_names == ("category", "class")
    assert h.group_names(0) == ("background", "person", "animal", "vehicle", "indoor")
    index = {name: i for i, name in enumerate(h.leaves)}
    for category, classes in OFFICIAL.items():
        groups = {h.group_names(0)[h.level_index(0)[index[c]]] for c in classes}
        assert groups == {category}, category
    classes = {name for names in OFFICIAL.values() for name in names}
    assert len(h.leaves) == 21 and set(h.leaves) == {"background", *classes}


def test_voc_presets_match_the_kits_label_ids(tmp_path: Path, sample: dict) -> None:
    cfg = make_config(["data=voc", "hierarchy=voc", f"data.root={tmp_path}"], tmp_path)
    assert list(cfg.data.class_names) == sample["class_names"]  # label id i = name i
    h = load_hierarchy(cfg.hierarchy.source, cfg.data.class_names, cfg.hierarchy.level_names)
    assert h.leaves == tuple(sample["class_names"])
    assert (cfg.data.image_dir, cfg.data.mask_dir) == ("JPEGImages", "SegmentationClass")


def test_the_photo_loads_with_its_real_labels(devkit: Path, sample: dict) -> None:
    cfg = make_config(["data=voc", f"data.root={devkit}", "data.image_size=null"], devkit)
    datamodule = instantiate(cfg.data, batch_size=1, num_workers=0, scale=[1.0, 1.0], hflip=0)
    datamodule.setup("validate")
    images, masks = next(iter(datamodule.val_dataloader()))
    assert images.shape == (1, 3, 375, 500) and masks.shape == (1, 375, 500)
    assert torch.equal(masks[0], torch.from_numpy(sample["class_label"]).long())
    names = [datamodule.class_names[i] for i in masks.unique().tolist()]
    assert names == ["background", "bottle", "chair", "diningtable", "person"]


@pytest.mark.slow
def test_a_short_fit_on_the_photo_then_hl_predict(
    devkit: Path, sample: dict, tmp_path: Path
) -> None:
    """Train on the photo alone, then hl-predict it at its own size from the checkpoint:
    its category map must be right on most pixels (the largest category holds a third)."""
    overrides = [
        "data=voc", f"data.root={devkit}", "hierarchy=voc", "data.image_size=[96,128]",
        "data.scale=[1.0,1.0]", "data.hflip=0", "data.batch_size=1", "data.num_workers=0",
        "trainer.max_epochs=40", "trainer.log_every_n_steps=1", "logger=csv",
        "model.optimizer.lr=0.01", "checkpoint_every_n_steps=0",
        "callbacks.level_predictions.every_n_epochs=40",
    ]  # fmt: skip
    metrics = train(make_config(overrides, tmp_path))
    assert {"test/miou/category", "test/miou/class"} <= metrics.keys()
    assert (tmp_path / "predictions" / "epoch_039.png").is_file()

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "table.jpg").write_bytes((devkit / "JPEGImages" / f"{NAME}.jpg").read_bytes())
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    assert predict.main([str(checkpoint), str(photos), str(tmp_path / "masks")]) == 0
    h = HierarchicalSegmenter.load_from_checkpoint(checkpoint).hierarchy
    palette = {tuple(c): i for i, c in enumerate(predict.level_palettes(h)[0].tolist())}
    with Image.open(tmp_path / "masks" / "table_category.png") as file:
        assert file.size == (500, 375)  # the photo's own size
        colours = np.asarray(file.convert("RGB")).reshape(-1, 3)
    predicted = torch.tensor([palette[tuple(c)] for c in colours.tolist()])
    truth = h.level_index(0)[torch.from_numpy(sample["class_label"]).long().flatten()]
    shares = torch.bincount(truth, minlength=h.num_groups(0)).float() / truth.numel()
    accuracy = (predicted == truth).float().mean().item()
    assert shares.max() < 0.34 and accuracy > 0.6, (accuracy, shares.tolist())  # measured: 0.88
