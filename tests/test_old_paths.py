"""The import paths of earlier releases keep working: saved run configs name them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import get_class

from hl_lightning import HierarchicalSegmenter
from hl_lightning.lightning.callbacks import LevelSummary
from hl_lightning.lightning.loggers import ResumableCSVLogger


def test_old_targets_of_saved_configs_resolve_to_the_same_classes() -> None:
    assert get_class("hl_lightning.module.HierarchicalSegmenter") is HierarchicalSegmenter
    assert get_class("hl_lightning.callbacks.LevelSummary") is LevelSummary
    assert get_class("hl_lightning.loggers.ResumableCSVLogger") is ResumableCSVLogger


@pytest.mark.slow
def test_python_m_hl_lightning_train_is_the_app(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hl_lightning.train", "--help"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("hl-train: train a segmentation network")
