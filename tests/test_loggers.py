"""Tests for hl_lightning/lightning/loggers.py: metrics.csv replaced whole at every save, and
continued (not deleted) when a run resumes into its directory."""

from __future__ import annotations

import csv
from itertools import pairwise
from pathlib import Path

from hl_lightning.lightning.loggers import ResumableCSVLogger


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def test_every_save_replaces_the_metrics_file_whole(tmp_path: Path) -> None:
    """Lightning's writer appends rows in place: a kill during the append leaves a row cut
    short. Each save here writes a new file and renames it over the old one."""
    logger = ResumableCSVLogger(tmp_path, name="csv", version="")
    path = tmp_path / "csv" / "metrics.csv"
    inodes = []
    for step, metrics in enumerate([{"a": 1.0}, {"a": 2.0, "b": 3.0}, {"a": 4.0}, {"b": 5.0}]):
        logger.log_metrics(metrics, step=step)
        logger.save()
        inodes.append(path.stat().st_ino)
    # never written in place: each save a new file (the one before still existed then)
    assert all(before != after for before, after in pairwise(inodes))
    columns, rows = read_rows(path)
    assert columns == ["a", "b", "step"]
    assert rows == [
        {"a": "1.0", "b": "", "step": "0"},
        {"a": "2.0", "b": "3.0", "step": "1"},
        {"a": "4.0", "b": "", "step": "2"},
        {"a": "", "b": "5.0", "step": "3"},
    ]
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.csv"]


def test_hyper_parameters_are_replaced_whole(tmp_path: Path) -> None:
    logger = ResumableCSVLogger(tmp_path, name="csv", version="")
    logger.log_hyperparams({"lr": 0.1})
    path = tmp_path / "csv" / "hparams.yaml"
    inode = path.stat().st_ino
    logger.log_hyperparams({"seed": 3})
    assert path.stat().st_ino != inode
    assert path.read_text() == "lr: 0.1\nseed: 3\n"


def test_a_resumed_logger_keeps_the_rows_before_its_first_step(tmp_path: Path) -> None:
    path = tmp_path / "csv" / "metrics.csv"
    first = ResumableCSVLogger(tmp_path, name="csv", version="")
    for step in range(6):
        first.log_metrics({"loss": float(step), "epoch": step // 3}, step=step)
    first.log_metrics({"val": 0.5, "epoch": 1}, step=5)
    first.save()
    resumed = ResumableCSVLogger(tmp_path, name="csv", version="")  # a resume after step 2
    resumed.log_metrics({"loss": 30.0, "epoch": 1}, step=3)
    assert read_rows(path)[1][-1]["step"] == "5"  # kept until the first save
    resumed.save()
    columns, rows = read_rows(path)
    assert columns == ["epoch", "loss", "step", "val"]
    assert [(row["step"], row["loss"]) for row in rows] == [
        ("0", "0.0"),
        ("1", "1.0"),
        ("2", "2.0"),
        ("3", "30.0"),
    ]
    resumed.log_metrics({"loss": 40.0, "epoch": 1}, step=4)
    resumed.save()
    assert [row["step"] for row in read_rows(path)[1]] == ["0", "1", "2", "3", "4"]
    fresh = ResumableCSVLogger(tmp_path, name="csv", version="")  # a new run from step 0
    fresh.log_metrics({"loss": 9.0}, step=0)
    fresh.save()
    assert read_rows(path) == (["loss", "step"], [{"loss": "9.0", "step": "0"}])


def test_a_row_cut_short_by_an_older_writer_is_left_out_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "csv" / "metrics.csv"
    path.parent.mkdir()
    path.write_text("epoch,loss,step\n0,1.0,0\n0,2.0,1\n0,3.")  # killed mid-append
    resumed = ResumableCSVLogger(tmp_path, name="csv", version="")
    resumed.log_metrics({"loss": 4.0, "epoch": 0}, step=3)
    resumed.save()
    assert [(row["step"], row["loss"]) for row in read_rows(path)[1]] == [
        ("0", "1.0"),
        ("1", "2.0"),
        ("3", "4.0"),
    ]
