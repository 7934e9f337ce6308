"""Tests for hl_lightning/metrics.py: per-level IoU and accuracy, mistake severity."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from hl_lightning import Hierarchy
from hl_lightning import decode as decode_module
from hl_lightning import metrics as metrics_module
from hl_lightning.decode import METHODS, decode
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.metrics import (
    HierarchicalJaccardIndex,
    HierarchicalPixelAccuracy,
    HierarchicalSegmentationMetrics,
    MistakeSeverity,
)
from hl_lightning.reliability import HierarchicalCalibrationError, HierarchicalConsistency

IGNORE = 255


def make_batch(
    hierarchy: Hierarchy, batch: int = 2, size: int = 12, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return logits (B, K, size, size) loosely tied to a target (B, size, size), 10% ignored."""
    gen = torch.Generator().manual_seed(seed)
    k = hierarchy.num_leaves
    target = torch.randint(0, k, (batch, size, size), generator=gen)
    hint = torch.where(torch.rand(target.shape, generator=gen) < 0.6, target, 0)
    logits = torch.randn(batch, k, size, size, generator=gen)
    logits += 2.5 * torch.nn.functional.one_hot(hint, k).permute(0, 3, 1, 2)
    target[torch.rand(target.shape, generator=gen) < 0.1] = IGNORE
    return logits, target


@pytest.fixture(params=[(5, 2), (11, 4), (30, 3), (40, 5)], ids=lambda p: f"K{p[0]}-D{p[1]}")
def tree(request: pytest.FixtureRequest) -> Hierarchy:
    num_leaves, num_levels = request.param
    return random_hierarchy(num_leaves, num_levels, seed=num_leaves, shuffle_leaves=True)


@pytest.fixture(params=["faces_tree.txt", "mapillary_tree.txt"])
def seed_tree(request: pytest.FixtureRequest, paper_trees: Path) -> Hierarchy:
    return Hierarchy.from_file(paper_trees / request.param)


def assert_matches_multiclass_jaccard(hierarchy: Hierarchy, method: str) -> None:
    """Check every level against MulticlassJaccardIndex on labels mapped to that level."""
    batches = [make_batch(hierarchy, seed=s) for s in range(2)]
    ours = HierarchicalJaccardIndex(hierarchy, decode=method)
    per_group = HierarchicalJaccardIndex(hierarchy, decode=method, average="none")
    for logits, target in batches:
        ours.update(logits, target)
        per_group.update(logits, target)
    macro, groups = ours.compute(), per_group.compute()
    assert macro.shape == (hierarchy.num_levels,) and len(groups) == hierarchy.num_levels
    for d in range(hierarchy.num_levels):
        g = hierarchy.num_groups(d)
        ref_macro = MulticlassJaccardIndex(g, ignore_index=IGNORE)
        ref_none = MulticlassJaccardIndex(g, ignore_index=IGNORE, average="none")
        for logits, target in batches:
            pred = decode(logits, hierarchy, method)[d]
            mapped = hierarchy.labels_at_level(target, d, ignore_index=IGNORE)
            ref_macro.update(pred, mapped)
            ref_none.update(pred, mapped)
        torch.testing.assert_close(macro[d], ref_macro.compute(), msg=f"level {d}")
        torch.testing.assert_close(groups[d], ref_none.compute(), msg=f"level {d}")


@pytest.mark.parametrize("method", METHODS)
def test_every_level_equals_multiclass_jaccard_on_mapped_labels(
    tree: Hierarchy, method: str
) -> None:
    assert_matches_multiclass_jaccard(tree, method)


@pytest.mark.parametrize("method", METHODS)
def test_seed_trees_equal_multiclass_jaccard_on_mapped_labels(
    seed_tree: Hierarchy, method: str
) -> None:
    assert_matches_multiclass_jaccard(seed_tree, method)


@pytest.mark.parametrize("method", ["leaf", "marginal"])
def test_leaf_level_equals_flat_multiclass_jaccard(tree: Hierarchy, method: str) -> None:
    k = tree.num_leaves
    flat_macro = MulticlassJaccardIndex(k, ignore_index=IGNORE)
    flat_none = MulticlassJaccardIndex(k, ignore_index=IGNORE, average="none")
    ours = HierarchicalJaccardIndex(tree, decode=method)
    per_group = HierarchicalJaccardIndex(tree, decode=method, average="none")
    for seed in range(2):
        logits, target = make_batch(tree, seed=seed)
        for metric in (flat_macro, flat_none, ours, per_group):
            metric.update(logits, target)
    torch.testing.assert_close(ours.compute()[-1], flat_macro.compute())
    leaf_group = tree.level_index(-1)  # leaf k is group leaf_group[k] at the leaf level
    torch.testing.assert_close(per_group.compute()[-1][leaf_group], flat_none.compute())


