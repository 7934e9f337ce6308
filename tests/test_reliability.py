"""Tests for hl_lightning/reliability.py: per-level calibration error and tree consistency."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from hl_lightning import (
    HierarchicalCalibrationError,
    HierarchicalConsistency,
    hierarchical_calibration_error,
    hierarchical_consistency,
    hierarchical_jaccard_index,
)
from hl_lightning.data import SyntheticDataModule
from hl_lightning.decode import decode, level_log_probs, level_parents
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.lightning import HierarchicalSegmenter
from hl_lightning.metrics import HierarchicalJaccardIndex, _confidence_bins

H = random_hierarchy(12, 3, seed=1, shuffle_leaves=True)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(3, H.num_leaves, 9, 7, generator=gen)
    target = torch.randint(0, H.num_leaves, (3, 9, 7), generator=gen)
    target[:, 0] = 255
    return logits, target


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("n_bins", [5, 15])
def test_each_level_equals_torchmetrics_on_the_summed_probabilities(n_bins: int, norm: str) -> None:
    logits, target = batch()
    ours = HierarchicalCalibrationError(H, n_bins=n_bins, norm=norm)(logits, target)  # type: ignore[arg-type]
    valid = target != 255
    for d, log_p in enumerate(level_log_probs(logits, H)):
        groups = torch.where(valid, H.level_index(d)[target.clamp(max=H.num_leaves - 1)], 255)
        reference = MulticlassCalibrationError(
            H.num_groups(d), n_bins=n_bins, norm=norm, ignore_index=255
        )(log_p.exp(), groups)
        torch.testing.assert_close(ours[d], reference, atol=1e-5, rtol=1e-4)


def test_the_leaf_level_equals_torchmetrics_on_the_softmax() -> None:
    logits, target = batch(1)
    reference = MulticlassCalibrationError(H.num_leaves, n_bins=15, ignore_index=255)
    expected = reference(logits.softmax(1), target)
    torch.testing.assert_close(HierarchicalCalibrationError(H)(logits, target)[-1], expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_bins", [1, 3, 7, 10, 15, 100, 1000])
def test_confidence_bins_are_exactly_torchmetrics_bucketize(
    n_bins: int, dtype: torch.dtype
) -> None:
    boundaries = torch.linspace(0, 1, n_bins + 1, dtype=dtype)  # as MulticlassCalibrationError
    exact = torch.arange(n_bins + 1, dtype=dtype) / n_bins
    up, down = torch.tensor(2.0, dtype=dtype), torch.tensor(-1.0, dtype=dtype)
    edges = torch.cat([boundaries, exact])  # and their neighbours, where rounding decides
    conf = torch.cat([edges, edges.nextafter(up), edges.nextafter(down), torch.rand(10**4)])
    conf = conf.to(dtype).clamp(0, 1)
    want = (torch.bucketize(conf, boundaries, right=True) - 1).clamp(0, n_bins - 1)
    assert torch.equal(_confidence_bins(conf, n_bins), want)


def test_two_updates_sum_like_one_and_the_functional_form_agrees() -> None:
    (a, ta), (b, tb) = batch(2), batch(3)
    metric = HierarchicalCalibrationError(H)
    metric.update(a, ta)
    metric.update(b, tb)
    together = hierarchical_calibration_error(torch.cat([a, b]), torch.cat([ta, tb]), H)
    torch.testing.assert_close(metric.compute(), together)


@pytest.mark.parametrize("method", ["leaf", "top_down"])
def test_leaf_and_top_down_are_consistent_by_construction(method: str) -> None:
    logits, target = batch(4)
    assert HierarchicalConsistency(H, decode=method)(logits, target) == 0  # type: ignore[arg-type]


def test_marginal_decoding_is_measured_against_a_path_check() -> None:
    logits, target = batch(5)
    maps = decode(logits, H, "marginal")
    parents = level_parents(H)
    off = torch.zeros_like(target, dtype=torch.bool)
    for d, parent in enumerate(parents):
        off |= parent[maps[d + 1]] != maps[d]
    valid = target != 255
    expected = (off & valid).sum() / valid.sum()
    value = HierarchicalConsistency(H)(logits, target)
    assert 0 < value < 1
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(hierarchical_consistency(logits, target, H), expected)


def test_functional_iou_equals_the_metric() -> None:
    logits, target = batch(6)
    torch.testing.assert_close(
        hierarchical_jaccard_index(logits, target, H), HierarchicalJaccardIndex(H)(logits, target)
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_bins": 0}, "n_bins must be a positive int"), ({"norm": "l3"}, "norm must be one of")],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HierarchicalCalibrationError(H, **kwargs)  # type: ignore[arg-type]


def test_non_finite_logits_are_refused_and_empty_batches_count_nothing() -> None:
    logits, target = batch(7)
    logits[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"HierarchicalCalibrationError.update: .* 1 non-finite"):
        HierarchicalCalibrationError(H).update(logits, target)
    metric = HierarchicalConsistency(H)
    metric.update(torch.zeros(0, H.num_leaves, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long))
    assert metric.compute() == 0


def test_the_module_logs_calibration_and_consistency_for_val_and_test(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_train=4, num_val=4, num_test=4, image_size=16, batch_size=2)
    model = HierarchicalSegmenter(torch.nn.Conv2d(3, 13, 1), dm.hierarchy)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    for stage in ("val", "test"):
        if stage == "val":
            trainer.fit(model, datamodule=dm)
        else:
            trainer.test(model, datamodule=dm, verbose=False)
        logged = trainer.callback_metrics
        assert {f"{stage}/ece/{level}" for level in dm.hierarchy.level_names} <= set(logged)
        assert 0 <= logged[f"{stage}/inconsistency"] <= 1
        assert "train/ece/class" not in logged  # the training metrics stay cheap
