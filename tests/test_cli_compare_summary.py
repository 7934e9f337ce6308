"""Tests for hl_lightning/cli/compare/summary.py: values, means over seeds, paired differences."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _compare_runs import LEVELS, TEST_MIOU, fake_run, seed_sweep, tree_config

from hl_lightning.cli.compare.configurations import group_runs
from hl_lightning.cli.compare.runs import Tree, load_runs
from hl_lightning.cli.compare.stats import Estimate
from hl_lightning.cli.compare.summary import (
    Values,
    difference_rows,
    epochs_to_95,
    level_columns,
    summary_rows,
)
from hl_lightning.cli.compare.tables import shown_row


def test_untested_runs_report_the_last_validation(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "r", ["loss=flat"], tested=False, level_names=list(LEVELS))
    (row,) = summary_rows(group_runs(load_runs([run])))
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
    (row,) = summary_rows(group_runs(load_runs(runs)))
    assert list(row.estimates)[-4:] == [*(f"ece/{lv}" for lv in LEVELS), "inconsistency"]
    assert row.estimates["ece/kind"].mean == pytest.approx(0.05)  # type: ignore[union-attr]
    assert row.estimates["ece/class"].mean == pytest.approx(0.2)  # type: ignore[union-attr]
    assert row.estimates["inconsistency"].ci95 > 0  # type: ignore[union-attr]
    plain = fake_run(tmp_path / "plain", [], level_names=list(LEVELS))
    (row,) = summary_rows(group_runs(load_runs([plain])))
    assert "inconsistency" not in row.estimates and "ece/kind" not in row.estimates


def test_only_shared_seeds_are_paired(tmp_path: Path) -> None:
    sweep = seed_sweep(tmp_path / "sw")
    shutil.rmtree(sweep / "0_loss=flat,seed=0")
    shutil.rmtree(sweep / "5_loss=hierarchical,seed=2")
    configurations = group_runs(load_runs([sweep]))
    (row,) = difference_rows(configurations, {"loss": "flat"})
    assert row.cells["n_pairs"] == "1" and row.cells["seeds"] == "1"
    estimate = row.estimates["miou/kind"]
    assert estimate is not None and estimate.ci95 is None and estimate.p is None
    assert estimate.mean == pytest.approx(0.56 - 0.52)
    shown = shown_row(row, paired=True)
    assert shown["miou/kind"] == "+0.0400 (1 pair)"


def test_a_grid_pairs_each_configuration_with_its_own_baseline(tmp_path: Path) -> None:
    for size in (32, 64):
        seed_sweep(
            tmp_path / f"size{size}", {loss: [f"data.image_size={size}"] for loss in TEST_MIOU}
        )
    configurations = group_runs(load_runs([tmp_path / "size32", tmp_path / "size64"]))
    assert len(configurations) == 4
    rows = difference_rows(configurations, {"loss": "flat"})
    assert [(row.cells["run"], row.cells["baseline"]) for row in rows] == [
        ("loss=hierarchical, data.image_size=32", "loss=flat, data.image_size=32"),
        ("loss=hierarchical, data.image_size=64", "loss=flat, data.image_size=64"),
    ]


def test_epochs_to_95_for_rising_metrics_and_the_falling_loss() -> None:
    assert epochs_to_95([0.30, 0.45, 0.50], "miou") == 3.0
    assert epochs_to_95([0.50, 0.40, 0.50], "miou") == 1.0
    assert epochs_to_95([3.0, 2.0, 1.04, 1.0], "loss") == 3.0


def on_tree(path: Path, source: str, levels: tuple[str, ...], named: bool, miou: float) -> Path:
    """Write a run (seed 0) on the tree ``source`` with test mIoU ``miou`` at every level."""
    config = tree_config(source, levels if named else None)
    overrides = [f"hierarchy={Path(source).stem}", "seed=0"]
    return fake_run(path, overrides, levels=levels, test_miou=miou, config=config)


def test_levels_are_matched_by_name_and_positional_names_kept_per_tree(tmp_path: Path) -> None:
    runs = [
        on_tree(tmp_path / "a", "synthetic", LEVELS, True, 0.9),
        on_tree(tmp_path / "b", "synthetic_hard", LEVELS, True, 0.8),
        on_tree(tmp_path / "c", "flat", ("level0",), False, 0.7),
        on_tree(tmp_path / "d", "trees/faces.txt", ("level0", "level1"), False, 0.6),
    ]
    configurations = group_runs(load_runs(runs))
    values = Values(configurations, "miou")
    assert [tree.source for tree in values.trees] == [
        "synthetic",
        "synthetic_hard",
        "flat",
        "trees/faces.txt",
    ]
    levels = [column[5:] for column in values.columns if column.startswith("miou/")]
    assert levels == [*LEVELS, "level0@flat", "level0@faces", "level1@faces"]
    rows = summary_rows(configurations)
    means = [
        {lv: e.mean for lv in levels if (e := row.estimates[f"miou/{lv}"]) is not None}
        for row in rows
    ]
    assert means == [
        dict.fromkeys(LEVELS, pytest.approx(0.9)),
        dict.fromkeys(LEVELS, pytest.approx(0.8)),  # same names: the same columns
        {"level0@flat": pytest.approx(0.7)},
        {"level0@faces": pytest.approx(0.6), "level1@faces": pytest.approx(0.6)},
    ]
    assert [row.trees for row in rows] == [
        {"tree": "synthetic: kind > family > class"},
        {"tree": "synthetic_hard: kind > family > class"},
        {"tree": "flat: level0"},
        {"tree": "trees/faces.txt: level0 > level1"},
    ]
    (difference, *_) = difference_rows(configurations, {"hierarchy": "flat"})
    assert difference.trees == {
        "tree": "synthetic: kind > family > class",
        "baseline_tree": "flat: level0",
    }
    assert difference.estimates["miou/class"] is None  # flat has no level named class
    assert difference.estimates["severity"] is not None


def test_runs_on_one_tree_have_no_tree_cells(tmp_path: Path) -> None:
    runs = [on_tree(tmp_path / n, "flat", ("level0",), False, 0.5) for n in ("a", "b")]
    for run, loss in zip(runs, ("flat", "hxe"), strict=True):  # two configurations
        (run / ".hydra" / "overrides.yaml").write_text(f"- loss={loss}\n")
    rows = summary_rows(group_runs(load_runs(runs)))
    assert [row.trees for row in rows] == [{}, {}]
    assert "miou/level0" in rows[0].estimates


@pytest.mark.parametrize(
    ("trees", "expected"),
    [
        (
            [Tree("flat", ("level0",)), Tree("a/flat.txt", ("level0",))],
            [{"level0": "level0@tree1"}, {"level0": "level0@tree2"}],  # the same file name
        ),
        (
            [Tree(None, ("level0",)), Tree("faces.yaml", ("level0", "level1"))],
            [{"level0": "level0@tree1"}, {"level0": "level0@faces", "level1": "level1@faces"}],
        ),
        (
            [Tree(None, ("level0",)), Tree(None, ("kind",))],
            [{"level0": "level0"}, {"kind": "kind"}],  # one tree with positional names
        ),
    ],
)
def test_positional_names_are_qualified_by_a_name_that_tells_the_trees_apart(
    trees: list[Tree], expected: list[dict[str, str]]
) -> None:
    assert list(level_columns(trees).values()) == expected
