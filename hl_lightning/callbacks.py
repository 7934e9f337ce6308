"""Lightning callbacks: plain per-epoch progress lines and the final per-level table."""

from __future__ import annotations

import lightning as L
import torch

__all__ = ["LevelSummary", "level_table"]


def level_table(
    metrics: dict[str, torch.Tensor | float], stage: str, level_names: list[str]
) -> str:
    """Return a text table of per-level loss, mIoU and pixel accuracy logged for ``stage``.

    Example:
        >>> print(level_table({"val/miou/a": 0.5, "val/acc/a": 0.9}, "val", ["a"]))
        level            loss    mIoU     acc
        a                   -  0.5000  0.9000
    """

    def cell(key: str) -> str:
        value = metrics.get(f"{stage}/{key}")
        return f"{float(value):>7.4f}" if value is not None else f"{'-':>7}"

    lines = [f"{'level':<12} {'loss':>8} {'mIoU':>7} {'acc':>7}"]
    for name in level_names:
        row = (cell(f"loss/{name}"), cell(f"miou/{name}"), cell(f"acc/{name}"))
        lines.append(f"{name:<12} {row[0]:>8} {row[1]} {row[2]}")
    if f"{stage}/severity" in metrics:
        lines.append(
            f"mistake severity {cell('severity').strip()} (mean tree distance of wrong pixels), "
            f"serious {cell('serious').strip()} (share crossing the coarsest level)"
        )
    return "\n".join(lines)


class LevelSummary(L.Callback):
    """Print one plain line per validation epoch and per-level tables after fit and test.

    Plain lines suit logs and CI; on a terminal the progress bar shows the same values.
    """

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch}"]
        for key in ("train/loss_epoch", "val/loss", "val/miou"):
            if key in m:
                parts.append(f"{key.replace('_epoch', '')}={float(m[key]):.4f}")
        print(" ".join(parts), flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_table(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._print_table(trainer, pl_module, "test")

    def _print_table(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            levels = list(pl_module.hierarchy.level_names)
            table = level_table(dict(trainer.callback_metrics), stage, levels)
            print(f"{stage} per level:\n{table}", flush=True)