def test_seed_tree_leaf_level_equals_flat_multiclass_jaccard(seed_tree: Hierarchy) -> None:
    logits, target = make_batch(seed_tree, batch=3, size=16)
    flat = MulticlassJaccardIndex(seed_tree.num_leaves, ignore_index=IGNORE)
    torch.testing.assert_close(
        HierarchicalJaccardIndex(seed_tree)(logits, target)[-1], flat(logits, target)
    )


@pytest.mark.parametrize("method", METHODS)
def test_pixel_accuracy_equals_micro_accuracy_per_level(tree: Hierarchy, method: str) -> None:
    logits, target = make_batch(tree)
    got = HierarchicalPixelAccuracy(tree, decode=method)(logits, target)
    for d, pred in enumerate(decode(logits, tree, method)):
        ref = MulticlassAccuracy(tree.num_groups(d), average="micro", ignore_index=IGNORE)
        mapped = tree.labels_at_level(target, d, ignore_index=IGNORE)
        torch.testing.assert_close(got[d], ref(pred, mapped))


def test_leaf_decoding_keeps_one_leaf_matrix_and_sums_its_blocks(tree: Hierarchy) -> None:
    k = tree.num_leaves
    metric = HierarchicalJaccardIndex(tree, decode="leaf")
    assert metric.confmat.shape == (k * k,)
    logits, target = make_batch(tree)
    metric.update(logits, target)
    leaf = logits.argmax(1)
    keep = target != IGNORE
    for d, confmat in enumerate(metric.confusion_matrices()):
        g = tree.num_groups(d)
        truth = tree.level_index(d)[target[keep]]
        pred = tree.level_index(d)[leaf[keep]]
        assert torch.equal(confmat, torch.bincount(truth * g + pred, minlength=g * g).view(g, g))


def test_forward_returns_the_batch_value_and_compute_the_running_one(tree: Hierarchy) -> None:
    metric = HierarchicalJaccardIndex(tree)
    batches = [make_batch(tree, seed=s) for s in range(3)]
    for logits, target in batches:
        torch.testing.assert_close(
            metric(logits, target), HierarchicalJaccardIndex(tree)(logits, target)
        )
    everything = HierarchicalJaccardIndex(tree)
    everything.update(torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))
    torch.testing.assert_close(metric.compute(), everything.compute())


def test_collection_with_compute_groups_counts_each_batch_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tree = random_hierarchy(11, 4, seed=2, shuffle_leaves=True)
    calls = []
    original = metrics_module._hierarchical_confusion_matrix_update

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(metrics_module, "_hierarchical_confusion_matrix_update", counting)
    collection = MetricCollection(
        {"iou": HierarchicalJaccardIndex(tree), "acc": HierarchicalPixelAccuracy(tree)},
        compute_groups=True,
    )
    batches = [make_batch(tree, seed=s) for s in range(4)]
    for logits, target in batches:
        collection.update(logits, target)
    assert [sorted(group) for group in collection.compute_groups.values()] == [["acc", "iou"]]
    assert len(calls) == 2 + 3  # the first update checks the groups, then one per batch
    members = dict(collection.items(copy_state=False))
    assert members["iou"].confmat is members["acc"].confmat
    results = collection.compute()
    alone_iou, alone_acc = HierarchicalJaccardIndex(tree), HierarchicalPixelAccuracy(tree)
    for logits, target in batches:
        alone_iou.update(logits, target)
        alone_acc.update(logits, target)
    torch.testing.assert_close(results["iou"], alone_iou.compute())
    torch.testing.assert_close(results["acc"], alone_acc.compute())


def test_different_decoders_are_not_grouped() -> None:
    tree = random_hierarchy(11, 4, seed=2, shuffle_leaves=True)
    collection = MetricCollection(
        {
            "iou": HierarchicalJaccardIndex(tree, decode="marginal"),
            "acc": HierarchicalPixelAccuracy(tree, decode="top_down"),
        },
        compute_groups=True,
    )
    logits, target = make_batch(tree, size=24)
    logits = 0.3 * torch.randn_like(logits)  # so that the decoders disagree somewhere
    collection.update(logits, target)
    assert len(collection.compute_groups) == 2


