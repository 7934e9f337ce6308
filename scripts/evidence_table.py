"""Write the tables of docs/results.md from a compared sweep: a row per value, a column per run.

Reads ``comparison.csv`` and ``differences.csv`` (written by ``hl-compare SWEEP``) and writes
``SWEEP/evidence.md``, also printed: the mean ± 95% CI over seeds of every value (per level:
test mIoU, calibration error, the validation mIoU's mean over epochs and the epochs to 95%
of its final value; then the inconsistency, the share of serious mistakes and the mistake
severity), and the paired differences against the baseline with their CI and p-value.
Columns are the configurations, named by their overrides' values (``hierarchical`` for
``loss=hierarchical``).

    python scripts/evidence_table.py multirun/evidence/<time>
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

#: Row titles of the values, in table order; ``{level}`` is filled per level.
ROWS: tuple[tuple[str, str], ...] = (
    ("miou/{level}", "mIoU {level}"),
    ("ece/{level}", "ECE {level}"),
    ("inconsistency", "inconsistency (marginal)"),
    ("serious", "serious mistakes"),
    ("severity", "mistake severity"),
    ("miou_auc/{level}", "mIoU over epochs {level}"),
    ("epochs_to_95/{level}", "epochs to 95% {level}"),
)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Return the rows of a CSV file with a header."""
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def levels_of(row: dict[str, str]) -> list[str]:
    """Return the levels of a comparison row, coarse to fine, from its ``miou/<level>`` columns."""
    return [key[5:-5] for key in row if key.startswith("miou/") and key.endswith("_mean")]


def short(label: str) -> str:
    """Return ``"hierarchical"`` for ``"loss=hierarchical"`` (the values of a label's overrides)."""
    return ",".join(part.split("=", 1)[-1] for part in label.split(","))


def cell(row: dict[str, str], value: str, kind: str) -> str:
    """Return ``mean ± ci`` (``kind="mean"``) or ``+diff ± ci (p=...)`` (``"diff"``)."""
    mean, ci = row.get(f"{value}_{kind}", "-"), row.get(f"{value}_ci95", "")
    if mean in ("-", ""):
        return "-"
    if kind == "diff" and not mean.startswith("-"):
        mean = f"+{mean}"
    if not ci:
        return f"{mean} (1 {'seed' if kind == 'mean' else 'pair'})"
    p = row.get(f"{value}_p", "")
    return f"{mean} ± {ci}" + (f" (p={float(p):.2g})" if p else "")


def table(rows: list[dict[str, str]], levels: list[str], kind: str) -> str:
    """Return a Markdown table: a line per value, a column per configuration."""
    header = ["value", *(short(row["run"]) for row in rows)]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(rows) + "|"]
    for key, title in ROWS:
        for level in levels if "{level}" in key else [""]:
            value = key.format(level=level)
            if f"{value}_{kind}" not in rows[0]:
                continue
            cells = [cell(row, value, kind) for row in rows]
            lines.append(f"| {title.format(level=level)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Read the sweep's tables and write ``evidence.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder that hl-compare has written to")
    sweep = parser.parse_args().sweep
    summary = read_csv(sweep / "comparison.csv")
    levels = levels_of(summary[0])
    seeds = {row["n_seeds"] for row in summary}
    text = (
        f"Mean ± 95% CI over {'/'.join(sorted(seeds))} seeds ({summary[0]['stage']} split):\n\n"
        + table(summary, levels, "mean")
    )
    differences = sweep / "differences.csv"
    if differences.exists():
        paired = read_csv(differences)
        baseline = short(paired[0]["baseline"])
        text += (
            f"\nPaired difference against {baseline} over the seeds both ran: mean ± 95% CI "
            "(p: two-sided paired t-test):\n\n" + table(paired, levels, "diff")
        )
    (sweep / "evidence.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
