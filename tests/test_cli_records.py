"""Tests for hl_lightning/cli/records.py: hl-train's record of each invocation, written whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from _compose import make_config
from omegaconf import OmegaConf, open_dict

from hl_lightning.cli import records
from hl_lightning.cli.resume import _SUBDIRS


def job_config(run_dir: Path, overrides: list[str] | None = None):
    cfg = make_config(overrides or ["seed=3"])
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    return cfg


def test_hydra_writes_no_record_of_its_own_and_the_callback_is_configured() -> None:
    cfg = make_config([])
    assert cfg.hydra.output_subdir is None
    assert cfg.hydra.callbacks.record._target_ == "hl_lightning.cli.records.AtomicConfigRecord"


def test_the_record_holds_what_hydra_would_write(tmp_path: Path) -> None:
    cfg = job_config(tmp_path / "run")
    records.AtomicConfigRecord().on_job_start(config=cfg)
    folder = tmp_path / "run" / ".hydra"
    saved = OmegaConf.load(folder / "config.yaml")
    assert "hydra" not in saved and saved.seed == 3
    assert OmegaConf.to_yaml(saved) == OmegaConf.to_yaml(
        OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    )
    assert OmegaConf.load(folder / "hydra.yaml").hydra.runtime.output_dir == str(tmp_path / "run")
    assert list(OmegaConf.load(folder / "overrides.yaml")) == ["seed=3"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.yaml",
        "hydra.yaml",
        "overrides.yaml",
    ]


def test_a_rerun_records_itself_beside_the_first_record(tmp_path: Path) -> None:
    run = tmp_path / "run"
    records.AtomicConfigRecord().on_job_start(config=job_config(run))
    _SUBDIRS.pop(str(run))  # a new process
    records.AtomicConfigRecord().on_job_start(config=job_config(run, ["seed=4"]))
    assert OmegaConf.load(run / ".hydra" / "config.yaml").seed == 3  # the first, untouched
    (again,) = (run / ".hydra" / "again").iterdir()
    assert OmegaConf.load(again / "config.yaml").seed == 4


def test_a_ddp_process_lightning_starts_records_nothing(tmp_path: Path) -> None:
    cfg = job_config(tmp_path / "run")
    with open_dict(cfg):
        cfg.hydra.overrides.hydra.append("hydra.output_subdir=null")
    records.AtomicConfigRecord().on_job_start(config=cfg)
    assert not (tmp_path / "run").exists()


def test_a_write_that_fails_keeps_the_previous_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    records.AtomicConfigRecord().on_job_start(config=job_config(run))
    before = (run / ".hydra" / "config.yaml").read_text()
    _SUBDIRS[str(run)] = ".hydra"  # write over the same record
    real = records.atomic_write

    def dies_midway(path, mode):  # the writer is killed after half the text
        class Half:
            def __init__(self, file):
                self.file = file

            def write(self, text):
                self.file.write(text[: len(text) // 2])
                raise KeyboardInterrupt

        class Context:
            def __enter__(self):
                self.inner = real(path, mode)
                return Half(self.inner.__enter__())

            def __exit__(self, *exc):
                return self.inner.__exit__(*exc)

        return Context()

    monkeypatch.setattr(records, "atomic_write", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        records.AtomicConfigRecord().on_job_start(config=job_config(run, ["seed=9"]))
    assert (run / ".hydra" / "config.yaml").read_text() == before
