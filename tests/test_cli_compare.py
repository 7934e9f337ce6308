"""Tests for hl_lightning/cli/compare/command.py: hl-compare's figures and tables, end to end.

Real runs come from one 2-job hl-train sweep (hierarchical vs flat, 2 epochs of tiny
data), shared by the slow tests; the fast tests use hand-written metrics files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _compare_runs import (
    LEVELS,
    TEST_MIOU,
    VAL_MIOU,
    check_png,
    ci95,
    fake_run,
    read_csv,
    seed_sweep,
    tree_config,
)

from hl_lightning.cli import compare


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


def test_missing_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    run = fake_run(tmp_path / "r", [])
    with pytest.raises(SystemExit, match=r'pip install "hl_lightning\[plots\]"'):
        compare.main([str(run)])


def test_runs_on_different_trees_are_labelled_in_every_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep, out = tmp_path / "sw", tmp_path / "out"
    flat, faces = ("level0",), ("level0", "level1")
    fake_run(sweep / "0_flat", ["hierarchy=flat", "seed=0"], flat, config=tree_config("flat"))
    faces_config = tree_config("faces.txt")
    fake_run(sweep / "1_faces", ["hierarchy=file", "seed=0"], faces, config=faces_config)
    assert compare.main([str(sweep), "--out", str(out), "--baseline", "hierarchy=flat"]) == 0
    rows = read_csv(out / "comparison.csv")
    assert [row["tree"] for row in rows] == ["flat: level0", "faces.txt: level0 > level1"]
    assert list(rows[0])[-1] == "tree"
    assert rows[0]["miou/level0@flat_mean"] == "0.9000" and rows[0]["miou/level0@faces_mean"] == "-"
    assert rows[1]["miou/level0@flat_mean"] == "-" and rows[1]["miou/level1@faces_mean"] == "0.9000"
    (difference,) = read_csv(out / "differences.csv")
    assert list(difference)[-2:] == ["tree", "baseline_tree"]
    assert difference["baseline_tree"] == "flat: level0"
    assert difference["miou/level0@flat_diff"] == "-"  # never one level against another
    markdown = (out / "comparison.md").read_text()
    assert "| serious | tree |" in markdown and "| faces.txt: level0 > level1 |" in markdown
    assert "faces.txt: level0 > level1" in capsys.readouterr().out


def test_every_file_is_written_through_write_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = []
    write = compare.command.write_output
    monkeypatch.setattr(
        compare.command,
        "write_output",
        lambda path, data: written.append(path) or write(path, data),
    )
    sweep, out = seed_sweep(tmp_path / "sw"), tmp_path / "out"
    assert compare.main([str(sweep), "--out", str(out)]) == 0
    assert sorted(written) == sorted(out.iterdir())
    assert len(written) == 5  # two figures, comparison.csv, differences.csv, comparison.md
