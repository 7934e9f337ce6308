"""Tests for hl_lightning/cli/sweep_dirname.py: sweep job folders named by what was swept."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from hl_lightning.cli.sweep_dirname import sweep_argv, sweep_dirname, swept_keys

COMMON = ["experiment=quick", "data.num_train=16"]


def test_a_swept_hierarchy_file_names_each_job_by_its_file() -> None:
    argv = ["-m", *COMMON, "hierarchy=file", "hierarchy.source=/data/a.txt,/data/b.txt"]
    names = [
        sweep_dirname([*COMMON, "hierarchy=file", f"hierarchy.source=/data/{f}"], argv=argv)
        for f in ("a.txt", "b.txt")
    ]
    assert names == ["hierarchy.source=a.txt", "hierarchy.source=b.txt"]


def test_two_swept_keys_are_both_named() -> None:
    argv = ["-m", "loss=hierarchical,flat", "+backbone=unet,smp"]
    name = sweep_dirname(["loss=flat", "+backbone=smp", "seed=0"], argv=argv)
    assert name == "loss=flat,backbone=smp"


def test_lists_are_values_not_sweeps() -> None:
    assert swept_keys(["loss.level_weights=[1,0.5,1]", "data.palette={a:[1,2,3]}"], None) == set()
    assert swept_keys(["seed=range(0,5)", "lr=choice(0.1,1)"], None) == {"seed", "lr"}


def test_sweeper_params_count_as_swept() -> None:
    name = sweep_dirname(["loss.level_weights.0=0.25", "seed=0"], {"loss.level_weights.0": "x"}, [])
    assert name == "loss.level_weights.0=0.25"


def test_a_job_started_elsewhere_names_all_its_overrides() -> None:
    assert sweep_dirname(["loss=flat", "data.root=/x/y"], argv=[]) == "loss=flat,data.root=y"
    assert sweep_dirname([], argv=[]) == "run"


def test_unsafe_characters_are_replaced_and_the_name_is_capped() -> None:
    name = sweep_dirname(["loss.level_weights=[1, 0.5]"], argv=["loss.level_weights=[1],[2]"])
    assert name == "loss.level_weights=1,_0.5"
    assert len(sweep_dirname([f"k{i}=v" for i in range(100)], argv=[])) <= 120


def test_a_job_of_another_launcher_reads_the_sweep_from_multirun_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["submitit-worker", "--folder", "x"])
    (tmp_path / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["loss=hierarchical,flat", "seed=0"]}}})
    )
    argv = sweep_argv(tmp_path)
    assert sweep_dirname(["loss=flat", "seed=0"], argv=argv) == "loss=flat"
    assert sweep_argv(tmp_path / "none") == ["--folder", "x"]  # nothing saved: this process's
