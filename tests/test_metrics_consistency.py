"""Tests for hl_lightning/metrics/consistency.py and functional/consistency.py: the share of
pixels whose per-level predictions are off a tree path."""

from __future__ import annotations

import pytest
import torch
from _metric_batches import IGNORE, NOISY_TREE, noisy_batch

from hl_lightning import HierarchicalConsistency, hierarchical_consistency
from hl_lightning.decode import METHODS, decode_levels, level_parents

H = NOISY_TREE


@pytest.mark.parametrize("method", ["leaf", "top_down"])
def test_leaf_and_top_down_are_consistent_by_construction(method: str) -> None:
    logits, target = noisy_batch(4)
    assert HierarchicalConsistency(H, decode=method)(logits, target) == 0  # type: ignore[arg-type]


def test_marginal_decoding_is_measured_against_a_path_check() -> None:
    logits, target = noisy_batch(5)
    maps = decode_levels(logits, H, "marginal")
    parents = level_parents(H)
    off = torch.zeros_like(target, dtype=torch.bool)
    for d, parent in enumerate(parents):
        off |= parent[maps[d + 1]] != maps[d]
    valid = target != IGNORE
    expected = (off & valid).sum() / valid.sum()
    value = HierarchicalConsistency(H)(logits, target)
    assert 0 < value < 1
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(hierarchical_consistency(logits, target, H), expected)


@pytest.mark.parametrize("method", METHODS)
def test_the_functional_form_equals_the_metric_bit_for_bit(method: str) -> None:
    logits, target = noisy_batch(9)
    want = HierarchicalConsistency(H, decode=method)(logits, target)  # type: ignore[arg-type]
    got = hierarchical_consistency(logits, target, H, decode=method)  # type: ignore[arg-type]
    assert torch.equal(got, want)
