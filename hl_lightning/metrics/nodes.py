"""The Metric classes of node predictions: hierarchical precision, recall and F1 at one
threshold, and the operating curve along a grid of thresholds, with its plot."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hl_lightning.atomic import atomic_write
from hl_lightning.decode import check_thresholds
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.base import _HierarchicalMetric
from hl_lightning.metrics.functional.arguments import _validate_args
from hl_lightning.metrics.functional.nodes import (
    DEFAULT_THRESHOLD,
    DEFAULT_THRESHOLDS,
    OperatingCurve,
    _node_claims_update,
    _operating_curve_compute,
    _precision_recall,
)

__all__ = [
    "HierarchicalOperatingCurve",
    "HierarchicalPrecisionRecall",
    "plot_operating_curve",
    "save_operating_curve",
]


class _NodeClaims(_HierarchicalMetric):
    """The summed claims, correct claims and known levels over a grid of thresholds.

    State ``counts`` (T + 1, 2) long, see
    :func:`~hl_lightning.metrics.functional.nodes._node_claims_update`: sums, so DDP sync
    is exact.
    """

    counts: Tensor
    thresholds: Tensor

    def __init__(
        self,
        hierarchy: Hierarchy,
        ignore_index: int | None,
        grid: Sequence[float],
        validate_args: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(hierarchy, ignore_index, validate_args, **kwargs)
        self.register_buffer("thresholds", torch.tensor(grid, dtype=torch.float64), False)
        zeros = torch.zeros(len(grid) + 1, 2, dtype=torch.long)
        self.add_state("counts", zeros, dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Count one batch: logits (B, K, *S) float, target (B, *S) label ids (leaves or
        coarse labels)."""
        batch = self._batch(logits, target, marginal=True)
        if batch is not None:
            self.counts += _node_claims_update(*batch, self.thresholds)


class HierarchicalPrecisionRecall(_NodeClaims):
    """Hierarchical precision, recall and F1 of the node predictions at ``threshold``.

    The predictions are :func:`~hl_lightning.decode.predict_nodes` at ``threshold`` (in
    [0.5, 1)): per pixel the deepest node whose probability reaches it. A prediction at
    node ``n`` claims its group at every level down to ``n`` (a leaf every level); summed
    over pixels (``ignore_index`` not counted), ``hp`` = correct claims / claims, ``hr`` =
    correct claims / the target's known levels (all levels for a leaf, down to its node
    for a coarse label, whose claims below its node are not counted), ``hf`` = 2 hp hr /
    (hp + hr), each 0 where its denominator is 0. ``compute()`` returns
    ``{"hp", "hr", "hf"}``. Functional form:
    :func:`~hl_lightning.metrics.hierarchical_precision_recall`.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 2.0, 0.0]]])
        >>> target = torch.tensor([[0, 2, 1]])  # predictions at 0.6: sky, car, vehicle
        >>> HierarchicalPrecisionRecall(h, threshold=0.6)(logits, target)
        {'hp': tensor(0.8000), 'hr': tensor(0.6667), 'hf': tensor(0.7273)}
    """

    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        hierarchy: Hierarchy,
        threshold: float = DEFAULT_THRESHOLD,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index, threshold=threshold)
        super().__init__(hierarchy, ignore_index, (float(threshold),), validate_args, **kwargs)
        self.threshold = float(threshold)

    def compute(self) -> dict[str, Tensor]:
        """Return {"hp": Tensor (), "hr": Tensor (), "hf": Tensor ()}."""
        return {name: value[0] for name, value in _precision_recall(self.counts).items()}


