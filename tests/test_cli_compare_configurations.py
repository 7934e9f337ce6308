"""Tests for hl_lightning/cli/compare/configurations.py: the seeds of one configuration."""

from __future__ import annotations

import shutil
from itertools import product
from pathlib import Path

import pytest
from _compare_runs import fake_run, seed_sweep

from hl_lightning.cli import compare
from hl_lightning.cli.compare.configurations import group_runs, stopped_early
from hl_lightning.cli.compare.runs import CompareError, load_runs


def test_runs_that_differ_only_in_seed_are_one_configuration(tmp_path: Path) -> None:
    for job, (loss, seed) in enumerate(product(("flat", "hierarchical"), (10, 2, 0))):
        fake_run(
            tmp_path / "sw" / f"{job}_{loss}", ["data.num_train=16", f"loss={loss}", f"seed={seed}"]
        )
    configurations = group_runs(load_runs([tmp_path / "sw"]))
    assert [c.label for c in configurations] == ["loss=flat", "loss=hierarchical"]
    assert [c.seeds for c in configurations] == [["0", "2", "10"]] * 2
    assert configurations[0].overrides == {
        "data.num_train": "data.num_train=16",
        "loss": "loss=flat",
    }


def test_runs_without_hydra_folders_are_configurations_of_their_own(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / name, []) for name in ("a", "b")]
    for run in runs:
        shutil.rmtree(run / ".hydra")
    configurations = group_runs(load_runs(runs))
    assert [c.label for c in configurations] == ["a", "b"]
    single = load_runs([fake_run(tmp_path / "c", ["loss=flat", "seed=1"])])
    assert group_runs(single)[0].label == "c"


def test_runs_of_one_configuration_must_differ_only_in_seed(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "a", ["loss=flat", "seed=0"], config={"data": {"image_size": 32}})
    b = fake_run(tmp_path / "b", ["loss=flat", "seed=1"], config={"data": {"image_size": 64}})
    with pytest.raises(CompareError) as error:
        group_runs(load_runs([a, b]))
    assert str(error.value) == (
        f"{a} and {b} have the same overrides (loss=flat) but their .hydra/config.yaml differ in "
        "data.image_size, not only in seed: the runs of one configuration may differ only in "
        "seed; leave one out"
    )
    c = fake_run(tmp_path / "c", ["loss=flat", "seed=0"], config={"data": {"image_size": 32}})
    with pytest.raises(CompareError, match=r"same overrides \(loss=flat\) and seed 0: a"):
        group_runs(load_runs([a, c]))
    d, e = fake_run(tmp_path / "d", ["loss=flat"]), fake_run(tmp_path / "e", ["loss=flat"])
    with pytest.raises(CompareError, match=r"same overrides \(loss=flat\) and no seed"):
        group_runs(load_runs([d, e]))


def test_a_run_that_stopped_between_rows_is_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = seed_sweep(tmp_path / "sw")
    metrics = sweep / "4_loss=hierarchical,seed=1" / "csv" / "metrics.csv"
    lines = metrics.read_bytes().split(b"\r\n")
    metrics.write_bytes(b"\r\n".join(lines[:5]) + b"\r\n")  # killed after epoch 1, cut cleanly
    configurations = group_runs(load_runs([sweep]))
    assert [stopped_early(c) for c in configurations] == [
        [],
        [
            f"{metrics.parents[1]} validated up to epoch 1, another seed of loss=hierarchical "
            "up to epoch 2; it has no test values where another seed of loss=hierarchical has: "
            "stopped early (killed, or still running)?"
        ],
    ]
    assert compare.main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    assert f"hl-compare: note: {metrics.parents[1]} validated up to epoch 1" in (
        capsys.readouterr().err
    )
