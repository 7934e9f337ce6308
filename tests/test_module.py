"""Tests for hl_lightning/module.py: HierarchicalSegmenter wrapping and subclassing a backbone."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from hl_lightning import Hierarchy, HierarchyError, hierarchical_nll
from hl_lightning.data import SYNTHETIC_CLASSES, SegmentationDataModule, SyntheticDataModule
from hl_lightning.decode import METHODS
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.losses import build_loss
from hl_lightning.models import UNet

K = len(SYNTHETIC_CLASSES)
LEVELS = ("kind", "family", "class")
UNET_CONFIG = {"_target_": "hl_lightning.models.UNet", "num_classes": None, "width": 4, "depth": 2}
# calling a step by hand, outside a Trainer: self.log() warns and does nothing
no_trainer_log = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def tiny_data(**kwargs: Any) -> SyntheticDataModule:
    options = {"num_train": 16, "num_val": 8, "num_test": 8, "batch_size": 8, "image_size": 32}
    return SyntheticDataModule(**{**options, **kwargs})


def tiny_unet(num_classes: int = K) -> UNet:
    return UNet(num_classes, width=4, depth=2)


def make_trainer(tmp_path: Path, **kwargs: Any) -> L.Trainer:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": tmp_path,
    }
    return L.Trainer(**{**options, **kwargs})


def a_batch(dm: SyntheticDataModule) -> tuple[Tensor, Tensor]:
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


def stage_keys(stage: str) -> set[str]:
    keys = {f"{stage}/loss", f"{stage}/miou", f"{stage}/severity", f"{stage}/serious"}
    for name in LEVELS:
        keys |= {f"{stage}/loss/{name}", f"{stage}/miou/{name}", f"{stage}/acc/{name}"}
    return keys


# ---------------------------------------------------------------------------- wrap usage
@pytest.mark.parametrize("loss", ["hierarchical", "flat"])
def test_wrap_fit_validate_test_log_every_level(tmp_path: Path, loss: str) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(backbone=tiny_unet(), hierarchy=dm.hierarchy, loss=loss)
    trainer = make_trainer(tmp_path, fast_dev_run=True)

    trainer.fit(model, datamodule=dm)
    fitted = dict(trainer.callback_metrics)
    assert {"train/loss_step", "train/loss_epoch"} <= fitted.keys()
    assert {f"train/loss/{name}" for name in LEVELS} <= fitted.keys()
    assert stage_keys("val") <= fitted.keys()

    trainer.validate(model, datamodule=dm, verbose=False)
    assert stage_keys("val") <= trainer.callback_metrics.keys()
    trainer.test(model, datamodule=dm, verbose=False)
    tested = dict(trainer.callback_metrics)
    assert stage_keys("test") <= tested.keys()

    for key in stage_keys("val") | stage_keys("test"):
        value = float(trainer.callback_metrics.get(key, fitted.get(key)))
        assert math.isfinite(value), key
    assert tested["test/miou"] == tested["test/miou/class"]  # the finest level's mIoU
    levels = sum(float(tested[f"test/loss/{name}"]) for name in LEVELS)
    if loss == "hierarchical":
        assert float(tested["test/loss"]) == pytest.approx(levels, rel=1e-5)
    else:  # cross-entropy is the finest level's loss
        assert float(tested["test/loss"]) == pytest.approx(float(tested["test/loss/class"]))


def test_one_level_hierarchy_logs_its_level(tmp_path: Path) -> None:
    dm = tiny_data()
    flat = Hierarchy.flat(SYNTHETIC_CLASSES).with_level_names(["class"])
    model = HierarchicalSegmenter(tiny_unet(), flat)
    trainer = make_trainer(tmp_path, fast_dev_run=True)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    metrics = trainer.callback_metrics
    for key in ("loss/class", "miou/class", "acc/class", "miou", "severity", "serious"):
        assert f"test/{key}" in metrics, key
    assert metrics["test/miou"] == metrics["test/miou/class"]
    assert float(metrics["test/loss"]) == pytest.approx(float(metrics["test/loss/class"]))


@no_trainer_log
def test_flat_loss_is_cross_entropy() -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(tiny_unet(), dm.hierarchy, loss="flat")
    images, masks = a_batch(dm)
    assert (masks == 255).any()  # ignored edge pixels are present
    loss = model.training_step((images, masks), 0)
    expected = F.cross_entropy(model(images), masks, ignore_index=255)
    torch.testing.assert_close(loss, expected)


@no_trainer_log
def test_hierarchical_loss_is_the_weighted_sum_of_level_losses() -> None:
    dm = tiny_data()
    images, masks = a_batch(dm)
    for weights in (None, [1.0, 0.5, 2.0]):
        torch.manual_seed(0)
        model = HierarchicalSegmenter(tiny_unet(), dm.hierarchy, level_weights=weights)
        loss = model.training_step((images, masks), 0)
        levels = hierarchical_nll(model(images), masks, dm.hierarchy, ignore_index=255)
        w = torch.tensor(weights or [1.0, 1.0, 1.0])
        torch.testing.assert_close(loss, (levels * w).sum())
    with pytest.raises(ValueError, match="2 level weights"):
        HierarchicalSegmenter(tiny_unet(), dm.hierarchy, level_weights=[1.0, 1.0])


@no_trainer_log
@pytest.mark.parametrize("loss", ["hierarchical", "flat"])
def test_all_ignored_batch_gives_zero_loss_and_gradient(loss: str) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(tiny_unet(), dm.hierarchy, loss=loss)
    images = torch.randn(2, 3, 32, 32)
    masks = torch.full((2, 32, 32), 255)
    value = model.training_step({"image": images, "mask": masks}, 0)  # a dict batch
    value.backward()
    assert value.item() == 0.0
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


# ---------------------------------------------------------------------------- subclass usage
class TupleNet(nn.Module):
    """A backbone with an auxiliary output: returns (logits, features)."""

    def __init__(self, num_classes: int = K) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, num_classes, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x).relu()
        return self.head(features), features


class DictNet(TupleNet):
    """A backbone returning its logits under ``key``, and an auxiliary head's under "aux"."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.aux_head = nn.Conv2d(4, K, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        logits, features = super().forward(x)
        return {self.key: logits, "aux": self.aux_head(features)}


