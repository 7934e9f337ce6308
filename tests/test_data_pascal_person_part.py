"""Tests for hl_lightning/data/pascal_person_part.py, HSSN's human tree and the hssn_* recipes.

What every loader shares (batches, label maps, splits, flips, bad data, the Hydra config,
a fit) is tested in ``test_data_files.py`` on the Pascal-Person-Part fixture of
``_data_sets.py``: ``JPEGImages/<id>.jpg``, ``SegmentationPart/<id>.png`` (label ids 0-6,
some 255) and the split lists ``train_id.txt`` and ``val_id.txt``, three 24 x 32 images per
split. Here: the class list, the tree, the split lists, and HSSN's recipes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _compose import make_config
from _data_sets import TINY, PascalPersonPart
from omegaconf import DictConfig, OmegaConf

from hl_lightning.cli.train import train
from hl_lightning.data import PASCAL_PERSON_PART_CLASSES
from hl_lightning.hierarchies import (
    BUILTIN_HIERARCHIES,
    load_hierarchy,
    pascal_person_part_hierarchy,
)
from hl_lightning.lightning.module import HierarchicalSegmenter

LEVELS = ("figure", "body", "part")
HSSN = ["hssn_cityscapes", "hssn_pascal_person_part", "hssn_lip", "hssn_vistas2"]
CASE = PascalPersonPart()


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


# ---------------------------------------------------------------------------- the layout
def test_split_option_reads_another_list(tmp_path: Path) -> None:
    CASE.write(tmp_path)
    (tmp_path / "mini.txt").write_text("2008_000041\n")
    dm = CASE.module(tmp_path, splits={"test": "mini.txt"})
    dm.setup("test")
    assert [s.name for s in dm.test_dataset.samples] == ["2008_000041"]
    with pytest.raises(ValueError, match="splits has keys"):
        CASE.module(tmp_path, splits={"extra": "mini.txt"})


def test_a_missing_split_list_or_folder_is_named(tmp_path: Path) -> None:
    CASE.write(tmp_path)
    (tmp_path / "val_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"split list .*val_id\.txt"):
        CASE.module(tmp_path).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"no folder .*Segmentation"):
        CASE.module(tmp_path, mask_dir="Segmentation").setup("fit")


# ---------------------------------------------------------------------------- recipes
@pytest.fixture(scope="module")
def plain_backbone(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    """Return the backbone config of the default run (composed once for the recipes)."""
    return make_config([], tmp_path_factory.mktemp("plain")).backbone


@pytest.mark.parametrize("experiment", HSSN)
def test_hssn_recipes_set_the_published_schedule_and_no_backbone_key(
    experiment: str, tmp_path: Path, plain_backbone: DictConfig
) -> None:
    cfg = make_config([f"experiment={experiment}", f"data.root={tmp_path}"], tmp_path)
    OmegaConf.to_container(OmegaConf.create({k: cfg[k] for k in cfg if k != "hydra"}), resolve=True)
    assert cfg.backbone == plain_backbone  # the backbone group's preset, untouched
    assert "num_train" not in cfg.data
    assert cfg.loss.name == "tree_min" and cfg.model.decode == "leaf"
    assert cfg.model.optimizer._target_ == "torch.optim.SGD"
    assert cfg.model.optimizer.momentum == 0.9 and cfg.model.optimizer.weight_decay == 5e-5
    scheduler = OmegaConf.to_container(cfg.model.scheduler, resolve=True)
    assert scheduler == {  # poly decay every iteration, over the run's optimizer steps
        "_target_": "torch.optim.lr_scheduler.PolynomialLR",
        "total_iters": None,
        "power": 0.9,
    }
    assert cfg.model.scheduler_interval == "step" and cfg.trainer.max_epochs is None
    expected = {
        "hssn_cityscapes": ("cityscapes", 0.01, [512, 1024], 2, 0.0, 80000),
        "hssn_pascal_person_part": ("pascal_person_part", 0.007, [480, 480], 4, 2.0, 60000),
        "hssn_lip": ("lip", 0.007, [480, 480], 4, 2.0, 160000),
        "hssn_vistas2": (f"{tmp_path}/config_v2.0.json", 0.01, [512, 1024], 2, 0.0, 80000),
    }[experiment]
    source, lr, size, batch, gamma, steps = expected
    assert cfg.hierarchy.source == source and cfg.model.optimizer.lr == lr
    assert list(cfg.data.image_size) == size and cfg.data.batch_size == batch
    assert cfg.loss.gamma == gamma and cfg.trainer.max_steps == steps
    # evaluated as published (every tenth of the run), on whole images at their own size
    assert cfg.trainer.val_check_interval == steps // 10
    assert cfg.trainer.check_val_every_n_epoch is None
    assert cfg.data.eval_size is None
    assert cfg.data.eval_batch_size == (None if experiment == "hssn_cityscapes" else 1)
    slide = experiment == "hssn_vistas2"  # its frames reach 4000 x 3000: windows
    assert cfg.model.inference == ("slide" if slide else "whole")
    if experiment == "hssn_vistas2":
        assert cfg.data.version == "2.0" and cfg.data._target_.endswith("MapillaryDataModule")
    swapped = make_config([f"experiment={experiment}", "backbone=smp"], tmp_path)
    assert swapped.backbone._target_ == "hl_lightning.models.smp_model"


def test_hssn_pascal_person_part_trains_in_process(tmp_path: Path) -> None:
    root = CASE.write(tmp_path / "ppp")
    every_epoch = ["trainer.val_check_interval=1.0", "trainer.check_val_every_n_epoch=1"]
    cfg = make_config(
        ["experiment=hssn_pascal_person_part", f"data.root={root}", *TINY, *every_epoch],
        tmp_path / "run",
    )
    metrics = train(cfg)
    for level in LEVELS:
        assert f"test/miou/{level}" in metrics and f"val/loss/{level}" in metrics
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    model = HierarchicalSegmenter.load_from_checkpoint(checkpoint)
    assert model.hierarchy.leaves == PASCAL_PERSON_PART_CLASSES
    assert model.loss_name == "tree_min"
