"""Tests for hl_lightning/cli/compare/metrics_csv.py: cut-short and broken metrics files.

A killed CSV logger leaves a file that does not end with a line break (its last row cut
mid-row, possibly mid-number with every field there), or, when something was appended after
the cut, a row with the wrong number of fields. hl-compare refuses such a file, naming the
run's file and line, and never uses a partial value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _compare_runs import fake_run

from hl_lightning.cli import compare
from hl_lightning.cli.compare.metrics_csv import MetricsFileError, parse_metrics_csv

HAND_WRITTEN = "\r\n".join(
    ["epoch,step,train/loss/class,val/loss/class,val/miou/class", "0,0,2.5,,", "0,0,,1.2,0.81", ""]
)


def lines_of(text: str) -> list[str]:
    return text.split("\r\n")


def drop_fields(text: str, line: int, count: int) -> str:
    """Return ``text`` with the last ``count`` fields of (1-based) ``line`` left out."""
    lines = lines_of(text)
    lines[line - 1] = lines[line - 1].rsplit(",", count)[0]
    return "\r\n".join(lines)


def set_field(text: str, line: int, column: str, value: str) -> str:
    """Return ``text`` with ``column`` of (1-based) ``line`` set to ``value``."""
    lines = lines_of(text)
    index = lines[0].split(",").index(column)
    fields = lines[line - 1].split(",")
    fields[index] = value
    lines[line - 1] = ",".join(fields)
    return "\r\n".join(lines)


# (how the file is broken, the line named, words of the message); fake_run's file has a
# header (line 1), 6 training/validation rows (lines 2-7) and the test row (line 8)
BROKEN: dict[str, tuple[Callable[[str], str], int, str]] = {
    "cut mid-number, every field there": (
        lambda _: HAND_WRITTEN.removesuffix("1\r\n"),  # the last value 0.81 read as 0.8
        3,
        "the last row is cut short: the file does not end with a line break",
    ),
    "last row cut short": (
        lambda text: text[:-40],
        8,
        "the last row is cut short: the file does not end with a line break",
    ),
    "cut inside the last line break": (
        lambda text: drop_fields(text, 8, 3).removesuffix("\r\n"),
        8,
        "the last row is cut short",
    ),
    "a row with fewer fields than the header": (
        lambda text: drop_fields(text, 4, 3),
        4,
        "has 18 fields, the header 21",
    ),
    "a row with more fields than the header": (
        lambda text: set_field(text, 4, "val/loss/class", "0.1,0.2"),
        4,
        "has 22 fields, the header 21",
    ),
    "a value that is not a number": (
        lambda text: set_field(text, 3, "val/miou/family", "0.1x"),
        3,
        "val/miou/family is '0.1x', not a number",
    ),
    "an epoch that is not a whole number": (
        lambda text: set_field(text, 2, "epoch", "0.5"),
        2,
        "epoch is '0.5', not a whole number",
    ),
    "a header cut short": (lambda text: text[:30], 1, "the header is cut short"),
    "an empty file": (lambda _: "", 1, "empty: no header"),
    "zeros a crash left at the end": (
        lambda text: text + "\0" * 64,
        9,
        "NUL bytes",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_metrics_file_names_the_run_and_line(tmp_path: Path, case: str) -> None:
    breaking, line, words = BROKEN[case]
    run = fake_run(tmp_path / "run", ["loss=flat"])
    metrics = run / "csv" / "metrics.csv"
    metrics.write_bytes(breaking(metrics.read_bytes().decode()).encode())
    with pytest.raises(compare.CompareError) as error:
        compare.load_runs([run])
    message = str(error.value)
    assert f"{metrics}:{line}: " in message and words in message


def test_every_broken_run_of_a_sweep_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [fake_run(tmp_path / "sw" / f"{job}_seed={job}", [f"seed={job}"]) for job in range(4)]
    for run, cut in ((runs[1], 10), (runs[3], 1)):
        metrics = run / "csv" / "metrics.csv"
        metrics.write_bytes(metrics.read_bytes()[:-cut])
    out = tmp_path / "out"
    assert compare.main([str(tmp_path / "sw"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("the last row is cut short") == 2
    assert f"{runs[1] / 'csv' / 'metrics.csv'}:8: " in err
    assert f"{runs[3] / 'csv' / 'metrics.csv'}:8: " in err
    assert str(runs[0]) not in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_a_complete_file_ending_in_either_line_break_is_read(tmp_path: Path) -> None:
    crlf = fake_run(tmp_path / "crlf", [])
    lf = fake_run(tmp_path / "lf", [])
    metrics = lf / "csv" / "metrics.csv"
    metrics.write_bytes(metrics.read_bytes().replace(b"\r\n", b"\n"))
    first, second = compare.load_runs([crlf, lf])
    assert first.rows == second.rows and len(first.rows) == 7


def test_the_error_carries_the_path_line_and_problem() -> None:
    with pytest.raises(MetricsFileError) as error:
        parse_metrics_csv("epoch,step,val/loss/class\r\n0,0,1.5\r\n1,1,1.2", "m.csv")
    assert (error.value.path, error.value.line) == ("m.csv", 3)
    assert error.value.problem.startswith("the last row is cut short")
    assert str(error.value).startswith("m.csv:3: the last row is cut short")


def test_complete_rows_are_read_as_text_with_empty_cells_kept() -> None:
    text = "epoch,step,train/loss/class,val/loss/class\r\n0,0,2.5,\r\n0,0,,nan\r\n"
    assert parse_metrics_csv(text) == [
        {"epoch": "0", "step": "0", "train/loss/class": "2.5", "val/loss/class": ""},
        {"epoch": "0", "step": "0", "train/loss/class": "", "val/loss/class": "nan"},  # a value
    ]
    with pytest.raises(MetricsFileError, match=r"<text>:1: no epoch column"):
        parse_metrics_csv("step,val/loss/class\r\n0,1.5\r\n")
