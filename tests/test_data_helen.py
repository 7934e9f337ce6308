"""Tests for hl_lightning/data/helen.py and the shipped faces tree: the Smith et al. layout.

What every loader shares (batches, label maps, splits, flips, bad data, the Hydra config,
a fit) is tested in ``test_data_files.py`` on the Helen fixture of ``_data_sets.py``: the
``SmithCVPR2013_dataset_resized`` layout, three 24 x 32 face images per split, eleven soft
per-class masks each, and the split lists with ``index , id`` lines. Here: the tree, the
split list, the paper's recipe and its script.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from _compose import make_config
from _data_sets import TINY, Helen

from hl_lightning.cli.train import train
from hl_lightning.data import HELEN_CLASSES
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, helen_hierarchy, load_hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter

REPO = Path(__file__).resolve().parents[1]
LEVELS = ("figure", "region", "part", "class")
CASE = Helen()


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


# ---------------------------------------------------------------------------- the layout
def test_a_missing_split_list_is_named(tmp_path: Path) -> None:
    CASE.write(tmp_path)
    (tmp_path / "tuning.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Helen split file .*tuning\.txt"):
        CASE.module(tmp_path).setup("fit")


# ---------------------------------------------------------------------------- the recipe
def test_paper_helen_experiment_trains_in_process(tmp_path: Path) -> None:
    root = CASE.write(tmp_path / "helen")
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
