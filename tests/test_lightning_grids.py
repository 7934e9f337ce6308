"""Tests for the prediction images: prediction_grid and level_legend (lightning/grids.py),
and LevelPredictionImages (PNG files in the run directory, images for TensorBoard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from PIL import Image

from hl_lightning.data import SYNTHETIC_MEAN, SYNTHETIC_STD, SyntheticDataModule
from hl_lightning.hierarchies import mapillary_paper_hierarchy
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.callbacks import LevelPredictionImages
from hl_lightning.lightning.grids import level_legend, prediction_grid
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.models import UNet
from hl_lightning.palette import level_palettes, node_palette


class ImageRecorder:
    """A stand-in for TensorBoard's SummaryWriter: records add_image calls."""

    def __init__(self) -> None:
        self.images: list[tuple[str, torch.Tensor, int, str]] = []

    def add_image(self, tag: str, image: torch.Tensor, step: int, dataformats: str) -> None:
        self.images.append((tag, image, step, dataformats))


class RecordingLogger(Logger):
    """A logger whose experiment has ``add_image``, as TensorBoardLogger's does."""

    def __init__(self) -> None:
        super().__init__()
        self._experiment = ImageRecorder()

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    @property
    def experiment(self) -> ImageRecorder:
        return self._experiment

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def colours(image: Image.Image) -> int:
    return len(image.getcolors(maxcolors=1 << 16) or range(1 << 16))


def test_grid_layout_colours_and_ignored_pixels() -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    masks = torch.randint(3, (2, 32, 32))
    masks[:, :4] = 255  # ignored rows: black in the ground truth
    predictions = [h.labels_at_level(masks.clamp(max=2), d) for d in range(2)]
    images = torch.rand(2, 3, 32, 32)
    grid = prediction_grid(images, masks, predictions, h, 255, legend=False)
    assert grid.dtype == torch.uint8
    assert grid.shape == (16 + 2 * 96 + 2, 5 * 96 + 4 * 2, 3)  # title, 2 rows x 5 columns
    cell = grid[16 : 16 + 96]  # the first image's row, 96-pixel cells at every 98 pixels
    palettes = level_palettes(h)
    truth_fine = cell[:, 3 * 98 : 3 * 98 + 96]
    assert (truth_fine[:12] == 0).all()  # 4 ignored rows, enlarged 3x
    allowed = {tuple(c) for c in palettes[1].tolist()} | {(0, 0, 0)}
    assert {tuple(c) for c in truth_fine.reshape(-1, 3).tolist()} <= allowed
    prediction_coarse = cell[:, 2 * 98 : 2 * 98 + 96]
    assert {tuple(c) for c in prediction_coarse.reshape(-1, 3).tolist()} <= {
        tuple(c) for c in palettes[0].tolist()
    }
    assert (grid[16 : 16 + 96, 96:98] == 255).all()  # white gap between cells
    assert (grid[:16] < 128).any()  # titles drawn in the header


def swatch_counts(strip: torch.Tensor) -> dict[tuple[int, ...], int]:
    """Return how many pixels of the strip (H, W, 3) have each colour."""
    colours, counts = strip.reshape(-1, 3).unique(dim=0, return_counts=True)
    return {tuple(c): int(n) for c, n in zip(colours.tolist(), counts.tolist(), strict=True)}


@pytest.mark.parametrize("tree", ["small", "mapillary"])
def test_legend_shows_every_groups_colour_per_level_within_its_width(tree: str) -> None:
    h = (
        Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        if tree == "small"
        else mapillary_paper_hierarchy()
    )
    width = 5 * 98 - 2
    strip = level_legend(h, width)
    assert strip.dtype == torch.uint8 and strip.shape[1] == width
    counts = swatch_counts(strip)
    need: dict[tuple[int, ...], int] = {(0, 0, 0): 1}  # black: the ignored pixels
    for palette in level_palettes(h):  # one 10 x 10 square per group and level
        for colour in palette.tolist():
            need[tuple(colour)] = need.get(tuple(colour), 0) + 1
    for colour, squares in need.items():
        assert counts.get(colour, 0) >= 100 * squares, colour
    lines = strip.shape[0] // 14
    if tree == "small":
        assert lines == 3  # a line per level and one for the ignored pixels, no wrapping
    else:  # 7 + 37 + 66 groups, wrapped to the width
        assert lines > 3 + (37 + 66) * 60 // width
    assert (strip[:, -2:] == 255).all()  # nothing drawn past the width: wrapped before


def test_grid_with_legend_is_the_grid_above_the_legend() -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    masks = torch.randint(3, (2, 16, 16))
    predictions = [h.labels_at_level(masks, d) for d in range(2)]
    images = torch.rand(2, 3, 16, 16)
    bare = prediction_grid(images, masks, predictions, h, legend=False)
    full = prediction_grid(images, masks, predictions, h)
    assert torch.equal(full[: len(bare)], bare)
    assert torch.equal(full[len(bare) :], level_legend(h, bare.shape[1]))


