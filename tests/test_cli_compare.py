"""Tests for hl_lightning/cli/compare.py: hl-compare's figures and tables.

Real runs come from one 2-job hl-train sweep (hierarchical vs flat, 2 epochs of tiny
data), shared by the slow tests; the fast tests use hand-written metrics files.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from hl_lightning.cli import compare
from hl_lightning.cli._stats import Estimate

LEVELS = ("kind", "family", "class")
T_975_DF2 = 4.302653  # t(0.975, 2), for 3 seeds


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, tiny_run: list[str]) -> Path:
    """Return the folder of a real sweep: jobs 0_loss=hierarchical and 1_loss=flat."""
    script = Path(sys.executable).with_name("hl-train")
    if not script.exists():
        pytest.skip(f"the hl-train console script is not installed next to {sys.executable}")
    root = tmp_path_factory.mktemp("compare")
    args = [str(script), "-m", *tiny_run, "trainer.max_epochs=2", "loss=hierarchical,flat"]
    args.append(f"hydra.sweep.dir={root / 'sw'}")
    result = subprocess.run(
        args,
        cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sw"


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


# ---------------------------------------------------------------------------- real runs
@pytest.mark.slow
def test_multirun_dir_gives_figures_and_tables(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures"
    assert compare.main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == [
        "run",
        "n_seeds",
        "seeds",
        "stage",
        *(f"{value}/{lv}" for value in ("miou", "miou_auc", "epochs_to_95") for lv in LEVELS),
        "severity",
        "serious",
        *(f"ece/{lv}" for lv in LEVELS),
        "inconsistency",
    ]
    assert printed[1].startswith("loss=hierarchical ") and printed[2].startswith("loss=flat ")
    assert printed[1].split()[1:4] == ["1", "0", "test"]  # one run, seed 0 from its config
    for name in ("loss_curves.png", "miou_curves.png"):
        check_png(out / name)
    rows = read_csv(out / "comparison.csv")
    assert [row["run"] for row in rows] == ["loss=hierarchical", "loss=flat"]
    metrics = read_csv(sweep / "0_loss=hierarchical" / "csv" / "metrics.csv")
    tested = next(row for row in metrics if row["test/miou/class"])
    assert rows[0]["miou/class_mean"] == f"{float(tested['test/miou/class']):.4f}"
    assert rows[0]["severity_mean"] == f"{float(tested['test/severity']):.4f}"
    assert rows[0]["n_seeds"] == "1" and rows[0]["miou/class_ci95"] == ""  # no fake interval
    curve = [float(row["val/miou/class"]) for row in metrics if row["val/miou/class"]]
    assert len(curve) == 2
    assert float(rows[0]["miou_auc/class_mean"]) == pytest.approx(np.mean(curve), abs=1e-4)
    (difference,) = read_csv(out / "differences.csv")
    assert [difference[k] for k in ("run", "baseline", "n_pairs", "seeds")] == [
        "loss=hierarchical",
        "loss=flat",
        "1",
        "0",
    ]
    assert difference["miou/class_ci95"] == "" and difference["miou/class_p"] == ""
    markdown = (out / "comparison.md").read_text().splitlines()
    assert markdown[0].startswith("| run | n_seeds | seeds | stage | miou/kind |")
    assert markdown[2].startswith("| loss=hierarchical | 1 | 0 | test | ")
    assert "(1 seed)" in markdown[2] and "±" not in markdown[2]
    assert any(line.startswith("| loss=hierarchical | loss=flat | 1 | 0 |") for line in markdown)


@pytest.mark.slow
def test_two_run_dirs_write_into_the_first(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [sweep / "1_loss=flat", sweep / "0_loss=hierarchical"]
    assert compare.main([str(run) for run in runs] + ["--metric", "acc"]) == 0
    printed = capsys.readouterr().out
    assert "acc/kind" in printed and printed.index("loss=flat") < printed.index("loss=hier")
    for name in ("loss_curves.png", "acc_curves.png", "comparison.csv", "differences.csv"):
        assert (runs[0] / name).is_file()
    check_png(runs[0] / "acc_curves.png")


@pytest.mark.slow
def test_default_callbacks_draw_prediction_images(sweep: Path) -> None:
    for job in ("0_loss=hierarchical", "1_loss=flat"):
        pngs = sorted(p.name for p in (sweep / job / "predictions").iterdir())
        assert pngs == ["epoch_000.png", "epoch_001.png"]  # every epoch by default
        check_png(sweep / job / "predictions" / "epoch_001.png")


# ---------------------------------------------------------------------------- hand-made runs
def test_runs_are_found_in_job_order_and_labelled_by_differing_overrides(tmp_path: Path) -> None:
    common = ["experiment=quick", "data.num_train=16"]
    for job, seed in (("0_a", 0), ("2_b", 2), ("10_c", 10)):
        fake_run(tmp_path / "multi" / job, [*common, f"seed={seed}", f"+extra={job}"])
    runs = compare.load_runs([tmp_path / "multi"])
    assert [run.path.name for run in runs] == ["0_a", "2_b", "10_c"]
    assert [run.seed for run in runs] == ["0", "2", "10"]
    assert "seed" not in (runs[0].overrides or {})
    configurations = compare.group_runs(runs)
    assert [c.label for c in configurations] == ["+extra=0_a", "+extra=2_b", "+extra=10_c"]


def test_runs_that_differ_only_in_seed_are_one_configuration(tmp_path: Path) -> None:
    for job, (loss, seed) in enumerate(product(("flat", "hierarchical"), (10, 2, 0))):
        fake_run(
            tmp_path / "sw" / f"{job}_{loss}", ["data.num_train=16", f"loss={loss}", f"seed={seed}"]
        )
    configurations = compare.group_runs(compare.load_runs([tmp_path / "sw"]))
    assert [c.label for c in configurations] == ["loss=flat", "loss=hierarchical"]
    assert [c.seeds for c in configurations] == [["0", "2", "10"]] * 2
    assert configurations[0].overrides == {
        "data.num_train": "data.num_train=16",
        "loss": "loss=flat",
    }


def test_the_seed_comes_from_the_config_without_an_override(tmp_path: Path) -> None:
    for seed in (0, 1):
        fake_run(tmp_path / f"s{seed}", ["loss=flat"], config={"seed": seed})
    (configuration,) = compare.group_runs(compare.load_runs([tmp_path / "s0", tmp_path / "s1"]))
    assert configuration.seeds == ["0", "1"] and configuration.label == "s0"


def test_runs_without_hydra_folders_are_configurations_of_their_own(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / name, []) for name in ("a", "b")]
    for run in runs:
        shutil.rmtree(run / ".hydra")
    configurations = compare.group_runs(compare.load_runs(runs))
    assert [c.label for c in configurations] == ["a", "b"]
    single = compare.load_runs([fake_run(tmp_path / "c", ["loss=flat", "seed=1"])])
    assert compare.group_runs(single)[0].label == "c"


def test_levels_follow_the_config_order_else_natural_order(tmp_path: Path) -> None:
    named = fake_run(tmp_path / "named", [], level_names=list(LEVELS))
    assert compare.load_runs([named])[0].levels == LEVELS  # CSV columns are alphabetical
    numbered = fake_run(tmp_path / "numbered", [], levels=tuple(f"level{i}" for i in (10, 2, 0)))
    assert compare.load_runs([numbered])[0].levels == ("level0", "level2", "level10")


def test_untested_runs_report_the_last_validation(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "r", ["loss=flat"], tested=False, level_names=list(LEVELS))
    (row,) = compare.summary_rows(compare.group_runs(compare.load_runs([run])))
    assert row.cells["stage"] == "val"
    assert row.estimates["miou/class"] == Estimate(pytest.approx(0.3), None, 1)
    assert row.estimates["severity"] == Estimate(0.0, None, 1)


def test_calibration_and_inconsistency_are_values_when_logged(tmp_path: Path) -> None:
    logged = {f"ece/{lv}": 0.05 * (i + 1) for i, lv in enumerate(LEVELS)}
    runs = [
        fake_run(
            tmp_path / f"{seed}",
            ["loss=hierarchical", f"seed={seed}"],
            level_names=list(LEVELS),
            reliability={**logged, "ece/class": 0.1 + 0.1 * seed, "inconsistency": 0.02 * seed},
        )
        for seed in range(3)
    ]
    (row,) = compare.summary_rows(compare.group_runs(compare.load_runs(runs)))
    assert list(row.estimates)[-4:] == [*(f"ece/{lv}" for lv in LEVELS), "inconsistency"]
    assert row.estimates["ece/kind"].mean == pytest.approx(0.05)  # type: ignore[union-attr]
    assert row.estimates["ece/class"].mean == pytest.approx(0.2)  # type: ignore[union-attr]
    assert row.estimates["inconsistency"].ci95 > 0  # type: ignore[union-attr]
    plain = fake_run(tmp_path / "plain", [], level_names=list(LEVELS))
    (row,) = compare.summary_rows(compare.group_runs(compare.load_runs([plain])))
    assert "inconsistency" not in row.estimates and "ece/kind" not in row.estimates


def test_runs_with_other_levels_show_missing_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = fake_run(tmp_path / "a", ["hierarchy=synthetic"], level_names=list(LEVELS))
    b = fake_run(tmp_path / "b", ["hierarchy=flat"], levels=("level0",))
    assert compare.main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    rows = read_csv(tmp_path / "out" / "comparison.csv")
    assert list(rows[0])[4:12:2] == [f"miou/{lv}_mean" for lv in (*LEVELS, "level0")]
    assert rows[0]["miou/level0_mean"] == "-" and rows[1]["miou/kind_ci95"] == "-"
    assert rows[0]["miou/kind_ci95"] == ""  # one seed: no interval
    assert not (tmp_path / "out" / "differences.csv").exists()  # no baseline
    check_png(tmp_path / "out" / "loss_curves.png")


def test_errors_exit_non_zero_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert compare.main([str(tmp_path / "empty")]) == 1
    assert "no csv/metrics.csv in it or below" in capsys.readouterr().err
    run = fake_run(tmp_path / "r", [])
    assert compare.main([str(run), "--metric", "iou"]) == 1
    assert "no per-level metric 'iou'" in capsys.readouterr().err
    assert not (run / "loss_curves.png").exists()


# ---------------------------------------------------------------------------- seeds
# 3 seeds x 2 losses: the final test mIoU (every level) and the validation mIoU per epoch
TEST_MIOU = {"flat": [0.50, 0.52, 0.57], "hierarchical": [0.55, 0.56, 0.60]}
VAL_MIOU = {
    "flat": [[0.30, 0.45, 0.50], [0.30, 0.50, 0.50], [0.48, 0.49, 0.50]],  # 95%: epoch 3, 2, 1
    "hierarchical": [[0.40, 0.50, 0.52], [0.50, 0.52, 0.52], [0.45, 0.50, 0.52]],  # 2, 1, 2
}


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


def test_seeds_give_means_intervals_and_paired_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = seed_sweep(tmp_path / "sw")
    assert compare.main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    flat, hierarchical = read_csv(tmp_path / "out" / "comparison.csv")
    assert [flat[k] for k in ("run", "n_seeds", "seeds", "stage")] == [
        "loss=flat",
        "3",
        "0 1 2",
        "test",
    ]
    for row, loss in ((flat, "flat"), (hierarchical, "hierarchical")):
        for level in LEVELS:
            assert float(row[f"miou/{level}_mean"]) == pytest.approx(
                np.mean(TEST_MIOU[loss]), abs=1e-4
            )
            assert float(row[f"miou/{level}_ci95"]) == pytest.approx(
                ci95(TEST_MIOU[loss]), abs=1e-4
            )
        auc = [np.mean(curve) for curve in VAL_MIOU[loss]]
        assert float(row["miou_auc/class_mean"]) == pytest.approx(np.mean(auc), abs=1e-4)
        assert float(row["miou_auc/class_ci95"]) == pytest.approx(ci95(auc), abs=1e-4)
    assert flat["epochs_to_95/kind_mean"] == "2.00" and flat["epochs_to_95/kind_ci95"] == "2.48"
    assert hierarchical["epochs_to_95/kind_mean"] == "1.67"
    assert flat["severity_mean"] == "1.2500" and flat["severity_ci95"] == "0.0000"

    (difference,) = read_csv(tmp_path / "out" / "differences.csv")  # the default baseline
    assert [difference[k] for k in ("run", "baseline", "n_pairs", "seeds")] == [
        "loss=hierarchical",
        "loss=flat",
        "3",
        "0 1 2",
    ]
    diffs = np.subtract(TEST_MIOU["hierarchical"], TEST_MIOU["flat"])  # 0.05, 0.04, 0.03
    t = diffs.mean() / (diffs.std(ddof=1) / np.sqrt(3))
    p = 1 - t / np.sqrt(2 + t * t)  # the two-sided p of Student's t with 2 degrees of freedom
    assert float(difference["miou/class_diff"]) == pytest.approx(0.04, abs=1e-4)
    assert float(difference["miou/class_ci95"]) == pytest.approx(ci95(diffs), abs=1e-4)
    assert float(difference["miou/class_p"]) == pytest.approx(p, rel=1e-3)
    assert difference["epochs_to_95/kind_diff"] == "-0.33"  # (2-3) + (1-2) + (2-1), over 3

    markdown = (tmp_path / "out" / "comparison.md").read_text()
    mean, half = np.mean(TEST_MIOU["flat"]), ci95(TEST_MIOU["flat"])
    assert f"| loss=flat | 3 | 0 1 2 | test | {mean:.4f} ± {half:.4f} |" in markdown
    cell = f"+0.0400 ± {ci95(diffs):.4f} (p={p:.2g})"
    assert f"| loss=hierarchical | loss=flat | 3 | 0 1 2 | {cell} |" in markdown
    printed = capsys.readouterr()
    assert cell in printed.out and printed.err == ""
    for name in ("loss_curves.png", "miou_curves.png"):
        check_png(tmp_path / "out" / name)


def test_another_baseline_flips_the_sign(tmp_path: Path) -> None:
    sweep = seed_sweep(tmp_path / "sw")
    out = tmp_path / "out"
    assert compare.main([str(sweep), "--out", str(out), "--baseline", "loss=hierarchical"]) == 0
    (difference,) = read_csv(out / "differences.csv")
    assert difference["run"] == "loss=flat" and difference["baseline"] == "loss=hierarchical"
    assert float(difference["miou/kind_diff"]) == pytest.approx(-0.04, abs=1e-4)


def test_only_shared_seeds_are_paired(tmp_path: Path) -> None:
    sweep = seed_sweep(tmp_path / "sw")
    shutil.rmtree(sweep / "0_loss=flat,seed=0")
    shutil.rmtree(sweep / "5_loss=hierarchical,seed=2")
    configurations = compare.group_runs(compare.load_runs([sweep]))
    (row,) = compare.difference_rows(configurations, {"loss": "flat"})
    assert row.cells["n_pairs"] == "1" and row.cells["seeds"] == "1"
    estimate = row.estimates["miou/kind"]
    assert estimate is not None and estimate.ci95 is None and estimate.p is None
    assert estimate.mean == pytest.approx(0.56 - 0.52)
    shown = compare._shown_row(row, paired=True)
    assert shown["miou/kind"] == "+0.0400 (1 pair)"


def test_a_grid_pairs_each_configuration_with_its_own_baseline(tmp_path: Path) -> None:
    for size in (32, 64):
        seed_sweep(
            tmp_path / f"size{size}", {loss: [f"data.image_size={size}"] for loss in TEST_MIOU}
        )
    configurations = compare.group_runs(
        compare.load_runs([tmp_path / "size32", tmp_path / "size64"])
    )
    assert len(configurations) == 4
    rows = compare.difference_rows(configurations, {"loss": "flat"})
    assert [(row.cells["run"], row.cells["baseline"]) for row in rows] == [
        ("loss=hierarchical, data.image_size=32", "loss=flat, data.image_size=32"),
        ("loss=hierarchical, data.image_size=64", "loss=flat, data.image_size=64"),
    ]


def test_epochs_to_95_for_rising_metrics_and_the_falling_loss() -> None:
    assert compare._epochs_to_95([0.30, 0.45, 0.50], "miou") == 3.0
    assert compare._epochs_to_95([0.50, 0.40, 0.50], "miou") == 1.0
    assert compare._epochs_to_95([3.0, 2.0, 1.04, 1.0], "loss") == 3.0


def test_runs_that_do_not_pair_name_the_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = {"flat": ["data.image_size=32"], "hierarchical": ["data.image_size=64"]}
    sweep, out = seed_sweep(tmp_path / "sw", sizes), tmp_path / "out"
    assert compare.main([str(sweep), "--out", str(out), "--baseline", "loss=flat"]) == 1
    err = capsys.readouterr().err
    assert "error: loss=hierarchical, data.image_size=64 has no baseline: " in err
    assert "with loss=flat differ from it in data.image_size too, not only in loss" in err
    # the default baseline only notes it: the means are still there (and no stale differences)
    seed_sweep(tmp_path / "paired")
    assert compare.main([str(tmp_path / "paired"), "--out", str(out)]) == 0
    assert (out / "differences.csv").is_file()
    assert compare.main([str(sweep), "--out", str(out)]) == 0
    assert "note: no paired differences: loss=hierarchical, data.image_size=64" in (
        capsys.readouterr().err
    )
    assert (out / "comparison.csv").is_file() and not (out / "differences.csv").exists()
    # naming the other key in --baseline as well pairs them
    both = ["--baseline", "loss=flat", "--baseline", "data.image_size=32"]
    assert compare.main([str(sweep), "--out", str(out), *both]) == 0
    (difference,) = read_csv(out / "differences.csv")
    assert difference["baseline"] == "loss=flat, data.image_size=32"


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        (
            "loss=hxe",
            "no configuration has it; the configurations are: loss=flat; loss=hierarchical",
        ),
        ("seed=0", "--baseline seed=0: no configuration has it"),
        ("flat", "--baseline takes KEY=VALUE overrides (loss=flat), got 'flat'"),
    ],
)
def test_an_unknown_baseline_names_the_configurations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], baseline: str, message: str
) -> None:
    sweep = seed_sweep(tmp_path / "sw")
    assert compare.main([str(sweep), "--baseline", baseline]) == 1
    assert message in capsys.readouterr().err


def test_runs_of_one_configuration_must_differ_only_in_seed(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "a", ["loss=flat", "seed=0"], config={"data": {"image_size": 32}})
    b = fake_run(tmp_path / "b", ["loss=flat", "seed=1"], config={"data": {"image_size": 64}})
    with pytest.raises(compare.CompareError) as error:
        compare.group_runs(compare.load_runs([a, b]))
    assert str(error.value) == (
        f"{a} and {b} have the same overrides (loss=flat) but their .hydra/config.yaml differ in "
        "data.image_size, not only in seed: the runs of one configuration may differ only in "
        "seed; leave one out"
    )
    c = fake_run(tmp_path / "c", ["loss=flat", "seed=0"], config={"data": {"image_size": 32}})
    with pytest.raises(compare.CompareError, match=r"same overrides \(loss=flat\) and seed 0: a"):
        compare.group_runs(compare.load_runs([a, c]))
    d, e = fake_run(tmp_path / "d", ["loss=flat"]), fake_run(tmp_path / "e", ["loss=flat"])
    with pytest.raises(compare.CompareError, match=r"same overrides \(loss=flat\) and no seed"):
        compare.group_runs(compare.load_runs([d, e]))


def test_missing_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    run = fake_run(tmp_path / "r", [])
    with pytest.raises(SystemExit, match=r'pip install "hl_lightning\[plots\]"'):
        compare.main([str(run)])
