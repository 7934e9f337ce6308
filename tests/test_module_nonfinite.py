"""Tests for the NaN/inf guard of hl_lightning/lightning/module.py: stop and say why, or skip."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from _trainer import quiet_trainer
from torch import Tensor, nn

from hl_lightning.data import SyntheticDataModule
from hl_lightning.lightning import HierarchicalSegmenter, NonFiniteLossError


class NaNAtStep(nn.Module):
    """A 1x1 convolution whose outputs are NaN in training forward pass number ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 13, 1)
        self.at, self.calls = at, 0

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                out = out * float("nan")
        return out


def data() -> SyntheticDataModule:
    return SyntheticDataModule(num_train=8, num_val=4, num_test=4, image_size=16, batch_size=2)


def fit(model: HierarchicalSegmenter, out: Path) -> L.Trainer:
    trainer = quiet_trainer(out, max_epochs=1, limit_val_batches=1)
    trainer.fit(model, datamodule=data())
    return trainer


def test_a_nan_backbone_output_stops_the_run_naming_step_stage_and_cause(tmp_path: Path) -> None:
    model = HierarchicalSegmenter(NaNAtStep(at=3), data().hierarchy)
    with pytest.raises(NonFiniteLossError) as info:
        fit(model, tmp_path)
    message = str(info.value)
    assert "train loss is nan at step 2 (batch 2)" in message
    assert "backbone output values" in message and "the level losses of kind" in message
    assert "model.on_nonfinite=skip" in message
    assert all(p.isfinite().all() for p in model.parameters())  # the NaN step was not taken


def test_skip_drops_the_batch_counts_it_and_trains_on(tmp_path: Path) -> None:
    model = HierarchicalSegmenter(NaNAtStep(at=2), data().hierarchy, on_nonfinite="skip")
    with pytest.warns(UserWarning, match=r"skipped a batch: the train loss is nan at step 1"):
        trainer = fit(model, tmp_path)
    assert trainer.global_step == 4  # Lightning counts the skipped step; no gradient, no update
    assert all(p.isfinite().all() for p in model.parameters())
    assert trainer.callback_metrics["train/skipped_batches"] == 1
    assert trainer.callback_metrics["val/skipped_batches"] == 0
    assert torch.isfinite(trainer.callback_metrics["train/loss_epoch"])


def test_non_finite_input_images_are_named(tmp_path: Path) -> None:
    model = HierarchicalSegmenter(nn.Conv2d(3, 13, 1), data().hierarchy)
    images = torch.randn(2, 3, 16, 16)
    images[0, 0, 0, 0] = float("inf")
    masks = torch.zeros(2, 16, 16, dtype=torch.long)
    with pytest.raises(NonFiniteLossError, match=r"val loss .* 1 input image values"):
        model.validation_step((images, masks), 0)


def test_a_bad_on_nonfinite_value_is_refused() -> None:
    with pytest.raises(ValueError, match="on_nonfinite must be 'error' or 'skip'"):
        HierarchicalSegmenter(nn.Conv2d(3, 13, 1), data().hierarchy, on_nonfinite="ignore")  # type: ignore[arg-type]
