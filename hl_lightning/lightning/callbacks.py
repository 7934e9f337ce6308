"""Lightning callbacks: per-epoch progress lines, per-level tables and prediction images."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Sized
from pathlib import Path
from typing import cast

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import DataLoader, default_collate

from hl_lightning.atomic import atomic_write
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.checks import unpack_batch as _unpack
from hl_lightning.palette import colorize, level_palettes

__all__ = [
    "LevelPredictionImages",
    "LevelSummary",
    "RunTags",
    "level_legend",
    "level_table",
    "prediction_grid",
]

_CELL = 96  # smallest side of a grid cell, pixels: small images are enlarged (nearest)
_GAP = 2  # white pixels between cells
_HEADER = 16  # height of the title row, pixels
_SWATCH = 10  # side of a legend's colour square, pixels
_LINE = 14  # height of a legend line, pixels


def level_table(
    metrics: Mapping[str, torch.Tensor | float], stage: str, level_names: Sequence[str]
) -> str:
    """Return a text table of per-level loss, mIoU and pixel accuracy logged for ``stage``.

    Missing values show as ``-``; a mistake-severity line follows when it was logged.

    Example:
        >>> print(level_table({"val/miou/a": 0.5, "val/acc/a": 0.9}, "val", ["a"]))
        level            loss    mIoU     acc
        a                   -  0.5000  0.9000
    """

    def cell(key: str) -> str:
        value = metrics.get(f"{stage}/{key}")
        return f"{float(value):>7.4f}" if value is not None else f"{'-':>7}"

    width = max([12, *(len(name) for name in level_names)])
    lines = [f"{'level':<{width}} {'loss':>8} {'mIoU':>7} {'acc':>7}"]
    for name in level_names:
        row = (cell(f"loss/{name}"), cell(f"miou/{name}"), cell(f"acc/{name}"))
        lines.append(f"{name:<{width}} {row[0]:>8} {row[1]} {row[2]}")
    if f"{stage}/severity" in metrics:
        lines.append(
            f"mistake severity {cell('severity').strip()} (mean tree distance of wrong pixels), "
            f"serious {cell('serious').strip()} (share crossing the coarsest level)"
        )
    return "\n".join(lines)


def _line(metrics: Mapping[str, torch.Tensor | float], head: str, keys: Sequence[str]) -> str:
    """Return ``head key=value ...`` for the ``keys`` present in ``metrics``."""
    parts = [head]
    for key in keys:
        if key in metrics:
            parts.append(f"{key.removesuffix('_epoch')}={float(metrics[key]):.4f}")
    return " ".join(parts)


class LevelSummary(L.Callback):
    """Print one plain line per epoch and per-level tables after fit and test.

    During ``fit`` the line comes at the end of each training epoch (Lightning validates
    before it ends), with the epoch's training loss and, when validation ran, its loss and
    finest-level mIoU: ``epoch 3 train/loss=1.2345 val/loss=1.3456 val/miou=0.4567``. A
    stand-alone ``trainer.validate`` prints ``validate val/loss=... val/miou=...``.
    Plain lines suit logs and CI; on a terminal the progress bar shows the same values.
    """

    def __init__(self) -> None:
        self._validated = False  # validation ran in the current training epoch

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        if trainer.state.fn == TrainerFn.FITTING:
            self._validated = True  # printed with the training loss at the epoch's end
        else:
            print(_line(trainer.callback_metrics, "validate", ("val/loss", "val/miou")), flush=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        validated, self._validated = self._validated, False
        metrics = trainer.callback_metrics  # read by every process: computing the epoch's
        if not trainer.is_global_zero:  # values reduces them over the processes
            return
        keys = ["train/loss_epoch", *(("val/loss", "val/miou") if validated else ())]
        print(_line(metrics, f"epoch {trainer.current_epoch}", keys), flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_table(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_table(trainer, pl_module, "test")

    def _print_table(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            levels = list(_hierarchy(pl_module).level_names)
            table = level_table(dict(trainer.callback_metrics), stage, levels)
            print(f"{stage} per level:\n{table}", flush=True)


class RunTags(L.Callback):
    """Log the run's tags (``hl-train tags=[a,b]``) among every logger's hyper-parameters.

    Once, at the first set-up (fit, or test alone), as ``{"tags": [...]}``: CSV and
    TensorBoard write it to their ``hparams.yaml``, MLflow as a parameter, W&B into the
    run's config. No tags, nothing logged.

    Example:
        >>> RunTags(["baseline", "v2"]).tags
        ['baseline', 'v2']
    """

    def __init__(self, tags: Sequence[str] = ()) -> None:
        self.tags = [str(tag) for tag in tags]
        self._logged = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.tags and not self._logged:
            self._logged = True
            for logger in trainer.loggers:
                logger.log_hyperparams({"tags": self.tags})


def _display(images: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    """Return uint8 RGB images (N, H, W, 3) from normalised float images (N, C, H, W).

    With ``mean`` and ``std`` the normalisation is undone; without, each image's range is
    stretched to [0, 1]. One channel is shown grey; channels beyond the third are dropped.
    """
    images = images.detach().float().cpu()
    if mean is not None and std is not None:
        shape = (1, -1, 1, 1)
        images = images * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
    else:
        low = images.amin((1, 2, 3), keepdim=True)
        high = images.amax((1, 2, 3), keepdim=True)
        images = (images - low) / (high - low).clamp_min(1e-8)
    images = images[:, :3] if images.shape[1] >= 3 else images[:, :1].expand(-1, 3, -1, -1)
    return images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)


def prediction_grid(
    images: Tensor,
    masks: Tensor,
    predictions: Sequence[Tensor],
    hierarchy: Hierarchy,
    ignore_index: int | None = 255,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    legend: bool = True,
) -> Tensor:
    """Return a uint8 RGB picture (H, W, 3): per image, its ground truth and prediction per level.

    One row per image: the image, then for each level (coarse to fine) the ground truth and
    the prediction, coloured with :func:`~hl_lightning.palette.level_palettes` (children
    are shades of their parent; ignored pixels black), under a title row and above the
    colours' legend (:func:`level_legend`). Small images are enlarged (nearest neighbour)
    so that a cell is at least 96 pixels high.

    Args:
        images: (N, C, H, W) float, normalised as the network sees them.
        masks: (N, H, W) leaf label ids, ``ignore_index`` where unlabelled.
        predictions: D label maps (N, H, W) of group ids, one per level, coarse to fine
            (the values of :meth:`HierarchicalSegmenter.predict_step`).
        hierarchy: the class tree (leaf ``i`` = label id ``i``).
        ignore_index: the mask value of unlabelled pixels.
        mean, std: the per-channel normalisation to undo for display; when None, each
            image's range is stretched to [0, 1].
        legend: draw the legend of the colours under the cells.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> masks = torch.randint(3, (2, 32, 32))
        >>> grid = prediction_grid(torch.rand(2, 3, 32, 32), masks, [masks % 2, masks], h)
        >>> grid.shape, grid.dtype  # a title row, 2 x 5 cells of 96 pixels, 2-pixel gaps, legend
        (torch.Size([256, 488, 3]), torch.uint8)
    """
    palettes = level_palettes(hierarchy)
    masks = masks.detach().cpu()
    columns = [_display(images, mean, std)]
    titles = ["image"]
    for level, (name, palette, predicted) in enumerate(
        zip(hierarchy.level_names, palettes, predictions, strict=True)
    ):
        truth = hierarchy.labels_at_level(masks, level, ignore_index)
        columns += [colorize(truth, palette), colorize(predicted.detach().cpu(), palette)]
        titles += [f"{name} truth", f"{name} pred"]
    scale = math.ceil(_CELL / min(masks.shape[-2:]))
    cells = torch.stack(columns, 1)  # (N, columns, H, W, 3)
    cells = cells.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    cells = torch.nn.functional.pad(cells, (0, 0, 0, _GAP, 0, _GAP), value=255)
    rows, count, height, width, _ = cells.shape
    grid = cells.permute(0, 2, 1, 3, 4).reshape(rows * height, count * width, 3)
    picture = _titled(grid[:-_GAP, :-_GAP], titles, width)
    return torch.cat([picture, level_legend(hierarchy, picture.shape[1])]) if legend else picture


def level_legend(hierarchy: Hierarchy, width: int) -> Tensor:
    """Return the legend of the level colours as a uint8 RGB strip (H, ``width``, 3).

    A line per level: its name, then a colour square and the name of each of its groups,
    in group order, wrapped to ``width``; a last line for black, the ignored pixels.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> level_legend(h, 300).shape  # 2 levels and the ignored pixels: 3 lines of 14 pixels
        torch.Size([46, 300, 3])
    """
    lines = [
        (f"{name}:", list(zip(hierarchy.group_names(d), palette.tolist(), strict=True)))
        for d, (name, palette) in enumerate(
            zip(hierarchy.level_names, level_palettes(hierarchy), strict=True)
        )
    ]
    lines.append(("", [("ignored", [0, 0, 0])]))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    placed: list[tuple[int, int, str, tuple[int, ...] | None]] = []  # x, y, text, its colour
    y = 2
    for heading, groups in lines:
        x = 2
        if heading:
            placed.append((x, y, heading, None))
            x += math.ceil(measure.textlength(heading)) + 6
        indent = x
        for name, colour in groups:
            size = _SWATCH + 3 + math.ceil(measure.textlength(name)) + 10
            if x + size > width and x > indent:  # wrap, under the first group
                x, y = indent, y + _LINE
            placed.append((x, y, name, tuple(colour)))
            x += size
        y += _LINE
    picture = Image.new("RGB", (width, y + 2), "white")
    draw = ImageDraw.Draw(picture)
    for x, y, text, colour in placed:
        if colour is not None:
            draw.rectangle(
                (x, y + 1, x + _SWATCH + 1, y + _SWATCH + 2), fill=colour, outline="grey"
            )
            x += _SWATCH + 5
        draw.text((x, y), text, fill="black")
    return _tensor(picture)


def _titled(grid: Tensor, titles: Sequence[str], step: int) -> Tensor:
    """Return the picture (H, W, 3) with a white title row, one title every ``step`` pixels."""
    picture = Image.new("RGB", (grid.shape[1], grid.shape[0] + _HEADER), "white")
    picture.paste(Image.fromarray(grid.numpy()), (0, _HEADER))
    draw = ImageDraw.Draw(picture)
    for i, title in enumerate(titles):
        draw.text((i * step + 2, 2), title, fill="black")
    return _tensor(picture)


def _tensor(picture: Image.Image) -> Tensor:
    """Return an RGB picture as a uint8 tensor (H, W, 3)."""
    return torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8).view(
        picture.height, picture.width, 3
    )


def _hierarchy(pl_module: L.LightningModule) -> Hierarchy:
    """Return the module's class tree (a plain attribute, which nn.Module types as a Module)."""
    return cast(Hierarchy, pl_module.hierarchy)


