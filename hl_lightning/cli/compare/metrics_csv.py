"""A run's ``csv/metrics.csv`` read and checked: a cut-short or broken file is refused.

hl-train's CSV logger (Lightning's) writes a header of column names, then a row per logging
step: ``epoch``, ``step`` and numbers, empty where a column was not logged, every row ended
by a line break. How a broken file shows itself:

- a writer stopped mid-row (a killed run, or one still writing) leaves a file that does not
  end with a line break; its last row may have every field and a number cut mid-way
  (``0.81`` read as ``0.8``), so no row without its line break is trusted;
- a row cut short with more written after it has the wrong number of fields;
- a machine that crashed can leave zeros (NUL bytes) where data was never written;
- a value that is not a number, an ``epoch`` that is not a whole number.

Each is a :class:`MetricsFileError` naming the file and line. A file cut exactly at a line
break looks like a run that stopped after that row: complete rows are never partial values.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

__all__ = ["MetricsFileError", "parse_metrics_csv", "read_metrics_csv"]


class MetricsFileError(ValueError):
    """A metrics file that cannot be trusted: its ``path``, 1-based ``line`` and ``problem``."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


def read_metrics_csv(path: str | Path) -> list[dict[str, str]]:
    """Return the rows of the metrics file at ``path`` (see :func:`parse_metrics_csv`).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "metrics.csv"
    ...     _ = path.write_text("epoch,step,val/loss/class\\n0,0,1.5\\n")
    ...     read_metrics_csv(path)
    [{'epoch': '0', 'step': '0', 'val/loss/class': '1.5'}]
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise MetricsFileError(path, line, f"not UTF-8 text (byte {error.start})") from None
    return parse_metrics_csv(text, path)


def parse_metrics_csv(text: str, path: str | Path = "<text>") -> list[dict[str, str]]:
    """Return the rows of a CSV logger's metrics ``text`` as ``{column: text}``, checked.

    Raises :class:`MetricsFileError` (naming ``path`` and the line) for a file that does not
    end with a line break, a row whose number of fields is not the header's, NUL bytes, a
    value that is not a number, an ``epoch`` that is not a whole number, no header.

    >>> parse_metrics_csv("epoch,step,val/miou/class\\r\\n0,0,0.81\\r\\n")
    [{'epoch': '0', 'step': '0', 'val/miou/class': '0.81'}]
    >>> try:
    ...     parse_metrics_csv("epoch,step,val/miou/class\\r\\n0,0,0.8")  # 0.81, cut
    ... except MetricsFileError as error:
    ...     print(error.line, error.problem.split(":")[0])
    2 the last row is cut short
    """
    if not text:
        raise MetricsFileError(path, 1, "empty: no header (its writer was stopped at the start)")
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise MetricsFileError(
            path, line, "holds NUL bytes: zeros a crash left where data was never written"
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        lines = [(reader.line_num, fields) for fields in reader]
    except csv.Error as error:
        raise MetricsFileError(path, reader.line_num, f"not CSV: {error}") from None
    if not text.endswith("\n"):
        what = "the header is" if len(lines) == 1 else "the last row is"
        raise MetricsFileError(
            path,
            lines[-1][0],
            f"{what} cut short: the file does not end with a line break, so its writer "
            "stopped mid-row (a killed run, or one still writing) and its values may be partial",
        )
    (_, header), *body = lines
    if "epoch" not in header:
        raise MetricsFileError(path, 1, "no epoch column: not a CSV logger's metrics file")
    rows = []
    for line, fields in body:
        if len(fields) != len(header):
            raise MetricsFileError(
                path,
                line,
                f"the row has {len(fields)} fields, the header {len(header)}: a row cut short "
                "with more written after it, or an edited file",
            )
        row = dict(zip(header, fields, strict=True))
        _check_numbers(row, path, line)
        rows.append(row)
    return rows


def _check_numbers(row: dict[str, str], path: str | Path, line: int) -> None:
    """Raise :class:`MetricsFileError` unless ``epoch`` is a whole number and the other
    values are numbers or empty."""
    try:
        int(row["epoch"])
    except ValueError:
        raise MetricsFileError(
            path, line, f"epoch is {row['epoch']!r}, not a whole number"
        ) from None
    for column, value in row.items():
        if value:
            try:
                float(value)
            except ValueError:
                raise MetricsFileError(path, line, f"{column} is {value!r}, not a number") from None