class TupleSegmenter(HierarchicalSegmenter):
    def compute_logits(self, images: Tensor) -> Tensor:
        return self.backbone(images)[0]


class SegSegmenter(HierarchicalSegmenter):
    def compute_logits(self, images: Tensor) -> Tensor:
        return self.backbone(images)["seg"]


@pytest.mark.parametrize(
    "make",
    [
        lambda h: TupleSegmenter(TupleNet(), h),
        lambda h: SegSegmenter(DictNet("seg"), h),
        lambda h: HierarchicalSegmenter(DictNet("out"), h),  # torchvision style: no subclass
    ],
    ids=["tuple-subclass", "dict-subclass", "torchvision-out"],
)
def test_other_backbone_outputs_train(tmp_path: Path, make: Any) -> None:
    dm = tiny_data()
    model = make(dm.hierarchy)
    make_trainer(tmp_path, fast_dev_run=True).fit(model, datamodule=dm)
    images, _ = a_batch(dm)
    assert model(images).shape == (8, K, 32, 32)


def test_tuple_of_logits_and_features_says_to_override_compute_logits(tmp_path: Path) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(TupleNet(), dm.hierarchy)  # features read as deep supervision
    with pytest.raises(ValueError, match=r"auxiliary output 1 has 4 channels.*compute_logits"):
        make_trainer(tmp_path, fast_dev_run=True).fit(model, datamodule=dm)


def test_low_resolution_logits_are_upsampled(tmp_path: Path) -> None:
    dm = tiny_data()
    backbone = nn.Conv2d(3, K, 3, stride=2, padding=1)  # (B, K, H/2, W/2)
    model = HierarchicalSegmenter(backbone, dm.hierarchy)
    images, masks = a_batch(dm)
    assert backbone(images).shape == (8, K, 16, 16)
    assert model(images).shape == (8, K, 32, 32)
    make_trainer(tmp_path, fast_dev_run=True).fit(model, datamodule=dm)
    maps = model.predict_step(images)
    assert all(m.shape == masks.shape for m in maps.values())


