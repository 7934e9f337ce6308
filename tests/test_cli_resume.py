"""Tests for hl_lightning/cli/resume.py: resume a run from its directory, keep its record,
and refuse another model's checkpoint with the differing keys."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
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


def test_a_truncated_checkpoint_names_the_newest_intact_one_to_resume_from(
    tmp_path: Path,
) -> None:
    h = SyntheticDataModule(num_train=2, num_val=2, num_test=2).hierarchy
    model = HierarchicalSegmenter(unet(4), h)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    intact = checkpoint(tmp_path, model).rename(folder / "epoch000.ckpt")
    last = folder / "last.ckpt"
    last.write_bytes(intact.read_bytes()[:3000])  # a kill or a full disk while it was copied
    with pytest.raises(ResumeError) as info:
        check_checkpoint_fits(last, model.hparams, str(tmp_path / "run"))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"the checkpoint {last} is truncated or damaged")
    assert message.endswith(
        f"; the newest intact checkpoint of the run is {intact}: continue from it with "
        f"hl-train resume={tmp_path / 'run'} ckpt_path={intact}"
    )
    intact.write_text("not a checkpoint either")
    with pytest.raises(ResumeError, match=f"; no intact checkpoint in {folder}: start the run"):
        check_checkpoint_fits(last, model.hparams, str(tmp_path / "run"))


@pytest.mark.parametrize(
    ("text", "problem"), [("", "is empty"), ("seed: 0\nbackbone: {width: 4", "cannot be read")]
)
def test_a_broken_saved_config_names_the_file(text: str, problem: str, tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    saved = tmp_path / ".hydra" / "config.yaml"
    saved.write_text(text)
    with pytest.raises(ResumeError) as info:
        resume_config(tmp_path, [])
    assert str(info.value).startswith(f"resume={tmp_path}: the saved config {saved} {problem}")
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def trained_run(
    tmp_path_factory: pytest.TempPathFactory, tiny_run: list[str], hl_train: str
) -> Callable[[], Path]:
    """Return a function that returns a tiny run hl-train has just trained (one epoch).

    hl-train runs once; each call puts the run directory back as that run left it (files
    and times), at the same path: as if trained anew, the paths its checkpoints and
    configs record included.
    """
    folder = tmp_path_factory.mktemp("resume")
    out, trained = folder / "run", folder / "as_trained"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(
        [hl_train, *tiny_run, f"hydra.run.dir={out}"], cwd=folder, env=env, capture_output=True
    )
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(out, trained)

    def fresh_run() -> Path:
        shutil.rmtree(out)
        shutil.copytree(trained, out)
        return out

    return fresh_run


@pytest.mark.slow
def test_resume_with_a_truncated_last_checkpoint_says_which_to_use(
    tmp_path: Path, trained_run: Callable[[], Path], hl_train: str
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = trained_run()
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:-100])
    resumed = subprocess.run(
        [hl_train, f"resume={out}", "trainer.max_epochs=2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 1
    assert "Traceback" not in resumed.stderr
    (line,) = [line for line in resumed.stderr.splitlines() if line.startswith("hl-train: error:")]
    assert line.startswith(f"hl-train: error: the checkpoint {last} is truncated or damaged")
    intact = out / "checkpoints" / "epoch000.ckpt"
    assert line.endswith(f"hl-train resume={out} ckpt_path={intact}")
    suggested = subprocess.run(
        [hl_train, f"resume={out}", f"ckpt_path={intact}", "trainer.max_epochs=2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert suggested.returncode == 0, suggested.stderr[-3000:]
    assert f"Restored all states from the checkpoint at {intact}" in suggested.stderr
    assert torch.load(last, weights_only=False)["epoch"] == 2  # trained on, saved whole


@pytest.mark.slow
def test_resume_from_the_run_directory_alone(
    tmp_path: Path, trained_run: Callable[[], Path], hl_train: str
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [hl_train, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    out = trained_run()
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
