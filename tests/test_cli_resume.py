"""Tests for hl_lightning/cli/resume.py: resume a run from its directory, keep its record,
and refuse another model's checkpoint with the differing keys."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import lightning as L
import pytest
import yaml

from hl_lightning.cli.resume import (
    ResumeError,
    check_checkpoint_fits,
    resume_config,
    second_output_subdir,
)
from hl_lightning.data import SyntheticDataModule
from hl_lightning.lightning import HierarchicalSegmenter


def unet(width: int) -> dict[str, object]:
    return {"_target_": "hl_lightning.models.UNet", "num_classes": None, "width": width, "depth": 1}


def checkpoint(tmp_path: Path, model: HierarchicalSegmenter) -> Path:
    trainer = L.Trainer(accelerator="cpu", max_steps=0, logger=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_another_models_checkpoint_lists_the_differing_keys(tmp_path: Path) -> None:
    h = SyntheticDataModule(num_train=2, num_val=2, num_test=2).hierarchy
    path = checkpoint(tmp_path, HierarchicalSegmenter(unet(4), h))
    check_checkpoint_fits(path, HierarchicalSegmenter(unet(4), h).hparams, "run")  # the same
    other = HierarchicalSegmenter(unet(8), h, loss="tree_min")
    with pytest.raises(ResumeError) as info:
        check_checkpoint_fits(path, other.hparams, "outputs/train/run")
    message = str(info.value)
    assert "backbone.width: 4 in the checkpoint, 8 in this run" in message
    assert "backbone.num_classes: 13 in the checkpoint, 19 in this run" in message
    assert "loss: 'hierarchical' in the checkpoint, 'tree_min' in this run" in message
    assert "hl-train resume=outputs/train/run" in message


def test_a_rerun_into_a_run_directory_records_itself_apart(tmp_path: Path) -> None:
    assert second_output_subdir(str(tmp_path / "fresh"), "t1") == ".hydra"
    (tmp_path / "used" / ".hydra").mkdir(parents=True)
    (tmp_path / "used" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    assert second_output_subdir(str(tmp_path / "used"), "t2") == ".hydra/again/t2"
    assert second_output_subdir(str(tmp_path / "used"), "t3") == ".hydra/again/t2"  # decided once


def test_resume_config_applies_plain_overrides_and_refuses_presets(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    saved = {"trainer": {"max_epochs": 1}, "backbone": {"width": 4}, "paths": {"output_dir": "x"}}
    (tmp_path / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**saved, "ckpt_path": None}))
    cfg = resume_config(tmp_path, [f"resume={tmp_path}", "trainer.max_epochs=3"])
    assert cfg.trainer.max_epochs == 3 and cfg.ckpt_path == "last" and cfg.fit
    assert cfg.paths.output_dir == str(tmp_path.resolve())
    with pytest.raises(ResumeError, match="'backbone=smp' chooses another 'backbone' preset"):
        resume_config(tmp_path, ["backbone=smp"])
    with pytest.raises(ResumeError, match=r"no .*/none/.hydra/config.yaml; resume takes"):
        resume_config(tmp_path / "none", [])


@pytest.mark.slow
def test_resume_from_the_run_directory_alone(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [hl_train, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    out = tmp_path / "run"
    assert run(*tiny_run, f"hydra.run.dir={out}").returncode == 0
    record = (out / ".hydra" / "overrides.yaml").read_text()
    short = run(f"hydra.run.dir={out}", "ckpt_path=last")  # without the run's overrides
    assert short.returncode == 1
    assert "backbone.width: 4 in the checkpoint, 16 in this run" in short.stderr
    assert "Traceback" not in short.stderr
    resumed = run(f"resume={out}", "trainer.max_epochs=2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / ".hydra" / "overrides.yaml").read_text() == record  # the record is kept
    assert len(list((out / "resumes").glob("*/.hydra/config.yaml"))) == 1
    rows = (out / "csv" / "metrics.csv").read_text().splitlines()
    epochs = {line.split(",")[0] for line in rows[1:]}
    assert {"0", "1"} <= epochs  # epoch 1 continued the run's own metrics file