# ---------------------------------------------------------------------------- prediction
def parents(hierarchy: Hierarchy, level: int) -> Tensor:
    """Return (G_{level+1},): the level-``level`` group of every level-``level + 1`` group."""
    matrix = hierarchy.level_matrix()
    table = torch.empty(hierarchy.num_groups(level + 1), dtype=torch.long)
    table[matrix[level + 1]] = matrix[level]
    return table


@pytest.mark.parametrize("method", METHODS)
def test_predict_step_returns_a_label_map_per_level(method: str) -> None:
    dm = tiny_data()
    h = dm.hierarchy
    model = HierarchicalSegmenter(tiny_unet(), h, decode=method).eval()
    images, masks = a_batch(dm)
    for batch in (images, (images, masks), [images], {"image": images, "mask": masks}):
        with torch.no_grad():
            maps = model.predict_step(batch, 0)
        assert tuple(maps) == LEVELS
        for d, level_map in enumerate(maps.values()):
            assert level_map.shape == (8, 32, 32) and level_map.dtype == torch.long
            assert level_map.min() >= 0 and level_map.max() < h.num_groups(d)
    with torch.no_grad():
        leaf = model(images).argmax(1)
    if method == "leaf":
        for d, level_map in enumerate(maps.values()):
            assert torch.equal(level_map, h.labels_at_level(leaf, d))
    if method in ("leaf", "top_down", "crm"):  # a consistent path down the tree
        preds = list(maps.values())
        for d in range(h.num_levels - 1):
            assert torch.equal(parents(h, d)[preds[d + 1]], preds[d])


def test_val_and_test_log_node_scores_and_test_writes_the_operating_curve(
    tmp_path: Path,
) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(tiny_unet(), dm.hierarchy, decode="crm")
    logger = CSVLogger(tmp_path, name="csv", version="")
    trainer = make_trainer(tmp_path, max_epochs=1, limit_train_batches=1, logger=logger)
    trainer.fit(model, datamodule=dm)
    assert {"val/hp", "val/hr", "val/hf"} <= trainer.callback_metrics.keys()
    assert "train/hf" not in trainer.callback_metrics
    trainer.test(model, datamodule=dm, verbose=False)
    tested = trainer.callback_metrics
    assert 0 <= float(tested["test/hpr_auc"]) <= 1
    rows = (Path(trainer.log_dir) / "hpr_curve.csv").read_text().splitlines()
    assert rows[0] == "threshold,hp,hr,hf" and len(rows) == 51
    threshold, hp, hr, hf = (float(v) for v in rows[1].split(","))
    assert threshold == 0.5  # the curve's first point is the logged one
    assert [hp, hr, hf] == pytest.approx([float(tested[f"test/{k}"]) for k in ("hp", "hr", "hf")])


def test_trainer_predict(tmp_path: Path) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(tiny_unet(), dm.hierarchy, decode="top_down")
    images = torch.randn(6, 3, 32, 32)
    loader = DataLoader(TensorDataset(images), batch_size=4)
    out = make_trainer(tmp_path).predict(model, loader)
    assert [tuple(o) for o in out] == [LEVELS, LEVELS]
    assert [o["class"].shape[0] for o in out] == [4, 2]


# ---------------------------------------------------------------------------- checkpoints
def fit_with_checkpoint(tmp_path: Path, model: HierarchicalSegmenter, dm: Any) -> str:
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    trainer = make_trainer(
        tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[checkpoint]
    )
    trainer.fit(model, datamodule=dm)
    assert checkpoint.last_model_path
    return checkpoint.last_model_path


def assert_same_predictions(a: HierarchicalSegmenter, b: HierarchicalSegmenter) -> None:
    images = torch.randn(2, 3, 32, 32)
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(images), b(images))
        pa, pb = a.predict_step(images), b.predict_step(images)
    assert pa.keys() == pb.keys()
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_checkpoint_round_trip_with_a_backbone_config(tmp_path: Path) -> None:
    dm = tiny_data()
    optimizer = {"_target_": "torch.optim.AdamW", "lr": 0.01}
    model = HierarchicalSegmenter(UNET_CONFIG, dm.hierarchy, optimizer=optimizer, decode="leaf")
    assert isinstance(model.backbone, UNet) and model.backbone.num_classes == K
    path = fit_with_checkpoint(tmp_path, model, dm)

    saved = torch.load(path, weights_only=True)  # plain data only
    assert saved["hyper_parameters"]["backbone"] == {**UNET_CONFIG, "num_classes": K}

    loaded = HierarchicalSegmenter.load_from_checkpoint(path)  # no other argument
    assert loaded.hierarchy == dm.hierarchy
    assert loaded.hierarchy.leaves == SYNTHETIC_CLASSES
    assert loaded.hierarchy.level_names == LEVELS
    assert loaded.hierarchy.num_levels == dm.hierarchy.num_levels
    assert loaded.decode == "leaf"
    assert loaded.optimizer_factory == optimizer
    assert_same_predictions(model, loaded)


