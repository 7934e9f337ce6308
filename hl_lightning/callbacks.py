"""Lightning callbacks: plain per-epoch progress lines and the final per-level table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

__all__ = ["LevelSummary", "level_table"]


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
        if not trainer.is_global_zero:
            return
        keys = ["train/loss_epoch", *(("val/loss", "val/miou") if validated else ())]
        head = f"epoch {trainer.current_epoch}"
        print(_line(trainer.callback_metrics, head, keys), flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_table(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_table(trainer, pl_module, "test")

    def _print_table(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            levels = list(pl_module.hierarchy.level_names)
            table = level_table(dict(trainer.callback_metrics), stage, levels)
            print(f"{stage} per level:\n{table}", flush=True)
