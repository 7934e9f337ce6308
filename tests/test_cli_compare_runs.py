"""Tests for hl_lightning/cli/compare/runs.py: finding runs, reading their seed and levels."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _compare_runs import LEVELS, fake_run

from hl_lightning.cli.compare.configurations import group_runs
from hl_lightning.cli.compare.runs import CompareError, Tree, load_runs


def test_runs_are_found_in_job_order_and_labelled_by_differing_overrides(tmp_path: Path) -> None:
    common = ["experiment=quick", "data.num_train=16"]
    for job, seed in (("0_a", 0), ("2_b", 2), ("10_c", 10)):
        fake_run(tmp_path / "multi" / job, [*common, f"seed={seed}", f"+extra={job}"])
    runs = load_runs([tmp_path / "multi"])
    assert [run.path.name for run in runs] == ["0_a", "2_b", "10_c"]
    assert [run.seed for run in runs] == ["0", "2", "10"]
    assert "seed" not in (runs[0].overrides or {})
    configurations = group_runs(runs)
    assert [c.label for c in configurations] == ["+extra=0_a", "+extra=2_b", "+extra=10_c"]


def test_the_seed_comes_from_the_config_without_an_override(tmp_path: Path) -> None:
    for seed in (0, 1):
        fake_run(tmp_path / f"s{seed}", ["loss=flat"], config={"seed": seed})
    (configuration,) = group_runs(load_runs([tmp_path / "s0", tmp_path / "s1"]))
    assert configuration.seeds == ["0", "1"] and configuration.label == "s0"


def test_levels_follow_the_config_order_else_natural_order(tmp_path: Path) -> None:
    named = fake_run(tmp_path / "named", [], level_names=list(LEVELS))
    assert load_runs([named])[0].levels == LEVELS  # CSV columns are alphabetical
    numbered = fake_run(tmp_path / "numbered", [], levels=tuple(f"level{i}" for i in (10, 2, 0)))
    assert load_runs([numbered])[0].levels == ("level0", "level2", "level10")


def test_the_tree_is_the_configured_source_and_the_logged_levels(tmp_path: Path) -> None:
    data = {"root": "/data/vistas", "config": "config_v2.0.json"}
    sources = {
        "interpolated": "${data.root}/${data.config}",  # one tree per data set: resolved
        "hydra_only": "${hydra:runtime.output_dir}/tree.txt",  # only Hydra resolves it
        "named": "synthetic",
    }
    runs = [
        fake_run(
            tmp_path / name,
            [],
            levels=("level0", "level1"),
            config={"data": data, "hierarchy": {"source": source, "level_names": None}},
        )
        for name, source in sources.items()
    ]
    bare = fake_run(tmp_path / "bare", [])
    shutil.rmtree(bare / ".hydra")
    trees = [run.tree for run in load_runs([*runs, bare])]
    assert trees == [
        Tree("/data/vistas/config_v2.0.json", ("level0", "level1")),
        Tree("${hydra:runtime.output_dir}/tree.txt", ("level0", "level1")),
        Tree("synthetic", ("level0", "level1")),
        Tree(None, ("class", "family", "kind")),  # no config: no level order either
    ]
    assert trees[2].label == "synthetic: level0 > level1"
    assert trees[3].label == "class > family > kind"


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("config.yaml", "hierarchy:\n  level_names: [kind, fam", 2),
        ("overrides.yaml", "- loss=flat\n- 'seed=", 2),
        ("config.yaml", "seed: 0\nhierarchy:\n\0\0\0", 3),  # zeros a crash left
        ("config.yaml", "seed: 0\n\xff", 2),  # not UTF-8
        ("overrides.yaml", "loss: flat", 1),  # a dict, not the list of overrides
    ],
)
def test_a_cut_hydra_file_names_the_file_and_line(
    tmp_path: Path, name: str, text: str, line: int
) -> None:
    run = fake_run(tmp_path / "run", ["loss=flat"])
    (run / ".hydra" / name).write_bytes(text.encode("latin-1"))
    with pytest.raises(CompareError) as error:
        load_runs([run])
    assert f"{run / '.hydra' / name}:{line}: " in str(error.value)
