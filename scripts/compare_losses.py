"""Compare the loss family on one paired sweep: per-level test mIoU and mistake severity.

Runs ``hl-train -m loss=hierarchical,flat,hxe,soft_labels,tree_min`` (the same seed, so
the same initial weights and data order for every loss; each loss with its conf/loss
defaults) and prints a markdown table of each run's test metrics: the mIoU of every level
(coarse to fine), the mistake severity (mean tree distance of wrong leaf pixels) and the
share of serious mistakes (across level-0 groups). Extra arguments are hl-train overrides
(a smaller budget, another hierarchy, ...). ``--read DIR`` only prints the table of an
existing sweep.

    python scripts/compare_losses.py                              # the defaults: 8 epochs
    python scripts/compare_losses.py trainer.max_epochs=2 data.num_train=128   # a smaller budget
    python scripts/compare_losses.py --losses hierarchical flat --sweep-dir multirun/compare
    python scripts/compare_losses.py --read multirun/compare
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hl_lightning.hierarchies import load_hierarchy

LOSSES = ("hierarchical", "flat", "hxe", "soft_labels", "tree_min")


def run_sweep(losses: list[str], sweep_dir: Path, overrides: list[str]) -> None:
    """Run the paired sweep of ``losses`` into ``sweep_dir`` (CSV logging)."""
    script = shutil.which("hl-train") or str(Path(sys.executable).with_name("hl-train"))
    args = [script, "-m", f"loss={','.join(losses)}", "logger=csv", f"hydra.sweep.dir={sweep_dir}"]
    subprocess.run([*args, *overrides], check=True)


def level_names(config: dict[str, Any]) -> list[str]:
    """Return the level names of a run's hierarchy, coarse to fine."""
    hierarchy = config["hierarchy"]
    if hierarchy.get("level_names"):
        return list(hierarchy["level_names"])
    if hierarchy["source"] == "flat":
        return ["level0"]
    return list(load_hierarchy(hierarchy["source"]).level_names)


def read_run(run: Path) -> dict[str, Any]:
    """Return the loss, its options, decoding and final test metrics of one sweep job."""
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    with (run / "csv" / "metrics.csv").open(newline="") as file:
        tested = [row for row in csv.DictReader(file) if row.get("test/miou")]
    if not tested:
        raise RuntimeError(f"{run} has no test metrics (did the run finish?)")
    row = tested[-1]
    names = level_names(config)
    options = {k: v for k, v in config["loss"].items() if k != "name" and v is not None}
    return {
        "loss": config["loss"]["name"],
        "options": options,
        "decode": config["model"].get("decode", "marginal"),
        "levels": names,
        "miou": [float(row[f"test/miou/{name}"]) for name in names],
        "severity": float(row["test/severity"]),
        "serious": float(row["test/serious"]),
    }


def markdown_table(results: list[dict[str, Any]]) -> str:
    """Return the results as a markdown table, one row per loss."""
    names = results[0]["levels"]
    header = ["loss", "options", "decode", *(f"mIoU {n}" for n in names), "severity", "serious"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        options = ", ".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
        cells = [f"`{r['loss']}`", options, r["decode"], *(f"{m:.4f}" for m in r["miou"])]
        cells += [f"{r['severity']:.3f}", f"{r['serious']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--sweep-dir", type=Path, default=Path("multirun/compare_losses"))
    parser.add_argument("--read", type=Path, help="print the table of this finished sweep")
    parser.add_argument(
        "overrides", nargs="*", help="hl-train overrides, e.g. trainer.max_epochs=2"
    )
    args = parser.parse_args()
    sweep = args.read
    if sweep is None:
        sweep = args.sweep_dir
        run_sweep(args.losses, sweep, args.overrides)
    runs = sorted((p for p in sweep.iterdir() if (p / ".hydra").is_dir()), key=_job_number)
    print(markdown_table([read_run(run) for run in runs]))


def _job_number(run: Path) -> int:
    """Return the Hydra job number of a sweep subdirectory named ``<number>_<swept overrides>``."""
    return int(run.name.split("_", 1)[0])


if __name__ == "__main__":
    main()
