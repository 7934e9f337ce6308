"""Run folders written like hl-train's, for the hl-compare tests (tests/test_cli_compare*.py).

``fake_run`` writes one run (metrics like the CSV logger's, ``.hydra`` overrides and config),
``seed_sweep`` a sweep of 3 seeds x 2 losses with known values, ``tree_config`` the config of
a run on a given tree; ``check_png`` and ``read_csv`` read what hl-compare wrote.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

LEVELS = ("kind", "family", "class")
T_975_DF2 = 4.302653  # t(0.975, 2), for 3 seeds

# 3 seeds x 2 losses: the final test mIoU (every level) and the validation mIoU per epoch
TEST_MIOU = {"flat": [0.50, 0.52, 0.57], "hierarchical": [0.55, 0.56, 0.60]}
VAL_MIOU = {
    "flat": [[0.30, 0.45, 0.50], [0.30, 0.50, 0.50], [0.48, 0.49, 0.50]],  # 95%: epoch 3, 2, 1
    "hierarchical": [[0.40, 0.50, 0.52], [0.50, 0.52, 0.52], [0.45, 0.50, 0.52]],  # 2, 1, 2
}


def check_png(path: Path, min_size: tuple[int, int] = (400, 250)) -> None:
    """Assert that ``path`` is a valid, non-blank PNG of at least ``min_size`` pixels."""
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def fake_run(
    path: Path,
    overrides: list[str],
    levels: tuple[str, ...] = LEVELS,
    epochs: int = 3,
    tested: bool = True,
    level_names: list[str] | None = None,
    val_miou: Sequence[float] | None = None,
    test_miou: float = 0.9,
    config: dict[str, Any] | None = None,
    reliability: dict[str, float] | None = None,
) -> Path:
    """Write a run folder with metrics like hl-train's CSV logger (alphabetical columns).

    The validation mIoU of every level is ``val_miou`` per epoch (default 0.1, 0.2, ...),
    the test mIoU ``test_miou``; ``config`` goes into ``.hydra/config.yaml`` (a ``seed``
    there is the run's seed when the overrides have none); ``reliability`` adds test values
    such as ``{"ece/class": 0.1, "inconsistency": 0.02}`` (logged as ``test/<key>``).
    """
    keys = [f"{s}/loss/{lv}" for s in ("train", "val", "test") for lv in levels]
    keys += [f"{s}/miou/{lv}" for s in ("val", "test") for lv in levels]
    keys += ["val/severity", "val/serious", "test/severity", "test/serious"]
    curve = val_miou if val_miou is not None else [0.1 * (epoch + 1) for epoch in range(epochs)]
    rows = []
    for epoch in range(epochs):
        rows.append({f"val/loss/{lv}": 0.1 * (epoch + 1) for lv in levels})
        rows[-1].update({f"val/miou/{lv}": curve[epoch] for lv in levels})
        rows[-1].update({"val/severity": 2.0 - epoch, "val/serious": 0.5})
        rows.append({f"train/loss/{lv}": 3.0 - epoch for lv in levels})
        for row in rows[-2:]:
            row.update(epoch=epoch, step=epoch)
    if tested:
        rows.append({f"test/loss/{lv}": 0.9 for lv in levels})
        rows[-1].update({f"test/miou/{lv}": test_miou for lv in levels})
        rows[-1].update({"test/severity": 1.25, "test/serious": 0.125, "epoch": epochs, "step": 9})
        rows[-1].update({f"test/{key}": value for key, value in (reliability or {}).items()})
        keys += [f"test/{key}" for key in reliability or {}]
    (path / "csv").mkdir(parents=True)
    with (path / "csv" / "metrics.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["epoch", "step", *sorted(keys)])
        writer.writeheader()
        writer.writerows(rows)
    (path / ".hydra").mkdir()
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    written = {"hierarchy": {"level_names": level_names}, **(config or {})}
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(written))
    return path


def tree_config(source: str, level_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Return a ``.hydra/config.yaml`` body for runs on the tree ``source`` (``fake_run``'s
    ``config``); without ``level_names`` the tree's levels are positional (``level0``, ...)."""
    names = None if level_names is None else list(level_names)
    return {"hierarchy": {"source": source, "level_names": names}}


def seed_sweep(root: Path, extra: dict[str, list[str]] | None = None) -> Path:
    """Write a sweep of 3 seeds x 2 losses (hl-train's job names) below ``root``; return it."""
    for job, (loss, seed) in enumerate(product(("flat", "hierarchical"), range(3))):
        overrides = [
            "data.num_train=16",
            f"loss={loss}",
            f"seed={seed}",
            *(extra or {}).get(loss, []),
        ]
        name = f"{job}_loss={loss},seed={seed}"
        fake_run(
            root / name,
            overrides,
            level_names=list(LEVELS),
            val_miou=VAL_MIOU[loss][seed],
            test_miou=TEST_MIOU[loss][seed],
            config={"seed": seed},
        )
    return root


def ci95(values: Sequence[float]) -> float:
    """Return the half-width of the 95% t interval of 3 values, by hand."""
    return T_975_DF2 * float(np.std(values, ddof=1)) / np.sqrt(len(values))
