"""Tests for hl_lightning/data/mapillary.py and the shipped Vistas tree: v1.2 and v2.0 layouts.

What every loader shares (batches, label maps, splits, bad data, the Hydra config, a fit)
is tested in ``test_data_files.py`` on the Vistas fixture of ``_data_sets.py``:
``config.json`` with the 66 v1.2 labels, three 24 x 32 images per split with palette label
PNGs (pixel index = label id), and a ``testing`` split without labels. Here: class names
and trees from the label names, the v2.0 layout (a few labels whose last name parts
collide), and the paper's tree and recipe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from _compose import make_config
from _data_sets import V12_LABELS, Mapillary, fit_one_batch, vistas_config
from hydra.utils import instantiate

from hl_lightning.data import mapillary_class_names, mapillary_hierarchy
from hl_lightning.hierarchies import load_hierarchy, mapillary_paper_hierarchy
from hl_lightning.hierarchy import Hierarchy

# v2.0-style labels whose last parts collide (sign/traffic-sign back, two crosswalk-zebras,
# two bicycles, two "discrete" groups)
V20_LABELS = (
    "construction--flat--road",
    "marking--discrete--crosswalk-zebra",
    "marking-only--discrete--crosswalk-zebra",
    "object--sign--back",
    "object--traffic-sign--back",
    "marking--discrete--symbol--bicycle",
    "object--vehicle--bicycle",
    "nature--sky",
    "void--unlabeled",
)
V20_NAMES = (
    "road",
    "marking--discrete--crosswalk-zebra",
    "marking-only--discrete--crosswalk-zebra",
    "sign--back",
    "traffic-sign--back",
    "symbol--bicycle",
    "vehicle--bicycle",
    "sky",
    "unlabeled",
)


CASE = Mapillary()
V20 = Mapillary("2.0", V20_LABELS, V20_NAMES)


def canonical(h: Hierarchy) -> Any:
    """Return the tree as nested frozensets: equal for equal trees in any child order."""

    def convert(tree: dict[str, Any] | None) -> Any:
        if tree is None:
            return None
        return frozenset((name, convert(children)) for name, children in tree.items())

    return convert(h.to_dict())


# ---------------------------------------------------------------------------- names, trees
def test_v12_class_names_are_the_papers_leaf_names() -> None:
    names = mapillary_class_names(V12_LABELS)
    assert len(names) == 66 and names[0] == "bird" and names[-1] == "unlabeled"
    assert all("--" not in name for name in names)  # no collision in v1.2
    assert names == tuple(label.split("--")[-1] for label in V12_LABELS)
    assert sorted(names) == sorted(mapillary_paper_hierarchy().leaves)


def test_colliding_names_take_the_shortest_unique_suffix(tmp_path: Path) -> None:
    assert mapillary_class_names(V20_LABELS) == V20_NAMES
    (tmp_path / "config_v2.0.json").write_text(json.dumps(vistas_config(V20_LABELS)))
    h = mapillary_hierarchy(tmp_path / "config_v2.0.json")
    assert h.leaves == V20_NAMES
    assert h.group_names(0) == (
        "construction",
        "marking",
        "marking-only",
        "object",
        "nature",
        "void",
    )
    tree = h.to_dict()
    assert set(tree["marking"]) == {"marking--discrete"}  # "discrete" is in two places
    assert set(tree["marking"]["marking--discrete"]) == {
        "marking--discrete--crosswalk-zebra",
        "symbol",
    }
    assert set(tree["object"]) == {"sign", "traffic-sign", "vehicle"}
    assert h.num_levels == 4


def test_auto_tree_of_v12_is_the_papers_tree(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(vistas_config(V12_LABELS)))
    auto = mapillary_hierarchy(tmp_path / "config.json")
    paper = mapillary_paper_hierarchy()
    assert canonical(auto) == canonical(paper)
    assert [auto.num_groups(d) for d in range(3)] == [7, 37, 66]
    assert auto.leaves == mapillary_class_names(V12_LABELS)  # label-id order
    assert torch.equal(auto.leaf_distance(), paper.reorder(auto.leaves).leaf_distance())


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["a--b", "a--b--c"], "'a--b' is also a group of 'a--b--c'"),
        (["a--b", "a--b"], "not unique"),
        (["a----b", "c"], "empty path component"),
    ],
)
def test_bad_label_names_raise(tmp_path: Path, labels: list[str], message: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps(vistas_config(labels)))
    with pytest.raises(ValueError, match=message):
        mapillary_hierarchy(tmp_path / "config.json")


def test_bad_config_files_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Vistas config"):
        mapillary_hierarchy(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json:1: not valid JSON"):
        mapillary_hierarchy(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"labels": [{"readable": "Road"}]}')
    with pytest.raises(ValueError, match="label 0 has no 'name'"):
        mapillary_hierarchy(tmp_path / "config.json")


# ---------------------------------------------------------------------------- the layout
def test_the_papers_tree_matches_the_v12_classes_by_name(tmp_path: Path) -> None:
    dm = CASE.module(CASE.write(tmp_path))
    assert dm.class_names == mapillary_class_names(V12_LABELS)
    assert dm.label_names == tuple(V12_LABELS)
    paper = load_hierarchy("mapillary_paper", dm.class_names)
    assert paper.leaves == dm.class_names
    assert paper.level_names == ("category", "group", "class")
    road, car = dm.class_names.index("road"), dm.class_names.index("car")
    assert paper.group_names(0)[paper.level_index(0)[road]] == "construction"
    assert paper.group_names(1)[paper.level_index(1)[car]] == "vehicle"


def test_v20_layout_reads_its_config_and_labels_folder(tmp_path: Path) -> None:
    V20.write(tmp_path)
    dm = V20.module(tmp_path)
    assert dm.class_names == V20_NAMES and dm.hierarchy.num_levels == 4
    dm.setup("fit")
    assert torch.equal(dm.train_dataset[1][1], V20.labels("train", 1))
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        CASE.module(tmp_path)  # v1.2 needs config.json


def test_bad_version_and_unlabelled_test_split_raise(tmp_path: Path) -> None:
    CASE.write(tmp_path)
    with pytest.raises(ValueError, match="version"):
        CASE.module(tmp_path, version="3.0")
    dm = CASE.module(tmp_path, test_split="testing")
    with pytest.raises(FileNotFoundError, match=r"no folder .*testing/labels \(test split"):
        dm.setup("test")


# ---------------------------------------------------------------------------- the paper
def test_one_batch_fit_and_test_with_the_papers_tree(tmp_path: Path) -> None:
    dm = CASE.module(CASE.write(tmp_path), image_size=16)
    trainer = fit_one_batch(dm, load_hierarchy("mapillary_paper", dm.class_names))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    (result,) = trainer.test(trainer.lightning_module, datamodule=dm, verbose=False)
    assert {"test/miou/category", "test/miou/group", "test/miou/class"} <= result.keys()


def test_hydra_papers_tree_matches_the_classes(tmp_path: Path) -> None:
    root = CASE.write(tmp_path / "vistas")
    cfg = make_config(
        ["data=mapillary", f"data.root={root}", "hierarchy=mapillary_paper"], tmp_path
    )
    class_names = mapillary_class_names(V12_LABELS)
    paper = load_hierarchy(cfg.hierarchy.source, class_names, cfg.hierarchy.level_names)
    assert paper.num_levels == 3 and paper.leaves == class_names


def test_paper_vistas_experiment_composes(tmp_path: Path) -> None:
    root = CASE.write(tmp_path / "vistas")
    cfg = make_config(["experiment=paper_vistas", f"data.root={root}"], tmp_path)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper.params == {"loss": "hierarchical,flat"}
    assert cfg.hierarchy.source == "mapillary_paper" and list(cfg.data.image_size) == [256, 256]
    assert cfg.backbone.width == 64 and cfg.backbone.depth == 4
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.data.batch_size == 5
    dm = instantiate(cfg.data)
    assert load_hierarchy(cfg.hierarchy.source, dm.class_names).num_leaves == 66
