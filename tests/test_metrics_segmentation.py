"""Tests for hl_lightning/metrics/segmentation.py: every metric from one pass, as the module
logs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _metric_batches import IGNORE, make_batch
from _trainer import quiet_trainer
from torchmetrics import Metric

from hl_lightning import Hierarchy
from hl_lightning.data import SyntheticDataModule
from hl_lightning.decode import METHODS
from hl_lightning.decode import blocks as blocks_module
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.lightning import HierarchicalSegmenter
from hl_lightning.metrics import (
    HierarchicalCalibrationError,
    HierarchicalConsistency,
    HierarchicalJaccardIndex,
    HierarchicalPixelAccuracy,
    HierarchicalSegmentationMetrics,
    MistakeSeverity,
)
from hl_lightning.metrics.functional import batch as batch_module


def separate_metrics(
    hierarchy: Hierarchy, ignore: int | None, method: str, n_bins: int = 15
) -> dict[str, Metric]:
    """Return the standalone metrics whose values HierarchicalSegmentationMetrics returns."""
    return {
        "miou": HierarchicalJaccardIndex(hierarchy, ignore, decode=method),  # type: ignore[arg-type]
        "acc": HierarchicalPixelAccuracy(hierarchy, ignore, decode=method),  # type: ignore[arg-type]
        "severity": MistakeSeverity(hierarchy, ignore, decode=method),  # type: ignore[arg-type]
        "ece": HierarchicalCalibrationError(hierarchy, ignore, n_bins=n_bins),
        "inconsistency": HierarchicalConsistency(hierarchy, ignore, decode=method),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("ignore", [IGNORE, None])
@pytest.mark.parametrize("method", METHODS)
def test_all_in_one_equals_each_metric_alone(
    monkeypatch: pytest.MonkeyPatch, random_tree: Hierarchy, method: str, ignore: int | None
) -> None:
    tree = random_tree
    batches = [make_batch(tree, batch=3, size=20, seed=s) for s in range(2)]
    if ignore is None:
        for _, target in batches:
            target[target == IGNORE] = 0
    want: dict[str, torch.Tensor] = {}
    for name, metric in separate_metrics(tree, ignore, method, n_bins=10).items():
        for logits, target in batches:
            metric.update(logits, target)
        result = metric.compute()
        want.update(result if isinstance(result, dict) else {name: result})
    monkeypatch.setattr(blocks_module, "_BLOCK", 500)  # many CPU blocks for the shared pass
    together = HierarchicalSegmentationMetrics(tree, ignore, method, n_bins=10)  # type: ignore[arg-type]
    train = HierarchicalSegmentationMetrics(tree, ignore, method, reliability=False)  # type: ignore[arg-type]
    for logits, target in batches:
        together.update(logits, target)
        train.update(logits, target)
    got = together.compute()
    assert list(got) == ["miou", "acc", "severity", "serious", "ece", "inconsistency"]
    for name, value in want.items():
        assert torch.equal(got[name], value), name  # the same numbers, not just close
    cheap = train.compute()  # the training metrics: no calibration nor consistency
    assert list(cheap) == ["miou", "acc", "severity", "serious"]
    for key, value in cheap.items():
        assert torch.equal(value, got[key]), key


def test_all_in_one_checks_and_reads_each_batch_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tree = random_hierarchy(11, 4, seed=2, shuffle_leaves=True)
    calls = {"validate_inputs": 0, "level_outputs": 0}
    for name in calls:
        original = getattr(batch_module, name)

        def counting(
            *args: object, _name: str = name, _f: object = original, **kwargs: object
        ) -> object:
            calls[_name] += 1
            return _f(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(batch_module, name, counting)
    metric = HierarchicalSegmentationMetrics(tree)
    for seed in range(3):
        metric.update(*make_batch(tree, seed=seed))
    assert calls == {"validate_inputs": 3, "level_outputs": 3}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_all_in_one_refuses_non_finite_logits_and_skips_empty_batches(
    monkeypatch: pytest.MonkeyPatch, bad: float
) -> None:
    tree = random_hierarchy(11, 4, seed=2, shuffle_leaves=True)
    metric = HierarchicalSegmentationMetrics(tree)
    logits, target = make_batch(tree, size=40)
    monkeypatch.setattr(blocks_module, "_BLOCK", 1000)
    metric.update(torch.zeros(0, 11, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long))
    metric.update(logits, target)
    expected = {k: v.clone() for k, v in metric.compute().items()}
    logits[1, 3, 39, 0] = bad  # in the last CPU block
    logits[1, 4, 39, 0] = 1e3  # the pixel's maximum: only its minimum tells a -inf
    message = r"HierarchicalSegmentationMetrics.update: the logits have 1 non-finite values"
    with pytest.raises(ValueError, match=message):
        metric.update(logits, target)
    for key, value in metric.compute().items():  # nothing was counted
        assert torch.equal(value, expected[key]), key


def test_the_module_logs_calibration_and_consistency_for_val_and_test(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_train=4, num_val=4, num_test=4, image_size=16, batch_size=2)
    model = HierarchicalSegmenter(torch.nn.Conv2d(3, 13, 1), dm.hierarchy)
    trainer = quiet_trainer(tmp_path, max_epochs=1)
    for stage in ("val", "test"):
        if stage == "val":
            trainer.fit(model, datamodule=dm)
        else:
            trainer.test(model, datamodule=dm, verbose=False)
        logged = trainer.callback_metrics
        assert {f"{stage}/ece/{level}" for level in dm.hierarchy.level_names} <= set(logged)
        assert 0 <= logged[f"{stage}/inconsistency"] <= 1
        assert "train/ece/class" not in logged  # the training metrics stay cheap
