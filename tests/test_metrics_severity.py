"""Tests for hl_lightning/metrics/severity.py and functional/severity.py: mistake severity."""

from __future__ import annotations

import pytest
import torch
from _metric_batches import IGNORE, make_batch

from hl_lightning import Hierarchy, mistake_severity
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.metrics import HierarchicalJaccardIndex, MistakeSeverity


def reference_severity(
    hierarchy: Hierarchy, logits: torch.Tensor, target: torch.Tensor
) -> tuple[float, float]:
    """Return (mean distance, serious share) of the mistakes, one pixel at a time."""
    distance = hierarchy.leaf_distance()
    top = hierarchy.level_index(0)
    dists, serious = [], []
    for t, p in zip(target.flatten().tolist(), logits.argmax(1).flatten().tolist(), strict=True):
        if t != IGNORE and t != p:
            dists.append(int(distance[t, p]))
            serious.append(bool(top[t] != top[p]))
    if not dists:
        return 0.0, 0.0
    return sum(dists) / len(dists), sum(serious) / len(serious)


def test_mistake_severity_matches_pixel_by_pixel_reference(random_tree: Hierarchy) -> None:
    tree = random_tree
    metric = MistakeSeverity(tree)
    batches = [make_batch(tree, size=8, seed=s) for s in range(2)]
    for logits, target in batches:
        metric.update(logits, target)
    result = metric.compute()
    logits = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    severity, serious = reference_severity(tree, logits, target)
    assert set(result) == {"severity", "serious"}
    assert result["severity"].item() == pytest.approx(severity)
    assert result["serious"].item() == pytest.approx(serious)
    assert 1 <= severity <= tree.num_levels


def test_mistake_severity_on_seed_trees(seed_tree: Hierarchy) -> None:
    logits, target = make_batch(seed_tree, size=8)
    result = MistakeSeverity(seed_tree)(logits, target)
    severity, serious = reference_severity(seed_tree, logits, target)
    assert result["severity"].item() == pytest.approx(severity)
    assert result["serious"].item() == pytest.approx(serious)


def test_functional_form_equals_the_metric_and_the_reference(random_tree: Hierarchy) -> None:
    logits, target = make_batch(random_tree, size=8, seed=3)
    got = mistake_severity(logits, target, random_tree)
    want = MistakeSeverity(random_tree)(logits, target)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    severity, serious = reference_severity(random_tree, logits, target)
    assert got["severity"].item() == pytest.approx(severity)
    assert got["serious"].item() == pytest.approx(serious)


def test_no_mistakes_give_zero_not_nan() -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    target = torch.randint(0, 11, (2, 4, 4))
    logits = 20 * torch.nn.functional.one_hot(target, 11).permute(0, 3, 1, 2).float()
    target[0, 0, 0] = IGNORE
    result = MistakeSeverity(tree)(logits, target)
    assert result["severity"].item() == 0.0 and result["serious"].item() == 0.0
    assert HierarchicalJaccardIndex(tree)(logits, target).tolist() == [1.0] * 4


def test_a_single_root_never_makes_serious_mistakes() -> None:
    tree = Hierarchy.from_dict({"all": {"a": ["a1", "a2"], "b": ["b1", "b2"]}})
    target = torch.tensor([[0, 0, 2]])
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 2, 2]]), 4).permute(0, 2, 1).float()
    result = MistakeSeverity(tree)(logits, target)
    assert result["severity"].item() == 1.5 and result["serious"].item() == 0.0
