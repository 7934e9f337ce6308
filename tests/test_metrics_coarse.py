"""Tests for coarse labels in every metric (hl_lightning/metrics/): a pixel labelled with an
internal node's id counts at the node's level and the coarser ones and is skipped below,
against float64 references that read the tree itself (each node's path of names)."""

from __future__ import annotations

import pytest
import torch
from _metric_batches import IGNORE, coarse_batch, node_paths
from _trees import TREE_CASES, tree_case, tree_case_id
from torchmetrics.classification import MulticlassCalibrationError

from hl_lightning import Hierarchy
from hl_lightning.decode import METHODS, DecodeMethod, decode_levels, level_log_probs
from hl_lightning.metrics import (
    HierarchicalCalibrationError,
    HierarchicalConsistency,
    HierarchicalJaccardIndex,
    HierarchicalPixelAccuracy,
    HierarchicalSegmentationMetrics,
    MistakeSeverity,
    hierarchical_calibration_error,
    hierarchical_consistency,
    hierarchical_jaccard_index,
    hierarchical_pixel_accuracy,
    mistake_severity,
)


@pytest.fixture(params=TREE_CASES, ids=tree_case_id)
def tree(request: pytest.FixtureRequest) -> Hierarchy:
    """Random unbalanced trees with shuffled leaves, and a small tree with leaves at 3 depths."""
    return tree_case(request.param, seed_offset=1)


