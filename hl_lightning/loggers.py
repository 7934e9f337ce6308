"""Old import path of :mod:`hl_lightning.lightning.loggers`, kept for saved configs."""

from hl_lightning.lightning.loggers import ResumableCSVLogger

__all__ = ["ResumableCSVLogger"]
