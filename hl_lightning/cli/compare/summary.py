"""hl-compare's table rows: each run's values, their means over seeds, paired differences.

A run's values, per level: ``<metric>/<level>``, the final value (the test one when every run
was tested, else the last validation); ``<metric>_auc/<level>``, the mean of the validation
curve over epochs; ``epochs_to_95/<level>``, the epochs until the validation curve first
reached 95% of its final value (for the loss: fell to the final value / 0.95); the mistake
severity and share of serious mistakes; ``ece/<level>`` and ``inconsistency`` where logged.

Levels are matched by name. A tree without level names has positional ones (``level0``,
``level1``, ...) that say a depth, not what a level is: where two trees of a comparison have
such names, each tree's are qualified with its name (``level0@flat``), never merged.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hl_lightning.cli.compare.configurations import Configuration
from hl_lightning.cli.compare.runs import (
    CompareError,
    Run,
    Tree,
    natural_key,
    override_value,
)
from hl_lightning.cli.compare.stats import Estimate, mean_ci, paired_difference

__all__ = [
    "TableRow",
    "Values",
    "difference_rows",
    "epochs_to_95",
    "level_columns",
    "summary_rows",
]

_POSITIONAL = re.compile(r"level\d+")


@dataclass
class TableRow:
    """One table row: its text cells (run, seeds, ...), its estimate per value column, and,
    when the compared runs are on different trees, its ``trees`` cells (the last columns)."""

    cells: dict[str, str]
    estimates: dict[str, Estimate | None]
    trees: dict[str, str] = field(default_factory=dict)


def epochs_to_95(curve: Sequence[float], metric: str) -> float:
    """Return the epochs until ``curve`` first reached 95% of its last value (1: the first).

    For the loss, where lower is better: until it first fell to the last value / 0.95.

    >>> epochs_to_95([0.30, 0.45, 0.50], "miou"), epochs_to_95([3.0, 1.04, 1.0], "loss")
    (3.0, 2.0)
    """
    final = curve[-1]
    return float(
        next(
            epoch
            for epoch, value in enumerate(curve, 1)
            if (value <= final / 0.95 if metric == "loss" else value >= 0.95 * final)
        )
    )


def level_columns(trees: Sequence[Tree]) -> dict[Tree, dict[str, str]]:
    """Return, per tree, the table column of each of its levels: the level's name, matched by
    name across trees, or ``<name>@<tree>`` for the positional names of trees without level
    names when two of the trees have such names.

    A tree is named by its source's file name, else ``tree<i>`` (its place, from 1).

    >>> flat, faces = Tree("flat", ("level0",)), Tree("trees/faces.txt", ("level0", "level1"))
    >>> level_columns([Tree(None, ("kind", "class")), flat])[flat]
    {'level0': 'level0'}
    >>> level_columns([flat, faces])[faces]
    {'level0': 'level0@faces', 'level1': 'level1@faces'}
    """
    positional = {
        place: tree
        for place, tree in enumerate(trees, 1)
        if any(_POSITIONAL.fullmatch(level) for level in tree.levels)
    }
    stems = [Path(tree.source).stem if tree.source else None for tree in positional.values()]
    qualifier = {
        tree: stem if stem and stems.count(stem) == 1 else f"tree{place}"
        for (place, tree), stem in zip(positional.items(), stems, strict=True)
        if len(positional) > 1
    }
    return {
        tree: {
            level: f"{level}@{qualifier[tree]}"
            if tree in qualifier and _POSITIONAL.fullmatch(level)
            else level
            for level in tree.levels
        }
        for tree in trees
    }


def _run_values(
    run: Run, levels: Mapping[str, str | None], metric: str, stage: str, reliability: bool
) -> dict[str, float | None]:
    """Return the run's values per table column (None where not logged), in column order.

    ``levels`` maps every level column to the run's level (None where its tree has none);
    with ``reliability``, the calibration error per level and the inconsistency too.
    """

    def final(key: str, level: str | None) -> float | None:
        return None if level is None else run.final(f"{stage}/{key}/{level}")

    curves = {c: run.series(f"val/{metric}/{lv}")[1] if lv else [] for c, lv in levels.items()}
    values = {
        **{f"{metric}/{c}": final(metric, lv) for c, lv in levels.items()},
        **{f"{metric}_auc/{c}": statistics.fmean(v) if v else None for c, v in curves.items()},
        **{f"epochs_to_95/{c}": epochs_to_95(v, metric) if v else None for c, v in curves.items()},
        "severity": run.final(f"{stage}/severity"),
        "serious": run.final(f"{stage}/serious"),
    }
    if reliability:
        values.update({f"ece/{c}": final("ece", lv) for c, lv in levels.items()})
        values["inconsistency"] = run.final(f"{stage}/inconsistency")
    return values


class Values:
    """Every run's values per column (``of[run.path][column]``), with the stage they come
    from (test when every run was tested) and the compared trees in order of appearance."""

    def __init__(self, configurations: Sequence[Configuration], metric: str) -> None:
        runs = [run for configuration in configurations for run in configuration.runs]
        self.trees = list(dict.fromkeys(run.tree for run in runs))
        columns = level_columns(self.trees)
        order = list(dict.fromkeys(c for tree in self.trees for c in columns[tree].values()))
        tested = all(
            any(run.final(f"test/loss/{lv}") is not None for lv in run.levels) for run in runs
        )
        self.stage = "test" if tested else "val"
        reliability = any(run.final(f"{self.stage}/inconsistency") is not None for run in runs)
        self.of: dict[Path, dict[str, float | None]] = {}
        for run in runs:
            level_of = {column: level for level, column in columns[run.tree].items()}
            levels = {column: level_of.get(column) for column in order}
            self.of[run.path] = _run_values(run, levels, metric, self.stage, reliability)
        self.columns = list(self.of[runs[0].path])

    def tree_cells(self, **trees: Tree) -> dict[str, str]:
        """Return ``{name: tree.label}``, or nothing when every run is on one tree."""
        return {name: tree.label for name, tree in trees.items()} if len(self.trees) > 1 else {}


def summary_rows(configurations: Sequence[Configuration], metric: str = "miou") -> list[TableRow]:
    """Return one row per configuration: each value's mean over seeds with its 95% CI.

    The cells are ``run`` (the label), ``n_seeds``, ``seeds`` and ``stage``; the tree cell
    ``tree`` when the configurations are on different trees.
    """
    values = Values(configurations, metric)
    rows = []
    for configuration in configurations:
        estimates: dict[str, Estimate | None] = {}
        for column in values.columns:
            found = [values.of[run.path][column] for run in configuration.runs]
            present = [value for value in found if value is not None]
            estimates[column] = mean_ci(present) if present else None
        cells = {
            "run": configuration.label,
            "n_seeds": str(len(configuration.runs)),
            "seeds": " ".join(configuration.seeds),
            "stage": values.stage,
        }
        rows.append(TableRow(cells, estimates, values.tree_cells(tree=configuration.tree)))
    return rows


def _baselines(
    configurations: Sequence[Configuration], baseline: Mapping[str, str]
) -> list[tuple[Configuration, Configuration]]:
    """Return (configuration, its baseline) for every configuration that is not a baseline.

    Raises :class:`CompareError` when no configuration matches ``baseline`` or when one
    differs from every baseline in keys other than the compared ones (naming them).
    """
    spec = ", ".join(f"{key}={value}" for key, value in baseline.items())
    matches = [
        c
        for c in configurations
        if all(override_value(c.overrides.get(key)) == value for key, value in baseline.items())
    ]
    if not matches:
        raise CompareError(
            f"--baseline {spec}: no configuration has it; the configurations are: "
            + "; ".join(c.label for c in configurations)
        )

    def other_keys(a: Configuration, b: Configuration) -> list[str]:
        keys = {**a.overrides, **b.overrides}
        return [k for k in keys if k not in baseline and a.overrides.get(k) != b.overrides.get(k)]

    pairs = []
    for configuration in configurations:
        if configuration in matches:
            continue
        nearest = min(matches, key=lambda match: len(other_keys(configuration, match)))
        differing = other_keys(configuration, nearest)
        if differing:
            raise CompareError(
                f"{configuration.label} has no baseline: the configurations with {spec} differ "
                f"from it in {', '.join(differing)} too, not only in {', '.join(baseline)}, and "
                "a paired difference would mix the two; compare runs that differ only in "
                f"{', '.join(baseline)}, or name the other keys in --baseline as well"
            )
        pairs.append((configuration, nearest))
    return pairs


def difference_rows(
    configurations: Sequence[Configuration], baseline: Mapping[str, str], metric: str = "miou"
) -> list[TableRow]:
    """Return one row per configuration paired with a baseline: the paired differences.

    Each value's estimate is the mean over the shared seeds of (configuration - baseline),
    its 95% CI and the paired t-test's p-value; the cells are ``run``, ``baseline``,
    ``n_pairs`` and ``seeds`` (the shared ones), and the tree cells ``tree`` and
    ``baseline_tree`` when the configurations are on different trees. See
    :func:`_baselines` for the errors.
    """
    values = Values(configurations, metric)
    rows = []
    for configuration, base in _baselines(configurations, baseline):
        ours = {run.seed: values.of[run.path] for run in configuration.runs}
        theirs = {run.seed: values.of[run.path] for run in base.runs}
        shared = sorted((s for s in ours.keys() & theirs.keys() if s is not None), key=natural_key)
        estimates: dict[str, Estimate | None] = {}
        for column in values.columns:
            pairs = [(ours[s][column], theirs[s][column]) for s in shared]
            kept = [(a, b) for a, b in pairs if a is not None and b is not None]
            estimates[column] = (
                paired_difference([a for a, _ in kept], [b for _, b in kept]) if kept else None
            )
        cells = {
            "run": configuration.label,
            "baseline": base.label,
            "n_pairs": str(len(shared)),
            "seeds": " ".join(shared),
        }
        trees = values.tree_cells(tree=configuration.tree, baseline_tree=base.tree)
        rows.append(TableRow(cells, estimates, trees))
    return rows
