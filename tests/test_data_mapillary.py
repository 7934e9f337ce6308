"""Tests for hl_lightning/data/mapillary.py and the shipped Vistas tree: v1.2 and v2.0 layouts.

The fixtures write the official layout under ``tmp_path``: ``config.json`` with the 66
v1.2 labels (or ``config_v2.0.json`` with a few v2.0-style labels whose last name parts
collide), three 24 x 32 images per split with palette label PNGs (pixel index = label
id), and a ``testing`` split without labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from hl_lightning.data import BadDataError, MapillaryDataModule
from hl_lightning.data.mapillary import mapillary_class_names, mapillary_hierarchy
from hl_lightning.hierarchies import load_hierarchy, mapillary_paper_hierarchy
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

HEIGHT, WIDTH = 24, 32
# The Vistas v1.2 label names, in label-id order (the data set's config.json).
V12_LABELS = [
    "animal--bird",
    "animal--ground-animal",
    "construction--barrier--curb",
    "construction--barrier--fence",
    "construction--barrier--guard-rail",
    "construction--barrier--other-barrier",
    "construction--barrier--wall",
    "construction--flat--bike-lane",
    "construction--flat--crosswalk-plain",
    "construction--flat--curb-cut",
    "construction--flat--parking",
    "construction--flat--pedestrian-area",
    "construction--flat--rail-track",
    "construction--flat--road",
    "construction--flat--service-lane",
    "construction--flat--sidewalk",
    "construction--structure--bridge",
    "construction--structure--building",
    "construction--structure--tunnel",
    "human--person",
    "human--rider--bicyclist",
    "human--rider--motorcyclist",
    "human--rider--other-rider",
    "marking--crosswalk-zebra",
    "marking--general",
    "nature--mountain",
    "nature--sand",
    "nature--sky",
    "nature--snow",
    "nature--terrain",
    "nature--vegetation",
    "nature--water",
    "object--banner",
    "object--bench",
    "object--bike-rack",
    "object--billboard",
    "object--catch-basin",
    "object--cctv-camera",
    "object--fire-hydrant",
    "object--junction-box",
    "object--mailbox",
    "object--manhole",
    "object--phone-booth",
    "object--pothole",
    "object--street-light",
    "object--support--pole",
    "object--support--traffic-sign-frame",
    "object--support--utility-pole",
    "object--traffic-light",
    "object--traffic-sign--back",
    "object--traffic-sign--front",
    "object--trash-can",
    "object--vehicle--bicycle",
    "object--vehicle--boat",
    "object--vehicle--bus",
    "object--vehicle--car",
    "object--vehicle--caravan",
    "object--vehicle--motorcycle",
    "object--vehicle--on-rails",
    "object--vehicle--other-vehicle",
    "object--vehicle--trailer",
    "object--vehicle--truck",
    "object--vehicle--wheeled-slow",
    "void--car-mount",
    "void--ego-vehicle",
    "void--unlabeled",
]
# v2.0-style labels whose last parts collide (sign/traffic-sign back, two crosswalk-zebras,
# two bicycles, two "discrete" groups)
V20_LABELS = [
    "construction--flat--road",
    "marking--discrete--crosswalk-zebra",
    "marking-only--discrete--crosswalk-zebra",
    "object--sign--back",
    "object--traffic-sign--back",
    "marking--discrete--symbol--bicycle",
    "object--vehicle--bicycle",
    "nature--sky",
    "void--unlabeled",
]
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


def config(names: list[str]) -> dict[str, Any]:
    """Return a Vistas config: one entry per label, with a colour and the evaluate flag."""
    return {
        "labels": [
            {
                "name": name,
                "readable": name.split("--")[-1].replace("-", " ").title(),
                "color": [(37 * i) % 256, (91 * i) % 256, (53 * i) % 256],
                "instances": False,
                "evaluate": name != "void--unlabeled",
            }
            for i, name in enumerate(names)
        ]
    }


def label_ids(seed: int, num_labels: int) -> torch.Tensor:
    """Return a label-id map (H, W) of 4 x 4 blocks cycling through the labels."""
    rows = torch.arange(HEIGHT)[:, None] // 4
    cols = torch.arange(WIDTH)[None, :] // 4
    return (rows * 8 + cols + 7 * seed) % num_labels


def save_palette_png(ids: torch.Tensor, colours: list[list[int]], path: Path) -> None:
    """Save label ids (H, W) as a palette PNG whose indices are the ids (Vistas' encoding)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (WIDTH, HEIGHT), bytes(ids.to(torch.uint8).flatten().tolist()))
    image.putpalette([c for colour in colours for c in colour])
    image.save(path)


def save_rgb(data: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = bytes(data.to(torch.uint8).flatten().tolist())
    Image.frombytes("RGB", (WIDTH, HEIGHT), pixels).save(path)


def make_vistas(root: Path, version: str = "1.2") -> Path:
    """Write the Vistas layout of ``version`` with 3 samples in each split."""
    names = V12_LABELS if version == "1.2" else V20_LABELS
    data = config(names)
    config_file = "config.json" if version == "1.2" else "config_v2.0.json"
    root.mkdir(parents=True, exist_ok=True)
    (root / config_file).write_text(json.dumps(data))
    colours = [label["color"] for label in data["labels"]]
    label_dir = "labels" if version == "1.2" else "v2.0/labels"
    for s, split in enumerate(("training", "validation", "testing")):
        for i in range(3):
            key = f"{split[:3]}Key{i}"
            image = (torch.arange(HEIGHT * WIDTH * 3).view(HEIGHT, WIDTH, 3) + 11 * i) % 256
            save_rgb(image, root / split / "images" / f"{key}.jpg")
            if split != "testing":  # the test split has no public labels
                ids = label_ids(3 * s + i, len(names))
                save_palette_png(ids, colours, root / split / label_dir / f"{key}.png")
    return root


def module(root: Path, **kwargs: object) -> MapillaryDataModule:
    options = {"image_size": None, "batch_size": 2, "hflip": 0.0}
    return MapillaryDataModule(root, **{**options, **kwargs})


def canonical(h: Hierarchy) -> Any:
    """Return the tree as nested frozensets: equal for equal trees in any child order."""

    def convert(tree: dict[str, Any] | None) -> Any:
        if tree is None:
            return None
        return frozenset((name, convert(children)) for name, children in tree.items())

    return convert(h.to_dict())


def make_config(overrides: list[str], output_dir: Path) -> DictConfig:
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=[*overrides, f"paths.output_dir={output_dir}"],
            return_hydra_config=True,
        )


# ---------------------------------------------------------------------------- names, trees
def test_v12_class_names_are_the_papers_leaf_names() -> None:
    names = mapillary_class_names(V12_LABELS)
    assert len(names) == 66 and names[0] == "bird" and names[-1] == "unlabeled"
    assert all("--" not in name for name in names)  # no collision in v1.2
    assert names == tuple(label.split("--")[-1] for label in V12_LABELS)
    assert sorted(names) == sorted(mapillary_paper_hierarchy().leaves)


def test_colliding_names_take_the_shortest_unique_suffix(tmp_path: Path) -> None:
    assert mapillary_class_names(V20_LABELS) == V20_NAMES
    (tmp_path / "config_v2.0.json").write_text(json.dumps(config(V20_LABELS)))
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
    (tmp_path / "config.json").write_text(json.dumps(config(V12_LABELS)))
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
    (tmp_path / "config.json").write_text(json.dumps(config(labels)))
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


# ---------------------------------------------------------------------------- loading
def test_v12_batches_hold_the_label_ids(tmp_path: Path) -> None:
    dm = module(make_vistas(tmp_path))
    assert dm.class_names == mapillary_class_names(V12_LABELS) and dm.num_classes == 66
    assert dm.label_names == tuple(V12_LABELS)
    assert dm.hierarchy.leaves == dm.class_names and dm.hierarchy.num_levels == 3
    dm.setup("fit")
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, HEIGHT, WIDTH) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == torch.int64
    assert torch.equal(masks[0], label_ids(3, 66)) and torch.equal(masks[1], label_ids(4, 66))
    dm.setup("test")  # the test stage reads validation: testing has no labels
    assert [s.name for s in dm.test_dataset.samples] == ["valKey0", "valKey1", "valKey2"]


