"""Tests for hl_lightning/metrics/confusion.py and functional/confusion.py: per-level IoU and
pixel accuracy from per-level confusion matrices."""

from __future__ import annotations

import pickle

import pytest
import torch
from _metric_batches import IGNORE, NOISY_TREE, make_batch, noisy_batch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from hl_lightning import Hierarchy, hierarchical_jaccard_index, hierarchical_pixel_accuracy
from hl_lightning.decode import METHODS, DecodeMethod, decode_levels
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.metrics import HierarchicalJaccardIndex, HierarchicalPixelAccuracy
from hl_lightning.metrics import confusion as confusion_module
from hl_lightning.metrics.functional.arguments import AVERAGES


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
            pred = decode_levels(logits, hierarchy, method)[d]
            mapped = hierarchy.labels_at_level(target, d, ignore_index=IGNORE)
            ref_macro.update(pred, mapped)
            ref_none.update(pred, mapped)
        torch.testing.assert_close(macro[d], ref_macro.compute(), msg=f"level {d}")
        torch.testing.assert_close(groups[d], ref_none.compute(), msg=f"level {d}")


@pytest.mark.parametrize("method", METHODS)
def test_every_level_equals_multiclass_jaccard_on_mapped_labels(
    random_tree: Hierarchy, method: str
) -> None:
    assert_matches_multiclass_jaccard(random_tree, method)


@pytest.mark.parametrize("method", METHODS)
def test_seed_trees_equal_multiclass_jaccard_on_mapped_labels(
    seed_tree: Hierarchy, method: str
) -> None:
    assert_matches_multiclass_jaccard(seed_tree, method)


@pytest.mark.parametrize("method", ["leaf", "marginal"])
def test_leaf_level_equals_flat_multiclass_jaccard(random_tree: Hierarchy, method: str) -> None:
    tree = random_tree
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
def test_pixel_accuracy_equals_micro_accuracy_per_level(
    random_tree: Hierarchy, method: str
) -> None:
    tree = random_tree
    logits, target = make_batch(tree)
    got = HierarchicalPixelAccuracy(tree, decode=method)(logits, target)
    for d, pred in enumerate(decode_levels(logits, tree, method)):
        ref = MulticlassAccuracy(tree.num_groups(d), average="micro", ignore_index=IGNORE)
        mapped = tree.labels_at_level(target, d, ignore_index=IGNORE)
        torch.testing.assert_close(got[d], ref(pred, mapped))


def test_leaf_decoding_keeps_one_leaf_matrix_and_sums_its_blocks(random_tree: Hierarchy) -> None:
    tree = random_tree
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


def test_forward_returns_the_batch_value_and_compute_the_running_one(
    random_tree: Hierarchy,
) -> None:
    tree = random_tree
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
    original = confusion_module._hierarchical_confusion_matrix_update

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(confusion_module, "_hierarchical_confusion_matrix_update", counting)
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


def test_functional_iou_equals_the_metric() -> None:
    logits, target = noisy_batch(6)
    torch.testing.assert_close(
        hierarchical_jaccard_index(logits, target, NOISY_TREE),
        HierarchicalJaccardIndex(NOISY_TREE)(logits, target),
    )


@pytest.mark.parametrize("ignore", [IGNORE, None])
@pytest.mark.parametrize("method", METHODS)
def test_functional_forms_equal_the_metrics_bit_for_bit(
    random_tree: Hierarchy, method: DecodeMethod, ignore: int | None
) -> None:
    tree = random_tree
    logits, target = make_batch(tree, batch=3, size=10)
    if ignore is None:
        target[target == IGNORE] = 0
    for average in AVERAGES:
        want = HierarchicalJaccardIndex(tree, ignore, method, average)(logits, target)
        got = hierarchical_jaccard_index(logits, target, tree, ignore, method, average)
        if average == "none":
            assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
        else:
            assert torch.equal(got, want)
    want = HierarchicalPixelAccuracy(tree, ignore, method)(logits, target)
    assert torch.equal(hierarchical_pixel_accuracy(logits, target, tree, ignore, method), want)
