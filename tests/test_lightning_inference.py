"""Tests for hl_lightning/lightning/inference.py and optimization.py: whole or sliding-window
inference in validation, test and prediction, and schedules stepped per epoch or per step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from _compose import make_config
from _data_sets import HEIGHT, TINY, Folder, rgb, save
from _trainer import quiet_trainer
from hydra.utils import instantiate
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from hl_lightning import HierarchicalJaccardIndex, HierarchicalSegmenter, Hierarchy
from hl_lightning.cli.train import train
from hl_lightning.data import SegmentationDataModule
from hl_lightning.lightning.inference import Inference, window_starts
from hl_lightning.lightning.optimization import make_scheduler
from hl_lightning.models import UNet
from hl_lightning.options import OptionError

H = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})


class PositionNet(nn.Module):
    """Logits that depend on where a pixel sits in its window: channel 0 is the row within
    the input, channel 1 the column, channel 2 the input's height: windows differ."""

    def forward(self, images: Tensor) -> Tensor:
        batch, _, height, width = images.shape
        rows = torch.arange(height, dtype=images.dtype).view(1, 1, height, 1)
        columns = torch.arange(width, dtype=images.dtype).view(1, 1, 1, width)
        return torch.cat(
            [
                rows.expand(batch, 1, height, width),
                columns.expand(batch, 1, height, width),
                torch.full((batch, 1, height, width), float(height)),
            ],
            1,
        )


def reference_slide(net: nn.Module, images: Tensor, crop: tuple[int, int], stride: tuple[int, int]):
    """mmsegmentation's slide_inference, written out: windows every stride, the last moved
    back to the border, logits summed per pixel and divided by the windows covering it."""
    _, _, height, width = images.shape
    h_grids = max(height - crop[0] + stride[0] - 1, 0) // stride[0] + 1
    w_grids = max(width - crop[1] + stride[1] - 1, 0) // stride[1] + 1
    total = torch.zeros(images.shape[0], 3, height, width, dtype=torch.float64)
    count = torch.zeros(1, 1, height, width, dtype=torch.float64)
    for h in range(h_grids):
        for w in range(w_grids):
            y1, x1 = h * stride[0], w * stride[1]
            y2, x2 = min(y1 + crop[0], height), min(x1 + crop[1], width)
            y1, x1 = max(y2 - crop[0], 0), max(x2 - crop[1], 0)
            total[:, :, y1:y2, x1:x2] += net(images[:, :, y1:y2, x1:x2]).double()
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


@pytest.mark.parametrize(
    ("size", "crop", "stride"),
    [
        ((10, 12), (4, 6), (3, 4)),
        ((7, 5), (7, 5), (2, 2)),
        ((9, 9), (4, 4), (4, 4)),
        ((3, 20), (8, 8), (5, 5)),
    ],
)
def test_slide_averages_the_windows_as_mmsegmentation(
    size: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]
) -> None:
    images = torch.zeros(2, 3, *size)
    got = Inference("slide", crop, stride)(PositionNet(), images)
    torch.testing.assert_close(got.double(), reference_slide(PositionNet(), images, crop, stride))


def test_windows_cover_every_pixel_and_stay_inside() -> None:
    for length in range(1, 30):
        for crop in range(1, 12):
            for stride in range(1, crop + 1):
                starts = window_starts(length, crop, stride)
                covered = set()
                for start in starts:
                    assert start >= 0 and (start + crop <= length or start == 0)
                    covered.update(range(start, min(start + crop, length)))
                assert covered == set(range(length))


