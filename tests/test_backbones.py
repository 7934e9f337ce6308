"""Tests for the backbone presets (conf/backbone, hl_lightning/models/zoo.py, timm_fpn.py) and
hl_lightning/lightning/backbones.py: every preset from the command line, fit, reload, predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from _trainer import quiet_trainer
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor, nn

from hl_lightning.cli import predict
from hl_lightning.cli.build import build_model
from hl_lightning.data import SyntheticDataModule
from hl_lightning.lightning import HierarchicalSegmenter, MissingBackboneError
from hl_lightning.lightning.backbones import CLASS_COUNT_KEYS, build_backbone, with_class_count
from hl_lightning.losses import TreeMinLoss
from hl_lightning.models import TimmFPN, hf_model, smp_model, torchvision_model
from hl_lightning.models._libraries import with_download_hint

PRESETS = ("unet", "unet_paper", "smp", "torchvision", "timm", "hf", "custom")
# per preset, the overrides that make it tiny (the presets' own sizes are for real runs)
TINY_BACKBONE = {
    "unet": ["backbone.width=4", "backbone.depth=2"],
    "unet_paper": ["backbone.width=4", "backbone.depth=2"],
    "smp": [
        "backbone.arch=FPN",
        "+backbone.encoder_depth=3",
        "+backbone.decoder_pyramid_channels=32",
        "+backbone.decoder_segmentation_channels=32",
    ],
    "torchvision": ["backbone.name=lraspp_mobilenet_v3_large"],
    "timm": ["backbone.encoder_name=resnet10t", "backbone.decoder_channels=8"],
    "hf": [
        "+backbone.config.depths=[1,1,1,1]",
        "+backbone.config.hidden_sizes=[8,16,24,32]",
        "+backbone.config.decoder_hidden_size=16",
    ],
    "custom": ["backbone._target_=hl_lightning.models.UNet", "+backbone.width=4"],
}
DATA = [
    "data.num_train=4",
    "data.num_val=2",
    "data.num_test=2",
    "data.image_size=32",
    "data.batch_size=2",
    "logger=csv",
]


def config(overrides: list[str], out: Path) -> DictConfig:
    with initialize_config_module("hl_lightning.conf", version_base="1.3"):
        return compose(
            "train", [*overrides, f"trainer.default_root_dir={out}"], return_hydra_config=False
        )


def fit_two_steps(cfg: DictConfig, out: Path) -> tuple[HierarchicalSegmenter, Path]:
    """Fit the configured model for 2 steps; return it and its checkpoint."""
    L.seed_everything(0)
    dm = instantiate(cfg.data)
    model = build_model(cfg, dm)
    trainer = quiet_trainer(out, max_steps=2, limit_val_batches=1)
    trainer.fit(model, datamodule=dm)
    path = out / "model.ckpt"
    trainer.save_checkpoint(path)
    return model, path


def write_images(folder: Path) -> Path:
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for i in range(2):
        pixels = torch.randint(256, (40, 48, 3), dtype=torch.uint8, generator=generator)
        Image.fromarray(pixels.numpy()).save(folder / f"image{i}.png")
    return folder


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_fits_reloads_from_the_path_alone_and_predicts(preset: str, tmp_path: Path) -> None:
    cfg = config(
        ["experiment=quick", f"backbone={preset}", *TINY_BACKBONE[preset], *DATA], tmp_path
    )
    model, path = fit_two_steps(cfg, tmp_path)
    assert model.global_step == 2

    loaded = HierarchicalSegmenter.load_from_checkpoint(path)  # no other argument
    assert type(loaded.backbone) is type(model.backbone)
    images = torch.randn(2, 3, 32, 32)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))

    written = predict.predict_folder(path, write_images(tmp_path / "in"), tmp_path / "out")
    assert len(written) == 2 * 3 + 1  # 2 images x 3 levels, and the legend
    with Image.open(written[0]) as mask:
        assert mask.size == (48, 40)


DATA_MODULES = (
    "synthetic",
    "folder",
    "helen",
    "mapillary",
    "cityscapes",
    "coco_stuff",
    "pascal_person_part",
    "lip",
)


@pytest.mark.parametrize(  # every preset with the default data, every data module with unet
    ("preset", "data"),
    [(p, "synthetic") for p in PRESETS] + [("unet", d) for d in DATA_MODULES[1:]],
)
def test_quick_composes_with_every_backbone_and_data_module(
    preset: str, data: str, tmp_path: Path
) -> None:
    overrides = ["experiment=quick", f"backbone={preset}", f"data={data}"]
    if data != "synthetic":
        overrides.append(f"data.root={tmp_path}")
    if data == "folder":
        overrides.append("data.class_names=[a,b]")
    cfg = config(overrides, tmp_path)
    assert cfg.trainer.limit_train_batches == 4
    assert "num_train" not in cfg.data or data == "synthetic"
    preset_keys = set(config([f"backbone={preset}"], tmp_path).backbone)
    assert set(cfg.backbone) == preset_keys  # quick sets no backbone key


def test_paper_experiment_takes_another_backbone_from_the_command_line(tmp_path: Path) -> None:
    cfg = config(["experiment=paper_helen", "backbone=smp", f"data.root={tmp_path}"], tmp_path)
    assert cfg.backbone._target_ == "hl_lightning.models.smp_model"
    assert config(["experiment=paper_helen"], tmp_path).backbone.width == 64


def test_unknown_preset_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        HydraException, match=r"backbone/nope'[\s\S]*Available options in 'backbone'"
    ):
        config(["backbone=nope"], tmp_path)


def test_custom_preset_without_target_names_the_key(tmp_path: Path) -> None:
    cfg = config(["backbone=custom", *DATA], tmp_path)
    with pytest.raises(Exception, match=r"backbone\._target_|_target_"):
        build_model(cfg, instantiate(cfg.data))


# ---------------------------------------------------------------------------- class counts
def test_tree_min_with_a_third_party_preset_gets_one_channel_per_node(tmp_path: Path) -> None:
    cfg = config(["backbone=timm", *TINY_BACKBONE["timm"], "loss=tree_min", *DATA], tmp_path)
    model, _ = fit_two_steps(cfg, tmp_path)
    assert isinstance(model.criterion, TreeMinLoss)
    nodes = model.criterion.num_nodes
    assert nodes > model.hierarchy.num_leaves
    assert model.backbone.head.out_channels == nodes
    assert model.hparams["backbone"]["num_classes"] == nodes


@pytest.mark.parametrize("key", CLASS_COUNT_KEYS)
def test_class_count_is_filled_under_the_library_key(key: str) -> None:
    assert with_class_count({"_target_": "x", key: None, "width": 2}, 7) == {
        "_target_": "x",
        key: 7,
        "width": 2,
    }


def test_a_set_class_count_is_kept_and_checked_by_the_dry_run() -> None:
    assert with_class_count({"_target_": "x", "classes": 3}, 7)["classes"] == 3
    dm = SyntheticDataModule(num_train=2, num_val=2, num_test=2, image_size=16)
    backbone = {"_target_": "hl_lightning.models.UNet", "num_classes": 3, "width": 4, "depth": 1}
    model = HierarchicalSegmenter(backbone, dm.hierarchy)
    with pytest.raises(ValueError, match=r"returns 3 channels.*13 leaves"):
        model.check_backbone((3, 16, 16))


def test_config_without_a_class_count_key_names_the_keys() -> None:
    with pytest.raises(ValueError, match=r"no class-count key.*num_classes, classes, num_labels"):
        with_class_count({"_target_": "torch.nn.Identity"}, 5)


def test_config_without_target_says_to_choose_a_preset() -> None:
    with pytest.raises(ValueError, match=r"no _target_.*backbone=unet, smp"):
        build_backbone({"num_classes": None}, 5)


def test_config_building_no_module_is_refused() -> None:
    with pytest.raises(TypeError, match=r"built a dict, not a torch.nn.Module"):
        build_backbone({"_target_": "builtins.dict", "num_classes": None}, 5)


# ---------------------------------------------------------------------------- libraries
def test_unknown_smp_architecture_is_named() -> None:
    with pytest.raises(KeyError, match="Nope"):
        smp_model(5, arch="Nope")


def test_unknown_torchvision_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'nope' is not a torchvision.*deeplabv3_resnet50"):
        torchvision_model(5, "nope")


def test_torchvision_aux_head_on_a_model_without_one_is_refused() -> None:
    with pytest.raises(ValueError, match="no auxiliary head"):
        torchvision_model(5, "lraspp_mobilenet_v3_large", aux_loss=True)


def test_unknown_hf_model_type_is_named() -> None:
    with pytest.raises(ValueError, match="nope"):
        hf_model(5, "nope")


def test_failed_weight_download_names_the_key_that_turns_it_off() -> None:
    def offline() -> nn.Module:
        raise OSError("no network")

    with pytest.raises(
        RuntimeError, match=r"encoder_weights='imagenet'.*backbone.encoder_weights=null"
    ):
        with_download_hint(offline, "encoder_weights", "imagenet")
    with pytest.raises(OSError, match="no network"):  # weights off: the error as it is
        with_download_hint(offline, "encoder_weights", None)


def test_timm_head_fuses_every_feature_map() -> None:
    net = TimmFPN(4, "resnet10t", decoder_channels=8).eval()
    assert len(net.lateral) == len(net.encoder.feature_info.channels())
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 4, 16, 16)  # the finest stride: 2


# ---------------------------------------------------------------------------- outputs
def tiny_dm() -> SyntheticDataModule:
    return SyntheticDataModule(num_train=4, num_val=2, num_test=2, image_size=32, batch_size=2)


def fit(model: HierarchicalSegmenter, out: Path, **options: Any) -> L.Trainer:
    options.setdefault("max_steps", 2)
    trainer = quiet_trainer(out, limit_val_batches=1, **options)
    trainer.fit(model, datamodule=tiny_dm())
    return trainer


def test_hugging_face_model_object_trains_without_a_subclass(tmp_path: Path) -> None:
    dm = tiny_dm()
    net = hf_model(13, "segformer", {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 24, 32]})
    model = HierarchicalSegmenter(net, dm.hierarchy)
    fit(model, tmp_path)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 13, 32, 32)


def test_torchvision_aux_head_gets_gradients_and_its_loss_is_logged(tmp_path: Path) -> None:
    dm = tiny_dm()
    net = torchvision_model(13, "deeplabv3_mobilenet_v3_large")
    assert net.aux_classifier is not None
    model = HierarchicalSegmenter(net, dm.hierarchy, aux_weight=0.5)
    before = [p.detach().clone() for p in net.aux_classifier.parameters()]
    trainer = fit(model, tmp_path)
    after = list(net.aux_classifier.parameters())
    assert len(after) == 5
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert torch.isfinite(trainer.callback_metrics["train/aux_loss"])


class DeepSupervision(nn.Module):
    """A backbone returning [logits, half-resolution logits] (deep supervision)."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Conv2d(3, 13, 3, padding=1)
        self.side = nn.Conv2d(3, 13, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        return [self.main(x), self.side(x)]


def test_aux_weight_scales_the_deep_supervision_loss() -> None:
    dm = tiny_dm()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    losses = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = HierarchicalSegmenter(DeepSupervision(), dm.hierarchy, aux_weight=weight)
        model.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
        losses[weight] = model.training_step(batch, 0)
    main = model.criterion(model(batch[0]), batch[1].long())
    torch.testing.assert_close(losses[0.0], main)
    upsampled = torch.nn.functional.interpolate(
        model.backbone(batch[0])[1], size=(32, 32), mode="bilinear"
    )
    torch.testing.assert_close(losses[1.0], main + model.criterion(upsampled, batch[1].long()))


def test_negative_aux_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="aux_weight"):
        HierarchicalSegmenter(DeepSupervision(), tiny_dm().hierarchy, aux_weight=-1)