def _first_loader(
    loaders: DataLoader | Sequence[DataLoader] | Mapping[str, DataLoader] | None,
) -> DataLoader:
    """Return the first of the trainer's validation loaders (one, a list or a dict of them)."""
    if loaders is None:
        raise RuntimeError("LevelPredictionImages needs the trainer's validation loaders")
    if isinstance(loaders, Mapping):
        return next(iter(loaders.values()))
    return loaders[0] if isinstance(loaders, Sequence) else loaders


class LevelPredictionImages(L.Callback):
    """Save a grid of ground truth and predictions at every level for fixed validation images.

    Every ``every_n_epochs`` validation epochs (not the sanity check), the first
    ``num_images`` images of the (first) validation set, the same ones each time, are
    predicted with the module's decoding and drawn by :func:`prediction_grid`. The picture
    is saved (whole: :mod:`hl_lightning.atomic`) as ``<dirpath>/epoch_XXX.png`` and, for
    every logger whose experiment has ``add_image`` (TensorBoard), logged as
    ``val/predictions`` at the global step. Needs a module with a ``hierarchy`` and a
    ``predict_step`` returning one map per level, as
    :class:`~hl_lightning.lightning.module.HierarchicalSegmenter` does; only rank 0 draws.

    Args:
        every_n_epochs: draw after every n-th validation epoch (epoch ``n - 1``, ``2n - 1``, ...).
        num_images: how many validation images (rows).
        dirpath: folder of the PNG files; default ``<trainer.default_root_dir>/predictions``.
        mean, std: the per-channel normalisation of the images, undone for display; when
            None, each image's range is stretched to [0, 1].

    Example:
        >>> callback = LevelPredictionImages(every_n_epochs=2, num_images=2)
        >>> callback.num_images
        2
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_images: int = 4,
        dirpath: str | Path | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if every_n_epochs < 1 or num_images < 1:
            raise ValueError(
                f"need every_n_epochs >= 1 and num_images >= 1, got every_n_epochs="
                f"{every_n_epochs}, num_images={num_images}"
            )
        self.every_n_epochs = every_n_epochs
        self.num_images = num_images
        self.dirpath = None if dirpath is None else Path(dirpath)
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        self._samples: tuple[Tensor, Tensor] | None = None  # the fixed images and masks, CPU

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the Trainer sets fast_dev_run in a helper, so its class does not declare it
        fast_dev_run = getattr(trainer, "fast_dev_run", False)
        if trainer.sanity_checking or fast_dev_run or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        if (epoch + 1) % self.every_n_epochs:
            return
        grid = self.draw(trainer, pl_module)
        folder = self.dirpath or Path(trainer.default_root_dir) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / f"epoch_{epoch:03d}.png", "wb") as file:
            Image.fromarray(grid.numpy()).save(file, format="PNG")
        for logger in trainer.loggers:
            # Lightning's Logger base class has no experiment; its loggers all define one
            add_image = getattr(getattr(logger, "experiment", None), "add_image", None)
            if callable(add_image):
                add_image("val/predictions", grid, trainer.global_step, dataformats="HWC")

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Tensor:
        """Return the picture (H, W, 3) uint8 of the module's current predictions."""
        if self._samples is None:
            dataset = _first_loader(trainer.val_dataloaders).dataset
            count = min(self.num_images, len(cast(Sized, dataset)))  # a map-style dataset
            self._samples = _unpack(default_collate([dataset[i] for i in range(count)]))
        images, masks = self._samples
        precision = trainer.precision_plugin
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad(), precision.forward_context():
                inputs = precision.convert_input(images.to(pl_module.device))
                predictions = list(pl_module.predict_step(inputs).values())
        finally:
            pl_module.train(was_training)
        hierarchy = _hierarchy(pl_module)
        ignore_index = getattr(pl_module, "ignore_index", None)
        return prediction_grid(
            images, masks, predictions, hierarchy, ignore_index, self.mean, self.std
        )
