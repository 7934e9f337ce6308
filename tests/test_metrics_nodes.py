"""Tests for hl_lightning/metrics/nodes.py and functional/nodes.py: hierarchical precision,
recall and F1 of node predictions, and the operating curve, against a float64 reference
that scores the predicted nodes' paths."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from _metric_batches import IGNORE, coarse_batch, node_paths
from _trees import TREE_CASES, tree_case, tree_case_id
from test_decode_nodes import reference_nodes

from hl_lightning import Hierarchy
from hl_lightning.decode import NO_NODE, predict_nodes
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.metrics import (
    HierarchicalOperatingCurve,
    HierarchicalPrecisionRecall,
    HierarchicalSegmentationMetrics,
    hierarchical_operating_curve,
    hierarchical_precision_recall,
    plot_operating_curve,
    save_operating_curve,
)

GRID = [0.5, 0.55, 0.7, 0.8, 0.95]


@pytest.fixture(params=TREE_CASES, ids=tree_case_id)
def tree(request: pytest.FixtureRequest) -> Hierarchy:
    """Random unbalanced trees with shuffled leaves, and a small tree with leaves at 3 depths."""
    return tree_case(request.param, seed_offset=3)


def clear_batches(tree: Hierarchy, grid: list[float]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return two batches with coarse labels whose pixels near a threshold are ignored (ties
    aside: fp32 and float64 may decide those differently)."""
    out = []
    for seed in range(2):
        logits, target = coarse_batch(tree, batch=2, size=9, seed=seed)
        logits = 1.5 * logits
        for threshold in grid:
            _, clear = reference_nodes(logits, tree, threshold)
            target.view(-1)[~torch.tensor(clear)] = IGNORE
        out.append((logits, target))
    return out


def reference_counts(
    tree: Hierarchy, batches: list[tuple[torch.Tensor, torch.Tensor]], threshold: float
) -> tuple[int, int, int]:
    """Return (correct claims, claims, known levels) summed over the counted pixels.

    A prediction at node m claims its path (a leaf's padded to D levels); claims count at
    the target's known levels only (its path); a claim is correct where the names agree.
    """
    paths = node_paths(tree)
    correct = claims = known = 0
    for logits, target in batches:
        nodes, _ = reference_nodes(logits, tree, threshold)
        for m, t in zip(nodes, target.flatten().tolist(), strict=True):
            if t == IGNORE:
                continue
            truth = paths[t]
            known += len(truth)
            if m == NO_NODE:
                continue
            pred = paths[m]
            shared = min(len(pred), len(truth))
            claims += shared
            correct += sum(pred[d] == truth[d] for d in range(shared))
    return correct, claims, known


def reference_values(counts: tuple[int, int, int]) -> tuple[float, float, float]:
    correct, claims, known = counts
    hp = correct / claims if claims else 0.0
    hr = correct / known if known else 0.0
    return hp, hr, (2 * hp * hr / (hp + hr) if hp + hr else 0.0)


def test_precision_recall_and_f1_equal_the_path_reference(tree: Hierarchy) -> None:
    batches = clear_batches(tree, GRID)
    for threshold in GRID:
        metric = HierarchicalPrecisionRecall(tree, threshold)
        for logits, target in batches:
            metric.update(logits, target)
        got = metric.compute()
        want = reference_values(reference_counts(tree, batches, threshold))
        assert [got[k].item() for k in ("hp", "hr", "hf")] == pytest.approx(want, abs=1e-6)
        logits, target = batches[0]
        alone = HierarchicalPrecisionRecall(tree, threshold)(logits, target)
        functional = hierarchical_precision_recall(logits, target, tree, threshold)
        assert all(torch.equal(functional[k], alone[k]) for k in alone)