def batches(tree: Hierarchy) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return two batches with about 30% coarse labels and 10% ignored pixels."""
    out = [coarse_batch(tree, batch=2, size=10, seed=s) for s in range(2)]
    coarse = torch.cat([t.flatten() for _, t in out])
    assert ((coarse >= tree.num_leaves) & (coarse != IGNORE)).any()
    return out


def known_pixels(tree: Hierarchy, target: torch.Tensor, level: int) -> list[tuple[int, str]]:
    """Return (pixel index, target group name) of the pixels counted at ``level``."""
    paths = node_paths(tree)
    return [
        (i, paths[t][level])
        for i, t in enumerate(target.flatten().tolist())
        if t != IGNORE and level < len(paths[t])
    ]


def reference_iou_and_accuracy(
    tree: Hierarchy, pairs: list[tuple[torch.Tensor, torch.Tensor]], method: DecodeMethod
) -> tuple[list[float], list[float]]:
    """Return per level the mIoU (absent groups skipped) and accuracy, in float64."""
    mious, accuracies = [], []
    for d in range(tree.num_levels):
        names = tree.group_names(d)
        truth, pred = [], []
        for logits, target in pairs:
            decoded = decode_levels(logits, tree, method)[d].flatten().tolist()
            for i, group in known_pixels(tree, target, d):
                truth.append(group)
                pred.append(names[decoded[i]])
        ious = []
        for group in set(truth) | set(pred):
            tp = sum(t == group and p == group for t, p in zip(truth, pred, strict=True))
            union = sum(t == group or p == group for t, p in zip(truth, pred, strict=True))
            ious.append(tp / union)
        mious.append(sum(ious) / len(ious))
        accuracies.append(sum(t == p for t, p in zip(truth, pred, strict=True)) / len(truth))
    return mious, accuracies


@pytest.mark.parametrize("method", METHODS)
def test_iou_and_accuracy_count_coarse_labels_down_to_their_node(
    tree: Hierarchy, method: DecodeMethod
) -> None:
    pairs = batches(tree)
    iou, accuracy = (
        HierarchicalJaccardIndex(tree, decode=method),
        HierarchicalPixelAccuracy(tree, decode=method),
    )
    for logits, target in pairs:
        iou.update(logits, target)
        accuracy.update(logits, target)
    want_iou, want_accuracy = reference_iou_and_accuracy(tree, pairs, method)
    torch.testing.assert_close(iou.compute().double(), torch.tensor(want_iou, dtype=torch.float64))
    torch.testing.assert_close(
        accuracy.compute().double(), torch.tensor(want_accuracy, dtype=torch.float64)
    )
    logits, target = pairs[0]
    assert torch.equal(
        hierarchical_jaccard_index(logits, target, tree, decode=method),
        HierarchicalJaccardIndex(tree, decode=method)(logits, target),
    )
    assert torch.equal(
        hierarchical_pixel_accuracy(logits, target, tree, decode=method),
        HierarchicalPixelAccuracy(tree, decode=method)(logits, target),
    )


def test_calibration_counts_coarse_labels_down_to_their_node(tree: Hierarchy) -> None:
    pairs = batches(tree)
    metric = HierarchicalCalibrationError(tree, n_bins=10)
    for logits, target in pairs:
        metric.update(logits, target)
    got = metric.compute()
    for d in range(tree.num_levels):
        names = tree.group_names(d)
        reference = MulticlassCalibrationError(tree.num_groups(d), n_bins=10, ignore_index=IGNORE)
        for logits, target in pairs:
            groups = torch.full((target.numel(),), IGNORE)
            for i, group in known_pixels(tree, target, d):
                groups[i] = names.index(group)
            probabilities = level_log_probs(logits, tree)[d].exp()
            reference.update(probabilities, groups.view(target.shape))
        torch.testing.assert_close(got[d], reference.compute(), atol=1e-5, rtol=1e-4)
    logits, target = pairs[1]
    assert torch.equal(
        hierarchical_calibration_error(logits, target, tree, n_bins=10),
        HierarchicalCalibrationError(tree, n_bins=10)(logits, target),
    )


@pytest.mark.parametrize("method", METHODS)
def test_consistency_counts_every_labelled_pixel_with_its_whole_path(
    tree: Hierarchy, method: DecodeMethod
) -> None:
    names = [tree.group_names(d) for d in range(tree.num_levels)]
    paths = {path[-1]: path for path in node_paths(tree) if len(path) == tree.num_levels}
    off, counted = 0, 0
    metric = HierarchicalConsistency(tree, decode=method)
    for logits, target in batches(tree):
        metric.update(logits, target)
        maps = [m.flatten().tolist() for m in decode_levels(logits, tree, method)]
        for i, t in enumerate(target.flatten().tolist()):
            if t == IGNORE:
                continue
            counted += 1
            finest = names[-1][maps[-1][i]]  # a path is the finest group's ancestors
            off += any(names[d][maps[d][i]] != paths[finest][d] for d in range(tree.num_levels))
    assert metric.compute().item() == pytest.approx(off / counted)
    logits, target = batches(tree)[0]
    assert torch.equal(
        hierarchical_consistency(logits, target, tree, decode=method),
        HierarchicalConsistency(tree, decode=method)(logits, target),
    )


def reference_severity(
    tree: Hierarchy, pairs: list[tuple[torch.Tensor, torch.Tensor]], method: DecodeMethod
) -> tuple[float, float]:
    """Return (mean distance, serious share) of the mistakes of the decoded leaf.

    A mistake: the predicted leaf is not the target leaf, or lies outside the target's
    node; its distance: the levels, where the target is known, at which their groups
    differ; serious: another level-0 group.
    """
    paths = node_paths(tree)
    finest = tree.group_names(tree.num_levels - 1)
    distances, serious = [], []
    for logits, target in pairs:
        decoded = decode_levels(logits, tree, method)[-1].flatten().tolist()
        for t, g in zip(target.flatten().tolist(), decoded, strict=True):
            if t == IGNORE:
                continue
            truth, pred = paths[t], paths[tree.label_id(finest[g])]
            distance = sum(a != b for a, b in zip(truth, pred, strict=False))
            if distance:
                distances.append(distance)
                serious.append(truth[0] != pred[0])
    return sum(distances) / len(distances), sum(serious) / len(serious)


@pytest.mark.parametrize("method", METHODS)
def test_severity_counts_a_coarse_label_outside_its_node(
    tree: Hierarchy, method: DecodeMethod
) -> None:
    pairs = batches(tree)
    metric = MistakeSeverity(tree, decode=method)
    for logits, target in pairs:
        metric.update(logits, target)
    got = metric.compute()
    severity, serious = reference_severity(tree, pairs, method)
    assert got["severity"].item() == pytest.approx(severity)
    assert got["serious"].item() == pytest.approx(serious)
    logits, target = pairs[0]
    alone = MistakeSeverity(tree, decode=method)(logits, target)
    functional = mistake_severity(logits, target, tree, decode=method)
    assert all(torch.equal(functional[key], alone[key]) for key in alone)


def test_a_coarse_label_is_right_anywhere_under_its_node() -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": {"car": None, "truck": None}})
    vehicle = h.label_id("vehicle")
    logits = 5.0 * torch.eye(3).T.reshape(1, 3, 3, 1)  # sky, car, truck: sure
    target = torch.full((1, 3, 1), vehicle)
    assert HierarchicalPixelAccuracy(h)(logits, target).tolist()[0] == pytest.approx(2 / 3)
    assert torch.isnan(HierarchicalPixelAccuracy(h)(logits, target)[1])  # nothing known there
    severity = MistakeSeverity(h)(logits, target)  # only sky is a mistake: 1 level, serious
    assert severity == {"severity": torch.tensor(1.0), "serious": torch.tensor(1.0)}


@pytest.mark.parametrize("ignore", [IGNORE, None])
@pytest.mark.parametrize("method", METHODS)
def test_all_in_one_equals_each_metric_alone_on_coarse_labels(
    tree: Hierarchy, method: DecodeMethod, ignore: int | None
) -> None:
    pairs = batches(tree)
    if ignore is None:
        for _, target in pairs:
            target[target == IGNORE] = 0
    alone = {
        "miou": HierarchicalJaccardIndex(tree, ignore, method),
        "acc": HierarchicalPixelAccuracy(tree, ignore, method),
        "severity": MistakeSeverity(tree, ignore, method),
        "ece": HierarchicalCalibrationError(tree, ignore),
        "inconsistency": HierarchicalConsistency(tree, ignore, method),
    }
    together = HierarchicalSegmentationMetrics(tree, ignore, method)
    for logits, target in pairs:
        together.update(logits, target)
        for metric in alone.values():
            metric.update(logits, target)
    got = together.compute()
    for name, metric in alone.items():
        value = metric.compute()
        for key, want in (value if isinstance(value, dict) else {name: value}).items():
            assert torch.equal(got[key], want), key
