"""hl-compare: the paper's comparison figures and final per-level table from hl-train runs.

Usage::

    hl-compare multirun/train/2026-01-01_12-00-00     # a sweep: every job folder below it
    hl-compare outputs/train/run_a outputs/train/run_b --out figures
    hl-compare SWEEP --metric acc                       # per-level pixel accuracy instead

Each run is a folder with ``csv/metrics.csv`` (hl-train's CSV logger); a folder without
one is searched for runs below it (a multirun directory and its job folders). Runs are
labelled by the overrides in which they differ (``loss=flat``, ``loss=hierarchical``),
read from their ``.hydra/overrides.yaml``; the folder name otherwise. Writes into
``--out`` (default: the first folder given):

- ``loss_curves.png``: per-level training and validation loss per epoch, one line per run;
- ``<metric>_curves.png``: per-level validation ``<metric>`` (default mIoU) per epoch;
- ``comparison.csv`` and ``comparison.md``: per run, the final per-level ``<metric>`` (the
  test values when the run was tested, else the last validation), mistake severity and
  the share of serious mistakes; the table is printed too.

Figures need matplotlib (``pip install "hl_lightning[plots]"``).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import yaml

from hl_lightning.cli._matplotlib import agg_figure

__all__ = ["CompareError", "Run", "compare", "find_runs", "load_runs", "main", "summary_rows"]

PROG = "hl-compare"
_STAGE_TITLES = {"train": "training", "val": "validation", "test": "test"}


class CompareError(ValueError):
    """Runs that cannot be compared: no metrics found, an unknown metric."""


def _natural(text: str) -> list[int | str]:
    """Return a sort key where digit runs compare as numbers (``2_flat`` before ``10_flat``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@dataclass
class Run:
    """One training run: its folder, its label in figures and tables, its logged rows."""

    path: Path
    label: str
    rows: list[dict[str, str]]
    level_order: Sequence[str] = ()

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


def _overrides(run: Path) -> dict[str, str]:
    """Return the run's Hydra overrides as ``{key: "key=value"}`` (none without .hydra)."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    entries = yaml.safe_load(path.read_text()) or []
    return {str(entry).lstrip("+~").split("=", 1)[0]: str(entry) for entry in entries}


def _level_names(run: Path) -> list[str]:
    """Return the level names of the run's config (``hierarchy.level_names``), if it has them."""
    path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    names = ((config or {}).get("hierarchy") or {}).get("level_names")
    return [str(name) for name in names] if isinstance(names, list) else []


def _labels(runs: Sequence[Path]) -> list[str]:
    """Return one label per run: the overrides in which the runs differ, else the folder."""
    overrides = [_overrides(run) for run in runs]
    keys = list(dict.fromkeys(key for entry in overrides for key in entry))
    varying = [key for key in keys if len({entry.get(key) for entry in overrides}) > 1]
    labels = [
        ", ".join(entry[key] for key in varying if key in entry) or run.name
        for run, entry in zip(runs, overrides, strict=True)
    ]
    return [
        f"{label} ({run.name})" if labels.count(label) > 1 else label
        for run, label in zip(runs, labels, strict=True)
    ]


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Return the runs found under ``paths`` (see :func:`find_runs`) with labels and metrics.

    Example (a sweep's folder)::

        load_runs(["multirun/train/2026-01-01_12-00-00"])
        # [Run(path=.../0_loss=hierarchical, label='loss=hierarchical', ...), Run(...)]
    """
    folders = find_runs(paths)
    runs = []
    for folder, label in zip(folders, _labels(folders), strict=True):
        with (folder / "csv" / "metrics.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
        runs.append(Run(folder, label, rows, _level_names(folder)))
    return runs


def _all_levels(runs: Sequence[Run]) -> list[str]:
    """Return the union of the runs' levels, in the order they first appear."""
    return list(dict.fromkeys(level for run in runs for level in run.levels))


def summary_rows(runs: Sequence[Run], metric: str = "miou") -> list[dict[str, str]]:
    """Return one table row per run: final per-level ``metric``, severity and serious.

    The values are the test ones when the run logged them, else the last validation
    ones (column ``stage``); a missing value is ``-``.
    """

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    rows = []
    for run in runs:
        stage = (
            "test" if any(run.final(f"test/loss/{lv}") is not None for lv in run.levels) else "val"
        )
        row = {"run": run.label, "stage": stage}
        for level in _all_levels(runs):
            row[f"{metric}/{level}"] = cell(run.final(f"{stage}/{metric}/{level}"))
        row["severity"] = cell(run.final(f"{stage}/severity"))
        row["serious"] = cell(run.final(f"{stage}/serious"))
        rows.append(row)
    return rows


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


def _curves(
    runs: Sequence[Run], stages: Sequence[str], metric: str, ylabel: str, path: Path
) -> None:
    """Draw one panel per (stage, level): ``<stage>/<metric>/<level>`` per epoch, a line a run.

    Rows are the stages, columns the levels (coarse to fine); saved as a PNG at ``path``.
    """
    levels = _all_levels(runs)
    figure = agg_figure(
        PROG,
        figsize=(3.2 * len(levels) + 0.6, 2.6 * len(stages) + 0.8),
        layout="constrained",
    )
    grid = figure.subplots(len(stages), len(levels), squeeze=False, sharex=True)
    for axes_row, stage in zip(grid, stages, strict=True):
        for axes, level in zip(axes_row, levels, strict=True):
            for run in runs:
                epochs, values = run.series(f"{stage}/{metric}/{level}")
                marker = "o" if len(epochs) <= 12 else None
                axes.plot(epochs, values, marker=marker, markersize=3, label=run.label)
            axes.set_title(f"{level}", fontsize=10)
            axes.grid(alpha=0.3)
            axes.xaxis.get_major_locator().set_params(integer=True)
            axes.set_ylabel(f"{_STAGE_TITLES[stage]} {ylabel}", fontsize=9)
    for axes in grid[-1]:
        axes.set_xlabel("epoch")
    figure.suptitle(f"per-level {ylabel}", fontsize=11)
    handles, labels = grid[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(runs), 4))
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


def compare(
    paths: Sequence[str | Path], out: str | Path | None = None, metric: str = "miou"
) -> list[Path]:
    """Write the figures and tables of the runs under ``paths`` into ``out``; return the files.

    ``out`` defaults to the first of ``paths``. Prints the table.
    """
    runs = load_runs(paths)
    available = _metrics_per_level(runs)
    if metric not in available:
        raise CompareError(
            f"no per-level metric {metric!r} logged for validation; found: "
            + (", ".join(available) or "none")
        )
    folder = Path(out if out is not None else paths[0])
    folder.mkdir(parents=True, exist_ok=True)
    names = {"miou": "mIoU", "acc": "pixel accuracy", "loss": "loss"}
    written = [folder / "loss_curves.png", folder / f"{metric}_curves.png"]
    _curves(runs, ("train", "val"), "loss", "loss", written[0])
    _curves(runs, ("val",), metric, names.get(metric, metric), written[1])
    rows = summary_rows(runs, metric)
    with (folder / "comparison.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "comparison.md").write_text(_markdown_table(rows))
    written += [folder / "comparison.csv", folder / "comparison.md"]
    print(_text_table(rows))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hl-compare``; return the exit status (1 when the runs cannot be compared)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare hl-train runs: per-level loss and metric curves (PNG) and the "
        "final per-level table (printed, CSV and Markdown).",
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
    args = parser.parse_args(argv)
    agg_figure(PROG)  # fail early, with the install hint, when matplotlib is missing
    try:
        written = compare(args.runs, args.out, args.metric)
    except CompareError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