def test_the_curve_is_every_threshold_in_one_pass(tree: Hierarchy) -> None:
    batches = clear_batches(tree, GRID)
    metric = HierarchicalOperatingCurve(tree, GRID)
    for logits, target in batches:
        metric.update(logits, target)
    curve = metric.compute()
    assert curve.thresholds.tolist() == pytest.approx(GRID)
    points = []
    for i, threshold in enumerate(GRID):
        hp, hr, hf = reference_values(reference_counts(tree, batches, threshold))
        assert [curve.hp[i].item(), curve.hr[i].item(), curve.hf[i].item()] == pytest.approx(
            [hp, hr, hf], abs=1e-6
        )
        if reference_counts(tree, batches, threshold)[1]:
            points.append((hr, hp))
    points.sort()
    area = points[0][0] * points[0][1]  # extended to recall 0 at the first point's precision
    area += sum((r2 - r1) * (p1 + p2) / 2 for (r1, p1), (r2, p2) in pairwise(points))
    assert curve.auc.item() == pytest.approx(area, abs=1e-6)
    assert curve.hr.tolist() == sorted(curve.hr.tolist(), reverse=True)  # recall falls
    logits, target = batches[1]
    functional = hierarchical_operating_curve(logits, target, tree, GRID)
    alone = HierarchicalOperatingCurve(tree, GRID)(logits, target)
    assert all(torch.equal(a, b) for a, b in zip(functional, alone, strict=True))


def test_the_all_in_one_metric_logs_the_same_node_scores(tree: Hierarchy) -> None:
    batches = clear_batches(tree, [0.5])
    together = HierarchicalSegmentationMetrics(tree, threshold=0.5)
    alone = HierarchicalPrecisionRecall(tree, 0.5)
    for logits, target in batches:
        together.update(logits, target)
        alone.update(logits, target)
    got, want = together.compute(), alone.compute()
    assert list(got)[-3:] == ["hp", "hr", "hf"]
    assert all(torch.equal(got[k], want[k]) for k in want)
    without = HierarchicalSegmentationMetrics(tree)  # no threshold: no node scores
    assert "hf" not in without(*batches[0])


def test_a_leaf_claims_every_level_and_a_coarse_target_its_known_ones() -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    logits = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]]])
    nodes = predict_nodes(logits, h, 0.9)[0].tolist()
    assert [h.node_names[n] for n in nodes] == ["sky", "car", "truck"]
    target = torch.tensor([[0, 3, 2]])  # sky, vehicle (coarse), truck
    # sky: 2 of 2; vehicle: 1 claim counted (level 0), right; truck: 2 of 2
    got = hierarchical_precision_recall(logits, target, h, 0.9)
    assert got == {"hp": torch.tensor(1.0), "hr": torch.tensor(1.0), "hf": torch.tensor(1.0)}
    unsure = torch.zeros(1, 3, 3)  # vehicle at 2/3 at 0.6, nothing at 0.9
    vehicle = hierarchical_precision_recall(unsure, target, h, 0.6)  # wrong for sky only
    assert [vehicle[k].item() for k in ("hp", "hr")] == pytest.approx([2 / 3, 2 / 5])
    nothing = hierarchical_precision_recall(unsure, target, h, 0.9)
    assert nothing == {"hp": torch.tensor(0.0), "hr": torch.tensor(0.0), "hf": torch.tensor(0.0)}


def test_bad_thresholds_are_named_at_construction() -> None:
    h = random_hierarchy(11, 3, shuffle_leaves=True)
    with pytest.raises(ValueError, match=r"threshold=0\.4 is outside \[0\.5, 1\)"):
        HierarchicalPrecisionRecall(h, 0.4)
    with pytest.raises(ValueError, match=r"a threshold=1\.0 is outside \[0\.5, 1\)"):
        HierarchicalOperatingCurve(h, [0.5, 1.0])
    with pytest.raises(ValueError, match="thresholds must be a positive count or values"):
        HierarchicalOperatingCurve(h, 0)
    with pytest.raises(ValueError, match=r"threshold=1\.2 is outside"):
        HierarchicalSegmentationMetrics(h, threshold=1.2)
    with pytest.raises(ValueError, match=r"threshold=0\.2 is outside"):
        hierarchical_precision_recall(torch.randn(1, 11, 2, 2), torch.zeros(1, 2, 2).long(), h, 0.2)


def test_the_curve_saves_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    h = random_hierarchy(11, 3, shuffle_leaves=True)
    metric = HierarchicalOperatingCurve(h, 10)
    metric.update(*coarse_batch(h))
    curve = metric.compute()
    path = save_operating_curve(curve, tmp_path / "curve.csv")
    rows = path.read_text().splitlines()
    assert rows[0] == "threshold,hp,hr,hf" and len(rows) == 11
    assert [
        math.isclose(float(r.split(",")[0]), t, abs_tol=1e-6)
        for r, t in zip(rows[1:], curve.thresholds.tolist(), strict=True)
    ] == [True] * 10
    figure, ax = metric.plot()
    plot_operating_curve(curve, ax, label="again")
    figure.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0 and len(ax.lines) == 2
