"""Tests for hl_lightning/data/helen.py and the shipped faces tree: the Smith et al. layout.

The fixture writes the ``SmithCVPR2013_dataset_resized`` layout under ``tmp_path``: three
24 x 32 face images per split, eleven soft per-class masks each, and the split lists
``exemplars.txt``, ``tuning.txt`` and ``testing.txt`` with ``index , id`` lines.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image

from hl_lightning.cli.train import train
from hl_lightning.data import HELEN_CLASSES, BadDataError, HelenDataModule
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, helen_hierarchy, load_hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 24, 32
SPLIT_FILES = ("exemplars.txt", "tuning.txt", "testing.txt")  # train, val, test
LEVELS = ("figure", "region", "part", "class")
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


def face_labels(seed: int) -> torch.Tensor:
    """Return a label map (H, W) using every class: background band, then class blocks."""
    rows = torch.arange(HEIGHT)[:, None] // 6
    cols = torch.arange(WIDTH)[None, :] // 8
    return (rows * 4 + cols + seed) % len(HELEN_CLASSES)


def save(array: torch.Tensor, path: Path, mode: str) -> None:
    height, width = array.shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(array.to(torch.uint8).flatten().tolist())
    Image.frombytes(mode, (width, height), data).save(path)


def make_helen(root: Path) -> Path:
    """Write the Smith et al. layout: images/<id>.jpg, labels/<id>/<id>_lblNN.png, lists."""
    for s, split_file in enumerate(SPLIT_FILES):
        lines = []
        for i in range(3):
            face_id = f"{100 + 3 * s + i}_{i + 1}"
            labels = face_labels(3 * s + i)
            image = (torch.arange(HEIGHT * WIDTH * 3).view(HEIGHT, WIDTH, 3) * (s + 1)) % 256
            save(image, root / "images" / f"{face_id}.jpg", "RGB")
            for c in range(len(HELEN_CLASSES)):
                soft = torch.where(labels == c, 230, 40 * (labels == (c + 1) % 11))  # soft masks
                save(soft, root / "labels" / face_id / f"{face_id}_lbl{c:02d}.png", "L")
            lines.append(f"{i + 1} , {face_id}\n")
        (root / split_file).write_text("".join(lines))
    return root


def module(root: Path, **kwargs: object) -> HelenDataModule:
    options = {"image_size": None, "batch_size": 2, "hflip": 0.0}
    return HelenDataModule(root, **{**options, **kwargs})


def make_config(overrides: list[str], output_dir: Path) -> DictConfig:
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=[*overrides, f"paths.output_dir={output_dir}"],
            return_hydra_config=True,
        )


# ---------------------------------------------------------------------------- the tree
def test_classes_are_the_leaves_of_the_faces_tree() -> None:
    h = helen_hierarchy()
    assert sorted(h.leaves) == sorted(HELEN_CLASSES)
    assert h.level_names == LEVELS
    assert [h.num_groups(d) for d in range(h.num_levels)] == [2, 3, 6, 11]
    assert BUILTIN_HIERARCHIES["helen"]() == h
    reordered = load_hierarchy("helen", HELEN_CLASSES)
    assert reordered.leaves == HELEN_CLASSES
    eyes = reordered.level_index(2)[[4, 5]].tolist()  # left_eye, right_eye: one part
    assert eyes[0] == eyes[1] and reordered.group_names(2)[eyes[0]] == "eyes"


# ---------------------------------------------------------------------------- loading
def test_labels_are_the_argmax_of_the_class_masks(tmp_path: Path) -> None:
    dm = module(make_helen(tmp_path))
    assert dm.class_names == HELEN_CLASSES and dm.num_classes == 11
    assert dm.hierarchy.leaves == HELEN_CLASSES and dm.hierarchy.num_levels == 4
    dm.setup("fit")
    assert [s.name for s in dm.val_dataset.samples] == ["103_1", "104_2", "105_3"]
    images, masks = next(iter(dm.val_dataloader()))
    assert images.shape == (2, 3, HEIGHT, WIDTH) and images.dtype == torch.float32
    assert masks.shape == (2, HEIGHT, WIDTH) and masks.dtype == torch.int64
    assert torch.equal(masks[0], face_labels(3)) and torch.equal(masks[1], face_labels(4))
    dm.setup("test")
    assert len(dm.test_dataset) == 3


def test_flip_swaps_left_and_right_eyes_and_eyebrows(tmp_path: Path) -> None:
    dm = module(make_helen(tmp_path), hflip=1.0)
    dm.setup("fit")
    _, mask = dm.train_dataset[0]
    swap = torch.tensor([0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10])
    assert torch.equal(mask, swap[face_labels(0).flip(-1)])
    plain = module(tmp_path, hflip=1.0, flip_pairs=[])
    plain.setup("fit")
    assert torch.equal(plain.train_dataset[0][1], face_labels(0).flip(-1))


def test_resized_batches_have_the_configured_size(tmp_path: Path) -> None:
    dm = module(make_helen(tmp_path), image_size=16, scale=[1.0, 1.25], hflip=0.5)
    dm.setup("fit")
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 16, 16) and masks.shape == (2, 16, 16)
    assert set(masks.unique().tolist()) <= set(range(11))


# ---------------------------------------------------------------------------- bad data
def test_missing_root_and_split_list_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data root"):
        module(tmp_path / "nowhere")
    make_helen(tmp_path)
    (tmp_path / "tuning.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Helen split file .*tuning\.txt"):
        module(tmp_path).setup("fit")


def test_missing_class_mask_raises_naming_it_or_is_skipped(tmp_path: Path) -> None:
    make_helen(tmp_path)
    (tmp_path / "labels" / "101_2" / "101_2_lbl07.png").unlink()
    with pytest.raises(BadDataError, match=r"101_2_lbl07\.png: mask file not found"):
        module(tmp_path).setup("fit")
    dm = module(tmp_path, on_bad="skip")
    with pytest.warns(UserWarning, match=r"skipped 1 bad samples in the HelenDataModule train"):
        dm.setup("fit")
    assert [s.name for s in dm.train_dataset.samples] == ["100_1", "102_3"]


def test_missing_image_and_size_mismatch_are_named(tmp_path: Path) -> None:
    make_helen(tmp_path)
    (tmp_path / "images" / "100_1.jpg").unlink()
    save(torch.zeros(HEIGHT, 8), tmp_path / "labels" / "101_2" / "101_2_lbl03.png", "L")
    with pytest.raises(BadDataError) as error:
        module(tmp_path).setup("fit")
    assert "100_1.jpg: image file not found" in str(error.value)
    assert "101_2_lbl03.png: mask size (8, 24) differs" in str(error.value)


# ---------------------------------------------------------------------------- training
def test_one_batch_fit(tmp_path: Path) -> None:
    dm = module(make_helen(tmp_path), image_size=16)
    model = HierarchicalSegmenter(UNet(num_classes=11, width=4, depth=2), dm.hierarchy)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    assert {f"val/miou/{level}" for level in LEVELS} <= metrics.keys()


def test_hydra_data_and_hierarchy_options_compose(tmp_path: Path) -> None:
    cfg = make_config(
        ["data=helen", f"data.root={make_helen(tmp_path)}", "hierarchy=helen"], tmp_path
    )
    dm = instantiate(cfg.data)
    assert isinstance(dm, HelenDataModule)
    assert dm.train_transform.size == (256, 256) and dm.train_transform.flip_map is not None
    hierarchy = load_hierarchy(cfg.hierarchy.source, dm.class_names, cfg.hierarchy.level_names)
    assert hierarchy == dm.hierarchy


def test_paper_helen_experiment_trains_in_process(tmp_path: Path) -> None:
    root = make_helen(tmp_path / "helen")
    cfg = make_config(["experiment=paper_helen", f"data.root={root}", *TINY], tmp_path / "run")
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper.params == {"loss": "hierarchical,flat"}
    assert cfg.loss.name == "hierarchical" and cfg.hierarchy.source == "helen"
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.lr == 0.01
    assert cfg.data.hflip == 0.0 and list(cfg.data.std) == [1.0, 1.0, 1.0]
    metrics = train(cfg)
    for level in LEVELS:
        assert f"test/miou/{level}" in metrics and f"val/loss/{level}" in metrics
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    model = HierarchicalSegmenter.load_from_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.ckpt"
    )
    assert model.hierarchy.leaves == HELEN_CLASSES and model.hierarchy.level_names == LEVELS


def run_paper(*args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/run_paper.sh with ``echo`` as hl-train: it prints the command."""
    script = REPO / "scripts" / "run_paper.sh"
    env = {**os.environ, "HL_TRAIN": "echo"}
    return subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, check=False
    )


def test_run_paper_script_passes_the_experiment_and_data_root(tmp_path: Path) -> None:
    root = tmp_path / "helen,v1"  # a comma must not start a Hydra sweep: quoted
    root.mkdir()
    run = run_paper("helen", str(root), "seed=1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [
        "-m",
        "experiment=paper_helen",
        f"data.root='{root}'",
        "trainer=gpu",
        "seed=1",
    ]
    assert "experiment=paper_vistas" in run_paper("vistas", str(root)).stdout
    missing = run_paper("helen", str(tmp_path / "none"))
    assert missing.returncode == 1 and "no data folder" in missing.stderr
    assert run_paper("coco", str(root)).returncode == 2
