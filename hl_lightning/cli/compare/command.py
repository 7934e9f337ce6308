"""The ``hl-compare`` command: read the runs, build the tables and figures, write them.

Every file it writes goes through :func:`write_output`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hl_lightning.cli._launch import CommandLineParser
from hl_lightning.cli._matplotlib import agg_figure
from hl_lightning.cli._version import version_text
from hl_lightning.cli.compare.configurations import Configuration, group_runs, stopped_early
from hl_lightning.cli.compare.plots import curves_figure, png_bytes
from hl_lightning.cli.compare.runs import CompareError, Run, load_runs, override_key, override_value
from hl_lightning.cli.compare.summary import TableRow, difference_rows, summary_rows
from hl_lightning.cli.compare.tables import (
    csv_row,
    csv_text,
    markdown_table,
    shown_row,
    text_table,
)

__all__ = ["compare", "main", "write_output"]

PROG = "hl-compare"
_METRIC_NAMES = {"miou": "mIoU", "acc": "pixel accuracy", "loss": "loss"}
_PAIRED_TITLE = (
    "Paired differences (run - baseline over the seeds both ran): mean ± 95% CI "
    "(p: two-sided paired t-test)"
)


def write_output(path: Path, content: str | bytes) -> None:
    """Write ``content`` (text as UTF-8) to ``path``: every file hl-compare writes.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_output(Path(folder) / "comparison.md", "| run |\\n")
    ...     (Path(folder) / "comparison.md").read_text()
    '| run |\\n'
    """
    path.write_bytes(content.encode() if isinstance(content, str) else content)


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
    return {override_key(entry): entry.split("=", 1)[1] for entry in baseline}


def _differences(
    configurations: Sequence[Configuration], baseline: Sequence[str] | None, metric: str
) -> list[TableRow]:
    """Return the paired differences against ``baseline``, else against ``loss=flat`` when a
    configuration has it (only noting why where they do not pair), else none."""
    if baseline:
        return difference_rows(configurations, _parse_baseline(baseline), metric)
    if any(override_value(c.overrides.get("loss")) == "flat" for c in configurations):
        try:
            return difference_rows(configurations, {"loss": "flat"}, metric)
        except CompareError as err:
            print(f"{PROG}: note: no paired differences: {err}", file=sys.stderr)
    return []


def compare(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    metric: str = "miou",
    baseline: Sequence[str] | None = None,
) -> list[Path]:
    """Write the figures and tables of the runs under ``paths`` into ``out``; return the files.

    ``out`` defaults to the first of ``paths``; ``baseline`` (overrides such as
    ``["loss=flat"]``) to ``loss=flat`` when a configuration has it. Prints the tables.
    Everything is read and built before the first file is written.
    """
    runs = load_runs(paths)
    available = _metrics_per_level(runs)
    if metric not in available:
        raise CompareError(
            f"no per-level metric {metric!r} logged for validation; found: "
            + (", ".join(available) or "none")
        )
    configurations = group_runs(runs)
    for note in (note for c in configurations for note in stopped_early(c)):
        print(f"{PROG}: note: {note}", file=sys.stderr)
    differences = _differences(configurations, baseline, metric)
    loss = curves_figure(configurations, ("train", "val"), "loss", "loss", PROG)
    ylabel = _METRIC_NAMES.get(metric, metric)
    curves = curves_figure(configurations, ("val",), metric, ylabel, PROG)
    summary = summary_rows(configurations, metric)
    shown = [shown_row(row, paired=False) for row in summary]
    markdown, text = markdown_table(shown), text_table(shown)
    outputs: dict[str, str | bytes] = {
        "loss_curves.png": png_bytes(loss),
        f"{metric}_curves.png": png_bytes(curves),
        "comparison.csv": csv_text([csv_row(row, paired=False) for row in summary]),
    }
    if differences:
        outputs["differences.csv"] = csv_text([csv_row(row, paired=True) for row in differences])
        paired = [shown_row(row, paired=True) for row in differences]
        markdown += f"\n{_PAIRED_TITLE}\n\n{markdown_table(paired)}"
        text += f"\n\n{_PAIRED_TITLE}\n{text_table(paired)}"
    outputs["comparison.md"] = markdown
    folder = Path(out if out is not None else paths[0])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "differences.csv").unlink(missing_ok=True)  # none from an earlier comparison
    for name, content in outputs.items():
        write_output(folder / name, content)
    print(text)
    return [folder / name for name in outputs]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hl-compare``; return the exit status (1 when the runs cannot be compared)."""
    parser = CommandLineParser(
        prog=PROG,
        description="Compare hl-train runs over seeds: per-level loss and metric curves (PNG),\n"
        "the per-level table of means with 95% confidence intervals and the paired\n"
        "differences against a baseline (printed, CSV and Markdown).",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version on one line
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
    parser.add_argument("--version", action="version", version=version_text(PROG))
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
