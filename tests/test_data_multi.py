"""Tests for hl_lightning/data/multi.py and conf/data/multi.yaml: several data sets at once,
each with its own class list mapped into one tree by name (a fine and a coarse one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _compose import make_config
from _data_sets import TINY, CoarseFolder, Folder
from torch.utils.data import TensorDataset

from hl_lightning.cli.build import ConfigError, build_run
from hl_lightning.cli.train import train
from hl_lightning.data import MultiDataModule, SegmentationDataModule
from hl_lightning.hierarchy import Hierarchy, HierarchyError
from hl_lightning.lightning.checkpoints import read_checkpoint
from hl_lightning.options import OptionError

TREE = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})


def module(names: list[str], masks: list[list[int]], **options: object) -> SegmentationDataModule:
    """A data module whose splits each hold one 1 x N image per mask row (label ids)."""
    data = TensorDataset(torch.zeros(len(masks), 3, 1, len(masks[0])), torch.tensor(masks)[:, None])
    return SegmentationDataModule(
        names, train_dataset=data, val_dataset=data, test_dataset=data, **options
    )


def test_class_lists_are_matched_into_one_tree_by_name() -> None:
    fine = module(["truck", "car", "sky"], [[0, 1], [2, 255]])  # its own order
    coarse = module(["vehicle", "sky"], [[0, 1]])
    both = MultiDataModule({"fine": fine, "coarse": coarse}, TREE, batch_size=8)
    assert both.class_names == ("truck", "car", "sky", "vehicle")  # first appearance
    assert both.hierarchy.leaves == ("truck", "car", "sky")  # the fine list's order
    vehicle = both.hierarchy.label_id("vehicle")
    assert both.label_ids.tolist() == [0, 1, 2, vehicle]
    assert both.label_table("coarse").tolist() == [vehicle, 2]  # its flat ids, by name
    both.setup("fit")
    assert [mask.tolist() for _, mask in both.train_dataset] == [
        [[0, 1]], [[2, 255]], [[vehicle, 2]]
    ]  # fmt: skip
    masks = torch.cat([mask for _, mask in both.train_dataloader()])  # one shuffled set
    assert sorted(masks.flatten().tolist()) == sorted([0, 1, 2, 2, 255, vehicle])
    both.setup("test")
    assert len(both.val_dataset) == len(both.test_dataset) == 3  # both evaluated


def test_evaluate_on_chooses_the_evaluated_data_sets() -> None:
    fine = module(["sky", "car", "truck"], [[0, 1]])
    coarse = module(["sky", "vehicle"], [[1, 0], [0, 0]])
    both = MultiDataModule({"fine": fine, "coarse": coarse}, TREE, evaluate_on=["coarse"])
    both.setup("fit")
    both.setup("test")
    assert len(both.train_dataset) == 3
    assert [mask.tolist() for _, mask in both.val_dataset] == [[[3, 0]], [[0, 0]]]
    assert len(both.test_dataset) == 2


def test_bad_data_set_lists_are_named() -> None:
    fine = module(["sky", "car", "truck"], [[0, 1]])
    with pytest.raises(OptionError, match="evaluate_on names data sets of datasets \\(fine\\)"):
        MultiDataModule({"fine": fine}, TREE, evaluate_on=["coarse"])
    other = module(["sky", "vehicle"], [[0, 1]], ignore_index=254)
    with pytest.raises(OptionError, match="ignore_index differ: fine 255, other 254"):
        MultiDataModule({"fine": fine, "other": other}, TREE)
    with pytest.raises(OptionError, match="data set 'x' is a list, not a data module"):
        MultiDataModule({"fine": fine, "x": []}, TREE)  # type: ignore[dict-item]
    with pytest.raises(HierarchyError, match="not leaves of the hierarchy: bus"):
        MultiDataModule({"fine": fine, "other": module(["sky", "bus"], [[0, 1]])}, TREE)


def test_a_label_id_outside_the_joint_tree_is_named() -> None:
    """A data set whose own tree has a node the joint tree lacks, in its masks."""
    own = Hierarchy.from_dict({"sky": None, "cars": ["car", "truck"]})
    odd = SegmentationDataModule(["sky", "car", "truck"], own, train_dataset=[
        (torch.zeros(3, 1, 2), torch.tensor([[0, own.label_id("cars")]]))
    ])  # fmt: skip
    both = MultiDataModule({"odd": odd}, TREE, evaluate_on=["odd"])
    train_set = both.setup_split("train")
    with pytest.raises(ValueError, match=r"data set 'odd', sample 0: label ids \[3\] are no node"):
        train_set[0]


# ---------------------------------------------------------------------------- hl-train
def two_folders(tmp_path: Path) -> list[str]:
    """hl-train overrides of data=multi over a fine and a coarse fixture folder, one tree."""
    fine, coarse = Folder().write(tmp_path / "fine"), CoarseFolder().write(tmp_path / "coarse")
    return [
        "data=multi", "hierarchy=file", f"hierarchy.source={fine / 'tree.yaml'}",
        f"data.datasets.first.root={fine}", "data.datasets.first.class_names=classes.txt",
        f"data.datasets.second.root={coarse}", "data.datasets.second.class_names=classes.txt",
        *(f"data.datasets.{name}.image_size=[24,32]" for name in ("first", "second")),
        *(option for option in TINY if not option.startswith("data.image_size")),
    ]  # fmt: skip


def test_the_multi_preset_on_a_fine_and_a_coarse_folder(tmp_path: Path) -> None:
    run = build_run(make_config(two_folders(tmp_path), tmp_path / "run"))
    data = run.datamodule
    assert isinstance(data, MultiDataModule) and list(data.datasets) == ["first", "second"]
    assert data.class_names == ("sky", "road", "car", "person", "things")
    hierarchy = run.model.hierarchy
    assert hierarchy == data.hierarchy and hierarchy.leaves == ("sky", "road", "car", "person")
    things = hierarchy.label_id("things")
    data.setup("fit")
    first, second = data.train_dataset.datasets
    coarse = CoarseFolder()
    for index in range(3):  # the coarse folder's class 2 (things): the node's id
        labels = coarse.labels("train", index)
        assert torch.equal(second[index][1], torch.where(labels == 2, things, labels))
        assert torch.equal(first[index][1], Folder().labels("train", index))
    masks = torch.cat([mask for _, mask in data.train_dataloader()])
    assert len(masks) == 6 and bool((masks == things).any())
    assert len(data.val_dataset) == 6  # both folders' validation images


def test_a_multi_preset_with_training_images_of_two_sizes_is_named(tmp_path: Path) -> None:
    overrides = [*two_folders(tmp_path), "data.datasets.second.image_size=[16,16]"]
    run = build_run(make_config(overrides, tmp_path / "run"))
    run.datamodule.setup("fit")
    with pytest.raises(ValueError, match=r"give the data sets one data\.image_size"):
        list(run.datamodule.train_dataloader())


def test_the_multi_preset_names_a_member_option_by_its_key(tmp_path: Path) -> None:
    overrides = [*two_folders(tmp_path), "data.evaluate_on=[third]"]
    with pytest.raises(ConfigError, match=r"config key data\.evaluate_on: evaluate_on names"):
        build_run(make_config(overrides, tmp_path / "run"))


def test_hl_train_fits_tests_and_reloads_on_two_fine_folders(tmp_path: Path) -> None:
    """Leaf labels only (both folders fine), so the losses take them today."""
    overrides = two_folders(tmp_path)
    overrides[overrides.index(f"data.datasets.second.root={tmp_path / 'coarse'}")] = (
        f"data.datasets.second.root={Folder().write(tmp_path / 'fine2')}"
    )
    metrics = train(make_config(overrides, tmp_path / "run"))
    assert {"test/miou/level0", "test/miou/level1"} <= metrics.keys()
    checkpoint = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")  # weights_only
    saved = checkpoint["datamodule_hyper_parameters"]
    assert list(saved["datasets"]) == ["first", "second"] and saved["image_size"] == [24, 32]
    assert (tmp_path / "run" / "predictions" / "epoch_000.png").is_file()


def test_hl_train_fits_and_tests_on_a_fine_and_a_coarse_folder(tmp_path: Path) -> None:
    metrics = train(make_config(two_folders(tmp_path), tmp_path / "run"))
    for level in ("level0", "level1"):
        assert f"test/miou/{level}" in metrics
