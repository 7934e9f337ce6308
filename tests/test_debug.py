"""Tests for hl_lightning/conf/debug/: the debug presets (after lightning-hydra-template's),
composed with hl-train's config and run in-process on tiny synthetic data."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _compose import make_config

from hl_lightning.cli.build import make_callbacks
from hl_lightning.cli.loggers import make_loggers
from hl_lightning.cli.train import train

PRESETS = ("default", "fdr", "overfit", "limit", "profiler")


@pytest.fixture
def tiny(tiny_run: list[str]) -> list[str]:
    """The tiny data and network of ``tiny_run``, without its epochs, batches and logger."""
    return [o for o in tiny_run if o.startswith(("data.", "backbone."))]


def epoch_losses(output: str) -> list[float]:
    """Return the training loss of every ``epoch N train/loss=...`` line (LevelSummary)."""
    return [float(x) for x in re.findall(r"^epoch \d+ train/loss=([0-9.]+)", output, re.M)]


@pytest.mark.parametrize("preset", PRESETS)
def test_debug_presets_compose_onto_one_cpu_process(preset: str, tmp_path: Path) -> None:
    cfg = make_config([f"debug={preset}", "trainer=ddp_cpu"], tmp_path)
    assert cfg.hydra.runtime.choices.debug == preset
    assert cfg.task_name == "debug"  # outputs/debug/<time>, apart from real runs
    trainer = cfg.trainer
    assert (trainer.accelerator, trainer.devices, trainer.detect_anomaly) == ("cpu", 1, True)
    assert cfg.data.num_workers == 0 and trainer.enable_checkpointing is False
    assert make_loggers(cfg.logger) == []
    names = {type(c).__name__ for c in make_callbacks(cfg.callbacks, interactive=False)}
    assert names == {"LevelSummary", "RunTags"}  # the per-level tables stay
    settings = {
        "default": {"max_epochs": 1},
        "fdr": {"fast_dev_run": True},
        "overfit": {"max_epochs": 20, "overfit_batches": 3},
        "limit": {"max_epochs": 3, "limit_train_batches": 5, "limit_val_batches": 2},
        "profiler": {"max_epochs": 1},
    }[preset]
    assert {key: trainer[key] for key in settings} == settings


def test_debug_is_off_by_default(tmp_path: Path) -> None:
    cfg = make_config([], tmp_path)
    assert cfg.hydra.runtime.choices.debug is None
    assert cfg.task_name == "train" and "detect_anomaly" not in cfg.trainer


def test_fdr_runs_one_batch_of_each_stage(
    tmp_path: Path, tiny: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = train(make_config([*tiny, "debug=fdr"], tmp_path))
    assert {"val/miou", "test/miou"} <= metrics.keys()
    output = capsys.readouterr().out
    assert len(epoch_losses(output)) == 1 and "test per level:" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing saved, nothing logged


@pytest.mark.slow
def test_limit_runs_three_short_epochs(
    tmp_path: Path, tiny: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = train(make_config([*tiny, "debug=limit", "data.num_train=64"], tmp_path))
    assert "test/miou" in metrics
    assert len(epoch_losses(capsys.readouterr().out)) == 3


def test_profiler_writes_its_report_into_the_run_directory(tmp_path: Path, tiny: list[str]) -> None:
    train(make_config([*tiny, "debug=profiler"], tmp_path))
    report = (tmp_path / "fit-profile.txt").read_text()
    assert "FIT Profiler Report" in report and "run_training_epoch" in report


@pytest.mark.slow
def test_overfit_drives_the_training_loss_down(
    tmp_path: Path, tiny: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = [o for o in tiny if not o.startswith("backbone.")]  # the U-Net's own width
    train(make_config([*overrides, "debug=overfit", "model.optimizer.lr=0.01"], tmp_path))
    losses = epoch_losses(capsys.readouterr().out)
    assert len(losses) == 20
    assert losses[-1] < 0.7 * losses[0]  # the same two batches every epoch: learnt by heart