def test_coarse_truth_is_drawn_in_its_nodes_colour_below_its_level() -> None:
    """A mask holding "vehicle" (an internal node: a coarse label) beside leaves: at level 0
    the vehicle group's colour, at level 1 (below the node) the node's own colour, not
    black; the legend lists the coarse node."""
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    vehicle = h.label_id("vehicle")
    masks = torch.zeros(1, 8, 8, dtype=torch.long)  # sky
    masks[0, :, 4:] = vehicle
    masks[0, 6:, :2] = 255
    predictions = [torch.zeros(1, 8, 8, dtype=torch.long)] * 2
    grid = prediction_grid(torch.rand(1, 3, 8, 8), masks, predictions, h, 255, legend=False)
    scale, step = 12, 98  # 8-pixel images enlarged to 96, cells every 98 pixels
    palettes, nodes = level_palettes(h), node_palette(h)

    def truth(level: int) -> torch.Tensor:
        cell = grid[16 : 16 + 96, (1 + 2 * level) * step : (1 + 2 * level) * step + 96]
        return cell[::scale, ::scale]  # one pixel of every enlarged image pixel

    coarse, fine = truth(0), truth(1)
    assert (coarse[:, 4:] == palettes[0][1]).all()  # the vehicle group at its level
    assert (fine[:, 4:] == nodes[vehicle]).all()  # below: the node's colour
    assert (nodes[vehicle] == palettes[0][1]).all() and nodes[vehicle].any()
    assert (fine[:6, :4] == palettes[1][0]).all()  # sky: a leaf
    assert (fine[6:, :2] == 0).all()  # ignored: black
    full = prediction_grid(torch.rand(1, 3, 8, 8), masks, predictions, h, 255)
    legend = full[len(grid) :]
    assert torch.equal(legend, level_legend(h, grid.shape[1], [vehicle]))
    assert len(legend) == len(level_legend(h, grid.shape[1])) + 14  # one more line
    leaves_only = prediction_grid(torch.rand(1, 3, 8, 8), masks.clamp(max=2), predictions, h)
    assert len(leaves_only) == len(grid) + len(level_legend(h, grid.shape[1]))


def test_grid_undoes_the_normalisation_when_given() -> None:
    h = Hierarchy.flat(["a", "b"])
    raw = torch.full((1, 3, 8, 8), 0.5)
    mean, std = [0.4, 0.5, 0.6], [0.1, 0.2, 0.3]
    normalised = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    masks = torch.zeros(1, 8, 8, dtype=torch.long)
    grid = prediction_grid(normalised, masks, [masks], h, mean=mean, std=std)
    assert grid[20, 20].tolist() == [128, 128, 128]
    stretched = prediction_grid(torch.rand(1, 1, 8, 8), masks, [masks], h)  # grey, stretched
    image = stretched[16 : 16 + 96, :96]
    assert image.amin() == 0 and image.amax() == 255
    assert (image[..., 0] == image[..., 1]).all()


def test_callback_writes_pngs_every_n_epochs_and_logs_to_tensorboard(tmp_path: Path) -> None:
    dm = SyntheticDataModule(num_train=16, num_val=6, num_test=4, batch_size=4, image_size=32)
    model = HierarchicalSegmenter(UNet(dm.num_classes, width=4, depth=2), dm.hierarchy)
    callback = LevelPredictionImages(
        every_n_epochs=2, num_images=3, mean=SYNTHETIC_MEAN, std=SYNTHETIC_STD
    )
    logger = RecordingLogger()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=4,
        limit_train_batches=1,
        log_every_n_steps=1,
        logger=logger,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)  # the sanity check draws nothing
    files = sorted((tmp_path / "predictions").iterdir())
    assert [f.name for f in files] == ["epoch_001.png", "epoch_003.png"]
    with Image.open(files[-1]) as image:
        image.verify()
    with Image.open(files[-1]) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        # 3 rows of 96-pixel cells; image + truth and prediction at 3 levels; the legend
        width = 7 * 96 + 6 * 2
        legend = level_legend(dm.hierarchy, width)
        assert image.size == (width, 16 + 3 * 96 + 2 * 2 + legend.shape[0])
        assert colours(image) > 20
        picture = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    logged = logger.experiment.images
    assert [(tag, step, fmt) for tag, _, step, fmt in logged] == [
        ("val/predictions", 2, "HWC"),
        ("val/predictions", 4, "HWC"),
    ]
    assert torch.equal(logged[-1][1].reshape(-1), picture)  # the same picture as the file
    # the same fixed images each time: the image column does not change between epochs
    first, last = (logged[i][1][16:, :96] for i in (0, 1))
    assert torch.equal(first, last)


def test_callback_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="every_n_epochs >= 1"):
        LevelPredictionImages(every_n_epochs=0)