def separate_metrics(
    hierarchy: Hierarchy, ignore: int | None, method: str, n_bins: int = 15
) -> dict[str, Metric]:
    """Return the standalone metrics whose values HierarchicalSegmentationMetrics returns."""
    return {
        "miou": HierarchicalJaccardIndex(hierarchy, ignore, decode=method),  # type: ignore[arg-type]
        "acc": HierarchicalPixelAccuracy(hierarchy, ignore, decode=method),  # type: ignore[arg-type]
        "severity": MistakeSeverity(hierarchy, ignore),
        "ece": HierarchicalCalibrationError(hierarchy, ignore, n_bins=n_bins),
        "inconsistency": HierarchicalConsistency(hierarchy, ignore, decode=method),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("ignore", [IGNORE, None])
@pytest.mark.parametrize("method", METHODS)
def test_all_in_one_equals_each_metric_alone(
    monkeypatch: pytest.MonkeyPatch, tree: Hierarchy, method: str, ignore: int | None
) -> None:
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
    monkeypatch.setattr(decode_module, "_BLOCK", 500)  # many CPU blocks for the shared pass
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
        original = getattr(metrics_module, name)

        def counting(*args: object, _name: str = name, _f: object = original) -> object:
            calls[_name] += 1
            return _f(*args)  # type: ignore[operator]

        monkeypatch.setattr(metrics_module, name, counting)
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
    monkeypatch.setattr(decode_module, "_BLOCK", 1000)
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


def test_mistake_severity_matches_pixel_by_pixel_reference(tree: Hierarchy) -> None:
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


def test_all_ignored_gives_nan_iou_and_zero_severity() -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    logits, target = torch.randn(1, 11, 3, 3), torch.full((1, 3, 3), IGNORE)
    assert torch.isnan(HierarchicalJaccardIndex(tree)(logits, target)).all()
    assert torch.isnan(HierarchicalPixelAccuracy(tree)(logits, target)).all()
    assert MistakeSeverity(tree)(logits, target)["severity"].item() == 0.0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_any_integer_target_dtype_and_no_ignore_index(dtype: torch.dtype) -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    logits, target = make_batch(tree)
    want = HierarchicalJaccardIndex(tree)(logits, target)
    assert torch.equal(HierarchicalJaccardIndex(tree)(logits, target.to(dtype)), want)
    target[target == IGNORE] = 0
    got = HierarchicalJaccardIndex(tree, ignore_index=None)(logits, target.to(dtype))
    assert torch.equal(got, HierarchicalJaccardIndex(tree)(logits, target))


def test_metrics_clone_and_pickle() -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    metric = HierarchicalJaccardIndex(tree, decode="top_down")
    metric.update(*make_batch(tree))
    for copy in (metric.clone(), pickle.loads(pickle.dumps(metric))):
        assert torch.equal(copy.compute(), metric.compute())


# ---------------------------------------------------------------------- bad input
METRICS = [HierarchicalJaccardIndex, HierarchicalPixelAccuracy, MistakeSeverity]


@pytest.mark.parametrize("metric_class", METRICS)
def test_channel_mismatch_is_named(metric_class: type) -> None:
    metric = metric_class(random_hierarchy(11, 4, shuffle_leaves=True))
    with pytest.raises(ValueError, match="logits have 5 channels but the hierarchy has 11 leaves"):
        metric.update(torch.randn(2, 5, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))


@pytest.mark.parametrize("metric_class", METRICS)
def test_spatial_mismatch_is_named(metric_class: type) -> None:
    metric = metric_class(random_hierarchy(11, 4, shuffle_leaves=True))
    with pytest.raises(ValueError, match=r"target has shape \(2, 4, 5\).*\(2, 4, 4\)"):
        metric.update(torch.randn(2, 11, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long))


@pytest.mark.parametrize("metric_class", METRICS)
@pytest.mark.parametrize("bad", [11, -1, 254])
def test_out_of_range_labels_are_named(metric_class: type, bad: int) -> None:
    metric = metric_class(random_hierarchy(11, 4, shuffle_leaves=True))
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, 0, 0], target[1, 1, 1] = bad, IGNORE
    message = rf"label ids \[{bad}\] outside \[0, 11\) that are not ignore_index={IGNORE}"
    with pytest.raises(ValueError, match=message):
        metric.update(torch.randn(2, 11, 4, 4), target)


@pytest.mark.parametrize("metric_class", METRICS)
def test_wrong_dtypes_are_named(metric_class: type) -> None:
    metric = metric_class(random_hierarchy(11, 4, shuffle_leaves=True))
    with pytest.raises(ValueError, match="target must be an integer tensor"):
        metric.update(torch.randn(2, 11, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="logits must be a floating point tensor"):
        metric.update(torch.zeros(2, 11, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4).long())


def test_bad_arguments_are_named() -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    with pytest.raises(ValueError, match="valid methods are 'marginal', 'leaf', 'top_down'"):
        HierarchicalJaccardIndex(tree, decode="argmax")
    with pytest.raises(ValueError, match="valid values are 'macro', 'none'"):
        HierarchicalJaccardIndex(tree, average="micro")
    with pytest.raises(ValueError, match="ignore_index=3 is the label id of leaf"):
        MistakeSeverity(tree, ignore_index=3)
    with pytest.raises(ValueError, match="hierarchy must be a Hierarchy"):
        HierarchicalPixelAccuracy(["a", "b"])  # type: ignore[arg-type]


def test_validate_args_false_skips_only_the_value_check() -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    metric = HierarchicalJaccardIndex(tree, validate_args=False)
    logits, target = make_batch(tree)
    metric.update(logits, target)
    torch.testing.assert_close(metric.compute(), HierarchicalJaccardIndex(tree)(logits, target))
    with pytest.raises(ValueError, match="channels"):
        metric.update(torch.randn(2, 5, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
