"""Tests for hl_lightning/metrics/calibration.py and functional/calibration.py: per-level
calibration error."""

from __future__ import annotations

import pytest
import torch
from _metric_batches import IGNORE, NOISY_TREE, noisy_batch
from torchmetrics.classification import MulticlassCalibrationError

from hl_lightning import HierarchicalCalibrationError, hierarchical_calibration_error
from hl_lightning.decode import level_log_probs
from hl_lightning.metrics.functional.calibration import _confidence_bins

H = NOISY_TREE


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("n_bins", [5, 15])
def test_each_level_equals_torchmetrics_on_the_summed_probabilities(n_bins: int, norm: str) -> None:
    logits, target = noisy_batch()
    ours = HierarchicalCalibrationError(H, n_bins=n_bins, norm=norm)(logits, target)  # type: ignore[arg-type]
    valid = target != IGNORE
    for d, log_p in enumerate(level_log_probs(logits, H)):
        groups = torch.where(valid, H.level_index(d)[target.clamp(max=H.num_leaves - 1)], IGNORE)
        reference = MulticlassCalibrationError(
            H.num_groups(d), n_bins=n_bins, norm=norm, ignore_index=IGNORE
        )(log_p.exp(), groups)
        torch.testing.assert_close(ours[d], reference, atol=1e-5, rtol=1e-4)


def test_the_leaf_level_equals_torchmetrics_on_the_softmax() -> None:
    logits, target = noisy_batch(1)
    reference = MulticlassCalibrationError(H.num_leaves, n_bins=15, ignore_index=IGNORE)
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
    (a, ta), (b, tb) = noisy_batch(2), noisy_batch(3)
    metric = HierarchicalCalibrationError(H)
    metric.update(a, ta)
    metric.update(b, tb)
    together = hierarchical_calibration_error(torch.cat([a, b]), torch.cat([ta, tb]), H)
    torch.testing.assert_close(metric.compute(), together)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_the_functional_form_equals_the_metric_bit_for_bit(norm: str) -> None:
    logits, target = noisy_batch(8)
    want = HierarchicalCalibrationError(H, n_bins=7, norm=norm)(logits, target)  # type: ignore[arg-type]
    got = hierarchical_calibration_error(logits, target, H, n_bins=7, norm=norm)  # type: ignore[arg-type]
    assert torch.equal(got, want)