class HierarchicalOperatingCurve(_NodeClaims):
    """The operating curve of node predictions: hP and hR at every threshold of a grid.

    As :class:`HierarchicalPrecisionRecall` at each threshold of ``thresholds`` (a count
    of evenly spaced ones from 0.5: ``0.5 + i / (2 T)``, the default 50 gives 0.50, 0.51,
    ..., 0.99; or increasing values in [0.5, 1)), accumulated in one pass per batch (a
    (T + 1, 2) sum state). ``compute()`` returns an
    :class:`~hl_lightning.metrics.functional.nodes.OperatingCurve` (``thresholds``, ``hp``,
    ``hr``, ``hf`` (T,) and ``auc``, the area under hP against hR, extended to recall 0 at
    the precision of the coarsest point); :meth:`plot` draws it. Functional form:
    :func:`~hl_lightning.metrics.hierarchical_operating_curve`.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> logits = torch.tensor([[[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 2.0, 0.0]]])
        >>> curve = HierarchicalOperatingCurve(h, thresholds=[0.6, 0.9])
        >>> curve.update(logits, torch.tensor([[0, 2, 1]]))
        >>> curve.compute().hr
        tensor([0.6667, 0.5000])
    """

    higher_is_better = None
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        hierarchy: Hierarchy,
        thresholds: int | Sequence[float] = DEFAULT_THRESHOLDS,
        ignore_index: int | None = 255,
        validate_args: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate_args(hierarchy, ignore_index, thresholds=thresholds)
        super().__init__(
            hierarchy, ignore_index, check_thresholds(thresholds), validate_args, **kwargs
        )

    def compute(self) -> OperatingCurve:
        """Return the :class:`~hl_lightning.metrics.functional.nodes.OperatingCurve`."""
        return _operating_curve_compute(self.counts, self.thresholds.float())

    def plot(  # type: ignore[override]
        self, val: OperatingCurve | None = None, ax: Any = None, label: str | None = None
    ) -> tuple[Any, Any]:
        """Draw hP against hR (``val``, or the computed curve) on ``ax`` (a new figure if
        None); return ``(figure, axes)``. Needs matplotlib (``pip install hl_lightning[plots]``)."""
        return plot_operating_curve(self.compute() if val is None else val, ax, label)


def plot_operating_curve(
    curve: OperatingCurve, ax: Any = None, label: str | None = None
) -> tuple[Any, Any]:
    """Draw an operating curve, hP against hR, on ``ax`` (a new figure if None); return
    ``(figure, axes)``. Call it again with the same ``ax`` and another ``label`` to compare
    models. Needs matplotlib (``pip install hl_lightning[plots]``).

    Example (not run: it needs matplotlib)::

        fig, ax = plot_operating_curve(curve_flat, label="flat")
        plot_operating_curve(curve_hierarchical, ax, label="hierarchical")
        fig.savefig("curves.png")
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting the operating curve needs matplotlib: pip install hl_lightning[plots]"
        ) from error
    if ax is None:
        figure, ax = plt.subplots(figsize=(5, 4))
    else:
        figure = ax.figure
    text = f"{label}, " if label else ""
    ax.plot(curve.hr.tolist(), curve.hp.tolist(), marker=".", label=f"{text}AUC {curve.auc:.3f}")
    ax.set_xlabel("hierarchical recall")
    ax.set_ylabel("hierarchical precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(
        f"operating curve, thresholds {curve.thresholds[0]:.2f}..{curve.thresholds[-1]:.2f}"
    )
    return figure, ax


def save_operating_curve(curve: OperatingCurve, path: str | Path) -> Path:
    """Write the curve's points to a CSV file (``threshold,hp,hr,hf``, one row per
    threshold), whole or not at all (:func:`hl_lightning.atomic.atomic_write`); return its
    path.

    Example:
        >>> import tempfile
        >>> curve = OperatingCurve(*torch.tensor([[0.5, 0.9], [0.8, 1.0], [0.6, 0.5], [0.7, 0.6]]),
        ...                        torch.tensor(0.6))
        >>> path = save_operating_curve(curve, Path(tempfile.mkdtemp()) / "curve.csv")
        >>> print(path.read_text().strip())
        threshold,hp,hr,hf
        0.5,0.8,0.6,0.7
        0.9,1,0.5,0.6
    """
    path = Path(path)
    rows = zip(curve.thresholds, curve.hp, curve.hr, curve.hf, strict=True)
    with atomic_write(path, newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["threshold", "hp", "hr", "hf"])
        writer.writerows([f"{float(v):.6g}" for v in row] for row in rows)
    return path
