"""Tests for hl_lightning/cli/build.py and config_check.py: hl-train's config becomes objects
in one place, and every bad value is named by its config key before anything trains."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _compose import make_config
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from hl_lightning.cli._launch import user_message
from hl_lightning.cli.build import ConfigError, build_run
from hl_lightning.data.io import BadDataError
from hl_lightning.hierarchy import Hierarchy

QUICK = ["experiment=quick", "data.num_train=4", "data.num_val=2", "data.num_test=2"]


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["seed=abc"], "seed", "could not be converted to Integer"),
        (["fit=abc"], "fit", "not a valid bool"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs", "converted to Integer"),
        (["+trainer.max_epoch=3"], "trainer.max_epoch", "did you mean max_epochs?"),
        (["trainer.max_epochs=-5"], "trainer", "max_epochs` must be a non-negative"),
        (["data.image_size=abc"], "data.image_size", "converted to Integer"),
        (["data.batch_size=0"], "data", "batch_size >= 1"),
        (["+loss.levelweight=1"], "loss.levelweight", "did you mean level_weights?"),
        (["+loss.levelweight=1"], "loss.levelweight", "its options: level_weights, class"),
        (["loss.level_weights=abc"], "loss.level_weights", "expected a list, got 'abc'"),
        (["loss=hxe", "loss.alpha=abc"], "loss.alpha", "converted to Float"),
        (["model.optimizer.lr=-1"], "model.optimizer", "Invalid learning rate: -1"),
        (["model.decode=foo"], "model.decode", "'foo' is not one of marginal, leaf"),
        (["+model.foo=1"], "model.foo", "HierarchicalSegmenter takes no option foo"),
        (["model.aux_weight=-1"], "model.aux_weight", "aux_weight must be finite and >= 0"),
        (["backbone=custom"], "backbone._target_", "has no value (???)"),
        (
            ["backbone=custom", "backbone._target_=mynets.MyNet"],
            "backbone._target_",
            "cannot import mynets.MyNet",
        ),
        (["backbone.width=abc"], "backbone.width", "converted to Integer"),
        (["hierarchy=file"], "hierarchy.source", "has no value"),
        (["+logger.csv.flush=1"], "logger.csv.flush", "takes no option flush"),
    ],
)
def test_a_bad_value_is_named_by_its_config_key(
    tmp_path: Path, overrides: list[str], key: str, words: str
) -> None:
    cfg = make_config([*QUICK, *overrides], tmp_path)
    with pytest.raises(ConfigError) as info:
        build_run(cfg)
    assert info.value.key == key
    assert str(info.value).startswith(f"config key {key}: ")
    assert words in str(info.value)


def test_a_library_that_refuses_a_backbone_value_is_named_as_the_backbone(tmp_path: Path) -> None:
    pytest.importorskip("segmentation_models_pytorch")
    cfg = make_config([*QUICK, "backbone=smp", "backbone.encoder_name=no_such_encoder"], tmp_path)
    with pytest.raises(ConfigError, match=r"^config key backbone: .*no_such_encoder"):
        build_run(cfg)


def test_the_model_gets_the_hierarchy_of_the_data_class_names_as_an_object(
    tmp_path: Path,
) -> None:
    run = build_run(make_config([*QUICK, "hierarchy=synthetic"], tmp_path))
    hierarchy = run.model.hierarchy
    assert isinstance(hierarchy, Hierarchy)
    assert hierarchy.leaves == run.datamodule.class_names  # leaf i is label id i
    assert hierarchy.level_names == ("kind", "family", "class")
    assert run.trainer.max_epochs == 1


class _BrokenFile(Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> torch.Tensor:
        raise BadDataError(f"data/images/{index}.png: truncated image file")


def test_an_error_in_a_data_loader_worker_shows_its_own_message() -> None:
    loader = DataLoader(_BrokenFile(), num_workers=1)
    with pytest.raises(BadDataError) as info:
        next(iter(loader))
    assert "DataLoader worker" in str(info.value)  # how PyTorch re-raises it
    assert user_message(info.value) == "data/images/0.png: truncated image file"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("seed=abc", "hl-train: error: config key seed: Value 'abc' of type 'str'"),
        (
            "+loss.levelweight=1",
            "hl-train: error: config key loss.levelweight: loss 'hierarchical' takes no option",
        ),
        ("backbone.num_classes=5", "hl-train: error: the backbone returns 5 channels"),
    ],
)
def test_the_console_script_ends_a_user_error_with_one_line_and_status_1(
    tmp_path: Path, tiny_run: list[str], hl_train: str, override: str, line: str
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [hl_train, *tiny_run, override, f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [text for text in result.stderr.splitlines() if text.startswith("hl-train: error")]
    assert len(errors) == 1 and errors[0].startswith(line)


@pytest.mark.slow
def test_a_backbone_class_of_the_launch_directory_trains_and_predicts(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    (tmp_path / "mynets.py").write_text(
        "import torch\n\n\nclass MyNet(torch.nn.Module):\n"
        "    def __init__(self, num_classes: int, width: int = 4) -> None:\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, num_classes, 3, padding=1)\n\n"
        "    def forward(self, x):\n        return self.conv(x)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    out = tmp_path / "run"
    unet = [o for o in tiny_run if not o.startswith("backbone.")]
    args = [hl_train, *unet, "backbone=custom", "backbone._target_=mynets.MyNet"]
    result = subprocess.run(
        [*args, f"hydra.run.dir={out}"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (16, 16), (30, 60, 90)).save(tmp_path / "photos" / "image.png")
    predict = Path(sys.executable).with_name("hl-predict")
    ckpt = out / "checkpoints" / "last.ckpt"
    result = subprocess.run(
        [str(predict), str(ckpt), "photos", "masks"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert any((tmp_path / "masks").rglob("*.png"))
