"""Tests for scripts/coarse_evidence.sh and scripts/coarse_evidence_table.py: the coarse-label
evidence study (experiment=coarse_evidence), its table and its dry run."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml
from _compose import make_config

from hl_lightning.cli.compare.stats import t_quantile

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TABLE = SCRIPTS / "coarse_evidence_table.py"


def table_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coarse_evidence_table", TABLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fieller_by_search(x: list[float], y: list[float]) -> tuple[float, float]:
    """The ratios r whose contrast x - r y has a mean no t-test rejects: a float64 search
    over r in [-4, 4] in steps of 1e-5."""
    n, t = len(x), t_quantile(0.975, len(x) - 1)
    r = torch.arange(-400_000, 400_001, dtype=torch.float64)[:, None] / 100_000
    contrast = torch.tensor(x, dtype=torch.float64) - r * torch.tensor(y, dtype=torch.float64)
    kept = contrast.mean(1).abs() <= t * contrast.std(1) / math.sqrt(n)
    return float(r[kept].min()), float(r[kept].max())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fieller_interval_is_the_set_of_ratios_a_paired_t_test_keeps(seed: int) -> None:
    fieller = table_module().fieller
    draw = random.Random(seed)
    y = [0.1 + draw.gauss(0, 0.02) for _ in range(5)]  # a gap clearly above 0
    x = [0.6 * b + draw.gauss(0, 0.01) for b in y]
    low, high = fieller(x, y)
    ref_low, ref_high = fieller_by_search(x, y)
    assert low == pytest.approx(ref_low, abs=2e-5) and high == pytest.approx(ref_high, abs=2e-5)
    assert low < statistics.fmean(x) / statistics.fmean(y) < high
    assert fieller([0.1, -0.2, 0.05], [0.01, -0.02, 0.015]) == (-math.inf, math.inf)
    with pytest.raises(ValueError, match="two or more pairs"):
        fieller([1.0], [1.0])


def write_run(folder: Path, arm: str, loss: str, seed: int, miou: dict[str, float]) -> None:
    """Write a run folder as hl-train leaves it: its overrides, config and test metrics."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "csv").mkdir()
    overrides = [f"study.arm={arm}", f"loss={loss}", f"seed={seed}", "experiment=coarse_evidence"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"seed": seed, "hierarchy": {"source": "synthetic_hard", "level_names": list(miou)}}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    keys = [f"test/loss/{level}" for level in miou] + [f"test/miou/{level}" for level in miou]
    values = [1.0] * len(miou) + list(miou.values())
    (folder / "csv" / "metrics.csv").write_text(
        "epoch,step," + ",".join(keys) + "\n0,8," + ",".join(str(v) for v in values) + "\n"
    )


def test_the_table_has_each_arm_the_paired_differences_and_the_gap_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three seeds: (b) - (a) = 0.02, 0.03, 0.04 and (c) - (a) = 0.04, 0.06, 0.08 at the
    kind level: half the gap closed; at the class level (b) adds nothing."""
    job = 0
    for arm, kind_gain, class_gain in (("fine", 0, 0), ("coarse", 1, 0), ("all_fine", 2, 2)):
        for loss in ("hierarchical", "flat"):
            for seed in range(3):
                kind = 0.5 + 0.01 * seed + kind_gain * (0.01 * seed + 0.02)
                cls = 0.2 + 0.02 * seed + class_gain * 0.01
                miou = {"kind": kind, "class": cls}
                write_run(tmp_path / f"{job}_{arm}_{loss}_{seed}", arm, loss, seed, miou)
                job += 1
    monkeypatch.setattr(sys, "argv", ["coarse_evidence_table.py", str(tmp_path)])
    table_module().main()
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "coarse_evidence.md").read_text()
    hierarchical = printed[printed.index("`loss=hierarchical`") : printed.index("`loss=flat`")]
    assert "| level | (a) N fine | (b) + M coarse | (c) N + M fine | (b) - (a) | (c) - (a) |" in (
        hierarchical
    )
    kind_row = next(line for line in hierarchical.splitlines() if line.startswith("| kind |"))
    cells = [cell.strip() for cell in kind_row.strip("|").split("|")]
    half = t_quantile(0.975, 2) * 0.01 / math.sqrt(3)  # s = 0.01 for every arm and difference
    assert cells[1] == f"{0.51:.4f} ± {half:.4f}"  # (a): 0.50, 0.51, 0.52
    assert cells[2] == f"{0.54:.4f} ± {2 * half:.4f}"  # (b): 0.52, 0.54, 0.56
    assert cells[4].startswith(f"+{0.03:.4f} ± {half:.4f} (p=")
    assert cells[5].startswith(f"+{0.06:.4f} ± {2 * half:.4f} (p=")
    assert cells[6].startswith("50% [")  # 0.03 / 0.06; Fieller: exact here, a point
    class_row = next(line for line in hierarchical.splitlines() if line.startswith("| class |"))
    class_cells = [cell.strip() for cell in class_row.strip("|").split("|")]
    assert class_cells[4] == "+0.0000 ± 0.0000 (p=1)"  # the coarse images add nothing
    assert class_cells[6] == "0% [0%, 0%]"
    assert "`loss=flat`" in printed


def test_the_experiment_pairs_three_arms_of_equal_steps() -> None:
    arms = {}
    for arm in ("fine", "coarse", "all_fine"):
        cfg = make_config(["experiment=coarse_evidence", f"study.arm={arm}"])
        steps = -(-cfg.data.num_train // cfg.data.batch_size) * cfg.trainer.max_epochs
        every = -(-cfg.data.num_train // cfg.data.batch_size) * cfg.trainer.check_val_every_n_epoch
        arms[arm] = (cfg.data.num_train, cfg.data.coarse_fraction, steps, every)
    assert arms == {
        "fine": (16, 0.0, 136, 17),
        "coarse": (272, 256 / 272, 136, 17),
        "all_fine": (272, 0.0, 136, 17),
    }
    assert cfg.data.variant == "hard" and cfg.model.scheduler_interval == "step"
    assert cfg.model.scheduler.T_max is None  # the same per-step schedule in every arm
    params = cfg.hydra.sweeper.params
    assert params["study.arm"] == "fine,coarse,all_fine" and params.loss == "hierarchical,flat"
    assert params.seed == "0,1,2,3,4"


@pytest.mark.slow
def test_the_dry_run_goes_through_sweep_compare_and_table(tmp_path: Path) -> None:
    """Tiny arms of equal steps, 2 seeds: 12 runs, hl-compare and the table (about 40 s)."""
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OUT": str(tmp_path / "sweep"),
        "HL_TRAIN": str(bin_dir / "hl-train"),
        "HL_COMPARE": str(bin_dir / "hl-compare"),
        "PYTHON": sys.executable,
    }
    done = subprocess.run(
        ["bash", str(SCRIPTS / "coarse_evidence.sh"), "--dry-run"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / "sweep" / "coarse_evidence.md").read_text()
    assert table in done.stdout and "| kind |" in table and "| class |" in table
    assert len(list((tmp_path / "sweep").glob("*_study.arm=*"))) == 12
    assert (tmp_path / "sweep" / "differences.csv").is_file()
