"""Tests for hl_lightning/data/pascal_person_part.py, HSSN's human tree and the hssn_* recipes.

The fixture writes the commonly distributed layout under ``tmp_path``:
``JPEGImages/<id>.jpg``, ``SegmentationPart/<id>.png`` (label ids 0-6, some 255) and the
split lists ``train_id.txt`` and ``val_id.txt``: three 24 x 32 images per split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from hl_lightning.cli.train import train
from hl_lightning.data import PASCAL_PERSON_PART_CLASSES, BadDataError, PascalPersonPartDataModule
from hl_lightning.hierarchies import (
    BUILTIN_HIERARCHIES,
    load_hierarchy,
    pascal_person_part_hierarchy,
)
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

HEIGHT, WIDTH = 24, 32
IDS = {
    "train_id.txt": ["2008_000003", "2008_000008", "2008_000023"],
    "val_id.txt": ["2008_000026", "2008_000041", "2008_000045"],
}
LEVELS = ("figure", "body", "part")
HSSN = ["hssn_cityscapes", "hssn_pascal_person_part", "hssn_lip", "hssn_vistas2"]
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


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one torch thread: tiny tensors, and two busy threads slow every small op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def part_labels(seed: int) -> torch.Tensor:
    """Return a label map (H, W): every part id in 6 x 8 blocks, and a 255 (ignored) block."""
    rows = torch.arange(HEIGHT)[:, None] // 6
    cols = torch.arange(WIDTH)[None, :] // 8
    labels = (rows * 4 + cols + seed) % 8
    return torch.where(labels == 7, 255, labels)


def save(array: torch.Tensor, path: Path, mode: str) -> None:
    height, width = array.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(array.to(torch.uint8).flatten().tolist())
    Image.frombytes(mode, (width, height), data).save(path)


def make_ppp(root: Path) -> Path:
    """Write JPEGImages/<id>.jpg, SegmentationPart/<id>.png and the two id lists."""
    for s, (split_file, ids) in enumerate(IDS.items()):
        for i, image_id in enumerate(ids):
            pixels = (torch.arange(HEIGHT * WIDTH * 3).view(HEIGHT, WIDTH, 3) * (i + 1)) % 256
            save(pixels, root / "JPEGImages" / f"{image_id}.jpg", "RGB")
            save(part_labels(3 * s + i), root / "SegmentationPart" / f"{image_id}.png", "L")
        (root / split_file).write_text("".join(f"{image_id}\n" for image_id in ids))
    return root


def module(root: Path, **kwargs: object) -> PascalPersonPartDataModule:
    options = {"image_size": None, "batch_size": 2, "hflip": 0.0}
    return PascalPersonPartDataModule(root, **{**options, **kwargs})


def make_config(overrides: list[str], output_dir: Path) -> DictConfig:
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=[*overrides, f"paths.output_dir={output_dir}"],
            return_hydra_config=True,
        )


# ---------------------------------------------------------------------------- the tree
def test_classes_and_hssn_tree() -> None:
    assert PASCAL_PERSON_PART_CLASSES == (
        "background",
        "head",
        "torso",
        "upper_arms",
        "lower_arms",
        "upper_legs",
        "lower_legs",
    )
    h = pascal_person_part_hierarchy()
    assert sorted(h.leaves) == sorted(PASCAL_PERSON_PART_CLASSES)
    assert h.level_names == LEVELS
    assert [h.num_groups(d) for d in range(h.num_levels)] == [2, 3, 7]
    assert BUILTIN_HIERARCHIES["pascal_person_part"]() == h
    ordered = load_hierarchy("pascal_person_part", PASCAL_PERSON_PART_CLASSES)
    # HSSN's rmi_hiera_triplet_loss.py: upper_ids [1, 2, 3, 4], lower_ids [5, 6]
    body = [ordered.group_names(1)[g] for g in ordered.level_index(1).tolist()]
    assert body == ["background", *["upper_body"] * 4, *["lower_body"] * 2]
    figure = [ordered.group_names(0)[g] for g in ordered.level_index(0).tolist()]
    assert figure == ["background", *["human"] * 6]


# ---------------------------------------------------------------------------- loading
def test_label_maps_and_ignored_pixels(tmp_path: Path) -> None:
    dm = module(make_ppp(tmp_path))
    assert dm.class_names == PASCAL_PERSON_PART_CLASSES and dm.num_classes == 7
    assert dm.hierarchy.leaves == PASCAL_PERSON_PART_CLASSES and dm.hierarchy.num_levels == 3
    dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == IDS["train_id.txt"]
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, HEIGHT, WIDTH) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == torch.int64
    assert torch.equal(masks[0], part_labels(3)) and torch.equal(masks[1], part_labels(4))
    assert (masks == 255).any()
    dm.setup("test")  # no separate test split: the val list
    assert [s.name for s in dm.test_dataset.samples] == IDS["val_id.txt"]


def test_flip_swaps_no_class(tmp_path: Path) -> None:
    dm = module(make_ppp(tmp_path), hflip=1.0)
    dm.setup("fit")
    assert dm.train_transform.flip_map is None
    assert torch.equal(dm.train_dataset[0][1], part_labels(0).flip(-1))


def test_split_option_and_resized_batches(tmp_path: Path) -> None:
    make_ppp(tmp_path)
    (tmp_path / "mini.txt").write_text("2008_000041\n")
    dm = module(tmp_path, splits={"test": "mini.txt"}, image_size=16, scale=[0.5, 2.0])
    dm.setup("test")
    assert [s.name for s in dm.test_dataset.samples] == ["2008_000041"]
    dm.setup("fit")
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 16, 16) and masks.shape == (2, 16, 16)
    assert set(masks.unique().tolist()) <= {*range(7), 255}
    with pytest.raises(ValueError, match="splits has keys"):
        module(tmp_path, splits={"extra": "mini.txt"})


# ---------------------------------------------------------------------------- bad data
def test_missing_root_folder_and_list_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data root"):
        module(tmp_path / "nowhere")
    make_ppp(tmp_path)
    (tmp_path / "val_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"split list .*val_id\.txt"):
        module(tmp_path).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"no folder .*Segmentation"):
        module(tmp_path, mask_dir="Segmentation").setup("fit")


def test_missing_files_and_bad_values_are_named(tmp_path: Path) -> None:
    make_ppp(tmp_path)
    (tmp_path / "JPEGImages" / "2008_000003.jpg").unlink()
    (tmp_path / "SegmentationPart" / "2008_000008.png").unlink()
    with pytest.raises(BadDataError) as error:
        module(tmp_path).setup("fit")
    assert "2008_000003.jpg: image file not found" in str(error.value)
    assert "2008_000008.png: mask file not found" in str(error.value)
    dm = module(tmp_path, on_bad="skip")
    with pytest.warns(UserWarning, match="skipped 2 bad samples"):
        dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == ["2008_000023"]
    labels = part_labels(3)
    labels[0, :4] = 9  # not a part id
    save(labels, tmp_path / "SegmentationPart" / "2008_000026.png", "L")
    strict = module(tmp_path)
    strict.setup("validate")
    with pytest.raises(BadDataError, match=r"2008_000026\.png: 4 pixels with values 9"):
        strict.val_dataset[0]


# ---------------------------------------------------------------------------- training
def test_one_batch_fit(tmp_path: Path) -> None:
    dm = module(make_ppp(tmp_path), image_size=16)
    model = HierarchicalSegmenter(UNet(num_classes=7, width=4, depth=2), dm.hierarchy)
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
    root = make_ppp(tmp_path / "ppp")
    cfg = make_config(
        ["data=pascal_person_part", f"data.root={root}", "hierarchy=pascal_person_part"],
        tmp_path,
    )
    dm = instantiate(cfg.data)
    assert isinstance(dm, PascalPersonPartDataModule) and dm.train_transform.size == (480, 480)
    hierarchy = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert hierarchy == dm.hierarchy and hierarchy.level_names == LEVELS


# ---------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("experiment", HSSN)
def test_hssn_recipes_set_the_published_schedule_and_no_backbone_key(
    experiment: str, tmp_path: Path
) -> None:
    cfg = make_config([f"experiment={experiment}", f"data.root={tmp_path}"], tmp_path)
    OmegaConf.to_container(OmegaConf.create({k: cfg[k] for k in cfg if k != "hydra"}), resolve=True)
    plain = make_config([], tmp_path)
    assert cfg.backbone == plain.backbone  # the backbone group's preset, untouched
    assert "num_train" not in cfg.data
    assert cfg.loss.name == "tree_min" and cfg.model.decode == "leaf"
    assert cfg.model.optimizer._target_ == "torch.optim.SGD"
    assert cfg.model.optimizer.momentum == 0.9 and cfg.model.optimizer.weight_decay == 5e-5
    scheduler = OmegaConf.to_container(cfg.model.scheduler, resolve=True)
    assert scheduler == {
        "_target_": "torch.optim.lr_scheduler.PolynomialLR",
        "total_iters": cfg.trainer.max_epochs,
        "power": 0.9,
    }
    expected = {
        "hssn_cityscapes": ("cityscapes", 0.01, [512, 1024], 2, 0.0, 215),
        "hssn_pascal_person_part": ("pascal_person_part", 0.007, [480, 480], 4, 2.0, 559),
        "hssn_lip": ("lip", 0.007, [480, 480], 4, 2.0, 84),
        "hssn_vistas2": (f"{tmp_path}/config_v2.0.json", 0.01, [512, 1024], 2, 0.0, 36),
    }[experiment]
    source, lr, size, batch, gamma, epochs = expected
    assert cfg.hierarchy.source == source and cfg.model.optimizer.lr == lr
    assert list(cfg.data.image_size) == size and cfg.data.batch_size == batch
    assert cfg.loss.gamma == gamma and cfg.trainer.max_epochs == epochs
    if experiment == "hssn_vistas2":
        assert cfg.data.version == "2.0" and cfg.data._target_.endswith("MapillaryDataModule")
    swapped = make_config([f"experiment={experiment}", "backbone=smp"], tmp_path)
    assert swapped.backbone._target_ == "hl_lightning.models.smp_model"


def test_hssn_pascal_person_part_trains_in_process(tmp_path: Path) -> None:
    root = make_ppp(tmp_path / "ppp")
    cfg = make_config(
        ["experiment=hssn_pascal_person_part", f"data.root={root}", *TINY], tmp_path / "run"
    )
    metrics = train(cfg)
    for level in LEVELS:
        assert f"test/miou/{level}" in metrics and f"val/loss/{level}" in metrics
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    model = HierarchicalSegmenter.load_from_checkpoint(checkpoint)
    assert model.hierarchy.leaves == PASCAL_PERSON_PART_CLASSES
    assert model.loss_name == "tree_min"