def test_checkpoint_round_trip_with_a_backbone_module(tmp_path: Path) -> None:
    dm = tiny_data()
    h = dm.hierarchy.with_level_names(["a", "b", "c"])
    model = HierarchicalSegmenter(tiny_unet(), h, loss="flat")
    path = fit_with_checkpoint(tmp_path, model, dm)
    loaded = HierarchicalSegmenter.load_from_checkpoint(path, backbone=tiny_unet())
    assert loaded.hierarchy == h and loaded.loss_name == "flat"
    assert_same_predictions(model, loaded)


def test_hydra_containers_are_saved_as_plain_data(tmp_path: Path) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(
        OmegaConf.create(UNET_CONFIG),
        OmegaConf.create(dm.hierarchy.to_config()),
        level_weights=OmegaConf.create([1, 0.5, 0.25]),
        optimizer=OmegaConf.create({"_target_": "torch.optim.SGD", "lr": 0.1}),
        input_shape=OmegaConf.create([3, 32, 32]),
    )
    make_trainer(tmp_path, fast_dev_run=True).fit(model, datamodule=dm)
    path = tmp_path / "model.ckpt"
    model.trainer.save_checkpoint(path)
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["level_weights"] == [1.0, 0.5, 0.25]
    assert hparams["input_shape"] == (3, 32, 32)
    loaded = HierarchicalSegmenter.load_from_checkpoint(path)
    assert loaded.hierarchical_loss.level_weights.tolist() == [1.0, 0.5, 0.25]
    assert_same_predictions(model, loaded)


