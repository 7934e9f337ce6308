"""Tests for hl_lightning/conf/hparams_search/: Optuna sweeps that hl-train's return value drives.

They need the ``[optuna]`` extra (hydra-optuna-sweeper) and are skipped without it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="needs the [optuna] extra")

SEARCHES = sorted(
    p.name.removesuffix(".yaml")
    for p in resources.files("hl_lightning.conf").joinpath("hparams_search").iterdir()
    if p.name.endswith(".yaml")
)


@pytest.mark.parametrize("search", SEARCHES)
def test_search_composes_with_the_optuna_sweeper(search: str) -> None:
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        cfg = compose("train", [f"+hparams_search={search}"], return_hydra_config=True)
    assert cfg.optimized_metric == "val/miou"
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.mode.name == "MULTIRUN"
    for key in cfg.hydra.sweeper.params:  # every tuned key exists in the composed config
        node = cfg
        for part in key.split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        assert isinstance(node, float)


@pytest.mark.slow
def test_a_two_trial_level_weights_study_returns_the_best_weights(
    tmp_path: Path, tiny_run: list[str]
) -> None:
    script = Path(sys.executable).with_name("hl-train")
    if not script.exists():
        pytest.skip(f"the hl-train console script is not installed next to {sys.executable}")
    sweep = tmp_path / "sweep"
    args = [str(script), "-m", "+hparams_search=level_weights_optuna", *tiny_run]
    args += ["hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"loss.level_weights.0", "loss.level_weights.1"}
    assert 0.0 <= best["best_value"] <= 1.0  # a validation mIoU
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name.split("=", 1)[0] for p in trials] == [  # named by the swept keys
        "0_loss.level_weights.0",
        "1_loss.level_weights.0",
    ]
    returned = []
    for trial in trials:  # each trial trained with its sampled weights
        config = yaml.safe_load((trial / ".hydra" / "config.yaml").read_text())
        weights = config["loss"]["level_weights"]
        assert len(weights) == 3 and weights[2] == 1.0 and 0.0 <= weights[0] <= 2.0
        with (trial / "csv" / "metrics.csv").open(newline="") as file:
            rows = [row for row in csv.DictReader(file) if row["val/miou"]]
        returned.append(float(rows[-1]["val/miou"]))  # optimized_metric: the last validation's
    assert best["best_value"] == pytest.approx(max(returned), rel=1e-6)