def test_the_papers_tree_matches_the_v12_classes_by_name(tmp_path: Path) -> None:
    dm = module(make_vistas(tmp_path))
    paper = load_hierarchy("mapillary_paper", dm.class_names)
    assert paper.leaves == dm.class_names
    assert paper.level_names == ("category", "group", "class")
    road, car = dm.class_names.index("road"), dm.class_names.index("car")
    assert paper.group_names(0)[paper.level_index(0)[road]] == "construction"
    assert paper.group_names(1)[paper.level_index(1)[car]] == "vehicle"


def test_v20_layout_reads_its_config_and_labels_folder(tmp_path: Path) -> None:
    make_vistas(tmp_path, "2.0")
    dm = module(tmp_path, version="2.0")
    assert dm.class_names == V20_NAMES and dm.hierarchy.num_levels == 4
    dm.setup("fit")
    assert torch.equal(dm.train_dataset[1][1], label_ids(1, len(V20_LABELS)))
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        module(tmp_path)  # v1.2 needs config.json


# ---------------------------------------------------------------------------- bad data
def test_missing_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data root"):
        module(tmp_path / "nowhere")
    make_vistas(tmp_path)
    with pytest.raises(ValueError, match="version"):
        module(tmp_path, version="3.0")
    dm = module(tmp_path, test_split="testing")
    with pytest.raises(FileNotFoundError, match=r"no folder .*testing/labels \(test split"):
        dm.setup("test")


