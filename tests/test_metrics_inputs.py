"""Tests for what every metric shares: the argument check (metrics/functional/arguments.py)
and the input checks of an update (metrics/functional/batch.py), in the Metric classes
and the functional forms alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from _metric_batches import IGNORE, NOISY_TREE, make_batch, noisy_batch
from torchmetrics import Metric

from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.metrics import (
    HierarchicalCalibrationError,
    HierarchicalConsistency,
    HierarchicalJaccardIndex,
    HierarchicalPixelAccuracy,
    MistakeSeverity,
    hierarchical_calibration_error,
    hierarchical_consistency,
    hierarchical_jaccard_index,
    hierarchical_pixel_accuracy,
    mistake_severity,
)

METRICS = [HierarchicalJaccardIndex, HierarchicalPixelAccuracy, MistakeSeverity]
#: Each functional form and its Metric class.
FUNCTIONAL: list[tuple[Callable[..., Any], type[Metric]]] = [
    (hierarchical_jaccard_index, HierarchicalJaccardIndex),
    (hierarchical_pixel_accuracy, HierarchicalPixelAccuracy),
    (mistake_severity, MistakeSeverity),
    (hierarchical_calibration_error, HierarchicalCalibrationError),
    (hierarchical_consistency, HierarchicalConsistency),
]
FUNCTIONAL_IDS = [function.__name__ for function, _ in FUNCTIONAL]


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
@pytest.mark.parametrize("bad", ["N", -1, 254])
def test_out_of_range_labels_are_named(metric_class: type, bad: int | str) -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    n = tree.num_nodes  # ids 11..n-1 are the internal nodes: coarse labels, accepted
    bad = n if bad == "N" else bad
    metric = metric_class(tree)
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    target[0, 0, 0], target[1, 1, 1], target[1, 2, 2] = bad, IGNORE, n - 1
    message = (
        rf"label ids \[{bad}\] outside \[0, {n}\) that are not ignore_index={IGNORE}: "
        rf"valid are leaf ids 0\.\.10, coarse ids 11\.\.{n - 1}$"
    )
    with pytest.raises(ValueError, match=message):
        metric.update(torch.randn(2, 11, 4, 4), target)


@pytest.mark.parametrize("metric_class", METRICS)
def test_every_node_id_is_a_label(metric_class: type) -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    target = torch.arange(tree.num_nodes).view(1, 1, -1)
    metric_class(tree).update(torch.randn(1, 11, 1, tree.num_nodes), target)


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
        HierarchicalJaccardIndex(tree, decode="argmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid values are 'macro', 'none'"):
        HierarchicalJaccardIndex(tree, average="micro")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ignore_index=3 is the label id of leaf"):
        MistakeSeverity(tree, ignore_index=3)
    internal = tree.num_nodes - 1  # the last internal node: a coarse label
    message = (
        rf"ignore_index={internal} is the label id of internal node "
        rf"'{tree.node_names[internal]}'; use a value outside the node ids 0\.\.{internal}"
    )
    for metric_class in (*METRICS, HierarchicalCalibrationError, HierarchicalConsistency):
        with pytest.raises(ValueError, match=message):
            metric_class(tree, ignore_index=internal)
    with pytest.raises(ValueError, match="hierarchy must be a Hierarchy"):
        HierarchicalPixelAccuracy(["a", "b"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_bins": 0}, "n_bins must be a positive int"), ({"norm": "l3"}, "norm must be one of")],
)
def test_bad_calibration_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HierarchicalCalibrationError(NOISY_TREE, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        hierarchical_calibration_error(*noisy_batch(), NOISY_TREE, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    [
        (hierarchical_jaccard_index, {"decode": "argmax"}, "valid methods are 'marginal'"),
        (hierarchical_jaccard_index, {"average": "micro"}, "valid values are 'macro', 'none'"),
        (hierarchical_pixel_accuracy, {"decode": "argmax"}, "valid methods are 'marginal'"),
        (mistake_severity, {"ignore_index": 3}, "ignore_index=3 is the label id of leaf"),
        (hierarchical_consistency, {"ignore_index": 2.5}, "ignore_index must be an int or None"),
    ],
)
def test_functional_forms_name_bad_arguments(
    function: Callable[..., Any], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        function(*noisy_batch(), NOISY_TREE, **kwargs)
    with pytest.raises(ValueError, match="hierarchy must be a Hierarchy"):
        function(*noisy_batch(), ["a", "b"])


def test_validate_args_false_skips_only_the_value_check() -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    metric = HierarchicalJaccardIndex(tree, validate_args=False)
    logits, target = make_batch(tree)
    metric.update(logits, target)
    torch.testing.assert_close(metric.compute(), HierarchicalJaccardIndex(tree)(logits, target))
    with pytest.raises(ValueError, match="channels"):
        metric.update(torch.randn(2, 5, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))


def test_non_finite_logits_are_refused_and_empty_batches_count_nothing() -> None:
    logits, target = noisy_batch(7)
    logits[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"HierarchicalCalibrationError.update: .* 1 non-finite"):
        HierarchicalCalibrationError(NOISY_TREE).update(logits, target)
    metric = HierarchicalConsistency(NOISY_TREE)
    shape = (0, NOISY_TREE.num_leaves, 4, 4)
    metric.update(torch.zeros(shape), torch.zeros(0, 4, 4, dtype=torch.long))
    assert metric.compute() == 0


@pytest.mark.parametrize(("function", "metric_class"), FUNCTIONAL, ids=FUNCTIONAL_IDS)
def test_functional_forms_refuse_non_finite_logits_naming_themselves(
    function: Callable[..., Any], metric_class: type[Metric]
) -> None:
    logits, target = noisy_batch(7)
    logits[1, 2, 3, 4] = float("-inf")
    with pytest.raises(ValueError, match=rf"^{function.__name__}: the logits have 1 non-finite"):
        function(logits, target, NOISY_TREE)
    with pytest.raises(ValueError, match="logits have 5 channels but the hierarchy has 12 leaves"):
        function(logits[:, :5], target, NOISY_TREE)


@pytest.mark.parametrize("shape", [(0, 4, 5), (2, 0, 5), (2, 4, 0)])
@pytest.mark.parametrize(("function", "metric_class"), FUNCTIONAL, ids=FUNCTIONAL_IDS)
def test_functional_forms_of_an_empty_batch_equal_a_metric_that_counted_nothing(
    function: Callable[..., Any], metric_class: type[Metric], shape: tuple[int, ...]
) -> None:
    logits = torch.randn(shape[0], NOISY_TREE.num_leaves, *shape[1:])
    target = torch.zeros(shape, dtype=torch.long)
    metric = metric_class(NOISY_TREE)
    metric.update(logits, target)  # counts nothing
    want = metric.compute()  # NaN mIoU and accuracy, 0 severity, ...
    assert str(function(logits, target, NOISY_TREE)) == str(want)


@pytest.mark.parametrize(("function", "metric_class"), FUNCTIONAL, ids=FUNCTIONAL_IDS)
def test_functional_forms_call_the_core_without_building_a_metric(
    monkeypatch: pytest.MonkeyPatch, function: Callable[..., Any], metric_class: type[Metric]
) -> None:
    logits, target = noisy_batch(10)
    want = metric_class(NOISY_TREE)(logits, target)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a functional form built a Metric")

    monkeypatch.setattr(Metric, "__init__", refuse)
    assert str(function(logits, target, NOISY_TREE)) == str(want)


def test_all_ignored_gives_nan_iou_and_zero_severity() -> None:
    tree = random_hierarchy(11, 4, shuffle_leaves=True)
    logits, target = torch.randn(1, 11, 3, 3), torch.full((1, 3, 3), IGNORE)
    assert torch.isnan(HierarchicalJaccardIndex(tree)(logits, target)).all()
    assert torch.isnan(HierarchicalPixelAccuracy(tree)(logits, target)).all()
    assert MistakeSeverity(tree)(logits, target)["severity"].item() == 0.0
