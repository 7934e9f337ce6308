"""hl-compare's figures: per-level curves per epoch, a block of panels per class tree.

A panel per (tree, stage, level): ``<stage>/<metric>/<level>`` per epoch, a line per
configuration on that tree (the mean over its seeds) in a band from the seeds' minimum to
maximum. Runs on different trees never share a panel, even where level names agree: each
tree has its own block of rows, titled with the tree, its levels coarse to fine. A single
epoch is drawn as a large marker with a bar from the seeds' minimum to maximum, on an axis
one epoch wide. A configuration keeps its colour in every panel.
"""

from __future__ import annotations

import io
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hl_lightning.cli._matplotlib import agg_figure
from hl_lightning.cli.compare.configurations import Configuration

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["curves_figure", "png_bytes"]

STAGE_TITLES = {"train": "training", "val": "validation", "test": "test"}


def _draw(
    axes: Axes, configurations: Sequence[Configuration], key: str, colors: dict[str, str]
) -> list[int]:
    """Draw ``key`` per epoch in ``axes``, a line per configuration in its colour (by label);
    return the epochs drawn."""
    drawn: list[int] = []
    for configuration in configurations:
        by_epoch: dict[int, list[float]] = {}
        for run in configuration.runs:
            for epoch, value in zip(*run.series(key), strict=True):
                by_epoch.setdefault(epoch, []).append(value)
        epochs = sorted(by_epoch)
        n = len(configuration.runs)
        means = [statistics.fmean(by_epoch[epoch]) for epoch in epochs]
        color = colors[configuration.label]
        axes.plot(
            epochs,
            means,
            color=color,
            marker="o" if len(epochs) <= 12 else None,
            markersize=7 if len(epochs) == 1 else 3,
            label=f"{configuration.label} ({n} seed{'s' if n > 1 else ''})",
        )
        low = [min(by_epoch[epoch]) for epoch in epochs]
        high = [max(by_epoch[epoch]) for epoch in epochs]
        if len(epochs) == 1 and high[0] > low[0]:  # a band one epoch wide is not seen
            error = [[means[0] - low[0]], [high[0] - means[0]]]
            axes.errorbar(epochs, means, yerr=error, fmt="none", color=color, capsize=4)
        elif n > 1:
            axes.fill_between(epochs, low, high, color=color, alpha=0.2, lw=0)
        drawn += epochs
    return drawn


def curves_figure(
    configurations: Sequence[Configuration],
    stages: Sequence[str],
    metric: str,
    ylabel: str,
    prog: str = "hl-compare",
) -> Figure:
    """Return the figure of ``<stage>/<metric>/<level>`` per epoch for every stage and level.

    Rows are the stages, columns the levels, coarse to fine; runs on different trees get a
    block of rows each (a subfigure titled with the tree), in order of appearance. A
    configuration keeps its colour in every panel. Exits with ``prog``'s install hint when
    matplotlib is missing.

    >>> from pathlib import Path
    >>> from hl_lightning.cli.compare.runs import Run
    >>> rows = [{"epoch": str(e), "val/loss/class": str(1.5 - e / 4)} for e in range(3)]
    >>> flat = Configuration("loss=flat", [Run(Path("0_flat"), rows)])
    >>> figure = curves_figure([flat], ("val",), "loss", "loss")
    >>> [(axes.get_title(), axes.get_ylabel()) for axes in figure.subfigs[0].axes]
    [('class', 'validation loss')]
    """
    trees = list(dict.fromkeys(configuration.tree for configuration in configurations))
    width = max(len(tree.levels) for tree in trees)
    figure = agg_figure(
        prog,
        figsize=(
            3.2 * width + 0.6,
            (2.6 * len(stages) + 0.3 * (len(trees) > 1)) * len(trees) + 0.8,
        ),
        layout="constrained",
    )
    colors = {c.label: f"C{index % 10}" for index, c in enumerate(configurations)}
    blocks = figure.subfigures(len(trees), 1, squeeze=False)[:, 0]
    epochs: list[int] = []
    roots = []  # each block's axes share its x axis: one root per block
    for block, tree in zip(blocks, trees, strict=True):
        if len(trees) > 1:
            block.suptitle(f"tree {tree.label}", fontsize=10, x=0.01, ha="left")
        grid = block.subplots(len(stages), width, squeeze=False, sharex=True)
        roots.append(grid[0][0])
        members = [c for c in configurations if c.tree == tree]
        for axes_row, stage in zip(grid, stages, strict=True):
            for axes, level in zip(axes_row, tree.levels, strict=False):
                epochs += _draw(axes, members, f"{stage}/{metric}/{level}", colors)
                axes.set_title(level, fontsize=10)
                axes.grid(alpha=0.3)
                axes.xaxis.get_major_locator().set_params(integer=True)
                axes.set_ylabel(f"{STAGE_TITLES[stage]} {ylabel}", fontsize=9)
            for axes in axes_row[len(tree.levels) :]:
                axes.set_visible(False)
        for column in grid.T[: len(tree.levels)]:  # the x axis under each column's lowest panel
            column[-1].set_xlabel("epoch")
    if epochs:  # the same epochs on every block; one epoch alone on an axis one epoch wide
        first, last = min(epochs), max(epochs)
        pad = 0.05 * (last - first) or 0.5
        for root in roots:
            root.set_xlim(first - pad, last + pad)
            if first == last:
                root.set_xticks([first])
    figure.suptitle(f"per-level {ylabel}: mean over seeds, band from min to max", fontsize=11)
    legend: dict[str, Artist] = {}  # a line per configuration, whichever panels it is in
    for axes in (axes for block in blocks for axes in block.axes):
        handles, labels = axes.get_legend_handles_labels()
        legend.update(zip(labels, handles, strict=True))
    figure.legend(
        handles=list(legend.values()),
        labels=list(legend),
        loc="outside lower center",
        ncols=min(len(configurations), 4),
    )
    return figure


def png_bytes(figure: Figure) -> bytes:
    """Return ``figure`` as PNG data (100 dpi).

    >>> from matplotlib.figure import Figure
    >>> png_bytes(Figure(figsize=(1, 1)))[:4]
    b'\\x89PNG'
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