def test_slide_equals_whole_where_the_crop_covers_the_image() -> None:
    torch.manual_seed(0)
    net = UNet(3, width=4, depth=2).eval()
    images = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        slide = Inference("slide", (16, 24), (8, 8))(net, images)
        larger = Inference("slide", (32, 32), (8, 8))(net, images)
        whole = Inference("whole")(net, images)
    torch.testing.assert_close(slide, whole)
    torch.testing.assert_close(larger, whole)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"mode": "tiles"}, "inference must be 'whole' or 'slide', got 'tiles'"),
        ({"mode": "slide"}, "needs crop_size as [height, width]"),
        ({"mode": "slide", "crop_size": (4, 4), "stride": (0, 2)}, "needs stride"),
        ({"mode": "slide", "crop_size": (4, 4), "stride": (2, 5)}, "no longer than the crop"),
    ],
)
def test_bad_inference_options_are_named(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Inference(**options)


def large_images(count: int = 4, size: tuple[int, int] = (24, 40)) -> SegmentationDataModule:
    """Images larger than the crops the tests slide over, with their masks."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, 3, *size, generator=generator)
    masks = torch.randint(0, 3, (count, *size), generator=generator)
    data = TensorDataset(images, masks)
    return SegmentationDataModule(
        ["sky", "car", "truck"], H, train_dataset=data, val_dataset=data, test_dataset=data,
        batch_size=2,
    )  # fmt: skip


def test_validation_test_and_prediction_slide_over_images_larger_than_the_crop(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    backbone = UNet(3, width=4, depth=2)
    whole = HierarchicalSegmenter(backbone, H)
    slide = HierarchicalSegmenter(
        backbone, H, inference="slide", crop_size=[16, 16], stride=[8, 12]
    )
    data = large_images()
    results = {}
    for name, model in (("whole", whole), ("slide", slide)):
        results[name] = quiet_trainer(tmp_path).test(model, datamodule=data, verbose=False)[0]
    assert results["whole"]["test/loss"] != results["slide"]["test/loss"]  # windows differ
    images = data.test_dataset.tensors[0][:2]
    whole.eval(), slide.eval()
    with torch.no_grad():
        expected = Inference("slide", (16, 16), (8, 12))(whole, images)
        maps = slide.predict_step(images)
        torch.testing.assert_close(slide.infer(slide, images), expected)
    assert maps["level1"].shape == (2, 24, 40)  # the full image, not a crop


def test_hl_train_evaluates_whole_frames_larger_than_the_crop_in_windows(tmp_path: Path) -> None:
    """Trained on 16 x 16 crops; validated and tested on the files' own sizes (24 x 32, one
    image 30 x 40), one a batch, with 16 x 16 windows: the logged test mIoU is that of the
    windows over the whole frames."""
    case = Folder()
    root = case.write(tmp_path / "data")
    for split in ("val", "test"):  # a frame of another size, larger than the crop too
        image, (mask,) = case.paths(root, split, 1)
        save(rgb(30, 40, 7), image, "RGB")
        save(torch.arange(40).expand(30, 40) // 10, mask, "L")
    windows = ["model.inference=slide", "model.crop_size=[16,16]", "model.stride=[8,12]"]
    cfg = make_config(
        [
            "data=folder", f"data.root={root}", "data.class_names=classes.txt",
            "hierarchy=file", f"hierarchy.source={root / 'tree.yaml'}", *TINY,
            "data.scale=[1.5,2.0]", "data.eval_size=null", "data.eval_batch_size=1", *windows,
        ],
        tmp_path / "run",
    )  # fmt: skip
    metrics = train(cfg)
    (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("epoch*.ckpt")  # what test used
    model = HierarchicalSegmenter.load_from_checkpoint(checkpoint).eval()
    data = instantiate(cfg.data)
    data.setup("test")
    assert data.eval_size is None and data.eval_batch_size == 1
    slide = Inference("slide", (16, 16), (8, 12))
    expected = HierarchicalJaccardIndex(model.hierarchy, 255)
    sizes = []
    with torch.no_grad():
        for images, masks in data.test_dataloader():
            sizes.append(tuple(images.shape[-2:]))
            expected.update(slide(model, images), masks)
    assert sizes == [(HEIGHT, case.width), (30, 40), (HEIGHT, case.width)]
    for name, value in zip(model.hierarchy.level_names, expected.compute(), strict=True):
        assert metrics[f"test/miou/{name}"] == pytest.approx(float(value), abs=1e-6)
    # the prediction grid draws the validation frames of the first one's size
    assert (tmp_path / "run" / "predictions" / "epoch_000.png").is_file()


def test_a_poly_schedule_steps_every_iteration_for_the_whole_run(tmp_path: Path) -> None:
    schedule = {
        "_target_": "torch.optim.lr_scheduler.PolynomialLR",
        "total_iters": None,
        "power": 1.0,
    }
    model = HierarchicalSegmenter(
        UNet(3, width=4, depth=2), H, optimizer={"_target_": "torch.optim.SGD", "lr": 0.1},
        scheduler=schedule, scheduler_interval="step",
    )  # fmt: skip
    data = large_images(count=8)
    run = quiet_trainer(tmp_path, max_epochs=2, limit_val_batches=0)
    run.fit(model, datamodule=data)
    scheduler = run.lr_scheduler_configs[0]
    assert scheduler.interval == "step"
    assert scheduler.scheduler.total_iters == 8  # 2 epochs x 4 steps
    assert run.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0)  # decayed to the end


def test_an_epoch_schedule_of_null_length_runs_for_the_epochs(tmp_path: Path) -> None:
    schedule = {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": None}
    model = HierarchicalSegmenter(UNet(3, width=4, depth=2), H, scheduler=schedule)
    run = quiet_trainer(tmp_path, max_epochs=3, limit_val_batches=0, limit_train_batches=1)
    run.fit(model, datamodule=large_images())
    assert run.lr_scheduler_configs[0].scheduler.T_max == 3


def test_a_null_length_without_a_run_length_is_named() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    spec = {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": None}
    with pytest.raises(OptionError, match="T_max is null") as info:
        make_scheduler(spec, optimizer, None)
    assert info.value.option == "scheduler"
