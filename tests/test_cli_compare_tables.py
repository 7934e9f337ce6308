"""Tests for hl_lightning/cli/compare/tables.py: CSV and readable cells, text and Markdown."""

from __future__ import annotations

import csv
import io

from hl_lightning.cli.compare.stats import mean_ci, paired_difference
from hl_lightning.cli.compare.summary import TableRow
from hl_lightning.cli.compare.tables import (
    csv_row,
    csv_text,
    markdown_table,
    shown_row,
    text_table,
)

ROW = TableRow(
    {"run": "loss=flat", "n_seeds": "3"},
    {
        "miou/class": mean_ci([0.5, 0.6, 0.7]),
        "epochs_to_95/class": mean_ci([2.0, 3.0, 3.0]),
        "ece/class": None,
    },
)


def test_cells_per_value_then_the_tree_cells_last() -> None:
    row = TableRow(ROW.cells, ROW.estimates, {"tree": "flat: level0"})
    cells = csv_row(row, paired=False)
    assert list(cells) == [
        "run",
        "n_seeds",
        *(f"{v}_{part}" for v in row.estimates for part in ("mean", "ci95")),
        "tree",
    ]
    assert cells["miou/class_mean"] == "0.6000" and cells["epochs_to_95/class_mean"] == "2.67"
    assert cells["ece/class_mean"] == "-" and cells["tree"] == "flat: level0"
    shown = shown_row(row, paired=False)
    assert list(shown) == ["run", "n_seeds", *row.estimates, "tree"]
    assert shown["miou/class"] == f"0.6000 ± {mean_ci([0.5, 0.6, 0.7]).ci95:.4f}"


def test_paired_cells_have_a_sign_and_a_p_value() -> None:
    difference = paired_difference([0.6, 0.7, 0.9], [0.5, 0.6, 0.7])
    row = TableRow({"run": "a"}, {"miou/class": difference})
    assert csv_row(row, paired=True) == {
        "run": "a",
        "miou/class_diff": "0.1333",
        "miou/class_ci95": f"{difference.ci95:.4f}",
        "miou/class_p": f"{difference.p:.4g}",
    }
    assert shown_row(row, paired=True)["miou/class"] == (
        f"+0.1333 ± {difference.ci95:.4f} (p={difference.p:.2g})"
    )


def test_csv_text_reads_back_and_the_tables_hold_every_cell() -> None:
    rows = [shown_row(ROW, paired=False), {**shown_row(ROW, paired=False), "run": "loss=hxe"}]
    assert list(csv.DictReader(io.StringIO(csv_text(rows), newline=""))) == rows
    markdown = markdown_table(rows).splitlines()
    assert len(markdown) == 4 and markdown[1] == "| --- | ---: | ---: | ---: | ---: |"
    text = text_table(rows).splitlines()
    assert text[1].startswith("loss=flat ") and text[2].startswith("loss=hxe ")
    assert all(cell in text[1] for cell in rows[0].values())