class Unreadable(nn.Module):
    def forward(self, x: Tensor) -> set[int]:
        return {1}


def test_unreadable_output_names_the_type_and_compute_logits() -> None:
    model = HierarchicalSegmenter(Unreadable(), tiny_dm().hierarchy)
    with pytest.raises(TypeError, match=r"returned a set, not logits.*compute_logits"):
        model.check_backbone()


class Logits:
    def __init__(self, logits: Tensor) -> None:
        self.logits = logits


class ObjectNet(nn.Conv2d):
    def forward(self, x: Tensor) -> Logits:  # type: ignore[override]
        return Logits(super().forward(x))


def test_an_object_with_logits_is_read() -> None:
    model = HierarchicalSegmenter(ObjectNet(3, 13, 1), tiny_dm().hierarchy)
    model.check_backbone()
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 13, 8, 8)


# ---------------------------------------------------------------------------- set-up
def test_fixed_size_backbone_error_names_the_shape_and_input_shape(tmp_path: Path) -> None:
    net = TimmFPN(13, "vit_tiny_patch16_224", img_size=48, decoder_channels=8)
    model = HierarchicalSegmenter(net, tiny_dm().hierarchy)  # the data: 32 x 32
    with pytest.raises(RuntimeError, match=r"input of shape \(1, 3, 32, 32\).*input_shape"):
        fit(model, tmp_path)
    model.check_backbone((3, 48, 48))  # the size it was built for works


