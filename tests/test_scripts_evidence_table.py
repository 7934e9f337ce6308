"""Tests for scripts/evidence_table.py (docs/results.md's tables from hl-compare's CSVs)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evidence_table.py"


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_tables_have_a_line_per_value_and_a_column_per_run(tmp_path: Path) -> None:
    values = {"miou/kind": "0.9", "miou/class": "0.5", "serious": "0.02"}
    summary = [
        {"run": run, "n_seeds": "5", "seeds": "0 1 2 3 4", "stage": "test"}
        | {f"{v}_mean": mean for v, mean in values.items()}
        | {f"{v}_ci95": "0.0100" for v in values}
        for run in ("loss=hierarchical", "loss=flat")
    ]
    summary[1]["miou/class_ci95"] = ""  # as for one seed
    write_csv(tmp_path / "comparison.csv", summary)
    paired = [
        {"run": "loss=hierarchical", "baseline": "loss=flat", "n_pairs": "5", "seeds": "0 1"}
        | {"miou/kind_diff": "0.0300", "miou/kind_ci95": "0.0100", "miou/kind_p": "0.004"}
        | {"miou/class_diff": "-0.1000", "miou/class_ci95": "0.0200", "miou/class_p": "0.5"}
    ]
    write_csv(tmp_path / "differences.csv", paired)
    printed = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], check=True, capture_output=True, text=True
    ).stdout
    assert printed == (tmp_path / "evidence.md").read_text()
    assert "| value | hierarchical | flat |" in printed
    assert "| mIoU kind | 0.9 ± 0.0100 | 0.9 ± 0.0100 |" in printed
    assert "| mIoU class | 0.5 ± 0.0100 | 0.5 (1 seed) |" in printed
    assert printed.index("mIoU kind") < printed.index("mIoU class") < printed.index("serious")
    assert "Paired difference against flat" in printed
    assert "| mIoU kind | +0.0300 ± 0.0100 (p=0.004) |" in printed
    assert "| mIoU class | -0.1000 ± 0.0200 (p=0.5) |" in printed
    assert "ECE" not in printed  # values not in the CSVs get no line
