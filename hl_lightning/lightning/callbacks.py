"""Lightning callbacks: per-epoch progress lines, per-level tables and prediction images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Sized
from pathlib import Path
from typing import cast

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, default_collate

from hl_lightning.atomic import atomic_write
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.checks import unpack_batch as _unpack
from hl_lightning.lightning.grids import prediction_grid

__all__ = ["LevelPredictionImages", "LevelSummary", "RunTags", "level_table"]


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
    ``num_images`` images of the (first) validation set (those of the first one's size,
    where the images keep sizes of their own), the same ones each time, are
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
            items = [dataset[i] for i in range(count)]
            size = _unpack(items[0])[0].shape[-2:]  # whole frames may differ: the first's size
            same = [item for item in items if _unpack(item)[0].shape[-2:] == size]
            self._samples = _unpack(default_collate(same))
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
