"""Tests for hl_lightning/metrics/temperature.py: one temperature of least NLL, fitted on a
uniform sample of labelled pixels, against a float64 reference of the written NLL."""

from __future__ import annotations

import pytest
import torch
from _metric_batches import IGNORE, coarse_batch, node_paths

from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.metrics import (
    TemperatureScaling,
    fit_temperature,
    hierarchical_calibration_error,
)

TREE = random_hierarchy(11, 3, seed=4, shuffle_leaves=True)


def reference_nll(
    logits: torch.Tensor, target: torch.Tensor, hierarchy: Hierarchy, temperature: float
) -> float:
    """Return the mean of -log P(label's node) over the labelled pixels, at ``temperature``,
    in float64: a node's probability is the summed softmax of the leaves on its paths."""
    paths = node_paths(hierarchy)
    p = torch.softmax(logits.double() / temperature, 1).movedim(1, -1).reshape(-1, logits.shape[1])
    total, count = 0.0, 0
    for row, label in zip(p, target.flatten().tolist(), strict=True):
        if label == IGNORE:
            continue
        name = hierarchy.node_names[label]
        under = [leaf for leaf in range(hierarchy.num_leaves) if name in paths[leaf]]
        total -= float(row[under].sum().log())
        count += 1
    return total / count


def overconfident_batch(seed: int, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return logits ``scale`` times too sure and coarse labels drawn from the calibrated ones."""
    logits, target = coarse_batch(TREE, batch=2, size=8, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    p = logits.movedim(1, -1).reshape(-1, TREE.num_leaves).softmax(1)
    drawn = torch.multinomial(p, 1, generator=gen).view(target.shape)
    leaf = target < TREE.num_leaves
    return scale * logits, torch.where(leaf, drawn, target)  # coarse labels and ignored stay


def test_the_fit_is_the_minimum_of_the_float64_nll() -> None:
    batches = [overconfident_batch(s) for s in range(2)]
    scaling = TemperatureScaling(TREE)
    for logits, target in batches:
        scaling.update(logits, target)
    fit = scaling.fit()
    logits = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    assert fit.pixels == int((target != IGNORE).sum())  # all kept: below max_logits
    best = reference_nll(logits, target, TREE, fit.temperature)
    for factor in (0.97, 1.03):
        assert best < reference_nll(logits, target, TREE, fit.temperature * factor)
    assert fit.nll_before == pytest.approx(reference_nll(logits, target, TREE, 1.0), rel=1e-6)
    assert fit.nll_after == pytest.approx(best, rel=1e-6)
    assert 2 < fit.temperature < 4.5  # the logits were made 3 times too sure
    valid = target != IGNORE
    for t, ece in ((1.0, fit.ece_before), (fit.temperature, fit.ece_after)):
        want = hierarchical_calibration_error(
            (logits / t).movedim(1, -1)[valid], target[valid], TREE, None
        )
        torch.testing.assert_close(ece, want)
    assert (fit.ece_after < fit.ece_before).all()


def test_the_sample_is_uniform_without_replacement_and_bounded() -> None:
    scaling = TemperatureScaling(TREE, max_logits=TREE.num_leaves * 50, seed=1)
    batches = [overconfident_batch(s) for s in range(4)]
    for logits, target in batches:
        scaling.update(logits, target)
    assert scaling.fit().pixels == 50
    pool = torch.cat([b[0].movedim(1, -1)[b[1] != IGNORE] for b in batches])
    kept = scaling._logits
    assert len({tuple(row) for row in kept.tolist()}) == 50  # distinct pixels of the batches
    assert all((pool == row).all(1).any() for row in kept)
    later = [0, 0]  # pixels of the first and last two batches: both halves are sampled
    first = sum(int((b[1] != IGNORE).sum()) for b in batches[:2])
    for row in kept:
        later[int((pool == row).all(1).nonzero()[0, 0]) >= first] += 1
    assert min(later) > 10


def test_bad_input_is_named() -> None:
    scaling = TemperatureScaling(TREE)
    with pytest.raises(ValueError, match="no labelled pixels to fit a temperature on"):
        scaling.fit()
    logits, target = overconfident_batch(0)
    logits[0, 1, 2, 3] = float("nan")
    with pytest.raises(
        ValueError, match=r"TemperatureScaling.update: the logits have 1 non-finite"
    ):
        scaling.update(logits, target)
    with pytest.raises(ValueError, match=r"label ids \[99\] outside"):
        scaling.update(logits.nan_to_num(), torch.full_like(target, 99))
    with pytest.raises(ValueError, match="max_logits must be a positive int"):
        TemperatureScaling(TREE, max_logits=0)
    everything_ignored = torch.full_like(target, IGNORE)
    with pytest.raises(ValueError, match="no labelled pixels"):
        fit_temperature(logits.nan_to_num(), everything_ignored, TREE)