def test_optimizer_and_scheduler_from_configs_and_partials() -> None:
    h = Hierarchy.flat(["a", "b"])
    model = HierarchicalSegmenter(
        nn.Conv2d(3, 2, 1),
        h,
        optimizer={"_target_": "torch.optim.SGD", "lr": 0.5},
        scheduler={"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2},
    )
    config = model.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["optimizer"].param_groups[0]["lr"] == 0.5
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    model = HierarchicalSegmenter(
        nn.Conv2d(3, 2, 1), h, optimizer=functools.partial(torch.optim.Adam, lr=0.25)
    )
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 0.25
    default = HierarchicalSegmenter(nn.Conv2d(3, 2, 1), h).configure_optimizers()
    assert isinstance(default, torch.optim.AdamW)


# ---------------------------------------------------------------------------- set-up errors
class Spy(Callback):
    """Record which loop hooks ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.calls.append("sanity_check")

    def on_train_batch_start(self, *args: Any) -> None:
        self.calls.append("train_batch")


def test_wrong_channel_count_raises_at_setup(tmp_path: Path) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(tiny_unet(num_classes=5), dm.hierarchy)
    spy = Spy()
    trainer = make_trainer(tmp_path, max_epochs=1, callbacks=[spy])
    with pytest.raises(ValueError, match=r"returns 5 channels.*13 leaves") as info:
        trainer.fit(model, datamodule=dm)
    assert "set the backbone's number of output classes to 13" in str(info.value)
    assert spy.calls == [] and trainer.global_step == 0


def segmentation_data(class_names: list[str]) -> SegmentationDataModule:
    data = TensorDataset(torch.randn(4, 3, 32, 32), torch.randint(0, len(class_names), (4, 32, 32)))
    return SegmentationDataModule(class_names, train_dataset=data, val_dataset=data, batch_size=4)


def test_data_class_names_that_are_not_the_leaves_are_listed(tmp_path: Path) -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    model = HierarchicalSegmenter(nn.Conv2d(3, 3, 1), h)
    spy = Spy()
    with pytest.raises(HierarchyError) as info:
        make_trainer(tmp_path, max_epochs=1, callbacks=[spy]).fit(
            model, datamodule=segmentation_data(["sky", "car", "bus"])
        )
    message = str(info.value)
    assert "missing from the class names: truck" in message
    assert "not leaves of the hierarchy: bus" in message
    assert spy.calls == []


def test_data_class_names_in_another_order_say_how_to_reorder(tmp_path: Path) -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    model = HierarchicalSegmenter(nn.Conv2d(3, 3, 1), h)
    names = ["truck", "sky", "car"]
    with pytest.raises(ValueError, match="another order") as info:
        make_trainer(tmp_path, max_epochs=1).fit(model, datamodule=segmentation_data(names))
    assert "hierarchy.reorder(datamodule.class_names)" in str(info.value)
    # the remedy works
    model = HierarchicalSegmenter(nn.Conv2d(3, 3, 1), h.reorder(names))
    assert model.hierarchy.leaves == tuple(names)
    make_trainer(tmp_path, fast_dev_run=True).fit(model, datamodule=segmentation_data(names))


def test_unknown_loss_and_decode_raise() -> None:
    h = Hierarchy.flat(["a", "b"])
    with pytest.raises(ValueError, match=r"unknown loss 'focal'.*hierarchical, flat"):
        HierarchicalSegmenter(nn.Conv2d(3, 2, 1), h, loss="focal")
    with pytest.raises(ValueError, match="unknown decoding method 'argmax'"):
        HierarchicalSegmenter(nn.Conv2d(3, 2, 1), h, decode="argmax")


def test_docstring_example() -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    model = HierarchicalSegmenter(nn.Conv2d(3, 3, 1), h)
    maps = model.predict_step(torch.randn(2, 3, 8, 8))
    assert [m.shape for m in maps.values()] == [torch.Size([2, 8, 8])] * 2


# ---------------------------------------------------------------------------- a real fit
class EpochLosses(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.losses.append(float(trainer.callback_metrics["train/loss_epoch"]))


def test_a_short_fit_decreases_the_training_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = tiny_data(num_train=64)
    model = HierarchicalSegmenter(
        tiny_unet(), dm.hierarchy, optimizer=functools.partial(torch.optim.AdamW, lr=0.01)
    )
    record = EpochLosses()
    trainer = make_trainer(tmp_path, max_epochs=3, limit_val_batches=0, callbacks=[record])
    trainer.fit(model, datamodule=dm)
    assert len(record.losses) == 3
    first, second, third = record.losses
    assert first > second > third and third < first - 0.5, record.losses


class StepLosses(Callback):
    def __init__(self) -> None:
        self.steps: list[tuple[float, int]] = []  # (loss, batch size)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.steps.append((float(outputs["loss"]), len(batch[0])))


def test_the_epoch_training_loss_weighs_each_step_by_its_batch_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = tiny_data(num_train=4, batch_size=3)  # batches of 3 and 1 images
    model = HierarchicalSegmenter(tiny_unet(), dm.hierarchy)
    record = StepLosses()
    trainer = make_trainer(tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[record])
    trainer.fit(model, datamodule=dm)
    (first, n1), (second, n2) = record.steps
    assert (n1, n2) == (3, 1) and abs(first - second) > 1e-3
    weighted = (n1 * first + n2 * second) / (n1 + n2)
    assert float(trainer.callback_metrics["train/loss_epoch"]) == pytest.approx(weighted, rel=1e-6)


# ---------------------------------------------------------------------------- the loss family
FAMILY_OPTIONS: dict[str, dict[str, Any]] = {
    "hierarchical": {"class_weights": [None, {"water": 3.0}, None]},
    "flat": {"class_weights": [None, None, {"sky": 0.5}]},
    "hxe": {"alpha": 1.0},
    "soft_labels": {"beta": 5.0},
    "tree_min": {"gamma": 2.0},
}
NUM_NODES = 19  # the synthetic tree: 13 leaves and 6 internal nodes


@pytest.mark.parametrize("loss", ["hxe", "soft_labels", "tree_min"])
def test_every_loss_trains_and_logs_the_papers_level_losses(tmp_path: Path, loss: str) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(UNET_CONFIG, dm.hierarchy, loss=loss)
    assert model.backbone.num_classes == (NUM_NODES if loss == "tree_min" else K)
    trainer = make_trainer(tmp_path, fast_dev_run=True)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    tested = trainer.callback_metrics
    assert stage_keys("test") <= tested.keys()
    assert all(math.isfinite(float(tested[key])) for key in stage_keys("test"))
    images, masks = a_batch(dm)
    with torch.no_grad():
        logits = model.leaf_logits(model(images))
    levels = hierarchical_nll(logits, masks, dm.hierarchy, ignore_index=255)
    assert levels.shape == (3,) and torch.isfinite(levels).all()


@no_trainer_log
@pytest.mark.parametrize("loss", list(FAMILY_OPTIONS))
def test_the_training_loss_is_the_registrys_loss_with_its_options(loss: str) -> None:
    dm = tiny_data()
    images, masks = a_batch(dm)
    torch.manual_seed(0)
    backbone = tiny_unet(NUM_NODES if loss == "tree_min" else K)
    model = HierarchicalSegmenter(
        backbone, dm.hierarchy, loss=loss, loss_options=FAMILY_OPTIONS[loss]
    )
    value = model.training_step((images, masks), 0)
    expected = build_loss(loss, dm.hierarchy, 255, **FAMILY_OPTIONS[loss])(model(images), masks)
    torch.testing.assert_close(value, expected)
    assert model.hparams["loss_options"] == FAMILY_OPTIONS[loss]


@no_trainer_log
def test_class_weighted_hierarchical_loss_logs_the_unweighted_level_losses() -> None:
    dm = tiny_data()
    options = FAMILY_OPTIONS["hierarchical"]
    model = HierarchicalSegmenter(tiny_unet(), dm.hierarchy, loss_options=options)
    assert model.criterion is not model.hierarchical_loss
    images, masks = a_batch(dm)
    logged = model.hierarchical_loss.level_losses(model(images), masks)
    torch.testing.assert_close(logged, hierarchical_nll(model(images), masks, dm.hierarchy, 255))
    plain = HierarchicalSegmenter(tiny_unet(), dm.hierarchy)
    assert plain.criterion is plain.hierarchical_loss  # one pass: the logged levels are the loss


def test_loss_options_survive_a_checkpoint(tmp_path: Path) -> None:
    dm = tiny_data()
    model = HierarchicalSegmenter(
        UNET_CONFIG, dm.hierarchy, loss="hxe", loss_options=OmegaConf.create({"alpha": 2.0})
    )
    path = fit_with_checkpoint(tmp_path, model, dm)
    assert torch.load(path, weights_only=True)["hyper_parameters"]["loss_options"] == {"alpha": 2.0}
    loaded = HierarchicalSegmenter.load_from_checkpoint(path)
    assert loaded.loss_name == "hxe" and loaded.criterion.alpha == 2.0


def test_tree_min_needs_one_channel_per_node_and_decodes_the_best_path(tmp_path: Path) -> None:
    dm = tiny_data()
    wrong = HierarchicalSegmenter(tiny_unet(K), dm.hierarchy, loss="tree_min")
    with pytest.raises(ValueError, match=r"returns 13 channels.*one channel per node.*19 nodes"):
        make_trainer(tmp_path, fast_dev_run=True).fit(wrong, datamodule=dm)
    model = HierarchicalSegmenter(
        tiny_unet(NUM_NODES), dm.hierarchy, loss="tree_min", decode="leaf"
    )
    model.eval()
    images, _ = a_batch(dm)
    with torch.no_grad():
        maps = list(model.predict_step(images).values())
        best = model.criterion.leaf_logits(model(images)).argmax(1)
    for d, level_map in enumerate(maps):  # the best path's groups, a consistent path
        assert torch.equal(level_map, dm.hierarchy.labels_at_level(best, d))


def test_level_weights_for_a_loss_that_takes_none_are_refused() -> None:
    h = Hierarchy.flat(["a", "b"])
    with pytest.raises(ValueError, match="'hxe' takes no option level_weights; its options: alpha"):
        HierarchicalSegmenter(nn.Conv2d(3, 2, 1), h, loss="hxe", level_weights=[1.0])
