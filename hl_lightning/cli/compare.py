"""hl-compare: the paper's comparison figures and per-level tables over seeds from hl-train runs.

Usage::

    hl-compare multirun/train/2026-01-01_12-00-00     # a sweep: every job folder below it
    hl-compare outputs/train/run_a outputs/train/run_b --out figures
    hl-compare SWEEP --metric acc                       # per-level pixel accuracy instead
    hl-compare SWEEP --baseline loss=hxe                # paired differences against hxe

Each run is a folder with ``csv/metrics.csv`` (hl-train's CSV logger); a folder without
one is searched for runs below it (a multirun directory and its job folders).

Configurations. Runs whose overrides (``.hydra/overrides.yaml``) are the same but for
``seed`` are the seeds of one configuration. A run's seed is its ``seed`` override, else
the ``seed`` of its ``.hydra/config.yaml``; a run without ``.hydra/overrides.yaml`` is a
configuration of its own. Configurations are labelled by the overrides in which they
differ (``loss=flat``), else by their first run's folder name. The runs of one
configuration must have distinct, known seeds and ``.hydra/config.yaml`` files that agree
on every key but ``seed``: otherwise a :class:`CompareError` names the two runs and the
keys in which they differ.

Statistics. A configuration's value is the mean over its seeds with the 95% Student-t
interval, mean ± t(0.975, n-1)·s/√n; a configuration with one seed has no interval.
``--baseline KEY=VALUE`` (repeat it for several keys; default ``loss=flat`` when a
configuration has that override) chooses the baseline configurations, those with these
overrides; its keys are the compared keys. Every other configuration is paired with the
baseline that has the same overrides but for the compared keys, over the seeds both ran:
the mean of the per-seed differences, its 95% CI and the two-sided p-value of the paired
t-test. A baseline that matches no configuration is a CompareError naming the
configurations; so is a configuration that differs from every baseline in another key too
(data.image_size, say: its difference would mix two changes), naming those keys. With the
default baseline such runs only get a note, and no paired differences.

The values, per level: ``<metric>/<level>``, the final value (the test one when every run
was tested, else the last validation); ``<metric>_auc/<level>``, the mean of the
validation curve over epochs (its area over the number of epochs); ``epochs_to_95/<level>``,
the epochs trained until the validation curve first reached 95% of the run's final
validation value (for ``--metric loss``: fell to the final value / 0.95); then the mistake
severity and the share of serious mistakes; and, where the runs logged them, ``ece/<level>``
(the calibration error) and ``inconsistency`` (the share of pixels off a tree path).
Writes into ``--out`` (default: the first folder given):

- ``loss_curves.png``: per-level training and validation loss per epoch;
- ``<metric>_curves.png``: per-level validation ``<metric>`` (default mIoU) per epoch; a line
  per configuration, the mean over its seeds, in a band from their minimum to maximum;
- ``comparison.csv``: per configuration ``run``, ``n_seeds``, ``seeds``, ``stage`` and, per
  value, ``<value>_mean`` and ``<value>_ci95`` (the half-width; empty for one seed);
- ``differences.csv`` (when there is a baseline): per paired configuration ``run``,
  ``baseline``, ``n_pairs``, ``seeds`` and, per value, ``<value>_diff``, ``<value>_ci95``
  and ``<value>_p``;
- ``comparison.md``: both tables, cells ``mean ± ci`` (``0.5200 (1 seed)`` for one seed);
  they are printed too.

Figures need matplotlib (``pip install "hl_lightning[plots]"``).
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from hl_lightning.cli._matplotlib import agg_figure
from hl_lightning.cli._stats import Estimate, mean_ci, paired_difference

__all__ = [
    "CompareError",
    "Configuration",
    "Run",
    "TableRow",
    "compare",
    "difference_rows",
    "find_runs",
    "group_runs",
    "load_runs",
    "main",
    "summary_rows",
]

PROG = "hl-compare"
_STAGE_TITLES = {"train": "training", "val": "validation", "test": "test"}


class CompareError(ValueError):
    """Runs that cannot be compared: no metrics, an unknown metric, runs that do not pair."""


def _natural(text: str) -> list[int | str]:
    """Return a sort key where digit runs compare as numbers (``2_flat`` before ``10_flat``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@dataclass
class Run:
    """One training run: its folder, logged rows, overrides (seed aside), seed and config.

    ``overrides`` maps each key to its override (``{"loss": "loss=flat"}``), None without
    ``.hydra/overrides.yaml``; ``config`` is ``.hydra/config.yaml`` flattened to dotted
    keys, None without one.
    """

    path: Path
    rows: list[dict[str, str]]
    level_order: Sequence[str] = ()
    overrides: dict[str, str] | None = field(default_factory=dict)
    seed: str | None = None
    config: dict[str, Any] | None = None

    @cached_property
    def levels(self) -> tuple[str, ...]:
        """The level names that have a logged loss, coarse to fine when the config says."""
        names = {
            key.split("/", 2)[2]
            for key in (self.rows[0] if self.rows else {})
            if re.fullmatch(r"(train|val|test)/loss/.+", key)
        }
        known = [name for name in self.level_order if name in names]
        return (*known, *sorted(names - set(known), key=_natural))

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Return the epochs and values of ``key``, where it was logged."""
        epochs, values = [], []
        for row in self.rows:
            if row.get(key):
                epochs.append(int(row["epoch"]))
                values.append(float(row[key]))
        return epochs, values

    def final(self, key: str) -> float | None:
        """Return the last logged value of ``key``, None if never logged."""
        values = self.series(key)[1]
        return values[-1] if values else None


@dataclass
class Configuration:
    """The runs that differ only in seed: their label, their shared overrides, the runs."""

    label: str
    runs: list[Run]

    @property
    def overrides(self) -> dict[str, str]:
        """The overrides of the configuration's runs, seed aside (none without .hydra)."""
        return self.runs[0].overrides or {}

    @property
    def seeds(self) -> list[str]:
        """The seeds of the runs, in natural order (``-`` for a run with no known seed)."""
        return sorted((run.seed or "-" for run in self.runs), key=_natural)


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Return the run folders: each path that has ``csv/metrics.csv``, else every run below it.

    Runs below a folder come in natural order (a sweep's job numbers: 0, 1, ..., 10).
    Raises :class:`CompareError` for a path with no run in or below it.
    """
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "csv" / "metrics.csv").is_file():
            runs.append(path)
            continue
        found = sorted(
            (metrics.parent.parent for metrics in path.rglob("csv/metrics.csv")),
            key=lambda run: _natural(run.relative_to(path).as_posix()),
        )
        if not found:
            raise CompareError(
                f"{path}: no csv/metrics.csv in it or below: not an hl-train run or sweep folder"
            )
        runs.extend(found)
    return runs


def _overrides(run: Path) -> dict[str, str] | None:
    """Return the run's Hydra overrides as ``{key: "key=value"}``, None without the file."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    entries = yaml.safe_load(path.read_text()) or []
    return {_key(str(entry)): str(entry) for entry in entries}


def _key(override: str) -> str:
    """Return the key of an override: ``loss`` for ``loss=flat``, ``extra`` for ``+extra=1``."""
    return override.lstrip("+~").split("=", 1)[0]


def _value(override: str | None) -> str | None:
    """Return the value of an override: ``flat`` for ``loss=flat``; None for None."""
    return None if override is None else override.partition("=")[2]


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return ``config`` as ``{"dotted.key": leaf}`` (lists are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Return the runs found under ``paths`` (see :func:`find_runs`) with their metrics.

    Example (a sweep's folder)::

        load_runs(["multirun/train/2026-01-01_12-00-00"])
        # [Run(path=.../0_loss=hierarchical, ..., overrides={'loss': 'loss=hierarchical'},
        #  seed='0', ...), Run(...)]
    """
    runs = []
    for folder in find_runs(paths):
        with (folder / "csv" / "metrics.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
        overrides = _overrides(folder)
        path = folder / ".hydra" / "config.yaml"
        config = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else None
        seed = _value((overrides or {}).pop("seed", None))
        if seed is None and config is not None and config.get("seed") is not None:
            seed = str(config["seed"])
        names = ((config or {}).get("hierarchy") or {}).get("level_names")
        levels = [str(name) for name in names] if isinstance(names, list) else []
        flat = None if config is None else _flatten(config)
        runs.append(Run(folder, rows, levels, overrides, seed, flat))
    return runs


def _check_seeds(runs: Sequence[Run]) -> None:
    """Raise :class:`CompareError` unless the runs differ only in seed, each seed once."""
    if len(runs) < 2:
        return
    shared = ", ".join((runs[0].overrides or {}).values()) or "no overrides"
    seen: dict[str | None, Run] = {}
    for run in runs:
        if run.seed in seen:
            seed = "no seed" if run.seed is None else f"seed {run.seed}"
            raise CompareError(
                f"{seen[run.seed].path} and {run.path} have the same overrides ({shared}) and "
                f"{seed}: a configuration takes one run per seed; leave one of them out"
            )
        seen[run.seed] = run
    configs = [run for run in runs if run.config is not None]
    for run in configs[1:]:
        first, other = configs[0].config or {}, run.config or {}
        keys = [k for k in {**first, **other} if k != "seed" and first.get(k) != other.get(k)]
        if keys:
            raise CompareError(
                f"{configs[0].path} and {run.path} have the same overrides ({shared}) but "
                f"their .hydra/config.yaml differ in {', '.join(sorted(keys))}, not only in "
                "seed: the runs of one configuration may differ only in seed; leave one out"
            )


def group_runs(runs: Sequence[Run]) -> list[Configuration]:
    """Return the configurations of ``runs``: runs with the same overrides but seed, in order.

    Labels are the overrides in which the configurations differ, else the first run's
    folder name (with it appended where two labels would be the same). Raises
    :class:`CompareError` for runs with the same overrides that are not distinct seeds.
    """
    groups: dict[object, list[Run]] = {}
    for run in runs:
        key = run.path if run.overrides is None else tuple(sorted(run.overrides.items()))
        groups.setdefault(key, []).append(run)
    for members in groups.values():
        _check_seeds(members)
    overrides = [members[0].overrides or {} for members in groups.values()]
    keys = list(dict.fromkeys(key for entry in overrides for key in entry))
    varying = [key for key in keys if len({entry.get(key) for entry in overrides}) > 1]
    labels = [
        ", ".join(entry[key] for key in varying if key in entry) or members[0].path.name
        for members, entry in zip(groups.values(), overrides, strict=True)
    ]
    return [
        Configuration(
            f"{label} ({members[0].path.name})" if labels.count(label) > 1 else label, members
        )
        for members, label in zip(groups.values(), labels, strict=True)
    ]


def _all_levels(runs: Sequence[Run]) -> list[str]:
    """Return the union of the runs' levels, in the order they first appear."""
    return list(dict.fromkeys(level for run in runs for level in run.levels))


def _epochs_to_95(curve: Sequence[float], metric: str) -> float:
    """Return the epochs until ``curve`` first reached 95% of its last value (1: the first).

    For the loss, where lower is better: until it first fell to the last value / 0.95.
    """
    final = curve[-1]
    return float(
        next(
            epoch
            for epoch, value in enumerate(curve, 1)
            if (value <= final / 0.95 if metric == "loss" else value >= 0.95 * final)
        )
    )


def _run_values(
    run: Run, levels: Sequence[str], metric: str, stage: str, reliability: bool
) -> dict[str, float | None]:
    """Return the run's values per table column (None where not logged), in column order.

    With ``reliability``, the calibration error per level and the inconsistency too.
    """
    curves = {level: run.series(f"val/{metric}/{level}")[1] for level in levels}
    values = {
        **{f"{metric}/{lv}": run.final(f"{stage}/{metric}/{lv}") for lv in levels},
        **{f"{metric}_auc/{lv}": statistics.fmean(c) if c else None for lv, c in curves.items()},
        **{
            f"epochs_to_95/{lv}": _epochs_to_95(c, metric) if c else None
            for lv, c in curves.items()
        },
        "severity": run.final(f"{stage}/severity"),
        "serious": run.final(f"{stage}/serious"),
    }
    if reliability:
        values.update({f"ece/{lv}": run.final(f"{stage}/ece/{lv}") for lv in levels})
        values["inconsistency"] = run.final(f"{stage}/inconsistency")
    return values


@dataclass
class TableRow:
    """One table row: its text cells (run, seeds, ...) and its estimate per value column."""

    cells: dict[str, str]
    estimates: dict[str, Estimate | None]


class _Values:
    """Every run's values per column, with the stage they come from (test when all tested)."""

    def __init__(self, configurations: Sequence[Configuration], metric: str) -> None:
        runs = [run for configuration in configurations for run in configuration.runs]
        levels = _all_levels(runs)
        tested = all(any(run.final(f"test/loss/{lv}") is not None for lv in levels) for run in runs)
        self.stage = "test" if tested else "val"
        reliability = any(run.final(f"{self.stage}/inconsistency") is not None for run in runs)
        self.of = {
            run.path: _run_values(run, levels, metric, self.stage, reliability) for run in runs
        }
        self.columns = list(self.of[runs[0].path])


def summary_rows(configurations: Sequence[Configuration], metric: str = "miou") -> list[TableRow]:
    """Return one row per configuration: each value's mean over seeds with its 95% CI.

    The cells are ``run`` (the label), ``n_seeds``, ``seeds`` and ``stage``.
    """
    values = _Values(configurations, metric)
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
        rows.append(TableRow(cells, estimates))
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
        if all(_value(c.overrides.get(key)) == value for key, value in baseline.items())
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
    ``n_pairs`` and ``seeds`` (the shared ones). See :func:`_baselines` for the errors.
    """
    values = _Values(configurations, metric)
    rows = []
    for configuration, base in _baselines(configurations, baseline):
        ours = {run.seed: values.of[run.path] for run in configuration.runs}
        theirs = {run.seed: values.of[run.path] for run in base.runs}
        shared = sorted((s for s in ours.keys() & theirs.keys() if s is not None), key=_natural)
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
        rows.append(TableRow(cells, estimates))
    return rows


def _digits(column: str) -> int:
    """Return the decimals a column is shown with: 2 for epoch counts, else 4."""
    return 2 if column.startswith("epochs_to_95/") else 4


def _csv_row(row: TableRow, paired: bool) -> dict[str, str]:
    """Return the row's CSV cells: per column ``_mean`` and ``_ci95`` (``_diff``, ``_ci95``
    and ``_p`` when paired); ``-`` where no run logged the value, empty for one seed."""
    cells = dict(row.cells)
    for column, estimate in row.estimates.items():
        digits = _digits(column)
        mean = ci = p = "-"
        if estimate is not None:
            mean = f"{estimate.mean:.{digits}f}"
            ci = "" if estimate.ci95 is None else f"{estimate.ci95:.{digits}f}"
            p = "" if estimate.p is None else f"{estimate.p:.4g}"
        cells[f"{column}_{'diff' if paired else 'mean'}"] = mean
        cells[f"{column}_ci95"] = ci
        if paired:
            cells[f"{column}_p"] = p
    return cells


def _shown_row(row: TableRow, paired: bool) -> dict[str, str]:
    """Return the row's cells for reading: ``mean ± ci`` (``+diff ± ci (p=...)`` when
    paired), ``mean (1 seed)`` (``1 pair``) without an interval, ``-`` without a value."""
    cells = dict(row.cells)
    for column, estimate in row.estimates.items():
        digits, sign = _digits(column), "+" if paired else ""
        if estimate is None:
            cells[column] = "-"
            continue
        mean = f"{estimate.mean:{sign}.{digits}f}"
        if estimate.ci95 is None:
            cells[column] = f"{mean} (1 {'pair' if paired else 'seed'})"
        else:
            p = f" (p={estimate.p:.2g})" if estimate.p is not None else ""
            cells[column] = f"{mean} ± {estimate.ci95:.{digits}f}{p}"
    return cells


def _text_table(rows: Sequence[dict[str, str]]) -> str:
    """Return the rows as aligned plain text (first column left, the others right)."""
    columns = list(rows[0])
    width = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    lines = [columns, *([row[c] for c in columns] for row in rows)]
    return "\n".join(
        "  ".join(
            value.ljust(width[c]) if i == 0 else value.rjust(width[c])
            for i, (c, value) in enumerate(zip(columns, line, strict=True))
        ).rstrip()
        for line in lines
    )


def _markdown_table(rows: Sequence[dict[str, str]]) -> str:
    """Return the rows as a Markdown table."""
    columns = list(rows[0])
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(columns) - 1)) + " |",
    ]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _write_csv(rows: Sequence[dict[str, str]], path: Path) -> None:
    """Write the rows to ``path`` as CSV with a header."""
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _curves(
    configurations: Sequence[Configuration],
    stages: Sequence[str],
    metric: str,
    ylabel: str,
    path: Path,
) -> None:
    """Draw one panel per (stage, level): ``<stage>/<metric>/<level>`` per epoch, a line per
    configuration (the mean over its seeds) in a band from the seeds' minimum to maximum.

    Rows are the stages, columns the levels (coarse to fine); saved as a PNG at ``path``.
    """
    levels = _all_levels([run for configuration in configurations for run in configuration.runs])
    figure = agg_figure(
        PROG,
        figsize=(3.2 * len(levels) + 0.6, 2.6 * len(stages) + 0.8),
        layout="constrained",
    )
    grid = figure.subplots(len(stages), len(levels), squeeze=False, sharex=True)
    for axes_row, stage in zip(grid, stages, strict=True):
        for axes, level in zip(axes_row, levels, strict=True):
            for configuration in configurations:
                by_epoch: dict[int, list[float]] = {}
                for run in configuration.runs:
                    for epoch, value in zip(*run.series(f"{stage}/{metric}/{level}"), strict=True):
                        by_epoch.setdefault(epoch, []).append(value)
                epochs = sorted(by_epoch)
                n = len(configuration.runs)
                (line,) = axes.plot(
                    epochs,
                    [statistics.fmean(by_epoch[epoch]) for epoch in epochs],
                    marker="o" if len(epochs) <= 12 else None,
                    markersize=3,
                    label=f"{configuration.label} ({n} seed{'s' if n > 1 else ''})",
                )
                if n > 1:
                    low = [min(by_epoch[epoch]) for epoch in epochs]
                    high = [max(by_epoch[epoch]) for epoch in epochs]
                    axes.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, lw=0)
            axes.set_title(f"{level}", fontsize=10)
            axes.grid(alpha=0.3)
            axes.xaxis.get_major_locator().set_params(integer=True)
            axes.set_ylabel(f"{_STAGE_TITLES[stage]} {ylabel}", fontsize=9)
    for axes in grid[-1]:
        axes.set_xlabel("epoch")
    figure.suptitle(f"per-level {ylabel}: mean over seeds, band from min to max", fontsize=11)
    handles, labels = grid[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(configurations), 4))
    figure.savefig(path, dpi=100)


def _metrics_per_level(runs: Sequence[Run]) -> list[str]:
    """Return the per-level metrics logged for validation (``val/<metric>/<level>``)."""
    found = {
        key.split("/")[1]
        for run in runs
        for key in (run.rows[0] if run.rows else {})
        for level in run.levels
        if key.startswith("val/") and key.endswith(f"/{level}")
    }
    return sorted(found)


def _parse_baseline(baseline: Sequence[str]) -> dict[str, str]:
    """Return ``["loss=flat"]`` as ``{"loss": "flat"}``; raise CompareError for no ``=``."""
    for entry in baseline:
        if "=" not in entry:
            raise CompareError(f"--baseline takes KEY=VALUE overrides (loss=flat), got {entry!r}")
    return {_key(entry): entry.split("=", 1)[1] for entry in baseline}


def compare(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    metric: str = "miou",
    baseline: Sequence[str] | None = None,
) -> list[Path]:
    """Write the figures and tables of the runs under ``paths`` into ``out``; return the files.

    ``out`` defaults to the first of ``paths``; ``baseline`` (overrides such as
    ``["loss=flat"]``) to ``loss=flat`` when a configuration has it. Prints the tables.
    """
    runs = load_runs(paths)
    available = _metrics_per_level(runs)
    if metric not in available:
        raise CompareError(
            f"no per-level metric {metric!r} logged for validation; found: "
            + (", ".join(available) or "none")
        )
    configurations = group_runs(runs)
    differences: list[TableRow] = []
    if baseline:
        differences = difference_rows(configurations, _parse_baseline(baseline), metric)
    elif any(_value(c.overrides.get("loss")) == "flat" for c in configurations):
        try:
            differences = difference_rows(configurations, {"loss": "flat"}, metric)
        except CompareError as err:
            print(f"{PROG}: note: no paired differences: {err}", file=sys.stderr)
    folder = Path(out if out is not None else paths[0])
    folder.mkdir(parents=True, exist_ok=True)
    names = {"miou": "mIoU", "acc": "pixel accuracy", "loss": "loss"}
    written = [folder / "loss_curves.png", folder / f"{metric}_curves.png"]
    _curves(configurations, ("train", "val"), "loss", "loss", written[0])
    _curves(configurations, ("val",), metric, names.get(metric, metric), written[1])
    summary = summary_rows(configurations, metric)
    _write_csv([_csv_row(row, paired=False) for row in summary], folder / "comparison.csv")
    written.append(folder / "comparison.csv")
    shown = [_shown_row(row, paired=False) for row in summary]
    markdown, text = _markdown_table(shown), _text_table(shown)
    (folder / "differences.csv").unlink(missing_ok=True)  # none from an earlier comparison
    if differences:
        _write_csv([_csv_row(row, paired=True) for row in differences], folder / "differences.csv")
        written.append(folder / "differences.csv")
        title = (
            "Paired differences (run - baseline over the seeds both ran): mean ± 95% CI "
            "(p: two-sided paired t-test)"
        )
        paired = [_shown_row(row, paired=True) for row in differences]
        markdown += f"\n{title}\n\n{_markdown_table(paired)}"
        text += f"\n\n{title}\n{_text_table(paired)}"
    (folder / "comparison.md").write_text(markdown)
    written.append(folder / "comparison.md")
    print(text)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hl-compare``; return the exit status (1 when the runs cannot be compared)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare hl-train runs over seeds: per-level loss and metric curves (PNG), "
        "the per-level table of means with 95% confidence intervals and the paired "
        "differences against a baseline (printed, CSV and Markdown).",
    )
    parser.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="run folders (with csv/metrics.csv) or folders above them, such as a sweep's",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to write the figures and tables (default: the first RUN_DIR)",
    )
    parser.add_argument(
        "--metric",
        default="miou",
        help="the per-level metric of the curves and the table: miou (default), acc, loss",
    )
    parser.add_argument(
        "--baseline",
        action="append",
        metavar="KEY=VALUE",
        help="the configuration the others are compared with seed by seed, by its override; "
        "repeat it for several keys (default: loss=flat when a configuration has it)",
    )
    args = parser.parse_args(argv)
    agg_figure(PROG)  # fail early, with the install hint, when matplotlib is missing
    try:
        written = compare(args.runs, args.out, args.metric, args.baseline)
    except CompareError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