def test_dry_run_uses_the_data_image_size(tmp_path: Path) -> None:
    shapes = []
    net = nn.Conv2d(3, 13, 1)
    net.register_forward_pre_hook(lambda _, inputs: shapes.append(tuple(inputs[0].shape)))
    fit(HierarchicalSegmenter(net, tiny_dm().hierarchy), tmp_path, max_steps=1)
    assert shapes[0] == (1, 3, 32, 32)


def test_reload_of_an_object_backbone_says_what_to_pass(tmp_path: Path) -> None:
    model = HierarchicalSegmenter(nn.Conv2d(3, 13, 1), tiny_dm().hierarchy)
    trainer = fit(model, tmp_path, max_steps=1)
    trainer.save_checkpoint(tmp_path / "object.ckpt")
    with pytest.raises(
        MissingBackboneError,
        match=r"passed as an object \(torch\.nn\.modules\.conv\.Conv2d\).*"
        r"load_from_checkpoint\(path, backbone=torch\.nn\.modules\.conv\.Conv2d\(\.\.\.\)\)",
    ):
        HierarchicalSegmenter.load_from_checkpoint(tmp_path / "object.ckpt")
    loaded = HierarchicalSegmenter.load_from_checkpoint(
        tmp_path / "object.ckpt", backbone=nn.Conv2d(3, 13, 1)
    )
    assert torch.equal(loaded.backbone.weight, model.backbone.weight)


# ---------------------------------------------------------------------------- compile
@pytest.mark.slow
def test_compiled_backbone_trains_and_checkpoints_plain_keys(tmp_path: Path) -> None:
    backbone = {"_target_": "hl_lightning.models.UNet", "num_classes": None, "width": 4}
    model = HierarchicalSegmenter(backbone, tiny_dm().hierarchy, compile={"backend": "eager"})
    trainer = fit(model, tmp_path)
    assert model._compiled
    trainer.save_checkpoint(tmp_path / "compiled.ckpt")
    keys = torch.load(tmp_path / "compiled.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in keys)
    loaded = HierarchicalSegmenter.load_from_checkpoint(tmp_path / "compiled.ckpt")
    model.eval(), loaded.eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), loaded(images))
