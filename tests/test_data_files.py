"""Tests for hl_lightning/data/files.py: the shared options of the file-backed data modules."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml

from hl_lightning.data import (
    CityscapesDataModule,
    CocoStuffDataModule,
    FileDataModule,
    FileOptions,
    FolderDataModule,
    HelenDataModule,
    LIPDataModule,
    MapillaryDataModule,
    PascalPersonPartDataModule,
)

MODULES = {
    "folder": FolderDataModule,
    "helen": HelenDataModule,
    "mapillary": MapillaryDataModule,
    "cityscapes": CityscapesDataModule,
    "coco_stuff": CocoStuffDataModule,
    "pascal_person_part": PascalPersonPartDataModule,
    "lip": LIPDataModule,
}


@pytest.mark.parametrize("name", MODULES)
def test_every_hydra_config_shows_every_shared_option(name: str) -> None:
    text = resources.files("hl_lightning.conf").joinpath(f"data/{name}.yaml").read_text()
    keys = set(yaml.safe_load(text))
    assert set(FileOptions.__annotations__) <= keys, set(FileOptions.__annotations__) - keys


@pytest.mark.parametrize("name", MODULES)
def test_subclass_defaults_are_known_options(name: str) -> None:
    module = MODULES[name]
    assert issubclass(module, FileDataModule)
    assert set(module.defaults) <= set(FileOptions.__annotations__)


def test_defaults_and_overrides_reach_the_module(tmp_path: Path) -> None:
    dm = HelenDataModule(tmp_path)
    assert dm.image_size == 256 and dm.hparams["hflip"] == 0.5  # Helen's own defaults
    assert dm.batch_size == 16  # the shared default
    dm = HelenDataModule(tmp_path, image_size=64, batch_size=2, on_bad="skip")
    assert (dm.image_size, dm.batch_size, dm.on_bad) == (64, 2, "skip")


def test_an_unknown_option_is_named_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"unknown options imagesize; the shared options are"):
        HelenDataModule(tmp_path, imagesize=64)  # type: ignore[call-arg]