def test_unpaired_image_is_named(tmp_path: Path) -> None:
    make_vistas(tmp_path)
    (tmp_path / "training" / "labels" / "traKey1.png").unlink()
    with pytest.raises(BadDataError, match=r"training/images/traKey1\.jpg: no mask"):
        module(tmp_path).setup("fit")


def test_colour_label_file_is_refused_at_setup(tmp_path: Path) -> None:
    make_vistas(tmp_path)
    save_rgb(torch.zeros(HEIGHT, WIDTH, 3), tmp_path / "validation" / "labels" / "valKey2.png")
    with pytest.raises(BadDataError, match=r"valKey2\.png: mask mode 'RGB' holds colours"):
        module(tmp_path).setup("validate")


def test_label_id_beyond_the_config_raises_at_load(tmp_path: Path) -> None:
    make_vistas(tmp_path)
    ids = label_ids(3, 66)
    ids[0, 0] = 70
    colours = [[0, 0, 0]] * 71
    save_palette_png(ids, colours, tmp_path / "validation" / "labels" / "valKey0.png")
    dm = module(tmp_path)
    dm.setup("validate")
    with pytest.raises(BadDataError, match=r"valKey0\.png: 1 pixels with values 70"):
        dm.val_dataset[0]


# ---------------------------------------------------------------------------- training
def test_one_batch_fit_and_test_with_the_papers_tree(tmp_path: Path) -> None:
    dm = module(make_vistas(tmp_path), image_size=16)
    paper = load_hierarchy("mapillary_paper", dm.class_names)
    model = HierarchicalSegmenter(UNet(num_classes=66, width=4, depth=2), paper)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert {"test/miou/category", "test/miou/group", "test/miou/class"} <= result.keys()


def test_hydra_options_compose(tmp_path: Path) -> None:
    root = make_vistas(tmp_path / "vistas")
    data = ["data=mapillary", f"data.root={root}"]
    cfg = make_config([*data, "hierarchy=mapillary_paper"], tmp_path)
    dm = instantiate(cfg.data)
    assert isinstance(dm, MapillaryDataModule) and dm.train_transform.size == (480, 640)
    paper = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert paper.num_levels == 3 and paper.leaves == dm.class_names

    # mapillary_auto: the tree of the data set's own config file
    cfg = make_config([*data, "hierarchy=mapillary_auto"], tmp_path)
    assert cfg.hierarchy.source == f"{root}/config.json"
    assert mapillary_hierarchy(cfg.hierarchy.source).reorder(dm.class_names) == dm.hierarchy


def test_paper_vistas_experiment_composes(tmp_path: Path) -> None:
    root = make_vistas(tmp_path / "vistas")
    cfg = make_config(["experiment=paper_vistas", f"data.root={root}"], tmp_path)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper.params == {"loss": "hierarchical,flat"}
    assert cfg.hierarchy.source == "mapillary_paper" and list(cfg.data.image_size) == [256, 256]
    assert cfg.backbone.width == 64 and cfg.backbone.depth == 4
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.data.batch_size == 5
    dm = instantiate(cfg.data)
    assert load_hierarchy(cfg.hierarchy.source, dm.class_names).num_leaves == 66
