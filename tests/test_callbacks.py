"""Tests for hl_lightning/callbacks.py: the per-level table and the LevelSummary lines."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import pytest
import torch
from _trainer import quiet_trainer

from hl_lightning.data import SyntheticDataModule
from hl_lightning.lightning.callbacks import LevelSummary, level_table
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet

LINE = re.compile(
    r"^epoch (\d+) train/loss=(\d+\.\d{4})( val/loss=\d+\.\d{4} val/miou=[01]\.\d{4})?$"
)


def test_level_table_rows_and_missing_values() -> None:
    metrics = {
        "val/loss/kind": torch.tensor(0.25),
        "val/miou/kind": 0.5,
        "val/acc/kind": 0.75,
        "val/miou/class": torch.tensor(0.125),
        "test/miou/kind": 0.0,  # another stage: not shown
    }
    table = level_table(metrics, "val", ["kind", "class"])
    assert table.splitlines() == [
        "level            loss    mIoU     acc",
        "kind           0.2500  0.5000  0.7500",
        "class               -  0.1250       -",
    ]


def test_level_table_severity_line_and_long_names() -> None:
    metrics = {"test/severity": 1.5, "test/serious": 0.25, "test/miou/a_very_long_level": 1.0}
    lines = level_table(metrics, "test", ["short", "a_very_long_level"]).splitlines()
    assert len(lines) == 4
    assert len({len(line) for line in lines[:3]}) == 1  # columns stay aligned
    assert lines[2].startswith("a_very_long_level ")
    assert lines[3].startswith("mistake severity 1.5000 ")
    assert "serious 0.2500" in lines[3]
    assert "severity" not in level_table({}, "test", ["a"])


def fit_tiny(tmp_path: Path, **trainer_kwargs: object) -> tuple[L.Trainer, HierarchicalSegmenter]:
    dm = SyntheticDataModule(num_train=16, num_val=8, num_test=8, batch_size=8, image_size=32)
    model = HierarchicalSegmenter(UNet(dm.num_classes, width=4, depth=2), dm.hierarchy)
    trainer = quiet_trainer(tmp_path, callbacks=[LevelSummary()], **trainer_kwargs)
    trainer.fit(model, datamodule=dm)
    trainer.validate(model, datamodule=dm, verbose=False)
    trainer.test(model, datamodule=dm, verbose=False)
    return trainer, model


def test_level_summary_prints_one_plain_line_per_epoch_and_the_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit_tiny(tmp_path, max_epochs=3, check_val_every_n_epoch=2)
    out = capsys.readouterr().out.splitlines()
    epochs = [line for line in out if line.startswith("epoch ")]
    assert len(epochs) == 3, out
    matches = [LINE.match(line) for line in epochs]
    assert all(matches), epochs
    assert [int(m.group(1)) for m in matches] == [0, 1, 2]
    # validation ran after epoch 1 only (every 2nd epoch): its values sit on that line
    assert [m.group(3) is not None for m in matches] == [False, True, False]
    assert matches[0].group(2) != matches[1].group(2)  # each epoch's own training loss
    validate = [line for line in out if line.startswith("validate ")]
    assert len(validate) == 1 and re.fullmatch(r"validate val/loss=\S+ val/miou=\S+", validate[0])

    for stage in ("val", "test"):
        start = out.index(f"{stage} per level:")
        header, *rows = out[start + 1 : start + 6]
        assert header.split() == ["level", "loss", "mIoU", "acc"]
        assert [row.split()[0] for row in rows[:3]] == ["kind", "family", "class"]
        assert all("-" not in row.split()[1:] for row in rows[:3])  # every value logged
        assert rows[3].startswith("mistake severity ")


def test_level_summary_skips_the_sanity_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit_tiny(tmp_path, max_epochs=1, num_sanity_val_steps=1, limit_val_batches=1)
    epochs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 1 and LINE.match(epochs[0]) and "val/loss" in epochs[0]
