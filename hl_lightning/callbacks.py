"""Old import path of :mod:`hl_lightning.lightning.callbacks`, kept for saved configs."""

from hl_lightning.lightning.callbacks import (
    LevelPredictionImages,
    LevelSummary,
    level_table,
    prediction_grid,
)

__all__ = ["LevelPredictionImages", "LevelSummary", "level_table", "prediction_grid"]
