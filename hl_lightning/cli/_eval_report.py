"""hl-eval's report: its values, the files it writes and the table it prints."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from hl_lightning.atomic import atomic_write
from hl_lightning.metrics import OperatingCurve, TemperatureFit, save_operating_curve

__all__ = ["EvalReport", "decoding_rows", "print_report", "write_report"]

#: The files hl-eval writes into its output directory.
RESULTS, DECODINGS, CURVE_CSV, CURVE_PNG = (
    "results.json",
    "decodings.csv",
    "hpr_curve.csv",
    "hpr_curve.png",
)


@dataclass(frozen=True)
class EvalReport:
    """What hl-eval measured: per decoding the all-in-one metric's values, the node
    predictions at the threshold and their curve, the temperature (1.0: none) and its fit."""

    checkpoint: str
    split: str
    batches: int
    level_names: tuple[str, ...]
    decodings: dict[str, dict[str, Tensor]]
    threshold: float
    temperature: float
    fit: TemperatureFit | None
    nodes: dict[str, Tensor]
    curve: OperatingCurve
    ece_at_temperature: Tensor | None


def decoding_rows(report: EvalReport) -> list[dict[str, float | str]]:
    """Return one flat row per decoding: ``decode``, ``miou/<level>``, ``acc/<level>``,
    ``severity``, ``serious``, ``inconsistency``, ``ece/<level>`` (at temperature 1)."""
    rows: list[dict[str, float | str]] = []
    for method, values in report.decodings.items():
        row: dict[str, float | str] = {"decode": method}
        for key in ("miou", "acc"):
            row.update(_per_level(key, values[key], report.level_names))
        row.update({k: float(values[k]) for k in ("severity", "serious", "inconsistency")})
        row.update(_per_level("ece", values["ece"], report.level_names))
        rows.append(row)
    return rows


def _per_level(key: str, value: Tensor, names: tuple[str, ...]) -> dict[str, float]:
    return {f"{key}/{n}": float(v) for n, v in zip(names, value.reshape(-1), strict=True)}


def _node_values(report: EvalReport) -> dict[str, Any]:
    """Return the node predictions' values, their curve's area and the temperature."""
    values: dict[str, Any] = {k: float(v) for k, v in report.nodes.items()}
    values.update(threshold=report.threshold, auc=float(report.curve.auc))
    values["temperature"] = report.temperature
    if report.ece_at_temperature is not None:
        values.update(_per_level("ece", report.ece_at_temperature, report.level_names))
    if report.fit is not None:
        fit = report.fit
        values["fit"] = {
            "split": "val",
            "pixels": fit.pixels,
            "nll_before": fit.nll_before,
            "nll_after": fit.nll_after,
            **_per_level("ece_before", fit.ece_before, report.level_names),
            **_per_level("ece_after", fit.ece_after, report.level_names),
        }
    return values


def write_report(report: EvalReport, folder: Path) -> list[Path]:
    """Write ``results.json``, ``decodings.csv``, ``hpr_curve.csv`` and (with matplotlib)
    ``hpr_curve.png`` into ``folder``, each whole (:mod:`hl_lightning.atomic`); return the
    files written."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = decoding_rows(report)
    results = {
        "checkpoint": report.checkpoint,
        "split": report.split,
        "batches": report.batches,
        "decodings": {
            row["decode"]: {k: v for k, v in row.items() if k != "decode"} for row in rows
        },
        "nodes": _node_values(report),
    }
    with atomic_write(folder / RESULTS) as file:
        file.write(json.dumps(results, indent=2) + "\n")
    with atomic_write(folder / DECODINGS, newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written = [folder / RESULTS, folder / DECODINGS]
    written.append(save_operating_curve(report.curve, folder / CURVE_CSV))
    try:
        from hl_lightning.metrics import plot_operating_curve

        figure, _ = plot_operating_curve(report.curve, label=f"T = {report.temperature:.3g}")
    except ImportError:
        return written  # the plot needs matplotlib (the plots extra): print_report says so
    with atomic_write(folder / CURVE_PNG, "wb") as file:
        figure.savefig(file, format="png", dpi=120, bbox_inches="tight")
    written.append(folder / CURVE_PNG)
    return written


def print_report(report: EvalReport, folder: Path) -> None:
    """Print the decodings side by side, the node predictions and where the files are."""
    names = report.level_names
    print(f"{report.checkpoint}: {report.split} split, {report.batches} batches")
    columns = [*(f"miou/{n}" for n in names), f"acc/{names[-1]}", "severity", "serious"]
    columns.append("inconsistency")
    print(f"{'decode':10s} " + " ".join(f"{c:>{max(len(c), 8)}s}" for c in columns))
    for row in decoding_rows(report):
        cells = [f"{float(row[c]):>{max(len(c), 8)}.4f}" for c in columns]
        print(f"{row['decode']!s:10s} " + " ".join(cells))
    nodes = _node_values(report)
    scaled = "" if report.temperature == 1.0 else f", logits / T = {report.temperature:.4g}"
    if report.fit is not None:
        scaled += " (fitted on the val split)"
    print(
        f"node predictions at {report.threshold:g}{scaled}: hP {nodes['hp']:.4f}  "
        f"hR {nodes['hr']:.4f}  hF {nodes['hf']:.4f}; operating curve area {nodes['auc']:.4f} "
        f"({len(report.curve.thresholds)} thresholds "
        f"{float(report.curve.thresholds[0]):.2f}..{float(report.curve.thresholds[-1]):.2f})"
    )
    if report.ece_at_temperature is not None:
        before = report.decodings[next(iter(report.decodings))]["ece"].reshape(-1).tolist()
        after = report.ece_at_temperature.reshape(-1).tolist()
        print(
            f"calibration error per level ({', '.join(names)}): "
            f"T = 1: {_floats(before)}; T = {report.temperature:.4g}: {_floats(after)}"
        )
    png = (folder / CURVE_PNG).is_file()
    files = [RESULTS, DECODINGS, CURVE_CSV, *([CURVE_PNG] if png else [])]
    print(f"wrote {', '.join(files)} into {folder}")
    if not png:
        print(f"{CURVE_PNG} needs matplotlib: pip install hl_lightning[plots]")


def _floats(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"
