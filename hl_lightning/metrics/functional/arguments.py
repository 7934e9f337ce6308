"""The arguments of the metrics and their one check, :func:`_validate_args`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from hl_lightning.decode import check_method, check_threshold, check_thresholds
from hl_lightning.hierarchy import Hierarchy, check_ignore_index

__all__ = ["AVERAGES", "NORMS", "Average", "Norm"]

#: How the Jaccard index reduces a level's IoUs: their mean, or none (one per group).
Average = Literal["macro", "none"]
AVERAGES: tuple[Average, ...] = get_args(Average)
#: How a level's bins combine into one calibration error, as torchmetrics' ``norm``.
Norm = Literal["l1", "l2", "max"]
NORMS: tuple[Norm, ...] = get_args(Norm)


def _validate_args(
    hierarchy: Hierarchy,
    ignore_index: int | None,
    decode: str | None = None,
    average: str | None = None,
    n_bins: int | None = None,
    norm: str | None = None,
    threshold: float | None = None,
    thresholds: int | Sequence[float] | None = None,
) -> None:
    """Raise a ValueError naming the first argument of a metric that cannot be used.

    ``hierarchy`` and ``ignore_index`` are always checked (``ignore_index`` may be no node
    id: a leaf, or an internal node as a coarse label); ``decode``, ``average``, ``n_bins``,
    ``norm``, ``threshold`` and ``thresholds`` where given (None: the metric has no such
    argument).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> _validate_args(h, 255, decode="marginal", n_bins=15)
        >>> _validate_args(h, 1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: ignore_index=1 is the label id of leaf 'car'; use a value outside the ...
        >>> _validate_args(h, 3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: ignore_index=3 is the label id of internal node 'vehicle'; use a value ...
    """
    if not isinstance(hierarchy, Hierarchy):
        raise ValueError(f"hierarchy must be a Hierarchy, got {type(hierarchy).__name__}")
    check_ignore_index(hierarchy, ignore_index, optional=True)
    if decode is not None:
        check_method(decode)
    if average is not None and average not in AVERAGES:
        valid = ", ".join(repr(a) for a in AVERAGES)
        raise ValueError(f"unknown average {average!r}; valid values are {valid}")
    if n_bins is not None and (
        isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1
    ):
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    if norm is not None and norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if threshold is not None:
        check_threshold(threshold)
    if thresholds is not None:
        check_thresholds(thresholds)
