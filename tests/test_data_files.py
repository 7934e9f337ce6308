"""Tests for hl_lightning/data/files.py: the shared options of the file-backed data modules."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import yaml
from PIL import Image

from hl_lightning.data import (
    BadDataError,
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


def truncated_folder(root: Path) -> Path:
    """Write a folder of 3 train/val pairs whose train image b.png has a truncated body."""
    for split in ("train", "val"):
        for sub in ("images", "labels"):
            (root / sub / split).mkdir(parents=True)
        for name in ("a", "b", "c"):
            noise = Image.effect_noise((32, 24), 60).convert("RGB")
            noise.save(root / "images" / split / f"{name}.png")
            Image.new("L", (32, 24), 1).save(root / "labels" / split / f"{name}.png")
    bad = root / "images" / "train" / "b.png"
    bad.write_bytes(bad.read_bytes()[:200])  # a sound header, a truncated body
    return bad


def test_a_truncated_file_found_at_load_is_named(tmp_path: Path) -> None:
    bad = truncated_folder(tmp_path)
    dm = FolderDataModule(tmp_path, class_names=["sky", "car"], batch_size=1)
    dm.setup("fit")  # the headers are sound
    with pytest.raises(BadDataError, match=rf"{bad}: cannot decode the image.*on_bad=skip"):
        [dm.train_dataset[i] for i in range(3)]


def test_skip_replaces_a_file_found_bad_at_load_and_warns_once(tmp_path: Path) -> None:
    bad = truncated_folder(tmp_path)
    dm = FolderDataModule(tmp_path, class_names=["sky", "car"], batch_size=1, on_bad="skip")
    dm.setup("fit")
    with pytest.warns(UserWarning, match=rf"skipped: {bad}: cannot decode") as caught:
        items = [dm.train_dataset[i] for _ in range(2) for i in range(3)]
    assert len(items) == 6 and len([w for w in caught if "skipped" in str(w.message)]) == 1


@pytest.mark.parametrize(("on_bad", "outcome"), [("error", "raises"), ("skip", "drops")])
def test_verify_decodes_every_file_at_set_up(tmp_path: Path, on_bad: str, outcome: str) -> None:
    bad = truncated_folder(tmp_path)
    dm = FolderDataModule(
        tmp_path,
        class_names=["sky", "car"],
        verify=True,
        on_bad=on_bad,  # type: ignore[arg-type]
    )
    if outcome == "raises":
        with pytest.raises(BadDataError, match=rf"1 bad samples .*\n  {bad}: cannot decode"):
            dm.setup("fit")
    else:
        with pytest.warns(UserWarning, match="skipped 1 bad samples"):
            dm.setup("fit")
        assert len(dm.train_dataset) == 2
