"""hl-compare's tables as text: CSV cells, readable cells, aligned text and Markdown.

CSV cells per value column: ``<value>_mean`` and ``<value>_ci95`` (``_diff``, ``_ci95`` and
``_p`` for paired differences), ``-`` where no run logged the value, an empty interval for one
seed. Readable cells: ``mean ± ci`` (``+diff ± ci (p=...)``), ``mean (1 seed)`` (``1 pair``)
without an interval. A row's tree cells, when it has them, come last.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from hl_lightning.cli.compare.summary import TableRow

__all__ = ["csv_row", "csv_text", "markdown_table", "shown_row", "text_table"]


def _digits(column: str) -> int:
    """Return the decimals a column is shown with: 2 for epoch counts, else 4."""
    return 2 if column.startswith("epochs_to_95/") else 4


def csv_row(row: TableRow, paired: bool) -> dict[str, str]:
    """Return the row's CSV cells: per column ``_mean`` and ``_ci95`` (``_diff``, ``_ci95``
    and ``_p`` when paired); ``-`` where no run logged the value, empty for one seed.

    >>> from hl_lightning.cli.compare.stats import mean_ci
    >>> csv_row(TableRow({"run": "a"}, {"miou/class": mean_ci([0.5])}), paired=False)
    {'run': 'a', 'miou/class_mean': '0.5000', 'miou/class_ci95': ''}
    """
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
    return {**cells, **row.trees}


def shown_row(row: TableRow, paired: bool) -> dict[str, str]:
    """Return the row's cells for reading: ``mean ± ci`` (``+diff ± ci (p=...)`` when
    paired), ``mean (1 seed)`` (``1 pair``) without an interval, ``-`` without a value.

    >>> from hl_lightning.cli.compare.stats import paired_difference
    >>> shown_row(TableRow({}, {"miou/class": paired_difference([0.6], [0.5])}), paired=True)
    {'miou/class': '+0.1000 (1 pair)'}
    """
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
    return {**cells, **row.trees}


def text_table(rows: Sequence[dict[str, str]]) -> str:
    """Return the rows as aligned plain text (first column left, the others right).

    >>> print(text_table([{"run": "flat", "miou": "0.5"}, {"run": "hierarchical", "miou": "0.55"}]))
    run           miou
    flat           0.5
    hierarchical  0.55
    """
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


def markdown_table(rows: Sequence[dict[str, str]]) -> str:
    """Return the rows as a Markdown table.

    >>> print(markdown_table([{"run": "flat", "miou": "0.5"}]), end="")
    | run | miou |
    | --- | ---: |
    | flat | 0.5 |
    """
    columns = list(rows[0])
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(columns) - 1)) + " |",
    ]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict[str, str]]) -> str:
    """Return the rows as CSV text with a header (``\\r\\n`` line ends, as the csv module's).

    >>> csv_text([{"run": "flat", "miou_mean": "0.5000"}])
    'run,miou_mean\\r\\nflat,0.5000\\r\\n'
    """
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
