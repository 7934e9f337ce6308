"""Tests for hl_lightning/cli/compare/plots.py: panels per tree, readable single epochs."""

from __future__ import annotations

from pathlib import Path

import pytest
from _compare_runs import LEVELS, check_png, fake_run, tree_config

from hl_lightning.cli import compare
from hl_lightning.cli.compare.configurations import group_runs
from hl_lightning.cli.compare.plots import curves_figure
from hl_lightning.cli.compare.runs import load_runs

pytest.importorskip("matplotlib")

SYNTHETIC = tree_config("synthetic", LEVELS)


def three_trees(root: Path) -> list[Path]:
    """Write runs on three trees: synthetic (2 seeds), flat (level0), a file (level0, level1)."""
    return [
        *(
            fake_run(root / f"syn{seed}", ["hierarchy=synthetic", f"seed={seed}"], config=SYNTHETIC)
            for seed in (0, 1)
        ),
        fake_run(root / "flat", ["hierarchy=flat"], levels=("level0",), config=tree_config("flat")),
        fake_run(
            root / "faces",
            ["hierarchy=file"],
            levels=("level0", "level1"),
            config=tree_config("trees/faces.txt"),
        ),
    ]


def test_runs_on_different_trees_never_share_a_panel(tmp_path: Path) -> None:
    configurations = group_runs(load_runs(three_trees(tmp_path)))
    figure = curves_figure(configurations, ("train", "val"), "loss", "loss")
    expected = [  # in the order the runs were given
        ("synthetic: kind > family > class", LEVELS, "hierarchy=synthetic (2 seeds)"),
        ("flat: level0", ("level0",), "hierarchy=flat (1 seed)"),
        ("trees/faces.txt: level0 > level1", ("level0", "level1"), "hierarchy=file (1 seed)"),
    ]
    assert len(figure.subfigs) == 3
    colors = set()
    for block, (tree, levels, label) in zip(figure.subfigs, expected, strict=True):
        assert block.get_suptitle() == f"tree {tree}"
        shown = [axes for axes in block.axes if axes.get_visible()]
        assert [axes.get_title() for axes in shown] == [*levels, *levels]  # training, validation
        for axes in shown:
            (line,) = axes.get_lines()
            assert line.get_label() == label
            colors.add(line.get_color())
    assert len(colors) == 3  # a configuration keeps its colour, and no two share one
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == [label for _, _, label in expected]


def test_one_tree_keeps_the_plain_layout(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / name, [f"loss={name}"], config=SYNTHETIC) for name in ("a", "b")]
    figure = curves_figure(group_runs(load_runs(runs)), ("val",), "miou", "mIoU")
    (block,) = figure.subfigs
    assert block.get_suptitle() == ""
    assert [axes.get_title() for axes in block.axes] == list(LEVELS)
    assert all(axes.get_ylabel() == "validation mIoU" for axes in block.axes)
    assert all(len(axes.get_lines()) == 2 for axes in block.axes)


def test_a_single_epoch_is_a_marker_with_a_bar_on_an_axis_one_epoch_wide(tmp_path: Path) -> None:
    runs = [
        fake_run(tmp_path / f"s{seed}", ["loss=flat", f"seed={seed}"], epochs=1, val_miou=[miou])
        for seed, miou in ((0, 0.40), (1, 0.50))
    ]
    figure = curves_figure(group_runs(load_runs(runs)), ("val",), "miou", "mIoU")
    for axes in figure.subfigs[0].axes:
        assert axes.get_xlim() == (-0.5, 0.5) and list(axes.get_xticks()) == [0]
        (line,) = [line for line in axes.get_lines() if line.get_label() == "s0 (2 seeds)"]
        assert line.get_marker() == "o" and line.get_markersize() >= 6
        assert list(line.get_xdata()) == [0] and line.get_ydata()[0] == pytest.approx(0.45)
        (bar,) = axes.collections  # the seeds' minimum to maximum
        (segment,) = bar.get_segments()
        assert segment[:, 1].tolist() == pytest.approx([0.40, 0.50])
        low, high = axes.get_ylim()
        assert low < 0.40 and high > 0.50
    assert compare.main([str(tmp_path / "s0"), str(tmp_path / "s1")]) == 0
    check_png(tmp_path / "s0" / "miou_curves.png")
